#!/usr/bin/env bash
# Create or update .venv/ from requirements-dev.txt; idempotent and quiet.
# Re-installs only when requirements-dev.txt changed since the last successful install.
#   usage: tests/setup/venv.sh     (VENV=path, PYTHON=interpreter and REQ=requirements file
#                                  override the defaults; bench-venv.sh uses all three)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VENV=${VENV:-$ROOT/.venv}
REQ=${REQ:-$ROOT/requirements-dev.txt}
STAMP=$VENV/.requirements-dev.sha256
PYTHON=${PYTHON:-python3}

log() { echo "venv: $*" >&2; }

want=$(sha256sum "$REQ" | cut -d' ' -f1)
if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    exit 0
fi

if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    log "$PYTHON is older than 3.11"; exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
        rm -rf "$VENV"
        if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
            log "python3 -m venv failed: installing python3-venv"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
            "$PYTHON" -m venv "$VENV"
        else
            log "python3 -m venv failed (Debian: apt-get install python3-venv)"; exit 1
        fi
    fi
fi
log "installing $(basename "$REQ") into $VENV (about a minute the first time)"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
if ! "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ" >"$VENV/pip.log" 2>&1; then
    grep -v '^WARNING: Location' "$VENV/pip.log" | tail -n 30 >&2
    exit 1
fi
echo "$want" >"$STAMP"
