#!/usr/bin/env bash
# Redis's own test suite (Debian's redis 7.0.15 source package) against IronCache and
# redis-server in the same run; prints a per-unit table and fails on a regression (see suite.py).
#
#   tests/redis-suite/run.sh                       the units of the CI list
#   REDIS_SUITE_UNITS="type/zset multi" tests/redis-suite/run.sh
#   REDIS_SUITE_ARGS="--raise-floors" tests/redis-suite/run.sh   raise expected.tsv to this run
#
# The source comes from the Debian mirror the host already uses (the `URIs:` of
# /etc/apt/sources.list.d/debian.sources), through a `deb-src` copy of that file in a separate
# apt state directory, so the host's apt lists and cache are untouched. The extracted tree (with
# Debian's patches) is cached in .cache/redis-suite/ (git-ignored); each run works on copies.
# Needs: tclsh (tcl), dpkg-source (dpkg-dev), patch, redis-server, the repository's .venv.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/tests/redis-suite
CACHE=${REDIS_SUITE_CACHE:-$ROOT/.cache/redis-suite}
WORK=${REDIS_SUITE_WORK:-$ROOT/tests/output/redis-suite}
PYTHON=${IRONCACHE_PYTHON:-$ROOT/.venv/bin/python}
SRC=${IRONCACHE_SRC:-$ROOT/ironcache_src}  # another checkout's server, e.g. to compare
PORT=${REDIS_SUITE_PORT:-7501}
VERSION=7.0.15
TREE=$CACHE/redis-$VERSION

log() { echo "redis-suite: $*" >&2; }

for cmd in tclsh8.6 dpkg-source patch redis-server; do
    command -v "$cmd" >/dev/null || { log "$cmd is missing (tests/setup/apt.sh installs it)"; exit 1; }
done
if ! redis-server --version | grep -q "v=$VERSION "; then
    log "redis-server is not $VERSION: $(redis-server --version)"; exit 1
fi
# IronCache as deployed: uvloop and hiredis (ironcache_accelerators)
"$PYTHON" -c 'import uvloop, hiredis' || { log "$PYTHON lacks uvloop or hiredis"; exit 1; }

fetch() {
    local apt=$CACHE/apt dl=$CACHE/download
    rm -rf "$apt" "$dl"
    mkdir -p "$apt/sources.list.d" "$apt/lists/partial" "$apt/cache/archives/partial" "$dl"
    if [ ! -f /etc/apt/sources.list.d/debian.sources ]; then
        log "no /etc/apt/sources.list.d/debian.sources to take the mirror from"; exit 1
    fi
    # the host's own entries, as source entries
    sed -E 's/^Types:.*/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
        >"$apt/sources.list.d/debian-src.sources"
    local opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$apt/sources.list.d"
        -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache"
        -o "APT::Sandbox::User=root" -q)
    log "fetching Debian's redis source package (deb-src of the host's mirror)"
    apt-get "${opts[@]}" update >/dev/null
    (cd "$dl" && apt-get "${opts[@]}" source --download-only redis >/dev/null)
    local dsc
    dsc=$(ls "$dl"/redis_"$VERSION"-*.dsc)
    rm -rf "$TREE.tmp"
    # apt checked the files against the signed Release; dpkg-source checks their checksums (its
    # "cannot verify inline signature" warning only means no Debian keyring is installed)
    dpkg-source -x "$dsc" "$TREE.tmp" >"$CACHE/dpkg-source.log" 2>&1 ||
        { cat "$CACHE/dpkg-source.log" >&2; exit 1; }
    mv "$TREE.tmp" "$TREE"
    rm -rf "$apt" "$dl" "$CACHE"/redis_"$VERSION"*.orig.tar.*
}

if [ ! -x "$TREE/runtest" ] || [ ! -d "$TREE/tests/unit" ]; then
    rm -rf "$TREE"
    fetch
fi
log "tree: $TREE ($(head -1 "$TREE/debian/changelog" | cut -d' ' -f2))"

# Each server's lane works on its own copy of tests/ + runtest with harness.patch applied (the
# same patch for both: it changes nothing for Redis). src/ stays empty: the few tests that
# exec src/redis-server or src/redis-cli fail alike for both servers.
rm -rf "$WORK"
mkdir -p "$WORK"
for target in ironcache redis; do
    mkdir -p "$WORK/tree-$target/src"
    cp -a "$TREE/tests" "$TREE/runtest" "$WORK/tree-$target/"
    # the certificates of the --tls units (suite.py runs it)
    mkdir -p "$WORK/tree-$target/utils"
    cp -a "$TREE/utils/gen-test-certs.sh" "$WORK/tree-$target/utils/"
    patch -d "$WORK/tree-$target" -p1 --forward --quiet <"$HERE/harness.patch"
done

# shellcheck disable=SC2086 # REDIS_SUITE_ARGS is a list of options
exec "$PYTHON" "$HERE/suite.py" \
    --tree-ironcache "$WORK/tree-ironcache" --tree-redis "$WORK/tree-redis" \
    --work "$WORK" --src "$SRC" --python "$PYTHON" \
    --expected "$HERE/expected.tsv" --skip-ironcache "$HERE/skip-ironcache.tsv" --port "$PORT" \
    ${REDIS_SUITE_UNITS:+--units "$REDIS_SUITE_UNITS"} ${REDIS_SUITE_ARGS:-}
