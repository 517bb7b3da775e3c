#!/usr/bin/env bash
# make demo: deploy IronCache with site.yml to a local systemd container (ironcache-demo, the
# embedded default target), then restart ironcache.service several times while a client inside
# the container connects in a tight loop, and print what the clients saw.
# Sets itself up: apt packages, Docker engine, .venv, systemd image. Exit 0 when no connection
# was refused or reset.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
IMAGE=${IRONCACHE_TEST_IMAGE:-ironcache-systemd:bookworm}
NAME=${DEMO_CONTAINER:-ironcache-demo}
RESTARTS=${DEMO_RESTARTS:-10}
step() { echo "demo: $*"; }

step "setting up (packages, Docker engine, venv, image: a few minutes the first time)"
"$ROOT/tests/setup/apt.sh"
"$ROOT/tests/setup/docker-engine.sh"
"$ROOT/tests/setup/venv.sh"
"$ROOT/tests/setup/collections.sh"
"$ROOT/tests/setup/build-image.sh" "$IMAGE"
export PATH=$ROOT/.venv/bin:$PATH
export ANSIBLE_COLLECTIONS_PATH=$ROOT/.collections

step "starting the systemd container $NAME"
"$ROOT/tests/setup/systemd-container.sh" "$NAME" "$IMAGE"

WORK=$(mktemp -d /tmp/ironcache-demo.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cat >"$WORK/inventory.yml" <<INV
ironcache:
  hosts:
    $NAME:
      ansible_connection: community.docker.docker
      ansible_python_interpreter: /usr/bin/python3
INV

step "deploying: ansible-playbook -i <$NAME> site.yml"
if ! (cd "$ROOT" && ANSIBLE_NOCOLOR=1 ansible-playbook -i "$WORK/inventory.yml" site.yml \
        >"$WORK/play.log" 2>&1); then
    tail -n 40 "$WORK/play.log" >&2
    exit 1
fi
grep -E '^\S+ +: ok=' "$WORK/play.log"

step "restarting ironcache.service $RESTARTS times back to back under a tight-loop client"
python3 "$ROOT/tests/demo/restarts.py" --container "$NAME" --restarts "$RESTARTS" \
    --probe "$ROOT/plugins/module_utils/ironcache_probe.py" \
    --persistent "$ROOT/tests/demo/persistent.py"
