# Fuzzing harness of the server (owner: server; ironcache_src/fuzz/, README "Fuzzing"):
# atheris on the request parsers (pure Python and hiredis) and on the command layer, a fixed
# number of inputs from a fixed seed each (reproducible), then a differential run of generated
# command sequences against redis-server 7.0.15. About 2 minutes on 2 cores. Fails on a new
# crash, stall or unknown difference; known ones are listed in ironcache_src/fuzz/known.py.
# Inputs that crash or stall are saved under tests/output/fuzz/<target>/artifacts/.
#   make fuzz                        the CI run
#   make fuzz FUZZ_SCALE=5 FUZZ_SEED=7   longer, other inputs (to hunt rather than to check)
# The regressions (every input that once stalled or crashed the server) run in server-test:
# ironcache_src/tests/test_fuzz_regressions.py.
FUZZ_SCALE ?= 1
FUZZ_SEED ?= 1
export FUZZ_SCALE FUZZ_SEED

.PHONY: fuzz
fuzz: venv
	cd $(ROOT)/ironcache_src && $(VENV)/bin/python fuzz/run.py --out $(ROOT)/tests/output/fuzz

TEST_LANE2 += fuzz
