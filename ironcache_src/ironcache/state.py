"""The state format: one versioned, checksummed encoding of the dataset and connection state.

The same bytes go to a memfd in systemd's fd store (live handover) and to the disk snapshot.

    header  MAGIC, format, minor, flags, body length, CRC-32 of the body
    body    marshal (version 2) of a dict: {"meta": {...}, "dbs": [...], "clients": [...],
            "scripting": {"scripts": {sha: body}, "libraries": {name: code}}}
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
from ironcache.stream import Stream
from ironcache.zset import ZSet

if TYPE_CHECKING:
    from ironcache.keyspace import Keyspace

MAGIC = b"IRONCACHE-STATE\n"
FORMAT = 1  # the major version: readers refuse any other
MINOR = 1  # bumped for additions older readers may ignore (1: tagged values, "scripting")
HEADER = struct.Struct("<16sHHIQI")  # magic, format, minor, flags, body length, crc32(body)
RECORD = struct.Struct("<II")  # journal record: payload length, crc32(payload)
# Version 2: no back-references, which would cost a table lookup per shared object (every key
# and value here is shared with the live dataset) and buy nothing for this data.
MARSHAL_VERSION = 2

# Value types that are not builtins travel as (tag, payload) tuples: the type's `TAG`, and
# the marshal-able form its `dump()` gives and its `load()` reads back (ValueError when it
# cannot). A new structure type is one more entry here.
TAGGED: dict[str, Any] = {ZSet.TAG: ZSet, Stream.TAG: Stream}
# bytearray: a string the bit commands edit in place; marshal writes it as bytes.
_BUILTIN = frozenset((bytes, bytearray, dict, set))

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
        # Deques become lists (marshal has no deque; no value is a list otherwise), other
        # types (tag, payload) tuples.
        values = [e.value for e in db.data.values()]
        if not set(map(type, values)) <= _BUILTIN:
            values = [_portable(v) for v in values]
        dbs.append((list(db.data), values, db.expires))
    meta = {"ironcache_version": __version__, "written_ms": int(time.time() * 1000), **meta}
    scripting = {"scripts": keyspace.scripts, "libraries": keyspace.libraries}
    body = marshal.dumps(
        {"meta": meta, "dbs": dbs, "clients": clients, "scripting": scripting}, MARSHAL_VERSION
    )
    return HEADER.pack(MAGIC, FORMAT, MINOR, 0, len(body), zlib.crc32(body)) + body


def _portable(v: Any) -> Any:
    t = type(v)
    if t in _BUILTIN:
        return v
    if t is deque:
        return list(v)
    return (v.TAG, v.dump())


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
    except (EOFError, ValueError, TypeError, MemoryError) as e:
        raise StateError(f"{what}: undecodable body: {e}") from None
    if not isinstance(state, dict) or not isinstance(state.get("dbs"), list):
        raise StateError(f"{what}: the body is not an IronCache state")
    if not isinstance(state.get("meta", {}), dict):
        raise StateError(f"{what}: malformed metadata")
    clients = state.get("clients", [])
    if not isinstance(clients, list) or not all(_valid_client(c) for c in clients):
        raise StateError(f"{what}: malformed client records")
    if not _valid_scripting(state.get("scripting", {})):
        raise StateError(f"{what}: malformed scripts or function libraries")
    for i, item in enumerate(state["dbs"]):  # checked whole before anything is loaded
        why = "" if item is None else check_db(item)
        if why:
            raise StateError(f"{what}: database {i} is malformed: {why}")
    return state, HEADER.size + length


# Types marshal gives back for each kind of value (a list is a deque on the way out, a
# tuple a tagged value).
_VALUE_TYPES = frozenset((bytes, list, set, dict, tuple))
_EXPIRE_MAX = 2**63 - 1


def _only_bytes(items: Any) -> bool:
    return set(map(type, items)) <= {bytes}


# Field types of a client record (handover.client_record); absent fields keep defaults.
_CLIENT_FIELDS: dict[str, tuple[type, ...]] = {
    "db": (int,),
    "name": (bytes,),
    "lib_name": (bytes,),
    "lib_ver": (bytes,),
    "resp": (int,),
    "auth": (bool,),
    "user": (bytes,),
    "listener": (str,),
    "created_ms": (int,),
    "in_multi": (bool,),
    "watching": (bool,),
    "input": (bytes,),
    "multi": (list, type(None)),
    "multi_error": (bool,),
    "watch_touched": (bool,),
    "channels": (list,),
    "patterns": (list,),
    "schannels": (list,),
    "block_deadline_ms": (int,),
    "block_argv": (list,),
    "tracking": (int,),
    "tracking_redir": (int,),
    "tracking_prefixes": (list,),
}


def _valid_client(rec: Any) -> bool:
    if not isinstance(rec, dict) or not isinstance(rec.get("id"), int):
        return False
    for name, types in _CLIENT_FIELDS.items():
        if name in rec and type(rec[name]) not in types:
            return False
    if rec.get("resp", 2) not in (2, 3):
        return False
    if not all(
        _only_bytes(rec.get(k, ()))
        for k in ("channels", "patterns", "schannels", "block_argv", "tracking_prefixes")
    ):
        return False
    multi = rec.get("multi")
    return multi is None or all(isinstance(a, list) and a and _only_bytes(a) for a in multi)


def _valid_scripting(item: Any) -> bool:
    if not isinstance(item, dict):
        return False
    scripts, libraries = item.get("scripts", {}), item.get("libraries", {})
    return (
        isinstance(scripts, dict)
        and isinstance(libraries, dict)
        and _only_bytes(scripts)
        and _only_bytes(scripts.values())
        and set(map(type, libraries)) <= {str}
        and _only_bytes(libraries.values())
    )


def load_scripting(keyspace: Keyspace, body: dict[str, Any]) -> None:
    """EVAL's script cache and the FUNCTION libraries (absent in format 1.0: none).

    New dicts, so the scripting engine sees they changed and compiles them again."""
    scripting = body.get("scripting", {})
    keyspace.scripts = dict(scripting.get("scripts", {}))
    keyspace.libraries = dict(scripting.get("libraries", {}))


def check_db(item: Any) -> str:
    """Why a database's (keys, values, expires) cannot be loaded, or "" when it can.

    Everything a checksum cannot vouch for (a file written by something else, or by a bug)
    is checked here: types of keys, values, members and expiry times. Type checks on whole
    lists run at C speed (map/set), so the common all-strings database costs little.
    Tagged values are built here (their `load` checks them) and replace their tuple in
    `values`, so load_dataset() uses them as they are.
    """
    if not isinstance(item, tuple) or len(item) != 3:
        return "not a (keys, values, expires) triple"
    keys, values, expires = item
    if not isinstance(keys, list) or not isinstance(values, list) or not isinstance(expires, dict):
        return "keys, values or expiry times of the wrong type"
    if len(keys) != len(values):
        return f"{len(keys)} keys but {len(values)} values"
    if not _only_bytes(keys):
        return "a key is not a byte string"
    kinds = set(map(type, values))
    if not kinds <= _VALUE_TYPES:
        names = ", ".join(sorted(t.__name__ for t in kinds - _VALUE_TYPES))
        return f"values of an unknown type ({names})"
    if kinds != {bytes}:
        for v in values:
            t = type(v)
            if t is bytes:
                continue
            if t is tuple:
                continue
            if not v:
                return "an empty collection"
            if t is dict:
                if not (_only_bytes(v) and _only_bytes(v.values())):
                    return "a hash field or value is not a byte string"
            elif not _only_bytes(v):
                return "a list or set member is not a byte string"
        if tuple in kinds:
            for i, v in enumerate(values):
                if isinstance(v, tuple):
                    why = _load_tagged(values, i, v)
                    if why:
                        return why
    if expires:
        if not _only_bytes(expires):
            return "an expiring key is not a byte string"
        whens = expires.values()
        if not set(map(type, whens)) <= {int} or min(whens) < 0 or max(whens) > _EXPIRE_MAX:
            return "an expiry time is not a time in milliseconds"
    return ""


def _load_tagged(values: list[Any], i: int, v: tuple[Any, ...]) -> str:
    if len(v) != 2 or not isinstance(v[0], str) or v[0] not in TAGGED:
        return "a value of an unknown type tag"
    try:
        values[i] = TAGGED[v[0]].load(v[1])
    except ValueError as e:
        return f"a {v[0]} value is malformed: {e}"
    return ""


def load_dataset(keyspace: Keyspace, dbs: list[Any]) -> int:
    """Fill an empty keyspace from decoded `dbs`; returns the number of keys loaded.

    Databases beyond the configured count are dropped (and counted out by the caller).
    `dbs` must have passed `decode`'s checks; a key given twice, or an expiry time for a
    missing key, raises StateError with the keyspace left empty.
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
        db.rebuild_order()
        # Checks that need the loaded dict (a second hash of every key would cost more).
        why = ""
        if len(db.data) != len(keys):
            why = "a key appears twice"
        elif not db.expires.keys() <= db.data.keys():
            why = "an expiry time for a key that does not exist"
        if why:
            for d in keyspace.dbs:
                d.data.clear()
                d.expires.clear()
                d.rebuild_order()
            raise StateError(f"database {index} is malformed: {why}")
        used += sum(sizes) + sum(map(len, keys)) + len(keys) * KEY_OVERHEAD
        loaded += len(keys)
    keyspace.used += used
    return loaded


def _valid_op(op: Any) -> bool:
    """The shape `Handover._replay` relies on, for each kind of journal operation."""
    if not isinstance(op, tuple) or not op:
        return False
    kind, n = op[0], len(op)
    if kind == OP_WRITE:
        return (
            n == 4
            and isinstance(op[1], int)
            and isinstance(op[2], int)
            and op[2] >= 0
            and isinstance(op[3], list)
            and bool(op[3])
            and _only_bytes(op[3])
        )
    if kind == OP_CLIENT:
        return n == 2 and _valid_client(op[1])
    if kind == OP_CLOSED:
        return n == 2 and isinstance(op[1], int)
    if kind == OP_BATCH:
        return n == 8 and all(isinstance(x, int) for x in op[1:6])
    return False


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
            batch = marshal.loads(payload)
        except (EOFError, ValueError, TypeError, MemoryError) as e:
            return ops, offset, f"undecodable record at byte {offset}: {e}"
        if not isinstance(batch, list) or not all(map(_valid_op, batch)):
            return ops, offset, f"malformed operation in the record at byte {offset}"
        ops.extend(batch)
        offset = start + length
    return ops, offset, ""
