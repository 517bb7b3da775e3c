"""The disk snapshot: `dir`/`dbfilename`, written on stop (`save-on-shutdown yes`) or by SAVE.

It is the state format of `ironcache.state` without client records. Writing goes to a
temporary file in the same directory, fsync, then rename and fsync of the directory: a reader
sees the old file or the new one, never half of one. The checksum catches what the disk did;
a corrupt or unreadable file is reported and skipped, never half-loaded.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from ironcache import state
from ironcache.log import log

if TYPE_CHECKING:
    from ironcache.config import Config
    from ironcache.keyspace import Keyspace


def path(config: Config) -> str:
    return os.path.join(config["dir"], config["dbfilename"])


def save(config: Config, keyspace: Keyspace, blob: bytes | None = None) -> int:
    """Write the snapshot atomically; returns its size. Raises OSError on failure."""
    if blob is None:
        blob = state.encode({"kind": "disk"}, keyspace, [])
    target = path(config)
    tmp = f"{target}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(blob)
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
    return len(blob)


def load(config: Config, keyspace: Keyspace) -> int | None:
    """Load the snapshot into an empty keyspace; None when there is none or it is unusable."""
    target = path(config)
    try:
        with open(target, "rb") as f:
            blob = f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        log.warning(f"cannot read the snapshot {target}: {e.strerror}; starting empty")
        return None
    t0 = time.perf_counter()
    try:
        body, dummy = state.decode(blob, target)
    except state.StateError as e:
        log.warning(f"skipping the snapshot: {e}; starting empty")
        return None
    keys = state.load_dataset(keyspace, body["dbs"])
    log.notice(
        f"loaded {keys} keys from {target} ({len(blob)} bytes) "
        f"in {(time.perf_counter() - t0) * 1000:.0f} ms"
    )
    return keys
