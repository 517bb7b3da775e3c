#!/usr/bin/env bash
# Build the local systemd test image (default ironcache-systemd:bookworm) with debootstrap and
# `docker import`, unless an image of that name built from this same recipe already exists.
# Idempotent and serialised with flock, so several test runs can call it at once.
#   usage: tests/setup/build-image.sh [NAME]
# The Debian release is IRONCACHE_IMAGE_SUITE, else the tag of NAME when it names one
# (ironcache-systemd:trixie builds Debian 13), else bookworm. Debian 12's debootstrap builds both.
# Users who can pull images may instead point IRONCACHE_TEST_IMAGE at any systemd image that has
# python3, python3-venv, iproute2 (ss), procps and redis-cli.
set -euo pipefail

NAME=${1:-${IRONCACHE_TEST_IMAGE:-ironcache-systemd:bookworm}}
case "${NAME##*:}" in
    bookworm | trixie) tag_suite=${NAME##*:} ;;
    *) tag_suite=bookworm ;;
esac
SUITE=${IRONCACHE_IMAGE_SUITE:-$tag_suite}
# What the tests run inside the container: systemd as PID 1, python3 for Ansible, python3-venv for
# the role's release venv, ss and ps for the checks, redis-cli for the protocol checks, sudo so a
# play with `become: true` works as it does on a real host.
PACKAGES=systemd,systemd-sysv,dbus,python3,python3-venv,iproute2,procps,redis-tools,sudo
# Bump when the recipe changes: an image with another revision is rebuilt.
RECIPE="r1:${SUITE}:${PACKAGES}"
LABEL=org.ironcache.image.recipe
LOCK=${IRONCACHE_IMAGE_LOCK:-/var/lock/ironcache-build-image.lock}
CACHE=${IRONCACHE_DEBOOTSTRAP_CACHE:-/var/cache/ironcache-debootstrap}

log() { echo "build-image: $*" >&2; }

current_recipe() {
    docker image inspect --format "{{ index .Config.Labels \"$LABEL\" }}" "$NAME" 2>/dev/null || true
}

mirror() {
    local src=/etc/apt/sources.list.d/debian.sources uri=""
    if [ -r "$src" ]; then
        # first URIs: line that is not the security archive
        uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$src")
    fi
    if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
        uri=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)
    fi
    if [ -z "$uri" ]; then
        log "no Debian mirror found in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"
        exit 1
    fi
    echo "$uri"
}

"$(dirname "$0")/docker-engine.sh"

if [ "$(current_recipe)" = "$RECIPE" ]; then
    exit 0
fi

mkdir -p "$(dirname "$LOCK")" "$CACHE"
exec 9>"$LOCK"
flock 9
# another run may have built it while this one waited for the lock
if [ "$(current_recipe)" = "$RECIPE" ]; then
    exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
    log "debootstrap missing: installing it"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq debootstrap >/dev/null
fi

MIRROR=$(mirror)
ROOT=$(mktemp -d /var/tmp/ironcache-rootfs.XXXXXX)
trap 'rm -rf --one-file-system "$ROOT"' EXIT
log "debootstrap $SUITE from $MIRROR into $ROOT (about a minute)"
if ! debootstrap --variant=minbase --cache-dir="$CACHE" --include="$PACKAGES" \
        "$SUITE" "$ROOT" "$MIRROR" >"$ROOT.log" 2>&1; then
    tail -n 30 "$ROOT.log" >&2
    [ -f "$ROOT/debootstrap/debootstrap.log" ] && tail -n 30 "$ROOT/debootstrap/debootstrap.log" >&2
    exit 1
fi
rm -f "$ROOT.log"

# trim: package lists, docs; a fresh machine-id per container; no getty on a console-less container
chroot "$ROOT" apt-get clean
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* \
    "$ROOT"/usr/share/locale/* "$ROOT"/var/log/*.log "$ROOT"/var/cache/debconf/*-old
: >"$ROOT/etc/machine-id"
rm -f "$ROOT/var/lib/dbus/machine-id"
ln -sf /dev/null "$ROOT/etc/systemd/system/getty@tty1.service"
ln -sf /dev/null "$ROOT/etc/systemd/system/console-getty.service"

log "importing as $NAME"
tar -C "$ROOT" -c . | docker import \
    -c 'CMD ["/lib/systemd/systemd"]' \
    -c "LABEL $LABEL=\"$RECIPE\"" \
    - "$NAME" >/dev/null
log "built $NAME ($(docker image inspect --format '{{.Size}}' "$NAME" | awk '{printf "%d MB", $1/1e6}'))"
