"""Replacing a file whole: written beside it, synced, renamed over it, the directory synced, so
a crash leaves the old file or the new one, never a part (the disk snapshot, ACL SAVE)."""

from __future__ import annotations

import os


def write_atomic(target: str, data: bytes | memoryview, mode: int = 0o600) -> None:
    """Raises OSError; the temporary file is gone then and `target` untouched."""
    tmp = f"{target}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, target)
    dfd = os.open(os.path.dirname(os.path.abspath(target)), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
