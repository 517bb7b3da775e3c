# The Galaxy tarball (owner: matrix); `make galaxy-test` (Makefile) deploys it.
#   make galaxy-import   pytest tests/galaxy (build_ignore against a tree seeded with leftovers,
#                        README links) and galaxy-importer with ansible-lint on (.venv-galaxy)
.PHONY: galaxy-import

galaxy-import: venv
	cd $(ROOT) && $(VENV)/bin/python -m pytest -q -p no:cacheprovider tests/galaxy
	$(ROOT)/tests/galaxy/importer.sh

TEST_LANE2 += galaxy-import
