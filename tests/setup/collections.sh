#!/usr/bin/env bash
# Make the checkout importable as the collection ironcache.ironcache:
#   .collections/ansible_collections/ironcache/ironcache -> ../../..
# Point ANSIBLE_COLLECTIONS_PATH at .collections (the Makefile does). The link is git-ignored and
# excluded from the build (a committed link would fail the `symlinks` sanity test). Idempotent.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LINK=$ROOT/.collections/ansible_collections/ironcache/ironcache

mkdir -p "$(dirname "$LINK")"
if [ "$(readlink "$LINK" 2>/dev/null || true)" != "../../.." ]; then
    rm -rf "$LINK"
    ln -s ../../.. "$LINK"
fi
