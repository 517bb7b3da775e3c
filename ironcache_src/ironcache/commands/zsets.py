"""Sorted set commands, with Redis 7.0's semantics and error wording (t_zset.c).

The structure is ironcache.zset.ZSet. Scores are replied as Redis 7.0 does (`%.17g`; RESP3
doubles). ZPOP's logic (pop_from) is kept apart from its reply so a blocking variant can reuse it.
"""

from __future__ import annotations

import math
import random
import re
from typing import TYPE_CHECKING

from ironcache.blocking import deadline, parse_timeout, wait
from ironcache.commands import (
    SYNTAX,
    WRONGTYPE,
    CommandError,
    command,
    mpop_args,
    parse_cursor,
    scan_options,
    scan_reply,
    to_int,
)
from ironcache.keyspace import NOTIFY_GENERIC, NOTIFY_ZSET, SCAN_WHOLE, Entry
from ironcache.protocol import (
    EMPTY_ARRAY,
    ONE,
    ZERO,
    bulk,
    bulks,
    bulks_of_width,
    integer,
    null,
    null_array,
)
from ironcache.zset import (
    ZSET_OVERHEAD,
    LexBound,
    ZSet,
    digit_bounds,
    encode,
    index_add,
    index_remove,
    member_of,
    member_size,
    score_bounds,
)

if TYPE_CHECKING:
    from ironcache.client import Client

K1 = (1, 1, 1)
K2 = (2, 2, 1)
NOT_FLOAT = "ERR value is not a valid float"
RANGE_NOT_FLOAT = "ERR min or max is not a float"
LEX_INVALID = "ERR min or max not valid string range item"
NAN_RESULT = "ERR resulting score is not a number (NaN)"
LONG_MAX = 2**63 - 1
MAX_REPLY_BYTES = 1 << 30  # as SRANDMEMBER: a reply is built whole, so it is bounded
CHUNK = 65536

# C's strtod: decimal or hex floats, inf/infinity; NaN is refused by every caller.
_STRTOD = re.compile(
    rb"[+-]?(?:(?P<dec>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    rb"|(?P<hex>0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?\d+)?)"
    rb"|(?P<inf>(?i:inf(?:inity)?))"
    rb"|(?P<nan>(?i:nan)))"
)


def _strtod(s: bytes) -> tuple[float, bool] | None:
    """(value, out of range) of a whole string read by strtod, or None if it is not one."""
    m = _STRTOD.fullmatch(s)
    if m is None or m["nan"]:
        return None
    if m["inf"]:
        return (-math.inf if s[:1] == b"-" else math.inf), False
    if m["hex"]:
        try:
            x = float.fromhex(s.decode())
        except OverflowError:
            return (-math.inf if s[:1] == b"-" else math.inf), True
    else:
        x = float(s)
    if math.isinf(x):
        return x, True
    if x == 0 and re.search(rb"[1-9]", s.split(b"e")[0].split(b"E")[0].split(b"p")[0]):
        return x, True  # underflow
    return x, False


def parse_score(v: bytes, message: str = NOT_FLOAT) -> float:
    """A double as Redis's getDoubleFromObject reads it (no spaces, no overflow, no NaN)."""
    if v.isdigit() and len(v) < 300:  # the common case, at C speed
        return float(v)
    r = _strtod(v)
    if r is None or r[1]:
        raise CommandError(message)
    return r[0]


def _range_item(v: bytes) -> tuple[float, bool]:
    if v.isdigit() and len(v) < 300:  # the common case
        return float(v), False
    ex = v[:1] == b"("
    s = v[1:] if ex else v
    s = s.split(b"\0", 1)[0]  # strtod stops at a NUL, as Redis's check does
    stripped = s.lstrip(b" \t\n\v\f\r")
    if not stripped:
        if s:
            raise CommandError(RANGE_NOT_FLOAT)
        return 0.0, ex  # strtod("") is 0 with nothing left over
    r = _strtod(stripped)
    if r is None:
        raise CommandError(RANGE_NOT_FLOAT)
    return r[0], ex


def parse_range(lo: bytes, hi: bytes) -> tuple[float, bool, float, bool]:
    a, aex = _range_item(lo)
    b, bex = _range_item(hi)
    return a, aex, b, bex


def _lex_item(v: bytes) -> LexBound:
    c = v[:1]
    if c in (b"+", b"-"):
        if v[1:2] not in (b"", b"\0"):
            raise CommandError(LEX_INVALID)
        return (1 if c == b"+" else -1), b"", True
    if c == b"(":
        return 0, v[1:], True
    if c == b"[":
        return 0, v[1:], False
    raise CommandError(LEX_INVALID)


def parse_lex(lo: bytes, hi: bytes) -> tuple[LexBound, LexBound]:
    return _lex_item(lo), _lex_item(hi)


def fmt(x: float) -> bytes:
    return b"%.17g" % x


def d2string(x: float) -> bytes:
    """Redis's d2string (ZSCAN's scores): integers within +-2**62 as integers."""
    if x == 0:
        return b"-0" if math.copysign(1, x) < 0 else b"0"
    if not math.isinf(x) and -(2**62) <= x <= 2**62 and x == int(x):
        return b"%d" % int(x)
    return b"%.17g" % x


def double(c: Client, x: float) -> bytes:
    s = b"%.17g" % x
    if c.resp == 3:
        return b",%s\r\n" % s
    return b"$%d\r\n%s\r\n" % (len(s), s)


def pairs_reply(c: Client, items: list[tuple[float, bytes]], withscores: bool) -> bytes:
    """Members (score, member) in order; WITHSCORES flat in RESP2, [member, score] in RESP3."""
    if not withscores:
        return b"*%d\r\n" % len(items) + b"".join(
            [b"$%d\r\n%s\r\n" % (len(m), m) for _s, m in items]
        )
    if c.resp == 3:
        parts = [b"*%d\r\n" % len(items)]
        for s, m in items:
            parts.append(b"*2\r\n$%d\r\n%s\r\n,%s\r\n" % (len(m), m, b"%.17g" % s))
    else:
        parts = [b"*%d\r\n" % (2 * len(items))]
        for s, m in items:
            f = b"%.17g" % s
            parts.append(b"$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(m), m, len(f), f))
    return b"".join(parts)


def members_reply(z: ZSet, keys: list[bytes]) -> bytes:
    """The members of `z`'s index keys, as an array of bulk strings."""
    if not keys:
        return EMPTY_ARRAY
    if z.width >= 0:
        return bulks_of_width(b"*%d\r\n" % len(keys), z.width, map(member_of, keys))
    members = list(map(member_of, keys))
    return bulks(b"*%d\r\n" % len(members), members)


def read_zset(c: Client, key: bytes) -> tuple[Entry, ZSet] | None:
    e = c.db.lookup(key)
    if e is None:
        return None
    if not isinstance(e.value, ZSet):
        raise CommandError(WRONGTYPE)
    return e, e.value


def store(c: Client, key: bytes, z: ZSet, event: bytes) -> bytes:
    """Write a computed zset to `key` (TTL dropped), or delete `key` when it is empty."""
    if z:
        c.db.set(key, z, z.size())
        c.db.notify(NOTIFY_ZSET, event, key)
        return integer(len(z))
    if c.db.lookup(key) is not None:
        c.db.delete(key)
        c.db.notify(NOTIFY_GENERIC, b"del", key)
    return ZERO


# ------------------------------------------------------------------ ZADD / ZINCRBY


_ZADD_OPTIONS = frozenset((b"nx", b"xx", b"gt", b"lt", b"ch", b"incr"))


def _zadd(c: Client, argv: list[bytes], i: int, incr: bool) -> bytes:
    nx = xx = gt = lt = ch = False
    n = len(argv)
    while i < n:
        opt = argv[i].lower()
        if opt not in _ZADD_OPTIONS:
            break
        if opt == b"nx":
            nx = True
        elif opt == b"xx":
            xx = True
        elif opt == b"gt":
            gt = True
        elif opt == b"lt":
            lt = True
        elif opt == b"ch":
            ch = True
        elif opt == b"incr":
            incr = True
        else:
            break
        i += 1
    elements = n - i
    if elements % 2 or not elements:
        raise CommandError(SYNTAX)
    elements //= 2
    if incr and elements > 1:
        raise CommandError("ERR INCR option supports a single increment-element pair")
    if nx and xx:
        raise CommandError("ERR XX and NX options at the same time are not compatible")
    if (gt and nx) or (lt and nx) or (gt and lt):
        raise CommandError("ERR GT, LT, and/or NX options at the same time are not compatible")
    scores = [parse_score(argv[j]) for j in range(i, n, 2)]
    key = argv[1]
    db = c.db
    e = db.lookup(key)
    if e is None:
        if xx:
            return null(c.resp) if incr else ZERO
        z = ZSet()
        db.set(key, z, ZSET_OVERHEAD)
        e = db.data[key]
    elif not isinstance(e.value, ZSet):
        raise CommandError(WRONGTYPE)
    z = e.value
    cur = z.scores
    added = updated = processed = grown = 0
    score = 0.0
    try:
        for j, score in enumerate(scores):
            member = argv[i + 2 * j + 1]
            old = cur.get(member)
            if old is not None:
                if nx:
                    continue
                if incr:
                    score += old
                    if math.isnan(score):
                        raise CommandError(NAN_RESULT)
                if (lt and score >= old) or (gt and score <= old):
                    continue
                processed += 1
                if score != old:
                    z.add(member, score)
                    updated += 1
            elif not xx:
                stored = score + 0.0  # -0 is stored as 0 (ZSet.add), replied as -0
                if len(member) != z.width:  # ZSet.add's
                    z.width = -1 if cur else len(member)
                cur[member] = stored
                index_add(z.index, encode(stored) + member)
                grown += member_size(member)
                added += 1
                processed += 1
    finally:
        if added or updated or not z:
            db.resized(key, e, grown)
        if added or updated:
            db.notify(NOTIFY_ZSET, b"zincr" if incr else b"zadd", key)
    if incr:
        return double(c, score) if processed else null(c.resp)
    return integer(added + updated if ch else added)


@command("zadd", -4, "write denyoom fast", K1, "sorted_set", "Adds members to a sorted set.")
def zadd(c: Client, argv: list[bytes]) -> bytes:
    if len(argv) != 4 or not argv[2].isdigit() or len(argv[2]) > 300:
        return _zadd(c, argv, 2, False)
    # ZADD key <integer score> member, the common form: _zadd's work without its options.
    key, member = argv[1], argv[3]
    score = float(argv[2])
    db = c.db
    e = db.lookup(key)
    if e is None:
        z = ZSet()
        db.set(key, z, ZSET_OVERHEAD)
        e = db.data[key]
    else:
        z = e.value
        if z.__class__ is not ZSet:
            raise CommandError(WRONGTYPE)
    cur = z.scores
    old = cur.get(member)
    if old is not None:
        if old == score:
            return ZERO
        index_remove(z.index, encode(old) + member)  # ZSet.add's update, without its second lookup
    elif len(member) != z.width:  # ZSet.add's
        z.width = -1 if cur else len(member)
    cur[member] = score
    index_add(z.index, encode(score) + member)
    ks = db.keyspace
    if old is None:
        grown = member_size(member)
        e.size += grown
        ks.used += grown
    db.touched(key)
    if ks.events:
        db.notify(NOTIFY_ZSET, b"zadd", key)
    return ZERO if old is not None else ONE


@command("zincrby", 4, "write denyoom fast", K1, "sorted_set", "Increments a member's score.")
def zincrby(c: Client, argv: list[bytes]) -> bytes:
    return _zadd(c, argv, 2, True)


# ------------------------------------------------------------------ reads


@command("zcard", 2, "readonly fast", K1, "sorted_set", "Returns the number of members.")
def zcard(c: Client, argv: list[bytes]) -> bytes:
    found = read_zset(c, argv[1])
    return integer(0 if found is None else len(found[1]))


@command("zscore", 3, "readonly fast", K1, "sorted_set", "Returns a member's score.")
def zscore(c: Client, argv: list[bytes]) -> bytes:
    found = read_zset(c, argv[1])
    s = None if found is None else found[1].scores.get(argv[2])
    return null(c.resp) if s is None else double(c, s)


@command("zmscore", -3, "readonly fast", K1, "sorted_set", "Returns members' scores.")
def zmscore(c: Client, argv: list[bytes]) -> bytes:
    found = read_zset(c, argv[1])
    scores = {} if found is None else found[1].scores
    parts = [b"*%d\r\n" % (len(argv) - 2)]
    for m in argv[2:]:
        s = scores.get(m)
        parts.append(null(c.resp) if s is None else double(c, s))
    return b"".join(parts)


def _rank(c: Client, argv: list[bytes], rev: bool) -> bytes:
    found = read_zset(c, argv[1])
    r = None if found is None else found[1].rank(argv[2])
    if r is None:
        return null(c.resp)
    return integer(len(found[1]) - 1 - r if rev else r)  # type: ignore[index]


@command("zrank", 3, "readonly fast", K1, "sorted_set", "Returns a member's rank.")
def zrank(c: Client, argv: list[bytes]) -> bytes:
    return _rank(c, argv, False)


@command("zrevrank", 3, "readonly fast", K1, "sorted_set", "Returns a member's rank, high first.")
def zrevrank(c: Client, argv: list[bytes]) -> bytes:
    return _rank(c, argv, True)


@command("zcount", 4, "readonly fast", K1, "sorted_set", "Counts members in a score range.")
def zcount(c: Client, argv: list[bytes]) -> bytes:
    rng = parse_range(argv[2], argv[3])
    found = read_zset(c, argv[1])
    if found is None:
        return ZERO
    start, stop = found[1].score_span(*rng)
    return integer(stop - start)


@command("zlexcount", 4, "readonly fast", K1, "sorted_set", "Counts members in a lex range.")
def zlexcount(c: Client, argv: list[bytes]) -> bytes:
    lo, hi = parse_lex(argv[2], argv[3])
    found = read_zset(c, argv[1])
    if found is None:
        return ZERO
    start, stop = found[1].lex_span(lo, hi)
    return integer(stop - start)


# ------------------------------------------------------------------ ZRANGE and its forms

RANK, SCORE, LEX = 0, 1, 2


def select(
    z: ZSet, kind: int, rev: bool, rng: tuple, offset: int, limit: int
) -> list[bytes]:
    """The index keys of the members a ZRANGE selects, in reply order."""
    n = len(z)
    if kind == RANK:
        start, end = rng
        if start < 0:
            start += n
        if end < 0:
            end += n
        start = max(start, 0)
        if start > end or start >= n:
            return []
        end = min(end, n - 1)
        if rev:
            items = z.keys_at(n - 1 - end, n - start)
            items.reverse()
            return items
        return z.keys_at(start, end + 1)
    if offset < 0 or (offset > 0 and offset >= n):
        return []
    if kind == SCORE and not offset and limit < 0:  # no positions needed: walk the range
        items = z.score_keys(*rng)
        if rev:
            items.reverse()
        return items
    if kind == SCORE:
        lo, hi = z.score_span(*rng)
    else:
        lo, hi = z.lex_span_rev(*rng) if rev else z.lex_span(*rng)
    if limit < 0:
        limit = n
    if rev:
        stop = hi - offset
        start = max(lo, stop - limit)
        if stop <= start:
            return []
        items = z.keys_at(start, stop)
        items.reverse()
        return items
    start = lo + offset
    return z.keys_at(start, min(hi, start + limit)) if start < hi else []


def zrange_generic(
    c: Client, argv: list[bytes], at: int, dest: bytes | None, kind: int | None, rev: bool | None
) -> bytes:
    withscores = False
    offset, limit = 0, -1
    n = len(argv)
    j = at + 3
    while j < n:
        opt = argv[j].lower()
        left = n - j - 1
        if dest is None and opt == b"withscores":
            withscores = True
        elif opt == b"limit" and left >= 2:
            offset = to_int(argv[j + 1])
            limit = to_int(argv[j + 2])
            j += 2
        elif rev is None and opt == b"rev":
            rev = True
        elif kind is None and opt == b"bylex":
            kind = LEX
        elif kind is None and opt == b"byscore":
            kind = SCORE
        else:
            raise CommandError(SYNTAX)
        j += 1
    rev = bool(rev)
    kind = RANK if kind is None else kind
    if limit != -1 and kind == RANK:
        raise CommandError(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
        )
    if withscores and kind == LEX:
        raise CommandError("ERR syntax error, WITHSCORES not supported in combination with BYLEX")
    lo, hi = argv[at + 1], argv[at + 2]
    if rev and kind != RANK:
        lo, hi = hi, lo
    rng: tuple
    if kind == RANK:
        rng = (to_int(lo), to_int(hi))
    elif kind == SCORE:
        rng = parse_range(lo, hi)
    else:
        rng = parse_lex(lo, hi)
    found = read_zset(c, argv[at])
    if found is None:
        keys, z = [], ZSet()
    else:
        z = found[1]
        keys = select(z, kind, rev, rng, offset, limit)
    if dest is not None:
        return store(c, dest, ZSet.from_pairs((m, s) for s, m in z.pairs(keys)), b"zrangestore")
    if not withscores:
        return members_reply(z, keys)
    return pairs_reply(c, z.pairs(keys), True)


@command("zrange", -4, "readonly", K1, "sorted_set", "Returns members in a range.")
def zrange(c: Client, argv: list[bytes]) -> bytes:
    return zrange_generic(c, argv, 1, None, None, None)


@command("zrangestore", -5, "write denyoom", (1, 2, 1), "sorted_set", "Stores a range.")
def zrangestore(c: Client, argv: list[bytes]) -> bytes:
    return zrange_generic(c, argv, 2, argv[1], None, None)


@command("zrevrange", -4, "readonly", K1, "sorted_set", "Returns members by rank, high first.")
def zrevrange(c: Client, argv: list[bytes]) -> bytes:
    return zrange_generic(c, argv, 1, None, RANK, True)


@command("zrangebyscore", -4, "readonly", K1, "sorted_set", "Returns members by score.")
def zrangebyscore(c: Client, argv: list[bytes]) -> bytes:
    if len(argv) != 4:
        return zrange_generic(c, argv, 1, None, SCORE, False)
    # The common form, without zrange_generic's options; integer bounds read at C speed.
    lo, hi = argv[2], argv[3]
    if lo.isdigit() and hi.isdigit() and len(lo) < 300 and len(hi) < 300:
        lo_key, hi_key = digit_bounds(lo, hi)
    else:
        lo_key, hi_key = score_bounds(*parse_range(lo, hi))
    e = c.db.lookup(argv[1])
    if e is None:
        return EMPTY_ARRAY
    z = e.value
    if z.__class__ is not ZSet:
        raise CommandError(WRONGTYPE)
    return members_reply(z, z.keys_between(lo_key, hi_key))


@command("zrevrangebyscore", -4, "readonly", K1, "sorted_set", "Members by score, high first.")
def zrevrangebyscore(c: Client, argv: list[bytes]) -> bytes:
    return zrange_generic(c, argv, 1, None, SCORE, True)


@command("zrangebylex", -4, "readonly", K1, "sorted_set", "Returns members by lex range.")
def zrangebylex(c: Client, argv: list[bytes]) -> bytes:
    return zrange_generic(c, argv, 1, None, LEX, False)


@command("zrevrangebylex", -4, "readonly", K1, "sorted_set", "Members by lex range, reversed.")
def zrevrangebylex(c: Client, argv: list[bytes]) -> bytes:
    return zrange_generic(c, argv, 1, None, LEX, True)


# ------------------------------------------------------------------ removal


def _shrink(c: Client, key: bytes, e: Entry, gone: list[bytes], event: bytes) -> bytes:
    if gone:
        c.db.resized(key, e, -sum(map(member_size, gone)))
        c.db.notify_emptied(NOTIFY_ZSET, event, key)
    return integer(len(gone))


@command("zrem", -3, "write fast", K1, "sorted_set", "Removes members.")
def zrem(c: Client, argv: list[bytes]) -> bytes:
    found = read_zset(c, argv[1])
    if found is None:
        return ZERO
    e, z = found
    gone = [m for m in dict.fromkeys(argv[2:]) if z.discard(m)]
    return _shrink(c, argv[1], e, gone, b"zrem")


def _remrange(c: Client, argv: list[bytes], kind: int) -> bytes:
    rng: tuple
    if kind == RANK:
        rng = (to_int(argv[2]), to_int(argv[3]))
    elif kind == SCORE:
        rng = parse_range(argv[2], argv[3])
    else:
        rng = parse_lex(argv[2], argv[3])
    found = read_zset(c, argv[1])
    if found is None:
        return ZERO
    e, z = found
    n = len(z)
    if kind == RANK:
        start, end = rng
        if start < 0:
            start += n
        if end < 0:
            end += n
        start = max(start, 0)
        if start > end or start >= n:
            return ZERO
        lo, hi = start, min(end, n - 1) + 1
    elif kind == SCORE:
        lo, hi = z.score_span(*rng)
    else:
        lo, hi = z.lex_span(*rng)
    event = {RANK: b"zremrangebyrank", SCORE: b"zremrangebyscore"}.get(kind, b"zremrangebylex")
    return _shrink(c, argv[1], e, [m for _s, m in z.delete_slice(lo, hi)], event)


@command("zremrangebyrank", 4, "write", K1, "sorted_set", "Removes members by rank.")
def zremrangebyrank(c: Client, argv: list[bytes]) -> bytes:
    return _remrange(c, argv, RANK)


@command("zremrangebyscore", 4, "write", K1, "sorted_set", "Removes members by score.")
def zremrangebyscore(c: Client, argv: list[bytes]) -> bytes:
    return _remrange(c, argv, SCORE)


@command("zremrangebylex", 4, "write", K1, "sorted_set", "Removes members by lex range.")
def zremrangebylex(c: Client, argv: list[bytes]) -> bytes:
    return _remrange(c, argv, LEX)


# ------------------------------------------------------------------ ZPOP / ZMPOP


def first_zset(c: Client, keys: list[bytes]) -> tuple[bytes, Entry, ZSet] | None:
    """The first of `keys` that exists (WRONGTYPE if it is not a zset), as ZPOP picks it."""
    for key in keys:
        found = read_zset(c, key)
        if found is not None:
            return key, found[0], found[1]
    return None


def pop_from(c: Client, key: bytes, e: Entry, z: ZSet, count: int, top: bool) -> list:
    """Remove up to `count` lowest (highest with `top`) members: [(score, member)], pop order."""
    n = min(count, len(z))
    if top:
        items = z.delete_slice(len(z) - n, len(z))
        items.reverse()
    else:
        items = z.delete_slice(0, n)
    _shrink(c, key, e, [m for _s, m in items], b"zpopmax" if top else b"zpopmin")
    return items


def pop_reply(c: Client, items: list[tuple[float, bytes]], nested: bool) -> bytes:
    """Members and scores flat (ZPOP in RESP2 or without COUNT) or as [member, score] pairs."""
    if nested:
        parts = [b"*%d\r\n" % len(items)]
        for s, m in items:
            parts.append(b"*2\r\n" + bulk(m) + double(c, s))
        return b"".join(parts)
    parts = [b"*%d\r\n" % (2 * len(items))]
    for s, m in items:
        parts.append(bulk(m) + double(c, s))
    return b"".join(parts)


def _zpop(c: Client, argv: list[bytes], top: bool) -> bytes:
    if len(argv) > 3:
        raise CommandError(SYNTAX)
    count = -1
    if len(argv) == 3:
        count = to_int(argv[2], "ERR value is out of range, must be positive")
        if count < 0:
            raise CommandError("ERR value is out of range, must be positive")
    found = first_zset(c, argv[1:2])
    if found is None or count == 0:
        return EMPTY_ARRAY
    items = pop_from(c, *found, 1 if count == -1 else count, top)
    return pop_reply(c, items, c.resp == 3 and count != -1)


@command("zpopmin", -2, "write fast", K1, "sorted_set", "Removes the lowest-scored members.")
def zpopmin(c: Client, argv: list[bytes]) -> bytes:
    return _zpop(c, argv, False)


@command("zpopmax", -2, "write fast", K1, "sorted_set", "Removes the highest-scored members.")
def zpopmax(c: Client, argv: list[bytes]) -> bytes:
    return _zpop(c, argv, True)


def mpop_reply(c: Client, key: bytes, items: list[tuple[float, bytes]]) -> bytes:
    return b"*2\r\n" + bulk(key) + pop_reply(c, items, True)


@command("zmpop", -4, "write", (0, 0, 0), "sorted_set", "Pops from the first non-empty key.")
def zmpop(c: Client, argv: list[bytes]) -> bytes:
    keys, top, count = mpop_args(argv, 1, b"max", b"min")
    found = first_zset(c, keys)
    if found is None:
        return null_array(c.resp)
    return mpop_reply(c, found[0], pop_from(c, *found, count, top))


# ------------------------------------------------------------------ ZRANDMEMBER


@command("zrandmember", -2, "readonly", K1, "sorted_set", "Returns random members.")
def zrandmember(c: Client, argv: list[bytes]) -> bytes:
    if len(argv) == 2:
        found = read_zset(c, argv[1])
        if found is None:
            return null(c.resp)
        return bulk(found[1].random_member(random.randrange(len(found[1]))))
    count = to_int(argv[2])
    if not -LONG_MAX <= count <= LONG_MAX:
        raise CommandError(
            f"ERR value is out of range, value must between {-LONG_MAX} and {LONG_MAX}"
        )
    withscores = False
    if len(argv) > 4 or (len(argv) == 4 and argv[3].lower() != b"withscores"):
        raise CommandError(SYNTAX)
    if len(argv) == 4:
        withscores = True
        if not -(LONG_MAX // 2) <= count <= LONG_MAX // 2:
            raise CommandError("ERR value is out of range")
    found = read_zset(c, argv[1])
    if found is None or count == 0:
        return EMPTY_ARRAY
    z = found[1]
    if count > 0:
        if count >= len(z):
            return pairs_reply(c, list(z), withscores)
        picked = random.sample(list(z.scores.items()), count)
        return pairs_reply(c, [(s, m) for m, s in picked], withscores)
    count = -count
    # Repetitions allowed: encode each member (and score) once, pick chunk by chunk, so the
    # only big allocation is the reply itself.
    if withscores and c.resp == 3:
        encoded = [b"*2\r\n" + bulk(m) + double(c, s) for s, m in z]
        head = b"*%d\r\n" % count
    elif withscores:
        encoded = [bulk(m) + double(c, s) for s, m in z]
        head = b"*%d\r\n" % (2 * count)
    else:
        encoded = [bulk(m) for m in z.scores]
        head = b"*%d\r\n" % count
    if count * min(map(len, encoded)) > MAX_REPLY_BYTES:
        raise CommandError("ERR reply too large: the count asks for more than 1 GB")
    parts = [head]
    choices = random.choices
    while count > 0:
        k = min(count, CHUNK)
        parts.append(b"".join(choices(encoded, k=k)))
        count -= k
    return b"".join(parts)


# ------------------------------------------------------------------ ZUNION / ZINTER / ZDIFF

UNION, INTER, DIFF = 0, 1, 2


def _source(c: Client, key: bytes) -> dict[bytes, float]:
    e = c.db.lookup(key)
    if e is None:
        return {}
    v = e.value
    if isinstance(v, ZSet):
        return v.scores
    if isinstance(v, set):
        return dict.fromkeys(v, 1.0)
    raise CommandError(WRONGTYPE)


def _aggregate(a: float, b: float, how: bytes) -> float:
    if how == b"sum":
        t = a + b
        return 0.0 if math.isnan(t) else t
    if how == b"min":
        return b if b < a else a
    return b if b > a else a


def setop(
    c: Client, argv: list[bytes], at: int, op: int, dest: bool, card: bool = False
) -> tuple[ZSet | int, bool]:
    """ZUNION/ZINTER/ZDIFF(STORE)/ZINTERCARD from numkeys at argv[at]: (result, withscores)."""
    setnum = to_int(argv[at])
    if setnum < 1:
        raise CommandError(
            f"ERR at least 1 input key is needed for '{argv[0].decode(errors='replace').lower()}' "
            "command"
        )
    if setnum > len(argv) - at - 1:
        raise CommandError(SYNTAX)
    keys = argv[at + 1 : at + 1 + setnum]
    srcs = [_source(c, k) for k in keys]
    weights = [1.0] * setnum
    how = b"sum"
    withscores = False
    limit = 0
    j = at + 1 + setnum
    n = len(argv)
    while j < n:
        left = n - j
        opt = argv[j].lower()
        if op != DIFF and not card and left >= setnum + 1 and opt == b"weights":
            raw = argv[j + 1 : j + 1 + setnum]
            weights = [parse_score(w, "ERR weight value is not a float") for w in raw]
            j += setnum + 1
        elif op != DIFF and not card and left >= 2 and opt == b"aggregate":
            how = argv[j + 1].lower()
            if how not in (b"sum", b"min", b"max"):
                raise CommandError(SYNTAX)
            j += 2
        elif not dest and not card and opt == b"withscores":
            withscores = True
            j += 1
        elif card and left >= 2 and opt == b"limit":
            limit = to_int(argv[j + 1], "ERR LIMIT can't be negative")
            if limit < 0:
                raise CommandError("ERR LIMIT can't be negative")
            j += 2
        else:
            raise CommandError(SYNTAX)
    pairs = list(zip(srcs, weights, strict=True))
    if op != DIFF:
        pairs.sort(key=lambda p: len(p[0]))
    out: dict[bytes, float] = {}
    if op == INTER:
        first, w0 = pairs[0]
        found = 0
        for m, s in first.items():
            score = w0 * s
            if math.isnan(score):
                score = 0.0
            for other, w in pairs[1:]:
                v = other.get(m)
                if v is None:
                    break
                score = _aggregate(score, v * w, how)
            else:
                if card:
                    found += 1
                    if limit and found >= limit:
                        break
                else:
                    out[m] = score
        if card:
            return found, False
    elif op == UNION:
        for src, w in pairs:
            for m, s in src.items():
                score = w * s
                if math.isnan(score):
                    score = 0.0
                old = out.get(m)
                out[m] = score if old is None else _aggregate(old, score, how)
    else:
        first = pairs[0][0]
        others = [p[0] for p in pairs[1:] if p[0]]
        out = {m: s for m, s in first.items() if not any(m in o for o in others)}
    return ZSet.from_pairs(out.items(), dest), withscores


def _setop_command(c: Client, argv: list[bytes], op: int) -> bytes:
    z, withscores = setop(c, argv, 1, op, False)
    assert isinstance(z, ZSet)
    return pairs_reply(c, list(z), withscores)


def _setop_store(c: Client, argv: list[bytes], op: int) -> bytes:
    z, _ws = setop(c, argv, 2, op, True)
    assert isinstance(z, ZSet)
    event = {UNION: b"zunionstore", INTER: b"zinterstore"}.get(op, b"zdiffstore")
    return store(c, argv[1], z, event)


@command("zunion", -3, "readonly", (0, 0, 0), "sorted_set", "Returns the union of sorted sets.")
def zunion(c: Client, argv: list[bytes]) -> bytes:
    return _setop_command(c, argv, UNION)


@command("zinter", -3, "readonly", (0, 0, 0), "sorted_set", "Returns the intersection.")
def zinter(c: Client, argv: list[bytes]) -> bytes:
    return _setop_command(c, argv, INTER)


@command("zdiff", -3, "readonly", (0, 0, 0), "sorted_set", "Returns the difference.")
def zdiff(c: Client, argv: list[bytes]) -> bytes:
    return _setop_command(c, argv, DIFF)


@command("zunionstore", -4, "write denyoom", K1, "sorted_set", "Stores the union.")
def zunionstore(c: Client, argv: list[bytes]) -> bytes:
    return _setop_store(c, argv, UNION)


@command("zinterstore", -4, "write denyoom", K1, "sorted_set", "Stores the intersection.")
def zinterstore(c: Client, argv: list[bytes]) -> bytes:
    return _setop_store(c, argv, INTER)


@command("zdiffstore", -4, "write denyoom", K1, "sorted_set", "Stores the difference.")
def zdiffstore(c: Client, argv: list[bytes]) -> bytes:
    return _setop_store(c, argv, DIFF)


@command("zintercard", -3, "readonly", (0, 0, 0), "sorted_set", "Counts the intersection.")
def zintercard(c: Client, argv: list[bytes]) -> bytes:
    n, _ws = setop(c, argv, 1, INTER, False, card=True)
    assert isinstance(n, int)
    return integer(n)


# ------------------------------------------------------------------ ZSCAN


@command("zscan", -3, "readonly", K1, "sorted_set", "Iterates over members and scores.")
def zscan(c: Client, argv: list[bytes]) -> bytes:
    cursor = parse_cursor(argv[2])
    found = read_zset(c, argv[1])
    if found is None:
        return scan_reply(0, [])
    count, match, unused_type = scan_options(argv, 3, False)
    zs = found[1]
    out: list[bytes] = []
    if len(zs) <= SCAN_WHOLE:  # one step, cursor 0, as Redis answers a listpack
        for s, m in zs:
            if match(m):
                out += (m, d2string(s))
        return scan_reply(0, out)
    # A big sorted set: about `count` members per call, by cursor (keyspace.MemberScans).
    scores = zs.scores
    cursor, members = c.server.keyspace.member_scans.scan(
        c.db.index, argv[1], scores, cursor, count
    )
    for m in members:
        if match(m):
            out += (m, d2string(scores[m]))
    return scan_reply(cursor, out)


# ------------------------------------------------------------------ blocking forms
# Answer at once when a key has members; else the client waits (ironcache.blocking), and
# `serve` pops from the key that became ready, journaling the non-blocking form.


def _timeout(raw: bytes) -> float:
    try:
        return parse_timeout(raw)
    except ValueError as e:
        raise CommandError(str(e)) from None


def _bzpop(c: Client, argv: list[bytes], top: bool) -> bytes:
    secs = _timeout(argv[-1])
    until = deadline(c, secs)
    keys = argv[1:-1]
    found = first_zset(c, keys)
    if found is not None:
        key = found[0]
        (s, m), = pop_from(c, *found, 1, top)
        return b"*3\r\n" + bulk(key) + bulk(m) + double(c, s)

    def serve(c: Client, key: bytes) -> tuple[bytes, list[bytes] | None] | None:
        try:
            got = first_zset(c, [key])
        except CommandError:
            return None  # another type now: keep waiting
        if got is None:
            return None
        (s, m), = pop_from(c, *got, 1, top)
        reply = b"*3\r\n" + bulk(key) + bulk(m) + double(c, s)
        return reply, [b"ZPOPMAX" if top else b"ZPOPMIN", key]

    return wait(c, keys, argv, serve, null_array(c.resp), until)


@command("bzpopmin", -3, "write blocking fast", (1, -2, 1), "sorted_set",
         "Removes the lowest-scored member, or waits.", since="5.0.0", batched=False)
def bzpopmin(c: Client, argv: list[bytes]) -> bytes:
    return _bzpop(c, argv, False)


@command("bzpopmax", -3, "write blocking fast", (1, -2, 1), "sorted_set",
         "Removes the highest-scored member, or waits.", since="5.0.0", batched=False)
def bzpopmax(c: Client, argv: list[bytes]) -> bytes:
    return _bzpop(c, argv, True)


@command("bzmpop", -5, "write blocking movablekeys", (0, 0, 0), "sorted_set",
         "Pops from the first non-empty key, or waits.", since="7.0.0", batched=False)
def bzmpop(c: Client, argv: list[bytes]) -> bytes:
    keys, top, count = mpop_args(argv, 2, b"max", b"min")
    secs = _timeout(argv[1])
    until = deadline(c, secs)
    found = first_zset(c, keys)
    if found is not None:
        return mpop_reply(c, found[0], pop_from(c, *found, count, top))
    side = b"MAX" if top else b"MIN"

    def serve(c: Client, key: bytes) -> tuple[bytes, list[bytes] | None] | None:
        try:
            got = first_zset(c, [key])
        except CommandError:
            return None
        if got is None:
            return None
        reply = mpop_reply(c, key, pop_from(c, *got, count, top))
        return reply, [b"ZMPOP", b"1", key, side, b"COUNT", b"%d" % count]

    return wait(c, keys, argv, serve, null_array(c.resp), until)
