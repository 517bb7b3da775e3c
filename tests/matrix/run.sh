#!/usr/bin/env bash
# Every ansible-core minor release the collection claims (meta/runtime.yml), each in its own
# virtualenv: ansible-test sanity, --syntax-check of every playbook, and a check-mode dry run of
# ironcache.ironcache.site against a systemd container with bsdtar as `tar` (a controller without
# GNU tar); molecule `default` on the oldest and the newest release.
#   tests/matrix/run.sh [RELEASE...]     e.g. tests/matrix/run.sh 2.16 2.21 (default: every row)
#   MATRIX_JOBS=2       rows run at the same time
#   MATRIX_CACHE=DIR    virtualenvs, and the logs of the last run in DIR/last-run (default .matrix/,
#                       git-ignored; delete it for a cold run)
#   MATRIX_MOLECULE=0   skip the molecule rows
# Sanity of 2.19 is `make sanity` (the same ansible-core as .venv): not run twice; the other rows
# check the Ansible content (plugins, roles, meta, playbooks) without the tests that do not depend
# on the ansible-core release (pep8, changelog).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${MATRIX_CACHE:-$ROOT/.matrix}
JOBS=${MATRIX_JOBS:-2}
MOLECULE=${MATRIX_MOLECULE:-1}
IMAGE=${IRONCACHE_TEST_IMAGE:-ironcache-systemd:bookworm}
DRY=${MATRIX_CONTAINER:-matrix-dry}
MAIN_VENV=${VENV:-$ROOT/.venv}
export PATH=$MAIN_VENV/bin:$PATH
export ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 PY_COLORS=0 NO_COLOR=1
unset ANSIBLE_CONFIG ANSIBLE_COLLECTIONS_PATH ANSIBLE_ROLES_PATH

# release  pinned ansible-core  python  extra
ROWS=(
    "2.16 2.16.19 3.11 molecule"
    "2.17 2.17.14 3.11 -"
    "2.18 2.18.19 3.11 -"
    "2.19 2.19.14 3.11 sanity-in-make-sanity"
    "2.20 2.20.10 3.12 -"
    "2.21 2.21.5 3.12 molecule"
)
# the versions requirements-dev.txt pins for .venv, so both agree
MOLECULE_PKGS=(molecule==26.10.0 "molecule-plugins[docker]==26.10.12" pytest-testinfra==10.2.2
    docker==7.2.0 requests==2.34.2)

log() { echo "matrix: $*"; }
die() { echo "matrix: $*" >&2; exit 1; }

want=("$@")
selected=()
for row in "${ROWS[@]}"; do
    read -r rel _ _ _ <<<"$row"
    if [ ${#want[@]} -eq 0 ] || printf '%s\n' "${want[@]}" | grep -qx "$rel"; then
        selected+=("$row")
    fi
done
[ ${#selected[@]} -gt 0 ] || die "no row matches: $*"

find_python() { # find_python 3.12 -> an interpreter of that version
    local v=$1 p
    for p in /usr/bin/python"$v" "$(command -v "python$v" || true)" \
            $(ls -d "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/"$v".*/bin/python"$v" 2>/dev/null | sort -V -r); do
        [ -n "$p" ] && [ -x "$p" ] && "$p" -c 'import ensurepip, venv' 2>/dev/null && { echo "$p"; return; }
    done
    die "no Python $v with venv and ensurepip (Debian: apt-get install python$v-venv; or pyenv install $v)"
}

mkdir -p "$CACHE/venv"
# outside the checkout: inside a git work tree ansible-test lists files with git and would skip
# every file of the installed copy
RUN=$(mktemp -d "${TMPDIR:-/tmp}/ironcache-matrix.XXXXXX")
mkdir -p "$RUN/bin"
command -v uv >/dev/null || die "uv not found (make venv installs it from requirements-dev.txt)"
command -v bsdtar >/dev/null || die "bsdtar not found (Debian: apt-get install libarchive-tools)"
# a controller whose tar is bsdtar, as on macOS: the role must not need GNU tar
ln -s "$(command -v bsdtar)" "$RUN/bin/tar"
PATH=$RUN/bin:$PATH tar --version | grep -q bsdtar || die "the tar shim is not bsdtar"
MAIN_SITE=$("$MAIN_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# only the collections the rows need (the role's ansible.posix, the docker connection), from
# .venv's `ansible` package: the whole package makes every ansible-galaxy call scan ~100 collections
for c in ansible/posix community/docker community/library_inventory_filtering_v1; do
    [ -d "$MAIN_SITE/ansible_collections/$c" ] || die "$c missing from $MAIN_SITE (the ansible package of requirements-dev.txt)"
    mkdir -p "$RUN/deps/ansible_collections/${c%/*}"
    ln -s "$MAIN_SITE/ansible_collections/$c" "$RUN/deps/ansible_collections/$c"
done

# ---- virtualenvs, all at once (uv installs in parallel from its cache) ------------------------
t0=$(date +%s)
pids=()
for row in "${selected[@]}"; do
    read -r rel pin py extra <<<"$row"
    venv=$CACHE/venv/$rel
    pkgs=("ansible-core==$pin")
    if [ "$extra" = molecule ] && [ "$MOLECULE" = 1 ]; then pkgs+=("${MOLECULE_PKGS[@]}"); fi
    stamp="$py ${pkgs[*]}"
    if [ -x "$venv/bin/ansible" ] && [ "$(cat "$venv/.matrix-stamp" 2>/dev/null)" = "$stamp" ]; then
        continue
    fi
    pybin=$(find_python "$py")
    (
        rm -rf "$venv"
        # --seed: pip inside, ansible-test --venv creates its own virtualenvs from this one
        uv venv -q --seed --python "$pybin" "$venv" \
            && uv pip install -q --python "$venv/bin/python" "${pkgs[@]}" \
            && echo "$stamp" >"$venv/.matrix-stamp"
    ) >"$RUN/venv-$rel.log" 2>&1 &
    pids+=("$!:$rel")
done
for p in "${pids[@]}"; do
    wait "${p%%:*}" || { cat "$RUN/venv-${p#*:}.log" >&2; die "virtualenv ${p#*:} failed"; }
done
log "virtualenvs ready in $(( $(date +%s) - t0 )) s"
# Each row gets its own HOME under the cache: ansible-test keeps its sanity virtualenvs in
# ~/.ansible/test/venv under names two releases can share, and two rows at once would build the
# same one at the same time. pip's cache stays shared.
export PIP_CACHE_DIR=${PIP_CACHE_DIR:-$HOME/.cache/pip}
for row in "${selected[@]}"; do
    read -r rel _ <<<"$row"
    # the get-pip.py ansible-test bootstraps its virtualenvs with: an offline stand-in
    for v in $(grep -ohE "pip='[0-9.]+'" "$CACHE"/venv/"$rel"/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py \
            | grep -oE "[0-9.]+" | sort -u); do
        f=$CACHE/home/$rel/.ansible/test/cache/get_pip_${v//./_}.py
        [ -s "$f" ] || { mkdir -p "${f%/*}"; cp "$ROOT/tests/setup/get_pip_standin.py" "$f"; }
    done
done

# ---- the collection as Galaxy users get it, and the dry-run target ----------------------------
(cd "$ROOT" && ansible-galaxy collection build --force --output-path "$RUN/dist" >/dev/null)
TARBALL=$(ls "$RUN"/dist/ironcache-ironcache-*.tar.gz)

"$ROOT/tests/setup/docker-engine.sh"
"$ROOT/tests/setup/build-image.sh" "$IMAGE"
cleanup() {
    docker rm -f "$DRY" >/dev/null 2>&1 || true
    rm -rf "$CACHE/last-run" && mkdir -p "$CACHE/last-run"
    cp "$RUN"/*.log "$RUN"/results.tsv "$CACHE/last-run/" 2>/dev/null || true
    rm -rf "$RUN"
}
trap cleanup EXIT
"$ROOT/tests/setup/systemd-container.sh" "$DRY" "$IMAGE" >/dev/null
docker exec "$DRY" systemctl is-system-running --wait >/dev/null 2>&1 || true
cat >"$RUN/dry-inventory.yml" <<INV
ironcache:
  hosts:
    $DRY:
      ansible_connection: community.docker.docker
      ansible_python_interpreter: /usr/bin/python3
INV

# ---- one row ------------------------------------------------------------------------------------
# each step appends "release<TAB>step<TAB>ok|FAILED|skipped<TAB>seconds" to $RUN/results.tsv
record() { printf '%s\t%s\t%s\t%ss\n' "$1" "$2" "$3" "$4" >>"$RUN/results.tsv"; }
step() { # step REL NAME CMD... (output in $RUN/REL-NAME.log)
    local rel=$1 name=$2 s rc=0; shift 2
    s=$(date +%s)
    ( "$@" ) >"$RUN/$rel-$name.log" 2>&1 || rc=$?
    if [ $rc = 0 ]; then record "$rel" "$name" ok $(( $(date +%s) - s ))
    else record "$rel" "$name" FAILED $(( $(date +%s) - s )); tail -n 40 "$RUN/$rel-$name.log" | sed "s/^/[$rel $name] /" >&2; fi
    return $rc
}

do_sanity() { # from the real installed path: ansible-test lists the files it is in
    local out=$RUN/sanity-$BASHPID.out
    cd "$1" || return 1
    # The Ansible content only: ironcache_src/ is the server (its own suites and `make sanity`
    # check it), and pep8 (pycodestyle, the same rules in every release; ruff covers more) and
    # changelog (antsibull-changelog) do not depend on ansible-core: `make sanity` runs them.
    ansible-test sanity --venv --python "$2" --color no --skip-test pep8 --skip-test changelog \
        plugins/ roles/ meta/ playbooks/ site.yml >"$out" 2>&1 || { cat "$out"; return 1; }
    cat "$out"
    # a run that saw no file passes: make that a failure
    ! grep -q "All targets skipped" "$out"
}
do_syntax() { # every playbook of the collection, in one run
    cd "$1" || return 1
    ansible-playbook -i "$RUN/dry-inventory.yml" --syntax-check site.yml playbooks/*.yml
}
do_dry_run() {
    cd "$RUN/$1" || return 1
    PATH=$RUN/bin:$PATH ansible-playbook -i "$RUN/dry-inventory.yml" --check ironcache.ironcache.site
}
do_molecule() { # a copy of the scenario whose container is named after the row
    local rel=$1 proj=$RUN/mol-$1
    mkdir -p "$proj/molecule/default"
    ln -sfn "$ROOT/site.yml" "$proj/site.yml"
    ln -sfn "$ROOT/roles" "$proj/roles"
    ln -sfn "$ROOT/molecule/shared" "$proj/molecule/shared"
    # every file of the scenario (its prepare.yml makes the TLS certificates) but molecule.yml
    local f
    for f in "$ROOT"/molecule/default/*; do
        [ "${f##*/}" = molecule.yml ] || ln -sfn "$f" "$proj/molecule/default/${f##*/}"
    done
    cp "$ROOT/molecule/default/molecule.yml" "$proj/molecule/default/molecule.yml"
    # the scenario names its instance ${IRONCACHE_DEFAULT_NAME:-mol-default}
    grep -q 'IRONCACHE_DEFAULT_NAME' "$proj/molecule/default/molecule.yml" || return 1
    docker rm -f "matrix-mol-${rel//./-}" >/dev/null 2>&1 || true
    cd "$proj" || return 1
    PATH=$RUN/bin:$PATH IRONCACHE_DEFAULT_NAME="matrix-mol-${rel//./-}" \
        MOLECULE_EPHEMERAL_DIRECTORY=$RUN/mol-$rel.ephemeral molecule test -s default
}

run_row() {
    local rel pin py extra venv coll dir rc=0
    read -r rel pin py extra <<<"$1"
    venv=$CACHE/venv/$rel
    coll=$RUN/$rel
    dir=$coll/ansible_collections/ironcache/ironcache
    export PATH=$venv/bin:$PATH HOME=$CACHE/home/$rel
    # the installed tarball first; ansible.posix and community.docker from .venv's ansible package
    export ANSIBLE_COLLECTIONS_PATH=$coll:$RUN/deps
    "$venv/bin/ansible" --version >"$RUN/$rel-version.log"
    grep -q "core $pin" "$RUN/$rel-version.log" || { cat "$RUN/$rel-version.log" >&2; return 1; }
    # what `ansible-galaxy collection install` puts there, without its scan of every collection
    mkdir -p "$dir"
    step "$rel" install tar -xzf "$TARBALL" -C "$dir" || return 1
    if [ "$extra" = sanity-in-make-sanity ]; then
        record "$rel" sanity "skipped (make sanity)" 0
    else
        ( unset ANSIBLE_COLLECTIONS_PATH; step "$rel" sanity do_sanity "$dir" "$py" ) || rc=1
    fi
    step "$rel" syntax do_syntax "$dir" || rc=1
    step "$rel" dry-run do_dry_run "$rel" || rc=1
    if [ "$extra" = molecule ]; then
        if [ "$MOLECULE" = 1 ]; then step "$rel" molecule do_molecule "$rel" || rc=1
        else record "$rel" molecule "skipped (MATRIX_MOLECULE=0)" 0; fi
    fi
    return $rc
}

: >"$RUN/results.tsv"
t1=$(date +%s)
for row in "${selected[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
    read -r rel _ <<<"$row"
    log "row $rel started"
    (
        if run_row "$row"; then log "row $rel ok"
        else record "$rel" row FAILED $(( $(date +%s) - t1 )); log "row $rel FAILED"; fi
    ) &
done
wait

log "rows done in $(( $(date +%s) - t1 )) s (virtualenvs $(( t1 - t0 )) s before)"
sort -V "$RUN/results.tsv" | column -t -s $'\t'
! grep -q "	FAILED	" "$RUN/results.tsv"
