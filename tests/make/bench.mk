# Benchmarks (owner: bench). Not in TEST_TARGETS: a benchmark measures, it does not pass or fail.
#   make bench-throughput                          full run (about 1-2 minutes)
#   make bench-throughput BENCH_ARGS="--quick"     smoke run (about 10 s)
#   make bench-throughput BENCH_ARGS="--json"      machine-readable report on stdout
#   make bench-instructions                        instructions per request, this tree against
#                                                  BASELINE_REV (default main), under callgrind
# Needs redis-server and redis-benchmark (Debian: redis-server, redis-tools) and taskset;
# bench-instructions needs valgrind (callgrind_control) and redis-benchmark.
# IronCache runs on BENCH_PYTHON when set; by default throughput.py makes and uses .venv-bench,
# the host's python3 with uvloop and hiredis as the role deploys it (tests/setup/bench-venv.sh).
BENCH_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/../..)
BENCH_PYTHON ?=
BENCH_ARGS ?=
BASELINE_REV ?= main

.PHONY: bench-throughput
bench-throughput:
	python3 $(BENCH_ROOT)/bench/throughput.py $(if $(BENCH_PYTHON),--python $(BENCH_PYTHON)) $(BENCH_ARGS)

.PHONY: bench-instructions
bench-instructions:
	python3 $(BENCH_ROOT)/bench/instructions.py --baseline-rev $(BASELINE_REV) $(if $(BENCH_PYTHON),--python $(BENCH_PYTHON)) $(BENCH_ARGS)
