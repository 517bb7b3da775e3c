#!/usr/bin/env bash
# Install the Debian packages the tests need, only those whose command is missing (so a machine
# that has everything makes no network call). Needs root and apt-get when something is missing.
set -euo pipefail

log() { echo "apt: $*" >&2; }

missing=()
need() { # need COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 || missing+=("$2")
}
need dockerd docker.io
need debootstrap debootstrap
need redis-server redis-server
need redis-cli redis-tools
need ss iproute2
need make make
need flock util-linux
need pgrep procps
need python3 python3
# Redis's own test suite (tests/redis-suite): runtest, dpkg-source -x, its harness patch
need tclsh8.6 tcl
need dpkg-source dpkg-dev
need patch patch
# ... and its --tls mode (tests/redis-suite's tls: units): Tcl's TLS package
if command -v tclsh8.6 >/dev/null 2>&1; then
    # tclsh exits 0 after a failed command read from stdin: the script says how it went
    echo 'exit [catch {package require tls}]' | tclsh8.6 >/dev/null 2>&1 || missing+=(tcl-tls)
else
    missing+=(tcl-tls)
fi
# bsdtar: make matrix and make galaxy-test run the role with it as `tar` (a controller without GNU tar)
need bsdtar libarchive-tools
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    missing+=(python3-venv)
fi
# the Debian python the venv is built from needs ensurepip too when another python3 is first on PATH
if [ -x /usr/bin/python3 ] && ! /usr/bin/python3 -c 'import ensurepip' >/dev/null 2>&1; then
    missing+=(python3-venv)
fi

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    log "missing: ${missing[*]} (install them as root with apt-get)"
    exit 1
fi
log "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
