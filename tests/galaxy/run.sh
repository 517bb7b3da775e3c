#!/usr/bin/env bash
# Galaxy path: build the collection tarball, install it offline into an empty collections path,
# and run `ansible-playbook ironcache.ironcache.site` from there (outside the checkout) against a
# systemd container; the deployed server must answer PING through systemd's socket.
#   KEEP=1 keeps the container (mol-galaxy) and the temporary directory for inspection.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
IMAGE=${IRONCACHE_TEST_IMAGE:-ironcache-systemd:bookworm}
NAME=${GALAXY_CONTAINER:-mol-galaxy}
WORK=$(mktemp -d /tmp/ironcache-galaxy.XXXXXX)
export PATH=$ROOT/.venv/bin:$PATH
export ANSIBLE_NOCOLOR=1 PY_COLORS=0
# only the empty path (and the `ansible` package's bundled collections): never the checkout
export ANSIBLE_COLLECTIONS_PATH=$WORK/collections
unset ANSIBLE_ROLES_PATH ANSIBLE_CONFIG

cleanup() {
    if [ "${KEEP:-0}" = 1 ]; then
        echo "galaxy-test: kept container $NAME and $WORK"
    else
        docker rm -f "$NAME" >/dev/null 2>&1 || true
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
step() { echo "galaxy-test: $*"; }

"$ROOT/tests/setup/docker-engine.sh"
"$ROOT/tests/setup/build-image.sh" "$IMAGE"

step "building the collection"
(cd "$ROOT" && ansible-galaxy collection build --force --output-path "$WORK/dist" >/dev/null)
TARBALL=$(ls "$WORK"/dist/ironcache-ironcache-*.tar.gz)
step "built $(basename "$TARBALL") ($(du -k "$TARBALL" | cut -f1) KiB)"
tar -tzf "$TARBALL" >"$WORK/contents.txt"
if grep -E '^(molecule|tests|\.collections|\.venv)/' "$WORK/contents.txt"; then
    echo "galaxy-test: the tarball contains test or generated paths" >&2
    exit 1
fi
grep -q '^ironcache_src/ironcache/__main__.py$' "$WORK/contents.txt" \
    || { echo "galaxy-test: the server source is missing from the tarball" >&2; exit 1; }

step "installing it offline into an empty collections path"
mkdir -p "$WORK/collections"
# dependencies (ansible.posix) come from the installed `ansible` package: no Galaxy call
ansible-galaxy collection install --offline -p "$WORK/collections" "$TARBALL" >"$WORK/install.log" 2>&1 \
    || { cat "$WORK/install.log" >&2; exit 1; }
test -f "$WORK/collections/ansible_collections/ironcache/ironcache/MANIFEST.json"

step "starting $NAME from $IMAGE"
"$ROOT/tests/setup/systemd-container.sh" "$NAME" "$IMAGE"

cat >"$WORK/inventory.yml" <<INV
ironcache:
  hosts:
    $NAME:
      ansible_connection: community.docker.docker
      ansible_python_interpreter: /usr/bin/python3
INV

# bsdtar as `tar` (when installed), as on macOS: the role's packing must not need GNU tar
if command -v bsdtar >/dev/null 2>&1; then
    mkdir -p "$WORK/bin" && ln -s "$(command -v bsdtar)" "$WORK/bin/tar"
fi
step "ansible-playbook ironcache.ironcache.site (from $WORK, not from the checkout; tar: $(PATH=$WORK/bin:$PATH tar --version | head -n 1))"
(
    cd "$WORK"
    PATH=$WORK/bin:$PATH ansible-playbook -i inventory.yml ironcache.ironcache.site >"$WORK/play.log" 2>&1
) || { tail -n 60 "$WORK/play.log" >&2; exit 1; }
grep -E '^\S+ +: ok=' "$WORK/play.log"
# the role really came from the installed collection

step "checking the deployed server"
pong=$(docker exec "$NAME" redis-cli -h 127.0.0.1 -p 6379 PING)
[ "$pong" = PONG ] || { echo "galaxy-test: PING answered '$pong'" >&2; exit 1; }
activated=$(docker exec "$NAME" redis-cli -h 127.0.0.1 -p 6379 INFO server | tr -d '\r' \
    | sed -n 's/^socket_activated://p')
[ "$activated" = 1 ] || { echo "galaxy-test: socket_activated '$activated'" >&2; exit 1; }
docker exec "$NAME" systemctl is-active ironcache.socket ironcache.service >/dev/null
step "ok: PING -> PONG, socket_activated:1"
