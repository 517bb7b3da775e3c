#!/usr/bin/env bash
# Create or update .venv-bench/: the interpreter bench/throughput.py runs IronCache on.
# It is what the role deploys a release on: a virtualenv of the host's own python3 (Debian's,
# not a developer's build) with the uvloop and hiredis wheels that ironcache_accelerators
# installs, sortedcontainers (a server package the role always installs) and lupa (scripting),
# at the versions requirements-dev.txt pins. Idempotent and quiet (tests/setup/venv.sh
# does the work). To build it on another interpreter, remove .venv-bench first.
#   usage: tests/setup/bench-venv.sh     (VENV=path and BASE_PYTHON=path override the defaults)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pins=$tmp/accelerators.txt
grep -E '^(uvloop|hiredis|sortedcontainers|lupa)==' "$ROOT/requirements-dev.txt" >"$pins"
[ "$(wc -l <"$pins")" -eq 4 ] || { echo "bench-venv: pins missing from requirements-dev.txt" >&2; exit 1; }
VENV=${VENV:-$ROOT/.venv-bench} PYTHON=${BASE_PYTHON:-/usr/bin/python3} REQ=$pins \
    "$ROOT/tests/setup/venv.sh"
