# Benchmarks (owner: bench). Not in TEST_TARGETS: a benchmark measures, it does not pass or fail.
#   make bench-throughput                          full run (about 1-2 minutes)
#   make bench-throughput BENCH_ARGS="--quick"     smoke run (about 10 s)
#   make bench-throughput BENCH_ARGS="--json"      machine-readable report on stdout
# Needs redis-server and redis-benchmark (Debian: redis-server, redis-tools) and taskset.
# IronCache runs on BENCH_PYTHON: by default .venv-bench, the host's python3 with uvloop and
# hiredis, as the role deploys it (tests/setup/bench-venv.sh makes it).
BENCH_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/../..)
BENCH_VENV := $(BENCH_ROOT)/.venv-bench
BENCH_PYTHON ?= $(BENCH_VENV)/bin/python
BENCH_ARGS ?=

.PHONY: bench-venv bench-throughput
bench-venv:
	$(BENCH_ROOT)/tests/setup/bench-venv.sh

bench-throughput: $(if $(filter $(BENCH_VENV)/bin/python,$(BENCH_PYTHON)),bench-venv)
	$(BENCH_PYTHON) $(BENCH_ROOT)/bench/throughput.py --python $(BENCH_PYTHON) $(BENCH_ARGS)
