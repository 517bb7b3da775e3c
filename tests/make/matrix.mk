# Support matrix (owner: matrix): every ansible-core minor release meta/runtime.yml claims, each
# in its own virtualenv under .matrix/ (tests/matrix/run.sh): ansible-test sanity, --syntax-check
# of every playbook, a check-mode dry run with bsdtar as `tar`; molecule `default` on the oldest
# and newest release. Two rows at a time.
#   make matrix                                 every row
#   make matrix MATRIX_ARGS="2.16 2.21"         some rows
#   make matrix MATRIX_MOLECULE=0               without the molecule runs
MATRIX_ARGS ?=
export MATRIX_JOBS ?= 2
export MATRIX_MOLECULE ?= 1

.PHONY: matrix

matrix: venv image
	$(ROOT)/tests/matrix/run.sh $(MATRIX_ARGS)

# Lane 3 (beside the Debian 12 scenarios of lane 1): its containers are its own (matrix-dry,
# matrix-mol-<release>), and most of its time is ansible-test on the controller.
TEST_LANE3 += matrix
