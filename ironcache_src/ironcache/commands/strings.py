"""String commands."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from ironcache.commands import (
    NOT_INT,
    SYNTAX,
    WRONGTYPE,
    CommandError,
    add_floats,
    command,
    to_int,
)
from ironcache.keyspace import (
    KEY_OVERHEAD,
    NOTIFY_GENERIC,
    NOTIFY_NEW,
    NOTIFY_STRING,
    STR_OVERHEAD,
    Database,
    Entry,
    now_ms,
)
from ironcache.protocol import (
    NULL_BULK,
    OK,
    ONE,
    ZERO,
    bulk,
    integer,
    null,
)

if TYPE_CHECKING:
    from ironcache.client import Client

MAX_STRING = 512 * 1024 * 1024
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
W = "write denyoom"
R = "readonly fast"
K1 = (1, 1, 1)


def get_str(db: Database, key: bytes) -> bytes | None:
    """The string at key: bytes, or a bytearray when the bit commands edited it."""
    e = db.lookup(key)
    if e is None:
        db.keyspace.misses += 1
        return None
    v = e.value
    if v.__class__ is not bytes and v.__class__ is not bytearray:
        raise CommandError(WRONGTYPE)
    db.keyspace.hits += 1
    return v


def put_str(db: Database, key: bytes, value: bytes, keep_ttl: bool = False) -> None:
    db.set(key, value, STR_OVERHEAD + len(value), keep_ttl)


LLONG_MAX = 2**63 - 1


def expire_arg(opt: bytes, arg: bytes, name: str) -> int:
    """Absolute expiry time in ms for EX/PX/EXAT/PXAT, checked as Redis's
    getExpireMillisecondsOrReply(): positive, and no overflow of a signed 64-bit ms time."""
    n = to_int(arg)
    seconds = opt in (b"ex", b"exat")
    if n <= 0 or (seconds and n > LLONG_MAX // 1000):
        raise CommandError(f"ERR invalid expire time in '{name}' command")
    ms = n * 1000 if seconds else n
    if opt in (b"ex", b"px"):
        ms += now_ms()
        if ms > LLONG_MAX:  # wraps negative in Redis, then refused
            raise CommandError(f"ERR invalid expire time in '{name}' command")
    return ms


@command("get", 2, R, K1, "string", "Returns the string value of a key.")
def get(c: Client, argv: list[bytes]) -> bytes:
    db = c.db
    e = db.data.get(argv[1])
    if e is not None and db.expires:
        e = db.lookup(argv[1])  # may have expired
    ks = db.keyspace
    if e is None:
        ks.misses += 1
        return NULL_BULK if c.resp == 2 else null(3)
    v = e.value
    if v.__class__ is not bytes and v.__class__ is not bytearray:
        raise CommandError(WRONGTYPE)
    ks.hits += 1
    e.lru = ks.clock
    if ks.lfu and not db.expires:  # lookup() counted it if it ran
        db.lfu_touch(argv[1])
    return b"$%d\r\n%s\r\n" % (len(v), v)


def parse_options(argv: list[bytes], start: int, allowed: tuple[bytes, ...]) -> dict[bytes, bytes]:
    """SET/GETEX options as Redis parses them: one expiry kind (repeating it is fine, the
    last value wins), NX or XX, KEEPTTL or PERSIST only without an expiry. Values are checked
    later, by the caller, in Redis's order."""
    opts: dict[bytes, bytes] = {}
    i = 0
    n = len(argv)
    i = start
    while i < n:
        opt = argv[i].lower()
        if opt not in allowed:
            raise CommandError(SYNTAX)
        if opt in EXPIRY:
            if (
                i + 1 >= n
                or any(k in opts for k in EXPIRY if k != opt)
                or (b"keepttl" in opts or b"persist" in opts)
            ):
                raise CommandError(SYNTAX)
            opts[opt] = argv[i + 1]
            i += 2
            continue
        conflicts = {b"nx": (b"xx",), b"xx": (b"nx",), b"keepttl": EXPIRY, b"persist": EXPIRY}.get(
            opt, ()
        )
        if any(k in opts for k in conflicts):
            raise CommandError(SYNTAX)
        opts[opt] = b""
        i += 1
    return opts


EXPIRY = (b"ex", b"px", b"exat", b"pxat")


def expiry_of(opts: dict[bytes, bytes], name: str) -> int | None:
    for opt in EXPIRY:
        if opt in opts:
            return expire_arg(opt, opts[opt], name)
    return None


@command("set", -3, W, K1, "string", "Sets the string value of a key.")
def set_(c: Client, argv: list[bytes]) -> bytes:
    db, key, value = c.db, argv[1], argv[2]
    if len(argv) == 3:
        # Database.set(), inlined: SET is the hottest write.
        ks = db.keyspace
        size = STR_OVERHEAD + len(value)
        e = db.data.get(key)
        if e is not None:
            ks.used += size - e.size
            e.value = value
            e.size = size
            e.lru = ks.clock
            if ks.lfu:
                db.lfu_touch(key)
            if db.blocked and key in db.blocked:  # a stream replaced: XREADGROUP waiters
                ks.signal_ready(db, key)
        else:
            ks.used += size + len(key) + KEY_OVERHEAD
            db.data[key] = Entry(value, ks.clock, size)
            db.order.append(key)
            if ks.events:
                db.notify(NOTIFY_NEW, b"new", key)
        if db.expires:
            db.expires.pop(key, None)
        ks.dirty += 1
        if db.watchers:
            db.touched(key)
        elif ks.invalidate is not None:  # CLIENT TRACKING
            ks.invalidate(key)
        if ks.events:
            db.notify(NOTIFY_STRING, b"set", key)
        return OK
    opts = parse_options(argv, 3, (*EXPIRY, b"nx", b"xx", b"keepttl", b"get"))
    when = expiry_of(opts, "set")
    get_old = b"get" in opts
    e = db.lookup(key)
    old: bytes | None = None
    if get_old and e is not None:
        if not isinstance(e.value, (bytes, bytearray)):
            raise CommandError(WRONGTYPE)
        old = e.value
    if (b"nx" in opts and e is not None) or (b"xx" in opts and e is None):
        return bulk(old) if old is not None else null(c.resp)
    put_str(db, key, value, keep_ttl=b"keepttl" in opts)
    db.notify(NOTIFY_STRING, b"set", key)
    if when is not None:
        db.set_expire(key, when)
        db.notify(NOTIFY_GENERIC, b"expire", key)
    if get_old:
        return bulk(old) if old is not None else null(c.resp)
    return OK


@command("setnx", 3, W + " fast", K1, "string", "Set the value of a key only when it is absent.")
def setnx(c: Client, argv: list[bytes]) -> bytes:
    if c.db.lookup(argv[1]) is not None:
        return ZERO
    put_str(c.db, argv[1], argv[2])
    c.db.notify(NOTIFY_STRING, b"set", argv[1])
    return ONE


def _setex(c: Client, argv: list[bytes], unit: int, name: str) -> bytes:
    when = expire_arg(b"ex" if unit == 1000 else b"px", argv[2], name)
    put_str(c.db, argv[1], argv[3])
    c.db.notify(NOTIFY_STRING, b"set", argv[1])
    c.db.set_expire(argv[1], when)
    c.db.notify(NOTIFY_GENERIC, b"expire", argv[1])
    return OK


@command("setex", 4, W, K1, "string", "Sets the value and expiration in seconds of a key.")
def setex(c: Client, argv: list[bytes]) -> bytes:
    return _setex(c, argv, 1000, "setex")


@command("psetex", 4, W, K1, "string", "Sets the value and expiration in ms of a key.")
def psetex(c: Client, argv: list[bytes]) -> bytes:
    return _setex(c, argv, 1, "psetex")


@command("mget", -2, R, (1, -1, 1), "string", "Atomically returns the values of keys.")
def mget(c: Client, argv: list[bytes]) -> bytes:
    db = c.db
    nul = null(c.resp)
    parts = [b"*%d\r\n" % (len(argv) - 1)]
    for key in argv[1:]:
        e = db.lookup(key)
        if e is None or not isinstance(e.value, (bytes, bytearray)):
            db.keyspace.misses += 1
            parts.append(nul)
        else:
            db.keyspace.hits += 1
            parts.append(bulk(e.value))
    return b"".join(parts)


def _pairs(argv: list[bytes], name: str) -> list[tuple[bytes, bytes]]:
    if len(argv) % 2 == 0:
        raise CommandError(f"ERR wrong number of arguments for '{name}' command")
    return [(argv[i], argv[i + 1]) for i in range(1, len(argv), 2)]


@command("mset", -3, W, (1, -1, 2), "string", "Atomically sets the values of keys.")
def mset(c: Client, argv: list[bytes]) -> bytes:
    for k, v in _pairs(argv, "mset"):
        put_str(c.db, k, v)
        c.db.notify(NOTIFY_STRING, b"set", k)
    return OK


@command("msetnx", -3, W, (1, -1, 2), "string", "Sets keys only when none exists.")
def msetnx(c: Client, argv: list[bytes]) -> bytes:
    pairs = _pairs(argv, "msetnx")
    if any(c.db.lookup(k) is not None for k, unused_value in pairs):
        return ZERO
    for k, v in pairs:
        put_str(c.db, k, v)
        c.db.notify(NOTIFY_STRING, b"set", k)
    return ONE


@command("getset", 3, W + " fast", K1, "string", "Sets a key and returns its old value.")
def getset(c: Client, argv: list[bytes]) -> bytes:
    old = get_str(c.db, argv[1])
    put_str(c.db, argv[1], argv[2])
    c.db.notify(NOTIFY_STRING, b"set", argv[1])
    return null(c.resp) if old is None else bulk(old)


@command("getdel", 2, "write fast", K1, "string", "Returns the value of a key and deletes it.")
def getdel(c: Client, argv: list[bytes]) -> bytes:
    old = get_str(c.db, argv[1])
    if old is None:
        return null(c.resp)
    c.db.delete(argv[1])
    c.db.notify(NOTIFY_GENERIC, b"del", argv[1])
    return bulk(old)


@command("getex", -2, "write fast", K1, "string", "Returns a value and changes its expiry.")
def getex(c: Client, argv: list[bytes]) -> bytes:
    db, key = c.db, argv[1]
    opts = parse_options(argv, 2, (*EXPIRY, b"persist"))
    v = get_str(db, key)
    if v is None:
        return null(c.resp)
    when = expiry_of(opts, "getex")  # checked after the lookup, as Redis does
    if when is not None:
        if when <= now_ms():
            db.delete(key)
            db.notify(NOTIFY_GENERIC, b"del", key)
        else:
            db.set_expire(key, when)
            db.notify(NOTIFY_GENERIC, b"expire", key)
    elif b"persist" in opts and db.persist(key):
        db.notify(NOTIFY_GENERIC, b"persist", key)
    return bulk(v)


@command("append", 3, W + " fast", K1, "string", "Appends a string to the value of a key.")
def append(c: Client, argv: list[bytes]) -> bytes:
    old = get_str(c.db, argv[1]) or b""
    if len(old) + len(argv[2]) > MAX_STRING:
        raise CommandError("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
    if old.__class__ is bytearray:  # edited in place already: extend it, no copy
        _grow_in_place(c.db, argv[1], len(argv[2]))
        old.extend(argv[2])
        c.db.notify(NOTIFY_STRING, b"append", argv[1])
        return integer(len(old))
    new = old + argv[2]
    put_str(c.db, argv[1], new, keep_ttl=True)
    c.db.notify(NOTIFY_STRING, b"append", argv[1])
    return integer(len(new))


@command("strlen", 2, R, K1, "string", "Returns the length of a string value.")
def strlen(c: Client, argv: list[bytes]) -> bytes:
    v = get_str(c.db, argv[1])
    return integer(0 if v is None else len(v))


# The value the last INCR stored and its integer. Bytes are immutable and this reference
# keeps the object alive, so a stored value that *is* this object holds this integer: a
# counter incremented again and again skips parsing its value.
_LAST_INCR: list[Any] = [None, 0]


def _incr(delta: int, c: Client, argv: list[bytes]) -> bytes:
    """INCR and friends; `delta` first, so that INCR and DECR are partials of it."""
    db, key = c.db, argv[1]
    e = db.data.get(key)
    if e is not None and db.expires:
        e = db.lookup(key)  # may have expired
    if e is None:
        n = delta
        old = b""
    else:
        old = e.value
        memo = _LAST_INCR
        if old is memo[0]:  # the very bytes object stored by the previous INCR: n is known
            n = memo[1] + delta
        elif old.__class__ is not bytes:
            if old.__class__ is not bytearray:
                raise CommandError(WRONGTYPE)
            n = _stored_int(bytes(old)) + delta
        # to_int(), the common case first: up to 18 digits without a sign or leading zero.
        elif old.isdigit() and len(old) < 19 and (old[0] != 0x30 or len(old) == 1):
            n = int(old) + delta
        else:
            n = _stored_int(old) + delta
    reply = b":%d\r\n" % n
    value = reply[1:-2]
    if len(value) > 18 and not INT_MIN <= n <= INT_MAX:
        raise CommandError("ERR increment or decrement would overflow")
    _LAST_INCR[0] = value
    _LAST_INCR[1] = n
    if e is None:
        put_str(db, key, value)
        db.notify(NOTIFY_STRING, b"incrby", key)
        return reply
    # In place: the TTL stays, as in Redis.
    ks = db.keyspace
    grown = len(value) - len(old)
    if grown:
        ks.used += grown
        e.size += grown
    e.value = value
    e.lru = ks.clock
    if ks.lfu and not db.expires:  # lookup() counted it if it ran
        db.lfu_touch(key)
    ks.dirty += 1
    if db.watchers:
        db.touched(key)
    elif ks.invalidate is not None:  # CLIENT TRACKING
        ks.invalidate(key)
    if ks.events:
        db.notify(NOTIFY_STRING, b"incrby", key)
    return reply


def _stored_int(old: bytes) -> int:
    """to_int() of a stored value: int() accepts more ("+1", " 1", "1_0", "01", "-0"), so
    the value must also read back the same, and be within 64 bits."""
    try:
        n = int(old)
    except ValueError:
        raise CommandError(NOT_INT) from None
    if b"%d" % n != old or not INT_MIN <= n <= INT_MAX:
        raise CommandError(NOT_INT)
    return n


INCR_DOC = "Increments the integer value of a key by one."
DECR_DOC = "Decrements the integer value of a key by one."
incr = command("incr", 2, W + " fast", K1, "string", INCR_DOC)(partial(_incr, 1))
decr = command("decr", 2, W + " fast", K1, "string", DECR_DOC)(partial(_incr, -1))


@command("incrby", 3, W + " fast", K1, "string", "Increments the integer value of a key.")
def incrby(c: Client, argv: list[bytes]) -> bytes:
    return _incr(to_int(argv[2]), c, argv)


@command("decrby", 3, W + " fast", K1, "string", "Decrements the integer value of a key.")
def decrby(c: Client, argv: list[bytes]) -> bytes:
    n = to_int(argv[2])
    if n == -(2**63):
        raise CommandError("ERR decrement would overflow")
    return _incr(-n, c, argv)


@command("incrbyfloat", 3, W + " fast", K1, "string", "Increments the float value of a key.")
def incrbyfloat(c: Client, argv: list[bytes]) -> bytes:
    old = get_str(c.db, argv[1])
    out = add_floats(None if old is None else bytes(old), argv[2])
    put_str(c.db, argv[1], out, keep_ttl=True)
    c.db.notify(NOTIFY_STRING, b"incrbyfloat", argv[1])
    return bulk(out)


@command("getrange", 4, "readonly", K1, "string", "Returns a substring of a string value.")
def getrange(c: Client, argv: list[bytes]) -> bytes:
    start, end = to_int(argv[2]), to_int(argv[3])
    v = get_str(c.db, argv[1]) or b""
    n = len(v)
    # Redis 7's exact clamping, quirks included (an end before the start clamps to 0).
    if start < 0 and end < 0 and start > end:
        return bulk(b"")
    start = max(n + start, 0) if start < 0 else start
    end = max(n + end, 0) if end < 0 else end
    end = min(end, n - 1)
    if start > end or n == 0:
        return bulk(b"")
    return bulk(v[start : end + 1])


@command("substr", 4, "readonly", K1, "string", "Returns a substring of a string value.")
def substr(c: Client, argv: list[bytes]) -> bytes:
    return getrange(c, argv)


@command("setrange", 4, W, K1, "string", "Overwrites part of a string value.")
def setrange(c: Client, argv: list[bytes]) -> bytes:
    offset = to_int(argv[2])
    if offset < 0:
        raise CommandError("ERR offset is out of range")
    value = argv[3]
    old = get_str(c.db, argv[1])
    if old is None:
        if not value:
            return ZERO
        old = b""
    if not value:
        return integer(len(old))
    if offset + len(value) > MAX_STRING:
        raise CommandError("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
    if old.__class__ is bytearray:  # edited in place already
        buf = old
        _grow_in_place(c.db, argv[1], max(0, offset + len(value) - len(buf)))
    else:
        buf = bytearray(old)
    if len(buf) < offset:
        buf.extend(b"\0" * (offset - len(buf)))
    buf[offset : offset + len(value)] = value
    if old.__class__ is not bytearray:
        put_str(c.db, argv[1], bytes(buf), keep_ttl=True)
    c.db.notify(NOTIFY_STRING, b"setrange", argv[1])
    return integer(len(buf))


def _grow_in_place(db: Database, key: bytes, grown: int) -> None:
    """Account for a bytearray value about to grow by `grown` bytes, and tell WATCHers."""
    e = db.data[key]
    e.size += grown
    db.keyspace.used += grown
    db.touched(key)


__all__ = ["get_str", "put_str", "expire_arg", "NOT_INT"]


# ------------------------------------------------------------------ LCS


def _lcs_rows(a: bytes, b: bytes) -> list[int]:
    """Rows of Redis's LCS table, bit-parallel (Hyyro 2004): row i is a bit vector V over b
    whose zero bits mark where LCS(i, j) grows, so LCS(i, j) = j - popcount(V_i's low j bits).
    Each row costs len(b)/64 machine words, not len(b) Python steps."""
    mask = (1 << len(b)) - 1
    where: dict[int, int] = {}
    for k, ch in enumerate(b):
        where[ch] = where.get(ch, 0) | (1 << k)
    v = mask
    rows = [v]
    for ch in a:
        u = v & where.get(ch, 0)
        v = ((v + u) | (v - u)) & mask
        rows.append(v)
    return rows


def _lcs_at(rows: list[int], i: int, j: int) -> int:
    """LCS(i, j): the LCS length of a's first i bytes and b's first j."""
    return j - (rows[i] & ((1 << j) - 1)).bit_count()


@command("lcs", -3, "readonly", (1, 2, 1), "string", "Finds the longest common substring.",
         "7.0.0")
def lcs(c: Client, argv: list[bytes]) -> bytes:
    db = c.db
    ea, eb = db.lookup(argv[1]), db.lookup(argv[2])
    for e in (ea, eb):
        if e is not None and e.value.__class__ not in (bytes, bytearray):
            raise CommandError("ERR The specified keys must contain string values")
    a = b"" if ea is None else bytes(ea.value)
    b = b"" if eb is None else bytes(eb.value)
    get_len = get_idx = with_len = False
    min_len = 0
    j = 3
    while j < len(argv):
        opt = argv[j].lower()
        if opt == b"idx":
            get_idx = True
        elif opt == b"len":
            get_len = True
        elif opt == b"withmatchlen":
            with_len = True
        elif opt == b"minmatchlen" and j + 1 < len(argv):
            min_len = max(to_int(argv[j + 1]), 0)
            j += 1
        else:
            raise CommandError(SYNTAX)
        j += 1
    if get_idx and get_len:
        raise CommandError("ERR If you want both the length and indexes, please just use IDX.")
    if (len(a) + 1) * (len(b) + 1) * 4 > c.server.config.values["proto-max-bulk-len"]:
        raise CommandError(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len"
        )
    rows = _lcs_rows(a, b)
    total = _lcs_at(rows, len(a), len(b))
    if get_len:
        return integer(total)
    # Redis's walk back through the table, with its tie-break and its ranges, so that the
    # string and the IDX matches are the ones Redis gives.
    out = bytearray(total)
    k = total
    matches: list[bytes] = []
    alen = len(a)
    a_start = alen  # alen: no range open
    a_end = b_start = b_end = 0
    i, jj = len(a), len(b)
    while i > 0 and jj > 0:
        emit = False
        if a[i - 1] == b[jj - 1]:
            out[k - 1] = a[i - 1]
            if a_start == alen:
                a_start = a_end = i - 1
                b_start = b_end = jj - 1
            elif a_start == i and b_start == jj:
                a_start -= 1
                b_start -= 1
            else:
                emit = True
            if a_start == 0 or b_start == 0:
                emit = True
            k -= 1
            i -= 1
            jj -= 1
        else:
            if _lcs_at(rows, i - 1, jj) > _lcs_at(rows, i, jj - 1):
                i -= 1
            else:
                jj -= 1
            if a_start != alen:
                emit = True
        if emit:
            n = a_end - a_start + 1
            if get_idx and (min_len == 0 or n >= min_len):
                item = [b"*2\r\n" + integer(a_start) + integer(a_end),
                        b"*2\r\n" + integer(b_start) + integer(b_end)]
                if with_len:
                    item.append(integer(n))
                matches.append(b"*%d\r\n" % len(item) + b"".join(item))
            a_start = alen
    if not get_idx:
        return bulk(bytes(out))
    head = b"%2\r\n" if c.resp == 3 else b"*4\r\n"
    return (head + bulk(b"matches") + b"*%d\r\n" % len(matches) + b"".join(matches)
            + bulk(b"len") + integer(total))
