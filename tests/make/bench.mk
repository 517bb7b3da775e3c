# Benchmarks (owner: bench). Not in TEST_TARGETS: a benchmark measures, it does not pass or fail.
#   make bench-throughput                          full run (about 1-2 minutes)
#   make bench-throughput BENCH_ARGS="--quick"     smoke run (about 10 s)
#   make bench-throughput BENCH_ARGS="--json"      machine-readable report on stdout
# Needs redis-server and redis-benchmark (Debian: redis-server, redis-tools) and taskset.
# IronCache runs on BENCH_PYTHON when set; by default throughput.py makes and uses .venv-bench,
# the host's python3 with uvloop and hiredis as the role deploys it (tests/setup/bench-venv.sh).
BENCH_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/../..)
BENCH_PYTHON ?=
BENCH_ARGS ?=

.PHONY: bench-throughput
bench-throughput:
	python3 $(BENCH_ROOT)/bench/throughput.py $(if $(BENCH_PYTHON),--python $(BENCH_PYTHON)) $(BENCH_ARGS)
