"""Whole-key operations: DUMP/RESTORE (ironcache.rdb), COPY, MOVE, SWAPDB, OBJECT, SORT."""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, Any

from ironcache import rdb
from ironcache.commands import (
    SYNTAX,
    WRONGTYPE,
    CommandError,
    command,
    subcommand,
    subcommands,
    to_int,
)
from ironcache.keyspace import NOTIFY_GENERIC, NOTIFY_LIST, Database, now_ms, value_size
from ironcache.protocol import OK, ONE, ZERO, bulk, integer, null
from ironcache.stream import Stream, describe, from_description
from ironcache.zset import ZSet

if TYPE_CHECKING:
    from ironcache.client import Client

K1 = (1, 1, 1)
SAME_OBJECT = "ERR source and destination objects are the same"
DB_RANGE = "ERR DB index is out of range"
SHARED_REFCOUNT = 2147483647  # OBJ_SHARED_REFCOUNT: small integers are shared objects
SHARED_INTEGERS = 10000
LRU_POLICIES = ("allkeys-lru", "volatile-lru")
POLICY_NOTE = (
    "Please note that when switching between policies at runtime LRU and LFU data "
    "will take some time to adjust."
)


# ---------------------------------------------------------------- sorted sets
# DUMP, RESTORE, COPY, OBJECT ENCODING and SORT reach the sorted-set type through these two.


def zset_pairs(value: Any) -> list[tuple[bytes, float]] | None:
    """A sorted set's (member, score) pairs in rank order; None for any other value."""
    if not isinstance(value, ZSet):
        return None
    return [(m, s) for s, m in value]


def zset_from_pairs(pairs: list[tuple[bytes, float]]) -> ZSet:
    """RESTORE of a sorted-set payload (rdb.load refused duplicates, NaN and empty sets)."""
    return ZSet.from_pairs(pairs)


# ---------------------------------------------------------------- helpers


def thresholds(c: Client) -> rdb.Thresholds:
    cfg = c.server.config
    return rdb.Thresholds(
        hash_entries=cfg["hash-max-listpack-entries"],
        hash_value=cfg["hash-max-listpack-value"],
        set_intset=cfg["set-max-intset-entries"],
        zset_entries=cfg["zset-max-listpack-entries"],
        zset_value=cfg["zset-max-listpack-value"],
        list_size=cfg["list-max-listpack-size"],
        compression=cfg["rdbcompression"],
    )


def copy_value(value: Any) -> Any:
    """An independent copy: strings are immutable, containers are copied one level deep."""
    return value if isinstance(value, bytes) else value.copy()


def lfu_policy(c: Client) -> bool:
    return c.server.keyspace.lfu


def db_index(c: Client, raw: bytes) -> Database:
    index = to_int(raw)
    if not -(2**31) <= index < 2**31:  # getIntFromObjectOrReply
        raise CommandError(
            "ERR value is out of range, value must between -2147483648 and 2147483647"
        )
    dbs = c.server.keyspace.dbs
    if not 0 <= index < len(dbs):
        raise CommandError(DB_RANGE)
    return dbs[index]


# ---------------------------------------------------------------- DUMP / RESTORE


def encode(c: Client, value: Any) -> bytes:
    pairs = zset_pairs(value)
    th = thresholds(c)
    if isinstance(value, Stream):
        return rdb.seal(rdb.encode_stream(describe(value), th))
    if pairs is not None:
        return rdb.seal(rdb.encode_zset(pairs, th))
    return rdb.dump(value, th)


@command("dump", 2, "readonly", K1, "generic", "Serializes a key's value.", "2.6.0")
def dump(c: Client, argv: list[bytes]) -> bytes:
    e = c.db.lookup(argv[1])
    if e is None:
        return null(c.resp)
    return bulk(encode(c, e.value))


@command("restore", -4, "write denyoom", K1, "generic", "Creates a key from a payload.", "2.6.0")
def restore(c: Client, argv: list[bytes]) -> bytes:
    db, key = c.db, argv[1]
    replace = absttl = False
    idle = freq = -1
    j = 4
    while j < len(argv):
        opt = argv[j].lower()
        more = len(argv) - j - 1
        if opt == b"replace":
            replace = True
        elif opt == b"absttl":
            absttl = True
        elif opt == b"idletime" and more >= 1 and freq == -1:
            idle = to_int(argv[j + 1])
            if idle < 0:
                raise CommandError("ERR Invalid IDLETIME value, must be >= 0")
            j += 1
        elif opt == b"freq" and more >= 1 and idle == -1:
            freq = to_int(argv[j + 1])
            if not 0 <= freq <= 255:
                raise CommandError("ERR Invalid FREQ value, must be >= 0 and <= 255")
            j += 1
        else:
            raise CommandError(SYNTAX)
        j += 1
    if not replace and db.lookup(key) is not None:
        raise CommandError("BUSYKEY Target key name already exists.")
    ttl = to_int(argv[2])
    if ttl < 0:
        raise CommandError("ERR Invalid TTL value, must be >= 0")
    try:
        kind, value = rdb.load(argv[3])
        if kind in rdb.ZSET_TYPES:
            value = zset_from_pairs(value)
        elif kind in rdb.STREAM_TYPES:
            value = from_description(value)
    except rdb.RdbError as err:
        if err.version:
            raise CommandError("ERR DUMP payload version or checksum are wrong") from None
        raise CommandError("ERR Bad data format") from None
    if ttl and not absttl:
        ttl += now_ms()
        if ttl > 2**63 - 1:  # Redis's addition wraps around: a time long past
            ttl -= 2**64
    if ttl and ttl <= now_ms():  # already expired: only the old value goes
        if replace and db.lookup(key) is not None:
            db.delete(key)
            db.notify(NOTIFY_GENERIC, b"del", key)
        return OK
    if replace:
        db.delete(key)
    db.set(key, value, value_size(value))
    if ttl:
        db.set_expire(key, ttl)
    db.notify(NOTIFY_GENERIC, b"restore", key)
    entry = db.data[key]
    if lfu_policy(c):
        if freq >= 0:
            db.freqs[key] = c.server.keyspace.lfu_packed(freq)
    elif idle >= 0:
        entry.lru = c.server.keyspace.clock - idle * 1000
    return OK


# ---------------------------------------------------------------- COPY / MOVE / SWAPDB


@command("copy", -3, "write denyoom", (1, 2, 1), "generic", "Copies a key's value.", "6.2.0")
def copy(c: Client, argv: list[bytes]) -> bytes:
    src_db = dst_db = c.db
    replace = False
    j = 3
    while j < len(argv):
        opt = argv[j].lower()
        if opt == b"replace":
            replace = True
        elif opt == b"db" and j + 1 < len(argv):
            dst_db = db_index(c, argv[j + 1])
            j += 1
        else:
            raise CommandError(SYNTAX)
        j += 1
    src, dst = argv[1], argv[2]
    if src_db is dst_db and src == dst:
        raise CommandError(SAME_OBJECT)
    e = src_db.lookup(src)
    if e is None:
        return ZERO
    when = src_db.expires.get(src)
    if dst_db.lookup(dst) is not None:
        if not replace:
            return ZERO
        dst_db.delete(dst)
    dst_db.set(dst, copy_value(e.value), e.size)
    if when is not None:
        dst_db.set_expire(dst, when)
    dst_db.notify(NOTIFY_GENERIC, b"copy_to", dst)
    return ONE


@command("move", 3, "write fast", K1, "generic", "Moves a key to another database.")
def move(c: Client, argv: list[bytes]) -> bytes:
    src_db, key = c.db, argv[1]
    dst_db = db_index(c, argv[2])
    if dst_db is src_db:
        raise CommandError(SAME_OBJECT)
    e = src_db.lookup(key)
    if e is None or dst_db.lookup(key) is not None:
        return ZERO
    when = src_db.expires.get(key)
    freq = src_db.freqs.get(key)
    value, size = e.value, e.size
    src_db.delete(key)
    dst_db.set(key, value, size)
    if when is not None:
        dst_db.set_expire(key, when)
    if freq is not None:
        dst_db.freqs[key] = freq
    src_db.notify(NOTIFY_GENERIC, b"move_from", key)
    dst_db.notify(NOTIFY_GENERIC, b"move_to", key)
    return ONE


@command("swapdb", 3, "write fast", (0, 0, 0), "server", "Swaps two databases.", "4.0.0")
def swapdb(c: Client, argv: list[bytes]) -> bytes:
    ids = []
    for raw, which in ((argv[1], "first"), (argv[2], "second")):
        try:
            n = to_int(raw)
        except CommandError:
            raise CommandError(f"ERR invalid {which} DB index") from None
        if not -(2**31) <= n < 2**31:
            raise CommandError(f"ERR invalid {which} DB index")
        ids.append(n)
    dbs = c.server.keyspace.dbs
    if not all(0 <= i < len(dbs) for i in ids):
        raise CommandError(DB_RANGE)
    if ids[0] != ids[1]:
        dbs[ids[0]].swap(dbs[ids[1]])
    return OK


# ---------------------------------------------------------------- OBJECT

OBJECT_HELP = [
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
]


def encoding(value: Any, th: rdb.Thresholds) -> str:
    """The name Redis 7.0 gives a value of this content, by its thresholds (redis.conf)."""
    t = type(value)
    if t is bytes:
        if rdb.is_intset((value,), 1) and len(value) <= 20:
            return "int"
        return "embstr" if len(value) <= 44 else "raw"
    if t is bytearray:  # edited in place (SETBIT, PFADD, PFMERGE): Redis's are raw strings
        return "raw"
    if t is deque:
        return "quicklist"  # every 7.0 list
    if t is Stream:
        return "stream"
    if t is set:
        return "intset" if rdb.is_intset(value, th.set_intset) else "hashtable"
    if t is dict:
        return "listpack" if rdb.hash_is_listpack(value, th) else "hashtable"
    pairs = zset_pairs(value)
    if pairs is not None:
        return "listpack" if rdb.zset_is_listpack(pairs, th) else "skiplist"
    return "unknown"


def simple_lines(lines: list[str]) -> bytes:
    return b"*%d\r\n" % len(lines) + b"".join(b"+" + s.encode() + b"\r\n" for s in lines)


OBJECT_ARITY = {b"help": 2, b"encoding": 3, b"freq": 3, b"idletime": 3, b"refcount": 3}


@command("object", -2, "readonly", (2, 2, 1), "generic", "Inspects a key's internals.", "2.2.3")
def object_(c: Client, argv: list[bytes]) -> bytes:
    sub = subcommand(argv, OBJECT_ARITY)
    if sub == b"help":
        return simple_lines(OBJECT_HELP)
    e = c.db.peek(argv[2])  # no access counted: OBJECT must not change what it reports
    if e is None:
        return null(c.resp)
    if sub == b"encoding":
        return bulk(encoding(e.value, thresholds(c)).encode())
    if sub == b"refcount":
        v = e.value
        shared = (
            isinstance(v, bytes)
            and rdb.is_intset((v,), 1)
            and 0 <= int(v) < SHARED_INTEGERS
            and not (c.server.config["maxmemory"] and _lru_or_lfu(c))
        )
        return integer(SHARED_REFCOUNT if shared else 1)
    if sub == b"idletime":
        if lfu_policy(c):
            raise CommandError(
                "ERR An LFU maxmemory policy is selected, idle time not tracked. " + POLICY_NOTE
            )
        return integer(max(c.server.keyspace.clock - e.lru, 0) // 1000)
    if not lfu_policy(c):
        raise CommandError(
            "ERR An LFU maxmemory policy is not selected, access frequency not tracked. "
            + POLICY_NOTE
        )
    return integer(c.server.keyspace.lfu_counter(c.db.freqs.get(argv[2])))


subcommands("object", OBJECT_ARITY)


def _lru_or_lfu(c: Client) -> bool:
    return str(c.server.config["maxmemory-policy"]).endswith(("lru", "lfu"))


# ---------------------------------------------------------------- SORT


def _by_pattern(db: Database, pattern: bytes, subst: bytes) -> bytes | None:
    """lookupKeyByPattern: `#` is the element; `*` takes it; `key->field` reads a hash."""
    if pattern == b"#":
        return subst
    star = pattern.find(b"*")
    if star < 0:
        return None
    arrow = pattern.find(b"->", star + 1)
    field = None
    if arrow >= 0 and arrow + 2 < len(pattern):
        field = pattern[arrow + 2 :]
        key = pattern[:star] + subst + pattern[star + 1 : arrow]
    else:
        key = pattern[:star] + subst + pattern[star + 1 :]
    e = db.lookup(key)
    if e is None:
        return None
    if field is not None:
        return e.value.get(field) if isinstance(e.value, dict) else None
    return e.value if isinstance(e.value, bytes) else None


def _strtod(raw: bytes) -> float | None:
    """A score as strtod reads it (all of the string must be used), None when it cannot."""
    s = raw.lstrip(b" \t\n\v\f\r")
    if not raw:
        return 0.0
    try:
        text = s.decode("ascii")
    except UnicodeDecodeError:
        return None
    if not text or text != text.rstrip() or "_" in text:
        return None
    try:
        hexa = text.lstrip("+-")[:2].lower() == "0x"
        x = float.fromhex(text) if hexa else float(text)
    except (ValueError, OverflowError):
        return None
    if math.isnan(x) or (math.isinf(x) and "inf" not in text.lower()):
        return None  # ERANGE
    return x


def _sort(c: Client, argv: list[bytes], readonly: bool) -> bytes:
    db = c.db
    desc = alpha = dontsort = False
    limit_start, limit_count = 0, -1
    sortby: bytes | None = None
    store: bytes | None = None
    gets: list[bytes] = []
    j = 2
    while j < len(argv):
        opt = argv[j].lower()
        left = len(argv) - j - 1
        if opt == b"asc":
            desc = False
        elif opt == b"desc":
            desc = True
        elif opt == b"alpha":
            alpha = True
        elif opt == b"limit" and left >= 2:
            limit_start, limit_count = to_int(argv[j + 1]), to_int(argv[j + 2])
            j += 2
        elif opt == b"store" and left >= 1 and not readonly:
            store = argv[j + 1]
            j += 1
        elif opt == b"by" and left >= 1:
            sortby = argv[j + 1]
            if b"*" not in sortby:
                dontsort = True
            j += 1
        elif opt == b"get" and left >= 1:
            gets.append(argv[j + 1])
            j += 1
        else:
            raise CommandError(SYNTAX)
        j += 1

    e = db.lookup(argv[1])
    value: Any = deque() if e is None else e.value
    pairs = zset_pairs(value)
    if type(value) not in (deque, set) and pairs is None:
        raise CommandError(WRONGTYPE)
    if dontsort and isinstance(value, set) and store is not None:
        # a set has no order of its own: STORE gets a stable one
        dontsort, alpha, sortby = False, True, None

    if pairs is not None:
        items = [m for m, _s in pairs]
    elif isinstance(value, set):
        items = list(value)
        if rdb.is_intset(value, c.server.config["set-max-intset-entries"]):
            items.sort(key=int)  # an intset iterates in order
    else:
        items = list(value)
    n = len(items)
    start = max(limit_start, 0)
    end = n - 1 if limit_count < 0 else start + limit_count - 1
    if start >= n:
        start, end = n - 1, n - 2
    end = min(end, n - 1)

    if dontsort:
        if not isinstance(value, set) and desc:  # lists and sorted sets: native order, reversed
            items.reverse()
    else:
        items = _sorted(db, items, sortby, alpha, desc, store is not None)
    chosen = items[start : end + 1] if end >= start else []

    if store is None:
        out: list[bytes | None] = []
        for el in chosen:
            if not gets:
                out.append(el)
            else:
                out.extend(_by_pattern(db, g, el) for g in gets)
        parts = [b"*%d\r\n" % len(out)]
        nil = null(c.resp)
        parts.extend(nil if x is None else bulk(x) for x in out)
        return b"".join(parts)

    stored: deque[bytes] = deque()
    for el in chosen:
        if not gets:
            stored.append(el)
        else:
            stored.extend(_by_pattern(db, g, el) or b"" for g in gets)
    if stored:
        db.set(store, stored, value_size(stored))
        db.notify(NOTIFY_LIST, b"sortstore", store)
    elif db.lookup(store) is not None:
        db.delete(store)
        db.notify(NOTIFY_GENERIC, b"del", store)
    return integer(len(stored))


def _sorted(
    db: Database, items: list[bytes], sortby: bytes | None, alpha: bool, desc: bool, store: bool
) -> list[bytes]:
    if alpha:
        if sortby is not None:
            # elements without a BY value sort first; equal BY values keep no particular order
            keyed = [(_by_pattern(db, sortby, el), el) for el in items]
            keyed.sort(key=lambda kv: (kv[0] is not None, kv[0] or b""), reverse=desc)
            return [el for _k, el in keyed]
        return sorted(items, reverse=desc)
    scored = []
    for el in items:
        raw = el if sortby is None else _by_pattern(db, sortby, el)
        score = 0.0
        if raw is not None:
            parsed = _strtod(raw)
            if parsed is None:
                raise CommandError("ERR One or more scores can't be converted into double")
            score = parsed
        scored.append((score, el))
    scored.sort(reverse=desc)  # equal scores: the elements themselves decide, as Redis
    return [el for _s, el in scored]


def sort_keys(argv: list[bytes]) -> list[bytes]:
    """sortGetKeys: the key, and the last STORE's destination (options skipped as Redis does)."""
    skips = {b"limit": 2, b"get": 1, b"by": 1}
    store = None
    i = 2
    while i < len(argv):
        opt = argv[i].lower()
        if opt in skips:
            i += skips[opt]
        elif opt == b"store" and i + 1 < len(argv):
            store = argv[i + 1]
        i += 1
    return [argv[1]] if store is None else [argv[1], store]


@command(
    "sort", -2, "write denyoom movablekeys", K1, "generic", "Sorts a list, set or sorted set.",
    find_keys=sort_keys,
)
def sort(c: Client, argv: list[bytes]) -> bytes:
    return _sort(c, argv, False)


@command("sort_ro", -2, "readonly movablekeys", K1, "generic", "Sorts without STORE.", "7.0.0")
def sort_ro(c: Client, argv: list[bytes]) -> bytes:
    return _sort(c, argv, True)
