# IronCache: the two commands of the README and one target per part of the test suite.
#
#   make demo                 deploy to a local systemd container, restart under a client
#   make test                 set everything up and run every test (summary at the end)
#   make <target>             one part: lint-python, lint, sanity, server-test, unit-test,
#                             molecule SCENARIO=x (or molecule-x), galaxy-test, terraform-test ...
#   make help                 the list of test targets
#
# Owners of a part add their targets in tests/make/<part>.mk and append them to one of two lanes
# that `make test` runs side by side: TEST_TARGETS for parts that drive containers (Docker,
# molecule), TEST_LANE2 for parts that run only local processes and share no state with them:
#   TEST_LANE2 += server-test
# TEST_LANE3 runs beside both: container parts that share no instance, port or ephemeral
# directory with lane 1 (the Debian 13 runs of the molecule scenarios), so their waits overlap.
# Every molecule scenario under molecule/ (a directory with molecule.yml) is a test target of its
# own (molecule-<scenario>); nothing needs adding for a new scenario.

SHELL := /bin/bash
.DEFAULT_GOAL := help
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))

VENV ?= $(ROOT)/.venv
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(ROOT)/.collections
export IRONCACHE_TEST_IMAGE ?= ironcache-systemd:bookworm
export PY_COLORS ?= 0
export ANSIBLE_NOCOLOR ?= 1
export ANSIBLE_FORCE_COLOR ?= 0
export MOLECULE_NO_LOG ?= false

# test targets in the order `make test` runs them, in two lanes run at the same time
TEST_TARGETS :=
TEST_LANE2 := lint-python
TEST_LANE3 :=

-include $(sort $(wildcard $(ROOT)/tests/make/*.mk))

SCENARIOS := $(sort $(patsubst $(ROOT)/molecule/%/molecule.yml,%,$(wildcard $(ROOT)/molecule/*/molecule.yml)))
TEST_TARGETS += $(addprefix molecule-,$(SCENARIOS)) galaxy-test

RESULTS := $(ROOT)/tests/output/make-test.tsv

.PHONY: help apt setup venv engine image collections lint-python molecule molecule-all \
	galaxy-test demo test

help:
	@echo "make demo    deploy IronCache to a local systemd container and restart it under a client"
	@echo "make test    run every test: $(TEST_TARGETS) $(TEST_LANE2) $(TEST_LANE3)"
	@echo "make molecule SCENARIO=<name>   one scenario of: $(SCENARIOS)"

# ---- set-up (each step idempotent) ----------------------------------------------------------
venv: apt
	@$(ROOT)/tests/setup/venv.sh

collections:
	@$(ROOT)/tests/setup/collections.sh

engine: apt
	@$(ROOT)/tests/setup/docker-engine.sh

image: engine
	@$(ROOT)/tests/setup/build-image.sh "$(IRONCACHE_TEST_IMAGE)"

apt:
	@$(ROOT)/tests/setup/apt.sh

setup: apt venv collections image

# ---- tests ------------------------------------------------------------------------------------
lint-python: venv
	cd $(ROOT) && ruff check .

# MOLECULE_ARGS: extra arguments of `molecule test` (e.g. --destroy never to keep the instance).
# One scenario runs once at a time per checkout: its instance name and ephemeral directory are fixed.
SCENARIO ?= default
MOLECULE_ARGS ?=
molecule: venv collections image
	cd $(ROOT) && molecule test -s $(SCENARIO) $(MOLECULE_ARGS)

molecule-%: venv collections image
	cd $(ROOT) && molecule test -s $* $(MOLECULE_ARGS)

molecule-all: $(addprefix molecule-,$(SCENARIOS))

galaxy-test: venv image
	$(ROOT)/tests/galaxy/run.sh

demo: venv collections image
	$(ROOT)/tests/demo/run.sh

# Runs every target of every lane even when one fails (TEST_TARGETS in the foreground, TEST_LANE2
# and TEST_LANE3 beside it with their output kept in tests/output/make-test-lane{2,3}.log and
# shown at the end), times
# each, prints a summary and fails when any failed. The summary is also in tests/output/make-test.tsv.
LANE2_LOG := $(ROOT)/tests/output/make-test-lane2.log
LANE3_LOG := $(ROOT)/tests/output/make-test-lane3.log
test: setup
	@mkdir -p $(dir $(RESULTS)); : >$(RESULTS); all_start=$$(date +%s); \
	lane() { for t in "$$@"; do \
		echo "==== make $$t"; start=$$(date +%s); \
		if $(MAKE) --no-print-directory -C $(ROOT) $$t </dev/null; then r=ok; else r=FAILED; fi; \
		printf '%s\t%s\t%ss\n' "$$t" "$$r" "$$(( $$(date +%s) - start ))" >>$(RESULTS); \
		echo "==== make $$t: $$r"; \
	done; }; \
	lane $(TEST_LANE2) >$(LANE2_LOG) 2>&1 & lane2=$$!; \
	echo "==== lane 2 ($(TEST_LANE2)) runs beside this one, output in $(LANE2_LOG)"; \
	lane $(TEST_LANE3) >$(LANE3_LOG) 2>&1 & lane3=$$!; \
	echo "==== lane 3 ($(TEST_LANE3)) runs beside this one, output in $(LANE3_LOG)"; \
	lane $(TEST_TARGETS); wait $$lane2; wait $$lane3; \
	echo "==== lane 2 output"; cat $(LANE2_LOG); \
	echo "==== lane 3 output"; cat $(LANE3_LOG); \
	failed=0; grep -q "	FAILED	" $(RESULTS) && failed=1; \
	printf '%s\t%s\t%ss\n' "total" "$$( [ $$failed = 0 ] && echo ok || echo FAILED )" \
		"$$(( $$(date +%s) - all_start ))" >>$(RESULTS); \
	echo "==== summary"; column -t -s $$'\t' $(RESULTS) 2>/dev/null || cat $(RESULTS); \
	exit $$failed
