"""The disk snapshot: `dir`/`dbfilename`, written on stop (`save-on-shutdown yes`) or by SAVE.

It is the state format of `ironcache.state` without client records. Writing goes to a
temporary file in the same directory, fsync, then rename and fsync of the directory: a reader
sees the old file or the new one, never half of one. The checksum catches what the disk did;
the loader checks every type and size before trusting them.

A snapshot that cannot be loaded is never overwritten: it is renamed aside to
`<dbfilename>.corrupt-<UTC time>` (the log names it and why) and the server starts empty.
When it can be neither read nor renamed, the server refuses to start (SnapshotError, exit
code EXIT_SNAPSHOT, which the systemd unit does not restart on).
"""

from __future__ import annotations

import os
import stat
import time
from typing import TYPE_CHECKING

from ironcache import state
from ironcache.atomicfile import write_atomic
from ironcache.log import log

if TYPE_CHECKING:
    from ironcache.config import Config
    from ironcache.keyspace import Keyspace


EXIT_SNAPSHOT = 4  # `serve` exits with this when SnapshotError stops it


class SnapshotError(Exception):
    """The snapshot exists but can be neither loaded nor moved aside: do not start."""


def path(config: Config) -> str:
    return os.path.join(config["dir"], config["dbfilename"])


def save(config: Config, keyspace: Keyspace, blob: bytes | None = None) -> int:
    """Write the snapshot atomically; returns its size. Raises OSError on failure."""
    if blob is None:
        blob = state.encode({"kind": "disk"}, keyspace, [])
    write_atomic(path(config), blob)
    return len(blob)


def load(config: Config, keyspace: Keyspace) -> int | None:
    """Load the snapshot into an empty keyspace; None when there is none or it was moved aside.

    Raises SnapshotError when the file cannot be read or moved aside.
    """
    target = path(config)
    try:
        # O_NONBLOCK: a FIFO in its place must not hang the start.
        fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise SnapshotError(f"cannot read the snapshot {target}: {e.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise SnapshotError(f"the snapshot {target} is not a regular file")
    with open(fd, "rb") as f:
        try:
            blob = f.read()
        except OSError as e:
            raise SnapshotError(f"cannot read the snapshot {target}: {e.strerror}") from None
    t0 = time.perf_counter()
    try:
        body, dummy = state.decode(blob, target)
        keys = state.load_dataset(keyspace, body["dbs"])
        state.load_scripting(keyspace, body)
    except state.StateError as e:
        del blob
        aside = move_aside(target)
        log.warning(
            f"cannot load the snapshot: {e}. It was moved to {aside} (never overwritten); "
            "starting with an empty dataset"
        )
        return None
    log.notice(
        f"loaded {keys} keys from {target} ({len(blob)} bytes) "
        f"in {(time.perf_counter() - t0) * 1000:.0f} ms"
    )
    return keys


def move_aside(target: str) -> str:
    """Rename an unusable snapshot to a name no later save uses; returns the new path."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for n in range(100):
        aside = f"{target}.corrupt-{stamp}" + (f"-{n}" if n else "")
        if os.path.lexists(aside):
            continue
        try:
            os.rename(target, aside)
        except OSError as e:
            raise SnapshotError(
                f"the snapshot {target} cannot be loaded and could not be moved aside to "
                f"{aside}: {e.strerror}"
            ) from None
        return aside
    raise SnapshotError(f"the snapshot {target} cannot be loaded and there is no free name")
