#!/usr/bin/env bash
# IronCache host bootstrap, written by the IronCache Terraform userdata module.
# cloud-init runs it once per instance (runcmd). Running it again is safe: each step checks
# before it acts and the playbook is idempotent. Settings: /etc/ironcache-bootstrap/bootstrap.env
# (shell assignments), role variables: /etc/ironcache-bootstrap/vars.yml, play: site.yml there.
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME="${HOME:-/root}" LANG=C.UTF-8 LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive

BOOTSTRAP_DIR=${IRONCACHE_BOOTSTRAP_DIR:-/etc/ironcache-bootstrap}
# shellcheck source=/dev/null
. "$BOOTSTRAP_DIR/bootstrap.env"

log() { echo "ironcache-bootstrap: $*" >&2; }

# 1. net.core.somaxconn: the sysctl.d file is persistent; apply it now as well.
if ! sysctl --system >/dev/null 2>&1; then
    log "warning: sysctl --system failed (read-only /proc/sys in a container?);" \
        "the role clamps Backlog= to the current net.core.somaxconn"
fi
log "net.core.somaxconn is $(cat /proc/sys/net/core/somaxconn)"

# 2. Packages: python3 and python3-venv (the role builds a venv per release), ansible with apt.
apt_install() {
    local attempt
    for attempt in 1 2 3; do
        if apt-get -o DPkg::Lock::Timeout=300 update -q \
            && apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "$@"; then
            return 0
        fi
        log "apt-get failed (attempt $attempt of 3)"
        sleep 10
    done
    return 1
}
packages=(python3 python3-venv)
if [ "$ANSIBLE_METHOD" = apt ]; then
    packages+=(ansible)
fi
missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f '${Status}\n' "$p" 2>/dev/null | grep -q ' installed$'; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    apt_install "${missing[@]}"
fi

# 3. Ansible.
case "$ANSIBLE_METHOD" in
    pip)
        if [ ! -x "$ANSIBLE_VENV/bin/ansible-playbook" ]; then
            log "installing $ANSIBLE_PIP_SPEC into $ANSIBLE_VENV"
            python3 -m venv "$ANSIBLE_VENV"
            "$ANSIBLE_VENV/bin/python" -m pip install -q --disable-pip-version-check "$ANSIBLE_PIP_SPEC"
        fi
        ANSIBLE_BIN=$ANSIBLE_VENV/bin
        ;;
    apt)
        ANSIBLE_BIN=/usr/bin
        ;;
    preinstalled)
        if [ -x "$ANSIBLE_VENV/bin/ansible-playbook" ]; then
            ANSIBLE_BIN=$ANSIBLE_VENV/bin
        elif command -v ansible-playbook >/dev/null 2>&1; then
            ANSIBLE_BIN=$(dirname "$(command -v ansible-playbook)")
        else
            log "ansible_install.method is preinstalled but no ansible-playbook in $ANSIBLE_VENV/bin or on PATH"
            exit 1
        fi
        ;;
    *)
        log "unknown ANSIBLE_METHOD $ANSIBLE_METHOD"
        exit 1
        ;;
esac
log "using $("$ANSIBLE_BIN/ansible-playbook" --version | head -n 1)"

# 4. The ironcache.ironcache collection (and its dependencies).
# Installed collections are looked up in COLLECTIONS_DIR and in Ansible's default paths (an image
# may ship dependencies such as ansible.posix in /usr/share/ansible/collections).
DEFAULT_PATHS=$HOME/.ansible/collections:/usr/share/ansible/collections
export ANSIBLE_COLLECTIONS_PATH=$COLLECTIONS_DIR:$DEFAULT_PATHS
installed_version() {
    local manifest="$1/ansible_collections/ironcache/ironcache/MANIFEST.json"
    [ -r "$manifest" ] || return 0
    python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["collection_info"]["version"])' \
        "$manifest" 2>/dev/null || true
}
galaxy_install() {
    mkdir -p "$COLLECTIONS_DIR"
    "$ANSIBLE_BIN/ansible-galaxy" collection install -p "$COLLECTIONS_DIR" "$@"
}
case "$COLLECTION_TYPE" in
    galaxy)
        if [ "$(installed_version "$COLLECTIONS_DIR")" != "$COLLECTION_VERSION" ]; then
            galaxy_install "ironcache.ironcache:==$COLLECTION_VERSION"
        fi
        ;;
    url)
        galaxy_install "$COLLECTION_URL"
        ;;
    path)
        if [ -d "$COLLECTION_PATH" ]; then
            if [ ! -d "$COLLECTION_PATH/ansible_collections/ironcache/ironcache" ]; then
                log "$COLLECTION_PATH holds no ansible_collections/ironcache/ironcache"
                exit 1
            fi
            export ANSIBLE_COLLECTIONS_PATH=$COLLECTION_PATH:$COLLECTIONS_DIR:$DEFAULT_PATHS
        elif [ -f "$COLLECTION_PATH" ]; then
            # offline when the dependencies are on the image already; else Galaxy provides them
            if ! galaxy_install --offline "$COLLECTION_PATH"; then
                log "offline install of $COLLECTION_PATH failed (dependencies missing?); asking Galaxy"
                galaxy_install "$COLLECTION_PATH"
            fi
        else
            log "collection path $COLLECTION_PATH does not exist on this host"
            exit 1
        fi
        ;;
    *)
        log "unknown COLLECTION_TYPE $COLLECTION_TYPE"
        exit 1
        ;;
esac
log "collections path $ANSIBLE_COLLECTIONS_PATH"

# 5. The role, applied locally. It writes the units from its templates and starts the socket.
export ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0 \
    ANSIBLE_LOCALHOST_WARNING=0 ANSIBLE_INVENTORY_UNPARSED_WARNING=0
"$ANSIBLE_BIN/ansible-playbook" "$BOOTSTRAP_DIR/site.yml"
log "done"
