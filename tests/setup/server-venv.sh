#!/usr/bin/env bash
# Create or update a virtualenv that runs the server's test suite (ironcache_src/tests) on
# another Python: the suite's clients and the server's accelerators at the versions
# requirements-dev.txt pins. Idempotent and quiet (tests/setup/venv.sh does the work).
#   usage: PYTHON=~/.pyenv/versions/3.13.0/bin/python3.13 VENV=DIR tests/setup/server-venv.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
: "${PYTHON:?PYTHON must name the interpreter}" "${VENV:?VENV must name the directory}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pins=$tmp/server-tests.txt
# uvloop and hiredis: IronCache runs on this venv's interpreter, as the role deploys it;
# sortedcontainers (sorted sets) and lupa (scripting): the server needs them
grep -E '^(redis|hiredis|uvloop|pytest|pytest-asyncio|hypothesis|sortedcontainers|lupa)==' \
    "$ROOT/requirements-dev.txt" >"$pins"
[ "$(wc -l <"$pins")" -eq 8 ] || { echo "server-venv: pins missing from requirements-dev.txt" >&2; exit 1; }
mkdir -p "$(dirname "$VENV")"
VENV=$VENV PYTHON=$PYTHON REQ=$pins "$ROOT/tests/setup/venv.sh"
