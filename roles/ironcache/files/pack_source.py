# Copyright (c) 2026, IronCache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pack SOURCE_DIR/ironcache into a reproducible .tar.gz on the controller.

Python's tarfile instead of tar(1): bsdtar (macOS, BSDs) has none of GNU tar's --sort, --owner or
--mtime options. The archive depends only on the files' names, contents and executable bits:
sorted names, owner root:root (0:0), a fixed mtime and a gzip header without name or time, so the
same source gives the same bytes on every controller.

usage: python3 pack_source.py SOURCE_DIR OUTPUT.tar.gz [PACKAGE]
"""

from __future__ import annotations

import gzip
import os
import stat
import sys
import tarfile

# 2000-01-01T00:00:00Z, the mtime of every member
FIXED_MTIME = 946684800
EXCLUDED_DIRS = frozenset({"__pycache__"})
EXCLUDED_SUFFIXES = (".pyc", ".pyo")


def members(source_dir: str, package: str) -> list[str]:
    """Relative paths under source_dir/package, sorted, without caches."""
    top = os.path.join(source_dir, package)
    if not os.path.isdir(top):
        raise SystemExit(f"pack_source: {top} is not a directory")
    out = [package]
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if d not in EXCLUDED_DIRS]
        rel = os.path.relpath(dirpath, source_dir)
        out.extend(os.path.join(rel, d) for d in dirnames)
        out.extend(os.path.join(rel, f) for f in filenames if not f.endswith(EXCLUDED_SUFFIXES))
    return sorted(out)


def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = FIXED_MTIME
    if info.isdir():
        info.mode = 0o755
    elif info.issym():
        info.mode = 0o777
    else:
        # keep only the executable bit of the owner, as GNU tar's --mode=u+rw,go+r,go-w did
        info.mode = 0o755 if info.mode & stat.S_IXUSR else 0o644
    return info


def pack(source_dir: str, output: str, package: str = "ironcache") -> None:
    tmp = output + ".tmp"
    # filename="" and mtime=0: nothing of this run in the gzip header
    with (
        open(tmp, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        for rel in members(source_dir, package):
            info = normalise(tar.gettarinfo(os.path.join(source_dir, rel), arcname=rel))
            if info.isreg():
                with open(os.path.join(source_dir, rel), "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    os.replace(tmp, output)


def main(argv: list[str]) -> int:
    if len(argv) not in (3, 4):
        sys.stderr.write(__doc__ or "")
        return 2
    pack(argv[1], argv[2], *argv[3:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
