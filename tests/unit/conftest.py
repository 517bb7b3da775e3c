# Copyright (c) 2026, IronCache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Make `ansible_collections.ironcache.ironcache` importable for plain `pytest tests/unit`."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys
import tempfile

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _collection_root():
    """A directory whose ansible_collections/ironcache/ironcache is this repository."""
    for root in (os.path.join(REPO, ".collections"),):
        link = os.path.join(root, "ansible_collections", "ironcache", "ironcache")
        if os.path.isdir(link) and os.path.samefile(link, REPO):
            return root
    root = tempfile.mkdtemp(prefix="ironcache-unit-")
    os.makedirs(os.path.join(root, "ansible_collections", "ironcache"))
    os.symlink(REPO, os.path.join(root, "ansible_collections", "ironcache", "ironcache"))
    return root


if "ansible_collections.ironcache.ironcache" not in sys.modules:
    sys.path.insert(0, _collection_root())
