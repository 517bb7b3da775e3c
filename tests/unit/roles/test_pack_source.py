# Copyright (c) 2026, IronCache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""roles/ironcache/files/pack_source.py: the controller packs the server source without GNU tar,
and the same source gives the same bytes (the release does not change when nothing did)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
PACK = REPO / "roles/ironcache/files/pack_source.py"
SOURCE = REPO / "ironcache_src"


def pack(src: Path, out: Path) -> bytes:
    subprocess.run([sys.executable, str(PACK), str(src), str(out)], check=True)
    return out.read_bytes()


@pytest.fixture
def src(tmp_path: Path) -> Path:
    dest = tmp_path / "src"
    shutil.copytree(SOURCE / "ironcache", dest / "ironcache",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def test_same_source_same_bytes(src: Path, tmp_path: Path) -> None:
    first = pack(src, tmp_path / "a.tar.gz")
    # what differs between controllers and checkouts: mtimes, group/other bits, caches
    for p in src.rglob("*.py"):
        os.utime(p, (1_800_000_000, 1_800_000_000))
        p.chmod(0o664)
    (src / "ironcache/__pycache__").mkdir()
    (src / "ironcache/__pycache__/server.cpython-311.pyc").write_bytes(b"\0")
    (src / "ironcache/stale.pyc").write_bytes(b"\0")
    second = pack(src, tmp_path / "b.tar.gz")
    assert hashlib.sha256(first).hexdigest() == hashlib.sha256(second).hexdigest()


def test_changed_source_changes_bytes(src: Path, tmp_path: Path) -> None:
    # control: the comparison above can fail
    first = pack(src, tmp_path / "a.tar.gz")
    with (src / "ironcache/_version.py").open("a") as f:
        f.write("# changed\n")
    assert pack(src, tmp_path / "b.tar.gz") != first


def test_members_sorted_owned_by_root_fixed_time_and_modes(src: Path, tmp_path: Path) -> None:
    (src / "ironcache/tool.sh").write_text("#!/bin/sh\n")
    (src / "ironcache/tool.sh").chmod(0o775)
    out = tmp_path / "a.tar.gz"
    pack(src, out)
    with tarfile.open(out) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names) and names[0] == "ironcache"
    assert "ironcache/__main__.py" in names and "ironcache/tool.sh" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members} == {
        (0, 0, "root", "root", 946684800)}
    modes = {m.name: m.mode for m in members}
    assert modes["ironcache"] == 0o755 and modes["ironcache/__main__.py"] == 0o644
    assert modes["ironcache/tool.sh"] == 0o755
    # gzip header: no file name, mtime 0
    raw = out.read_bytes()
    assert raw[3] & 0x08 == 0 and raw[4:8] == b"\0\0\0\0"


def test_gnu_tar_extracts_the_source(src: Path, tmp_path: Path) -> None:
    # the hosts unpack it with the unarchive module (GNU tar on Debian)
    out = tmp_path / "a.tar.gz"
    pack(src, out)
    dest = tmp_path / "x"
    dest.mkdir()
    subprocess.run(["tar", "-xzf", str(out), "-C", str(dest)], check=True)
    for p in (src / "ironcache").rglob("*"):
        if p.is_file():
            assert (dest / p.relative_to(src)).read_bytes() == p.read_bytes()


@pytest.mark.skipif(shutil.which("bsdtar") is None, reason="bsdtar missing (libarchive-tools)")
def test_bsdtar_reads_it_and_rejects_the_old_gnu_options(src: Path, tmp_path: Path) -> None:
    out = tmp_path / "a.tar.gz"
    pack(src, out)
    listed = subprocess.run(["bsdtar", "-tzf", str(out)], check=True, capture_output=True,
                            text=True).stdout.split()
    with tarfile.open(out) as tar:
        assert [n.rstrip("/") for n in listed] == tar.getnames()
    # control: what the role ran before fails on a bsdtar controller
    old = subprocess.run(["bsdtar", "--create", "--gzip", f"--file={tmp_path / 'old.tgz'}",
                          f"--directory={src}", "--sort=name", "ironcache"],
                         capture_output=True, text=True)
    assert old.returncode != 0 and "sort" in old.stderr
