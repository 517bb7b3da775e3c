#!/usr/bin/env bash
# galaxy-importer on the built tarball, as Galaxy runs it on upload (offline: no ansible-test in a
# container), with ansible-lint on. Fails on any warning or error the importer reports, and when
# ansible-lint or ansible-doc did not run (without them the importer only warns).
#   KEEP=1 keeps the temporary directory
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
GVENV=${GALAXY_VENV:-$ROOT/.venv-galaxy}
VENV=$GVENV REQ=$ROOT/tests/galaxy/requirements-importer.txt "$ROOT/tests/setup/venv.sh"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ironcache-importer.XXXXXX")
trap 'if [ "${KEEP:-0}" = 1 ]; then echo "galaxy-import: kept $WORK"; else rm -rf "$WORK"; fi' EXIT
export PATH=$GVENV/bin:$PATH ANSIBLE_NOCOLOR=1 PY_COLORS=0
unset ANSIBLE_COLLECTIONS_PATH ANSIBLE_CONFIG

(cd "$ROOT" && ansible-galaxy collection build --force --output-path "$WORK" >/dev/null)
TARBALL=$(ls "$WORK"/ironcache-ironcache-*.tar.gz)
echo "galaxy-import: $(basename "$TARBALL") ($(du -k "$TARBALL" | cut -f1) KiB)"
cat >"$WORK/importer.cfg" <<CFG
[galaxy-importer]
LOG_LEVEL_MAIN = INFO
RUN_ANSIBLE_TEST = False
RUN_ANSIBLE_LINT = True
CHECK_CHANGELOG = True
CFG
rc=0
(cd "$WORK" && GALAXY_IMPORTER_CONFIG=$WORK/importer.cfg python -m galaxy_importer.main "$TARBALL") \
    >"$WORK/importer.log" 2>&1 || rc=$?
cat "$WORK/importer.log"
[ $rc = 0 ] || { echo "galaxy-import: the importer exited $rc" >&2; exit 1; }
for want in "Getting doc strings via ansible-doc" "Linting collection via ansible-lint" \
        "Importer processing completed successfully"; do
    grep -qF "$want" "$WORK/importer.log" || { echo "galaxy-import: missing '$want'" >&2; exit 1; }
done
if grep -E "WARNING|ERROR|Traceback" "$WORK/importer.log" | grep -v "^WARNING: Location"; then
    echo "galaxy-import: the importer reported the lines above" >&2; exit 1
fi
echo "galaxy-import: ok"
