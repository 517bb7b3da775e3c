#!/usr/bin/env bash
# ansible-test sanity on the collection as Galaxy users get it: build the tarball, install it
# offline into a scratch collections path, and run `ansible-test sanity --venv --python 3.11`
# from the real .../ansible_collections/ironcache/ironcache directory (not through a symlink).
# Offline except for the sanity tests' own requirements, which come from PyPI.
#   VENV=...   the virtualenv with ansible-core (default: .venv of the checkout)
#   KEEP=1     keep the scratch directory for inspection
#   extra arguments go to ansible-test, e.g. tests/sanity.sh --test pep8
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
if [ -x "$VENV/bin/ansible-test" ]; then
    export PATH=$VENV/bin:$PATH
fi
command -v ansible-test >/dev/null || { echo "sanity: ansible-test not found (set VENV or run make venv)" >&2; exit 1; }
export ANSIBLE_NOCOLOR=1 PY_COLORS=0
unset ANSIBLE_COLLECTIONS_PATH ANSIBLE_CONFIG

# Outside the checkout: inside a git work tree ansible-test lists files with git and would skip
# every file of the installed copy.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ironcache-sanity.XXXXXX")
mkdir -p "$WORK/dist" "$WORK/collections"
cleanup() { if [ "${KEEP:-0}" = 1 ]; then echo "sanity: kept $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT

# ansible-test --venv downloads get-pip.py unless this file exists: an offline stand-in.
GET_PIP=$HOME/.ansible/test/cache/get_pip_24_2.py
if [ ! -s "$GET_PIP" ]; then
    mkdir -p "$(dirname "$GET_PIP")"
    cat >"$GET_PIP" <<'PY'
# Offline stand-in for get-pip.py: ensurepip, then pip installs what was asked
# (get-pip's own --no-setuptools/--no-wheel options dropped).
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)
PY
fi

echo "sanity: building the collection"
(cd "$ROOT" && ansible-galaxy collection build --force --output-path "$WORK/dist" >/dev/null)
TARBALL=$(ls "$WORK"/dist/ironcache-ironcache-*.tar.gz)

echo "sanity: installing $(basename "$TARBALL") offline into $WORK/collections"
ansible-galaxy collection install --offline --no-deps --force -p "$WORK/collections" "$TARBALL" >"$WORK/install.log" 2>&1 \
    || { cat "$WORK/install.log" >&2; exit 1; }

cd "$WORK/collections/ansible_collections/ironcache/ironcache"
echo "sanity: ansible-test sanity --venv --python 3.11 in $PWD"
ansible-test sanity --venv --python 3.11 --color no "$@"
