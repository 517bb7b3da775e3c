# The role's part of the test suite (included by the Makefile): ansible-lint and ansible-test sanity.
#   make lint     ansible-lint, production profile (.ansible-lint), over the playbooks and the role
#   make sanity   ansible-test sanity on the built and installed collection (tests/sanity.sh)

TEST_LANE2 += lint sanity

.PHONY: lint sanity

lint: venv collections
	cd $(ROOT) && $(VENV)/bin/ansible-lint

sanity: venv
	cd $(ROOT) && VENV=$(VENV) $(ROOT)/tests/sanity.sh
