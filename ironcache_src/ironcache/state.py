"""The state format: one versioned, checksummed encoding of the dataset and connection state.

The same bytes go to a memfd in systemd's fd store (live handover) and to the disk snapshot.

    header  MAGIC, format, minor, flags, body length, CRC-32 of the body
    body    marshal (version 2) of a dict: {"meta": {...}, "dbs": [...], "clients": [...]}
    records (journal memfds only) length, CRC-32, marshal of a list of operations

`format` changes only when a reader of the previous format could misread the body; new fields
are added as new dict keys with a `minor` bump, and readers ignore keys they do not know, so a
release one version back reads what the next one writes. A reader refuses another `format` with
a message that names both, and a short or corrupt input with a message that says where.
"""

from __future__ import annotations

import marshal
import struct
import time
import zlib
from collections import deque
from itertools import repeat
from typing import TYPE_CHECKING, Any

from ironcache._version import __version__
from ironcache.keyspace import KEY_OVERHEAD, STR_OVERHEAD, Entry, value_size

if TYPE_CHECKING:
    from ironcache.keyspace import Keyspace

MAGIC = b"IRONCACHE-STATE\n"
FORMAT = 1  # the major version: readers refuse any other
MINOR = 0  # bumped for additions older readers may ignore
HEADER = struct.Struct("<16sHHIQI")  # magic, format, minor, flags, body length, crc32(body)
RECORD = struct.Struct("<II")  # journal record: payload length, crc32(payload)
# Version 2: no back-references, which would cost a table lookup per shared object (every key
# and value here is shared with the live dataset) and buy nothing for this data.
MARSHAL_VERSION = 2

# Journal operations (tuples, first item the kind).
OP_WRITE = 0  # (OP_WRITE, unix ms, db index, argv): a write command that succeeded
OP_CLIENT = 1  # (OP_CLIENT, client record dict): a connection's state, after accept or change
OP_CLOSED = 2  # (OP_CLOSED, client id): a connection closed
# (OP_BATCH, client id, read before, written before, read after, written after, replies): a
# batch of requests whose writes precede it in the journal, with the replies it got.
OP_BATCH = 3


class StateError(Exception):
    """The input cannot be read: wrong format, truncated or corrupt. The message says which."""


def encode(meta: dict[str, Any], keyspace: Keyspace, clients: list[dict[str, Any]]) -> bytes:
    """Header + body for the whole dataset and the given client records."""
    dbs: list[Any] = []
    for db in keyspace.dbs:
        if not db.data:
            dbs.append(None)
            continue
        # Keys and values as two lists: marshal reads lists back much faster than a dict.
        # Deques become lists (marshal has no deque; no value is a list otherwise).
        values = [e.value for e in db.data.values()]
        if deque in set(map(type, values)):
            values = [list(v) if isinstance(v, deque) else v for v in values]
        dbs.append((list(db.data), values, db.expires))
    meta = {"ironcache_version": __version__, "written_ms": int(time.time() * 1000), **meta}
    body = marshal.dumps({"meta": meta, "dbs": dbs, "clients": clients}, MARSHAL_VERSION)
    return HEADER.pack(MAGIC, FORMAT, MINOR, 0, len(body), zlib.crc32(body)) + body


def decode_header(data: bytes | memoryview, what: str) -> tuple[int, int]:
    """(minor, body length) after checking magic, format and length."""
    if len(data) < HEADER.size:
        raise StateError(f"{what}: {len(data)} bytes, shorter than the {HEADER.size}-byte header")
    magic, fmt, minor, _flags, length, _crc = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise StateError(f"{what}: not an IronCache state (bad magic)")
    if fmt != FORMAT:
        raise StateError(
            f"{what}: state format {fmt}.{minor} cannot be read by IronCache {__version__} "
            f"(it reads format {FORMAT}.x)"
        )
    if len(data) < HEADER.size + length:
        raise StateError(
            f"{what}: truncated: the header announces {length} bytes of body, "
            f"{len(data) - HEADER.size} are there"
        )
    return minor, length


def decode(data: bytes | memoryview, what: str) -> tuple[dict[str, Any], int]:
    """The body dict and the offset where journal records (if any) begin."""
    minor, length = decode_header(data, what)
    crc = HEADER.unpack_from(data)[5]
    body = memoryview(data)[HEADER.size : HEADER.size + length]
    if zlib.crc32(body) != crc:
        raise StateError(f"{what}: checksum mismatch: the body is corrupt")
    try:
        state = marshal.loads(body)
    except (EOFError, ValueError, TypeError) as e:
        raise StateError(f"{what}: undecodable body: {e}") from None
    if not isinstance(state, dict) or not isinstance(state.get("dbs"), list):
        raise StateError(f"{what}: the body is not an IronCache state")
    for i, item in enumerate(state["dbs"]):  # checked whole before anything is loaded
        if item is not None and (
            not isinstance(item, tuple) or len(item) != 3 or len(item[0]) != len(item[1])
        ):
            raise StateError(f"{what}: database {i} is malformed")
    return state, HEADER.size + length


def load_dataset(keyspace: Keyspace, dbs: list[Any]) -> int:
    """Fill an empty keyspace from decoded `dbs`; returns the number of keys loaded.

    Databases beyond the configured count are dropped (and counted out by the caller).
    """
    clock = keyspace.clock
    loaded = 0
    used = 0
    for index, item in enumerate(dbs):
        if item is None or index >= len(keyspace.dbs):
            continue
        keys, values, expires = item
        if set(map(type, values)) <= {bytes}:  # the common case, at C speed
            sizes = list(map(STR_OVERHEAD.__add__, map(len, values)))
        else:
            values = [deque(v) if isinstance(v, list) else v for v in values]
            sizes = [value_size(v) for v in values]
        db = keyspace.dbs[index]
        db.data.update(zip(keys, map(Entry, values, repeat(clock), sizes), strict=True))
        db.expires.update(expires)
        used += sum(sizes) + sum(map(len, keys)) + len(keys) * KEY_OVERHEAD
        loaded += len(keys)
    keyspace.used += used
    return loaded


def record(ops: list[tuple[Any, ...]]) -> bytes:
    payload = marshal.dumps(ops, MARSHAL_VERSION)
    return RECORD.pack(len(payload), zlib.crc32(payload)) + payload


def records(data: bytes | memoryview, offset: int) -> tuple[list[tuple[Any, ...]], int, str]:
    """Operations of the journal records from `offset`; stops at the first incomplete or bad one.

    Returns (operations, end offset of the last good record, why reading stopped or "").
    A record cut short by a crash in the middle of its write is expected and not an error.
    """
    view = memoryview(data)
    ops: list[tuple[Any, ...]] = []
    end = len(view)
    while offset < end:
        if offset + RECORD.size > end:
            return ops, offset, "a record header was cut short"
        length, crc = RECORD.unpack_from(view, offset)
        start = offset + RECORD.size
        if start + length > end:
            return ops, offset, "the last record was cut short"
        payload = view[start : start + length]
        if zlib.crc32(payload) != crc:
            return ops, offset, f"checksum mismatch in the record at byte {offset}"
        try:
            ops.extend(marshal.loads(payload))
        except (EOFError, ValueError, TypeError) as e:
            return ops, offset, f"undecodable record at byte {offset}: {e}"
        offset = start + length
    return ops, offset, ""
