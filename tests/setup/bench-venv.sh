#!/usr/bin/env bash
# Create or update .venv-bench/: the interpreter bench/throughput.py runs IronCache on.
# It is what the role deploys a release on: a virtualenv of the host's own python3 (Debian's,
# not a developer's build) with the uvloop and hiredis wheels that ironcache_accelerators
# installs, at the versions requirements-dev.txt pins. Idempotent and quiet.
#   usage: tests/setup/bench-venv.sh     (VENV=path and BASE_PYTHON=path override the defaults)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VENV=${VENV:-$ROOT/.venv-bench}
BASE_PYTHON=${BASE_PYTHON:-/usr/bin/python3}
PINS=$(grep -E '^(uvloop|hiredis)==' "$ROOT/requirements-dev.txt")
STAMP=$VENV/.pins.sha256

log() { echo "bench-venv: $*" >&2; }

want=$( (readlink -f "$BASE_PYTHON"; echo "$PINS") | sha256sum | cut -d' ' -f1)
if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    exit 0
fi
if ! "$BASE_PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    log "$BASE_PYTHON is missing or older than 3.11 (set BASE_PYTHON)"; exit 1
fi
rm -rf "$VENV"
log "creating $VENV from $BASE_PYTHON"
if ! "$BASE_PYTHON" -m venv "$VENV" 2>/dev/null; then
    rm -rf "$VENV"
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "venv failed: installing python3-venv"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        "$BASE_PYTHON" -m venv "$VENV"
    else
        log "$BASE_PYTHON -m venv failed (Debian: apt-get install python3-venv)"; exit 1
    fi
fi
# shellcheck disable=SC2086  # one argument per pin
if ! "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check $PINS \
        >"$VENV/pip.log" 2>&1; then
    grep -v '^WARNING: Location' "$VENV/pip.log" | tail -n 20 >&2
    exit 1
fi
echo "$want" >"$STAMP"
