# Redis's own test suite (owner: redis-suite): Debian's redis 7.0.15 tests, external mode,
# against IronCache and redis-server in the same run; a per-unit table and floors.
#   make redis-suite                                      every unit of the CI list
#   make redis-suite REDIS_SUITE_UNITS="type/zset multi"  some units
#   make redis-suite REDIS_SUITE_ARGS=--raise-floors      write this run's passes to expected.tsv
# Needs tcl, dpkg-dev (dpkg-source), patch, redis-server 7.0.15 (tests/setup/apt.sh) and the
# Debian mirror of /etc/apt/sources.list.d/debian.sources for the first run (then cached).
REDIS_SUITE_UNITS ?=
REDIS_SUITE_ARGS ?=
export REDIS_SUITE_UNITS REDIS_SUITE_ARGS

.PHONY: redis-suite
redis-suite: venv apt
	$(ROOT)/tests/redis-suite/run.sh

TEST_LANE2 += redis-suite
