# Rolling restart (owner: rolling). Unit tests of the rolling_restart logic; the molecule
# scenarios `upgrade` (three nodes, zero refused) and `upgrade_selfbind` (the control: refused)
# are picked up by the Makefile as molecule-upgrade and molecule-upgrade_selfbind.
#   make unit-test                      pytest tests/unit
#   make bench-restart                  bench/restart.py (20 restarts per case, about 2 minutes)
#   make bench-restart RESTART_ARGS="--restarts 5 --json"
RESTART_ARGS ?=

.PHONY: unit-test bench-restart

unit-test: venv collections
	cd $(ROOT) && python -m pytest -q -p no:cacheprovider tests/unit

bench-restart: venv image
	cd $(ROOT) && python bench/restart.py $(RESTART_ARGS)

TEST_LANE2 += unit-test
