# Benchmarks (owner: bench). Not in TEST_TARGETS: a benchmark measures, it does not pass or fail.
#   make bench-throughput                          full run (about 1-2 minutes)
#   make bench-throughput BENCH_ARGS="--quick"     smoke run (about 10 s)
#   make bench-throughput BENCH_ARGS="--json"      machine-readable report on stdout
# Needs redis-server and redis-benchmark (Debian: redis-server, redis-tools) and taskset.
# IronCache runs on BENCH_PYTHON (the project's .venv when it exists: uvloop + hiredis).
BENCH_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/../..)
BENCH_PYTHON ?= $(firstword $(wildcard $(BENCH_ROOT)/.venv/bin/python) python3)
BENCH_ARGS ?=

.PHONY: bench-throughput
bench-throughput:
	$(BENCH_PYTHON) $(BENCH_ROOT)/bench/throughput.py --python $(BENCH_PYTHON) $(BENCH_ARGS)
