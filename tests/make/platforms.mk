# Target platforms and Python versions (owner: platform).
#   make image-trixie               the Debian 13 systemd test image (tests/setup/build-image.sh)
#   make molecule-default-trixie    the scenarios default, handover and upgrade on Debian 13
#   make molecule-handover-trixie   (systemd 257, Python 3.13); instances are named *-trixie and
#   make molecule-upgrade-trixie    have their own ephemeral directory, so a Debian 12 run of the
#                                   same scenario can go on at the same time
#   make server-test-py312          the server's suite on pyenv's Python 3.12 / 3.13, in venvs
#   make server-test-py313          under .cache/server-venvs/ (tests/setup/server-venv.sh)
# make server-test runs the suite on the controller's Python (3.11, Debian 12).
TRIXIE_IMAGE ?= ironcache-systemd:trixie
TRIXIE_EPHEMERAL := $(ROOT)/tests/output/molecule-trixie
# the Debian 12 handover scenario publishes 16390
TRIXIE_HANDOVER_PORT ?= 16393
PYENV_VERSIONS ?= $(HOME)/.pyenv/versions

.PHONY: image-trixie molecule-default-trixie molecule-handover-trixie molecule-upgrade-trixie \
	server-test-py312 server-test-py313

image-trixie: engine
	@$(ROOT)/tests/setup/build-image.sh "$(TRIXIE_IMAGE)"

# $(call trixie_molecule,SCENARIO,extra environment)
define trixie_molecule
cd $(ROOT) && IRONCACHE_TEST_IMAGE=$(TRIXIE_IMAGE) \
	MOLECULE_EPHEMERAL_DIRECTORY=$(TRIXIE_EPHEMERAL)/$(1) $(2) \
	molecule test -s $(1) $(MOLECULE_ARGS)
endef

molecule-default-trixie: venv collections image-trixie
	$(call trixie_molecule,default,IRONCACHE_DEFAULT_NAME=mol-default-trixie)

molecule-handover-trixie: venv collections image-trixie
	$(call trixie_molecule,handover,IRONCACHE_HANDOVER_NAME=mol-handover-trixie \
		IRONCACHE_HANDOVER_PORT=$(TRIXIE_HANDOVER_PORT))

molecule-upgrade-trixie: venv collections image-trixie
	$(call trixie_molecule,upgrade,IRONCACHE_UPG_PREFIX=upg-trixie)

# $(call server_test_py,3.12): the newest pyenv 3.12.x
define server_test_py
py=$$(ls -d $(PYENV_VERSIONS)/$(1).*/bin/python$(1) 2>/dev/null | sort -V | tail -n 1); \
if [ -z "$$py" ]; then echo "no Python $(1) under $(PYENV_VERSIONS) (pyenv install $(1))" >&2; exit 1; fi; \
venv=$(ROOT)/.cache/server-venvs/py$(1); \
PYTHON=$$py VENV=$$venv $(ROOT)/tests/setup/server-venv.sh && \
cd $(ROOT)/ironcache_src && $$venv/bin/python -m pytest -q -p no:cacheprovider tests $(SERVER_TEST_ARGS)
endef

server-test-py312: apt
	@$(call server_test_py,3.12)

server-test-py313: apt
	@$(call server_test_py,3.13)

# Lane 3 (beside the Debian 12 runs in lane 1): own instance names, port and ephemeral directories.
TEST_LANE3 += molecule-default-trixie molecule-handover-trixie molecule-upgrade-trixie
TEST_LANE2 += server-test-py312 server-test-py313
