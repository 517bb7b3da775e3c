"""Hash commands."""

from __future__ import annotations

import random
from itertools import islice
from typing import TYPE_CHECKING

from ironcache.commands import (
    SYNTAX,
    WRONGTYPE,
    CommandError,
    add_floats,
    command,
    parse_cursor,
    scan_options,
    scan_reply,
    to_int,
)
from ironcache.keyspace import (
    CONTAINER_OVERHEAD,
    FIELD_OVERHEAD,
    NOTIFY_HASH,
    SCAN_WHOLE,
    Entry,
    random_element,
)
from ironcache.protocol import EMPTY_ARRAY, ONE, ZERO, bulk, bulk_array, encode, integer, null

if TYPE_CHECKING:
    from ironcache.client import Client

K1 = (1, 1, 1)


def read_hash(c: Client, key: bytes) -> dict[bytes, bytes] | None:
    e = c.db.lookup(key)
    if e is None:
        return None
    if not isinstance(e.value, dict):
        raise CommandError(WRONGTYPE)
    return e.value


def write_hash(c: Client, key: bytes) -> Entry:
    """The entry holding the hash at `key`, created empty when missing."""
    e = c.db.lookup(key)
    if e is None:
        c.db.set(key, {}, CONTAINER_OVERHEAD)
        e = c.db.data[key]
    elif not isinstance(e.value, dict):
        raise CommandError(WRONGTYPE)
    return e


def _set_fields(c: Client, argv: list[bytes], name: str, event: bytes = b"hset") -> int:
    if len(argv) % 2 != 0 or len(argv) < 4:
        raise CommandError(f"ERR wrong number of arguments for '{name}' command")
    e = write_hash(c, argv[1])
    h = e.value
    added = delta = 0
    for i in range(2, len(argv), 2):
        f, v = argv[i], argv[i + 1]
        old = h.get(f)
        if old is None:
            added += 1
            delta += FIELD_OVERHEAD + len(f) + len(v)
        else:
            delta += len(v) - len(old)
        h[f] = v
    c.db.resized(argv[1], e, delta)
    c.db.notify(NOTIFY_HASH, event, argv[1])
    return added


@command("hset", -4, "write denyoom fast", K1, "hash", "Sets fields of a hash.")
def hset(c: Client, argv: list[bytes]) -> bytes:
    if len(argv) != 4:
        return integer(_set_fields(c, argv, "hset"))
    # One field: _set_fields() and Database.resized(), inlined.
    db = c.db
    key, f, v = argv[1], argv[2], argv[3]
    e = db.data.get(key)
    if e is not None and db.expires:
        e = db.lookup(key)  # may have expired
    if e is None:
        db.set(key, {}, CONTAINER_OVERHEAD)
        e = db.data[key]
    elif e.value.__class__ is not dict:
        raise CommandError(WRONGTYPE)
    elif db.keyspace.lfu and not db.expires:  # lookup() counted it if it ran
        db.lfu_touch(key)
    h = e.value
    old = h.get(f)
    h[f] = v
    ks = db.keyspace
    delta = FIELD_OVERHEAD + len(f) + len(v) if old is None else len(v) - len(old)
    e.size += delta
    e.lru = ks.clock
    ks.used += delta
    if db.watchers:
        db.touched(key)
    else:
        ks.dirty += 1
        if ks.invalidate is not None:  # CLIENT TRACKING
            ks.invalidate(key)
    if ks.events:
        db.notify(NOTIFY_HASH, b"hset", key)
    return ONE if old is None else ZERO


@command("hmset", -4, "write denyoom fast", K1, "hash", "Sets fields of a hash.")
def hmset(c: Client, argv: list[bytes]) -> bytes:
    _set_fields(c, argv, "hmset")
    return b"+OK\r\n"


@command("hsetnx", 4, "write denyoom fast", K1, "hash", "Sets a field only when it is absent.")
def hsetnx(c: Client, argv: list[bytes]) -> bytes:
    h = read_hash(c, argv[1])
    if h is not None and argv[2] in h:
        return ZERO
    _set_fields(c, argv, "hsetnx")
    return ONE


@command("hget", 3, "readonly fast", K1, "hash", "Returns the value of a field.")
def hget(c: Client, argv: list[bytes]) -> bytes:
    h = read_hash(c, argv[1])
    v = None if h is None else h.get(argv[2])
    return null(c.resp) if v is None else bulk(v)


@command("hmget", -3, "readonly fast", K1, "hash", "Returns the values of fields.")
def hmget(c: Client, argv: list[bytes]) -> bytes:
    h = read_hash(c, argv[1]) or {}
    return bulk_array([h.get(f) for f in argv[2:]], c.resp)


@command("hdel", -3, "write fast", K1, "hash", "Deletes fields from a hash.")
def hdel(c: Client, argv: list[bytes]) -> bytes:
    if read_hash(c, argv[1]) is None:
        return ZERO
    e = c.db.data[argv[1]]
    h = e.value
    n = delta = 0
    for f in argv[2:]:
        v = h.pop(f, None)
        if v is not None:
            n += 1
            delta -= FIELD_OVERHEAD + len(f) + len(v)
    if n:
        c.db.resized(argv[1], e, delta)
        c.db.notify_emptied(NOTIFY_HASH, b"hdel", argv[1])
    return integer(n)


@command("hgetall", 2, "readonly", K1, "hash", "Returns all fields and values of a hash.")
def hgetall(c: Client, argv: list[bytes]) -> bytes:
    return encode(read_hash(c, argv[1]) or {}, c.resp)


@command("hkeys", 2, "readonly", K1, "hash", "Returns all fields of a hash.")
def hkeys(c: Client, argv: list[bytes]) -> bytes:
    return bulk_array(list(read_hash(c, argv[1]) or ()))


@command("hvals", 2, "readonly", K1, "hash", "Returns all values of a hash.")
def hvals(c: Client, argv: list[bytes]) -> bytes:
    return bulk_array(list((read_hash(c, argv[1]) or {}).values()))


@command("hlen", 2, "readonly fast", K1, "hash", "Returns the number of fields.")
def hlen(c: Client, argv: list[bytes]) -> bytes:
    return integer(len(read_hash(c, argv[1]) or ()))


@command("hstrlen", 3, "readonly fast", K1, "hash", "Returns the length of a field's value.")
def hstrlen(c: Client, argv: list[bytes]) -> bytes:
    h = read_hash(c, argv[1]) or {}
    return integer(len(h.get(argv[2], b"")))


@command("hexists", 3, "readonly fast", K1, "hash", "Tells whether a field exists.")
def hexists(c: Client, argv: list[bytes]) -> bytes:
    h = read_hash(c, argv[1])
    return ONE if h is not None and argv[2] in h else ZERO


@command("hincrby", 4, "write denyoom fast", K1, "hash", "Increments a field's integer value.")
def hincrby(c: Client, argv: list[bytes]) -> bytes:
    delta = to_int(argv[3])
    h = read_hash(c, argv[1]) or {}
    old = h.get(argv[2])
    n = 0 if old is None else to_int(old, "ERR hash value is not an integer")
    n += delta
    if not -(2**63) <= n < 2**63:
        raise CommandError("ERR increment or decrement would overflow")
    _set_fields(c, [argv[0], argv[1], argv[2], b"%d" % n], "hincrby", b"hincrby")
    return integer(n)


@command("hincrbyfloat", 4, "write denyoom fast", K1, "hash", "Increments a field's float value.")
def hincrbyfloat(c: Client, argv: list[bytes]) -> bytes:
    add_floats(None, argv[3], finite_incr=True)  # the increment is checked before the key
    h = read_hash(c, argv[1]) or {}
    out = add_floats(h.get(argv[2]), argv[3], "ERR hash value is not a float", finite_incr=True)
    _set_fields(c, [argv[0], argv[1], argv[2], out], "hincrbyfloat", b"hincrbyfloat")
    return bulk(out)


@command("hscan", -3, "readonly", K1, "hash", "Iterates over the fields of a hash.")
def hscan(c: Client, argv: list[bytes]) -> bytes:
    cursor = parse_cursor(argv[2])
    h = read_hash(c, argv[1])
    if h is None:
        return scan_reply(0, [])  # before the options are parsed, as in Redis
    count, match, unused_type = scan_options(argv, 3, False)
    out: list[bytes] = []
    if len(h) <= SCAN_WHOLE:  # one step, cursor 0, as Redis answers a listpack-encoded hash
        for f, v in h.items():
            if match(f):
                out += (f, v)
        return scan_reply(0, out)
    # A big hash: about `count` fields per call (COUNT is a hint, as in Redis).
    cursor, fields = c.server.keyspace.member_scans.scan(c.db.index, argv[1], h, cursor, count)
    for f in fields:
        if match(f):
            out += (f, h[f])
    return scan_reply(cursor, out)


LONG_MAX = 2**63 - 1
# A reply larger than this is refused: Redis would stream it for as long as it takes (for
# -LONG_MAX, forever); a reply here is built whole before it is sent.
MAX_REPLY_BYTES = 1 << 30
CHUNK = 65536  # fields picked per step of a negative count


def _sample(h: dict[bytes, bytes], count: int) -> list[bytes]:
    """`count` distinct fields in random order, in one walk over the hash: memory for the
    picks only, never a copy of the whole hash."""
    positions = sorted(random.sample(range(len(h)), count))
    it = iter(h)
    out: list[bytes] = []
    at = 0
    for p in positions:
        out.append(next(islice(it, p - at, None)))
        at = p + 1
    random.shuffle(out)
    return out


@command("hrandfield", -2, "readonly", K1, "hash", "Returns random fields of a hash.", "6.2.0")
def hrandfield(c: Client, argv: list[bytes]) -> bytes:
    if len(argv) == 2:
        h = read_hash(c, argv[1])
        if h is None:
            return null(c.resp)
        return bulk(random_element(h))
    count = to_int(argv[2])
    if not -LONG_MAX <= count <= LONG_MAX:  # getRangeLongFromObjectOrReply(), as in Redis
        raise CommandError(
            f"ERR value is out of range, value must between {-LONG_MAX} and {LONG_MAX}"
        )
    if len(argv) > 4 or (len(argv) == 4 and argv[3].lower() != b"withvalues"):
        raise CommandError(SYNTAX)
    withvalues = len(argv) == 4
    if withvalues and not -LONG_MAX // 2 <= count <= LONG_MAX // 2:
        raise CommandError("ERR value is out of range")
    h = read_hash(c, argv[1])
    if h is None or count == 0:
        return EMPTY_ARRAY
    resp3 = c.resp == 3
    if count > 0:
        fields = list(h) if count >= len(h) else _sample(h, count)
        if not withvalues:
            return bulk_array(fields)
        if resp3:
            return b"*%d\r\n" % len(fields) + b"".join(
                b"*2\r\n" + bulk(f) + bulk(h[f]) for f in fields
            )
        return b"*%d\r\n" % (2 * len(fields)) + b"".join(bulk(f) + bulk(h[f]) for f in fields)
    count = -count
    # Repetitions allowed: encode each field (with its value) once, then pick encoded items
    # chunk by chunk, so the only big allocation is the reply itself.
    if withvalues:
        head = b"*2\r\n" if resp3 else b""
        encoded = [head + bulk(f) + bulk(v) for f, v in h.items()]
    else:
        encoded = [bulk(f) for f in h]
    if count * min(map(len, encoded)) > MAX_REPLY_BYTES:
        raise CommandError("ERR reply too large: the count asks for more than 1 GB")
    parts = [b"*%d\r\n" % (2 * count if withvalues and not resp3 else count)]
    choices = random.choices
    while count > 0:
        n = min(count, CHUNK)
        parts.append(b"".join(choices(encoded, k=n)))
        count -= n
    return b"".join(parts)
