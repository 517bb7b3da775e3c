#!/usr/bin/env bash
# Build the cloud-init test image (default ironcache-cloudinit:bookworm) for the Terraform
# user-data tests: the systemd test image of tests/setup/build-image.sh plus
#   - Debian's cloud-init, reading only a NoCloud seed (datasource_list: [NoCloud, None]),
#   - a venv /opt/ironcache-ansible with ansible-core (the version requirements-dev.txt pins),
#     installed from wheels the host downloads, so a container without network can run the
#     user-data's play: the user-data's "pip" step finds ansible-playbook there and skips,
#   - ansible.posix (the collection's dependency) in /usr/share/ansible/collections, copied from
#     the `ansible` package of the host's venv (no Galaxy here),
#   - a wheelhouse for the role's wheel download (the server's packages and the accelerators,
#     read from the role's vars/main.yml) named by /etc/pip.conf, as on an offline host whose
#     image carries its wheels: the role's `pip download` finds them there without an index.
# Idempotent (a label records the recipe and the base image) and serialised with flock.
#   usage: tests/setup/build-cloudinit-image.sh [NAME]
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
NAME=${1:-${IRONCACHE_CLOUDINIT_IMAGE:-ironcache-cloudinit:bookworm}}
BASE=${IRONCACHE_TEST_IMAGE:-ironcache-systemd:bookworm}
VENV_DIR=/opt/ironcache-ansible
LABEL=org.ironcache.image.recipe
LOCK=${IRONCACHE_CLOUDINIT_IMAGE_LOCK:-/var/lock/ironcache-build-cloudinit-image.lock}

log() { echo "build-cloudinit-image: $*" >&2; }

ansible_core_spec() {
    local pin=""
    if [ -r "$REPO/requirements-dev.txt" ]; then
        pin=$(grep -E '^ansible-core==' "$REPO/requirements-dev.txt" | head -n 1 | tr -d '[:space:]' || true)
    fi
    echo "${pin:-ansible-core>=2.16,<2.20}"
}

# a Python with pip on the host, to download the wheels (honours the host's pip configuration)
host_python() {
    local p
    for p in "${IRONCACHE_PYTHON:-}" "$REPO/.venv/bin/python" python3; do
        [ -n "$p" ] || continue
        if "$p" -m pip --version >/dev/null 2>&1; then
            echo "$p"
            return 0
        fi
    done
    log "no Python with pip on this host (make venv creates .venv)"
    return 1
}

"$HERE/build-image.sh" "$BASE"

SPEC=$(ansible_core_spec)
WHEELHOUSE=/var/cache/ironcache/wheelhouse
PY=$(host_python)
# what the role's tasks/wheels.yml downloads: pip itself, the server's packages, the accelerators
WHEEL_PACKAGES=$("$PY" -c 'import sys, yaml
v = yaml.safe_load(open(sys.argv[1]))
print(" ".join(["pip"] + v["__ironcache_server_packages"] + v["__ironcache_accelerator_packages"]))' \
    "$REPO/roles/ironcache/vars/main.yml")
BASE_ID=$(docker image inspect --format '{{.Id}}' "$BASE")
RECIPE="c3:${BASE_ID}:${SPEC}:${WHEEL_PACKAGES}"

current_recipe() {
    docker image inspect --format "{{ index .Config.Labels \"$LABEL\" }}" "$NAME" 2>/dev/null || true
}

if [ "$(current_recipe)" = "$RECIPE" ]; then
    exit 0
fi

mkdir -p "$(dirname "$LOCK")"
exec 9>"$LOCK"
flock 9
if [ "$(current_recipe)" = "$RECIPE" ]; then
    exit 0
fi

ROOT=$(mktemp -d /var/tmp/ironcache-cloudinit-rootfs.XXXXXX)
CID=""
cleanup() {
    if [ -n "$CID" ]; then docker rm -f "$CID" >/dev/null 2>&1 || true; fi
    if mountpoint -q "$ROOT/proc"; then umount -l "$ROOT/proc" || true; fi
    rm -rf --one-file-system "$ROOT"
}
trap cleanup EXIT

log "exporting the root filesystem of $BASE"
CID=$(docker create "$BASE")
docker export "$CID" | tar -C "$ROOT" -x
docker rm -f "$CID" >/dev/null
CID=""

# chroot set-up: name resolution for apt, /proc for maintainer scripts, no service starts
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
mount -t proc proc "$ROOT/proc"
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod 0755 "$ROOT/usr/sbin/policy-rc.d"
in_root() { chroot "$ROOT" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/root DEBIAN_FRONTEND=noninteractive "$@"; }

log "installing cloud-init in a chroot"
if ! { in_root apt-get update -q && in_root apt-get install -y -q --no-install-recommends cloud-init; } \
        >"$ROOT.apt.log" 2>&1; then
    tail -n 30 "$ROOT.apt.log" >&2
    rm -f "$ROOT.apt.log"
    exit 1
fi
rm -f "$ROOT.apt.log"

mkdir -p "$ROOT/etc/cloud/cloud.cfg.d"
cat >"$ROOT/etc/cloud/cloud.cfg.d/90_datasource.cfg" <<'EOF'
# IronCache test image: the seed is bind-mounted at /var/lib/cloud/seed/nocloud/.
datasource_list: [ NoCloud, None ]
# without it the locale module fails (no locales package) and the system ends up degraded
locale: C.UTF-8
EOF

log "installing $SPEC into $VENV_DIR from wheels downloaded on this host"
PYVER=$(in_root python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
ARCH=$(in_root uname -m)
mkdir -p "$ROOT/tmp/wheels"
if ! "$PY" -m pip download -q --disable-pip-version-check --only-binary=:all: \
        --implementation cp --python-version "$PYVER" --abi "cp${PYVER/./}" \
        --platform "manylinux_2_28_$ARCH" --platform "manylinux_2_17_$ARCH" \
        --platform "manylinux2014_$ARCH" --dest "$ROOT/tmp/wheels" "$SPEC" >"$ROOT.pip.log" 2>&1; then
    tail -n 30 "$ROOT.pip.log" >&2
    rm -f "$ROOT.pip.log"
    exit 1
fi
rm -f "$ROOT.pip.log"
in_root python3 -m venv "$VENV_DIR"
in_root "$VENV_DIR/bin/python" -m pip install -q --disable-pip-version-check --no-index \
    --no-cache-dir --find-links /tmp/wheels "$SPEC"

log "filling $WHEELHOUSE with $WHEEL_PACKAGES"
mkdir -p "$ROOT$WHEELHOUSE"
# shellcheck disable=SC2086 # the package names are words
if ! "$PY" -m pip download -q --disable-pip-version-check --only-binary=:all: \
        --implementation cp --python-version "$PYVER" --abi "cp${PYVER/./}" \
        --platform "manylinux_2_28_$ARCH" --platform "manylinux_2_17_$ARCH" \
        --platform "manylinux2014_$ARCH" --dest "$ROOT$WHEELHOUSE" $WHEEL_PACKAGES >"$ROOT.pip.log" 2>&1; then
    tail -n 30 "$ROOT.pip.log" >&2
    rm -f "$ROOT.pip.log"
    exit 1
fi
rm -f "$ROOT.pip.log"
cat >"$ROOT/etc/pip.conf" <<EOF
# IronCache test image: no network; pip finds what the role downloads in the image's wheelhouse.
[global]
no-index = true
find-links = $WHEELHOUSE
EOF

log "copying ansible.posix from the host's ansible package"
POSIX=$("$PY" -c 'import ansible_collections.ansible.posix as m; print(list(m.__path__)[0])' 2>/dev/null || true)
if [ -z "$POSIX" ] || [ ! -r "$POSIX/MANIFEST.json" ]; then
    log "ansible.posix is not importable from $PY (requirements-dev.txt installs the ansible package)"
    exit 1
fi
mkdir -p "$ROOT/usr/share/ansible/collections/ansible_collections/ansible"
cp -a "$POSIX" "$ROOT/usr/share/ansible/collections/ansible_collections/ansible/posix"
find "$ROOT/usr/share/ansible/collections" -name __pycache__ -prune -exec rm -rf {} +

# trim and restore what the container runtime provides
in_root apt-get clean
rm -rf "$ROOT"/tmp/wheels "$ROOT"/var/lib/apt/lists/* "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* \
    "$ROOT"/var/log/*.log "$ROOT"/var/cache/debconf/*-old "$ROOT/usr/sbin/policy-rc.d" \
    "$ROOT"/var/lib/cloud/*
: >"$ROOT/etc/resolv.conf"
: >"$ROOT/etc/machine-id"
umount "$ROOT/proc"

log "importing as $NAME"
OLD_ID=$(docker image inspect --format '{{.Id}}' "$NAME" 2>/dev/null || true)
tar -C "$ROOT" -c . | docker import \
    -c 'CMD ["/lib/systemd/systemd"]' \
    -c "LABEL $LABEL=\"$RECIPE\"" \
    - "$NAME" >/dev/null
log "built $NAME ($(docker image inspect --format '{{.Size}}' "$NAME" | awk '{printf "%d MB", $1/1e6}'))"
# the replaced build, now untagged, is of no further use (kept if a container still uses it)
if [ -n "$OLD_ID" ] && [ "$OLD_ID" != "$(docker image inspect --format '{{.Id}}' "$NAME")" ]; then
    docker image rm "$OLD_ID" >/dev/null 2>&1 || true
fi
