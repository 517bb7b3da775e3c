"""Set commands."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from ironcache.commands import (
    SYNTAX,
    WRONGTYPE,
    CommandError,
    command,
    parse_cursor,
    scan_options,
    scan_reply,
    to_int,
)
from ironcache.keyspace import (
    CONTAINER_OVERHEAD,
    MEMBER_OVERHEAD,
    NOTIFY_GENERIC,
    NOTIFY_SET,
    SCAN_WHOLE,
    Entry,
    random_element,
)
from ironcache.protocol import EMPTY_ARRAY, ONE, ZERO, bulk, bulk_array, bulks, integer, null

if TYPE_CHECKING:
    from ironcache.client import Client

K1 = (1, 1, 1)


def read_set(c: Client, key: bytes) -> tuple[Entry, set[bytes]] | None:
    e = c.db.lookup(key)
    if e is None:
        return None
    if not isinstance(e.value, set):
        raise CommandError(WRONGTYPE)
    return e, e.value


def _size(members: list[bytes]) -> int:
    return sum(MEMBER_OVERHEAD + len(m) for m in members)


@command("sadd", -3, "write denyoom fast", K1, "set", "Adds members to a set.")
def sadd(c: Client, argv: list[bytes]) -> bytes:
    db, key = c.db, argv[1]
    e = db.data.get(key)
    if e is not None and db.expires:
        e = db.lookup(key)  # may have expired
    if e is None:
        new = set(argv[2:])
        db.set(key, new, CONTAINER_OVERHEAD + _size(list(new)))
        db.notify(NOTIFY_SET, b"sadd", key)
        return integer(len(new))
    s = e.value
    if s.__class__ is not set:
        raise CommandError(WRONGTYPE)
    ks = db.keyspace
    e.lru = ks.clock
    if ks.lfu and not db.expires:  # lookup() counted it if it ran
        db.lfu_touch(key)
    if len(argv) == 3:  # one member, the common case: no intermediate lists
        m = argv[2]
        if m in s:
            return ZERO
        s.add(m)
        db.resized(key, e, MEMBER_OVERHEAD + len(m))
        db.notify(NOTIFY_SET, b"sadd", key)
        return ONE
    added = [m for m in dict.fromkeys(argv[2:]) if m not in s]
    if not added:  # nothing changed: WATCHers are not told, as in Redis
        return ZERO
    s.update(added)
    db.resized(key, e, _size(added))
    db.notify(NOTIFY_SET, b"sadd", key)
    return integer(len(added))


@command("srem", -3, "write fast", K1, "set", "Removes members from a set.")
def srem(c: Client, argv: list[bytes]) -> bytes:
    found = read_set(c, argv[1])
    if found is None:
        return ZERO
    e, s = found
    gone = [m for m in dict.fromkeys(argv[2:]) if m in s]
    if gone:
        s.difference_update(gone)
        c.db.resized(argv[1], e, -_size(gone))
        c.db.notify_emptied(NOTIFY_SET, b"srem", argv[1])
    return integer(len(gone))


@command("smembers", 2, "readonly", K1, "set", "Returns all members of a set.")
def smembers(c: Client, argv: list[bytes]) -> bytes:
    found = read_set(c, argv[1])
    return _set_reply(set() if found is None else found[1], c.resp)


@command("sscan", -3, "readonly", K1, "set", "Iterates over the members of a set.")
def sscan(c: Client, argv: list[bytes]) -> bytes:
    cursor = parse_cursor(argv[2])
    found = read_set(c, argv[1])
    if found is None:
        return scan_reply(0, [])  # before the options are parsed, as in Redis
    count, match, unused_type = scan_options(argv, 3, False)
    members = found[1]
    if len(members) <= SCAN_WHOLE:  # one step, cursor 0, as Redis answers an intset
        return scan_reply(0, [m for m in members if match(m)])
    # A big set: about `count` members per call (COUNT is a hint, as in Redis).
    cursor, batch = c.server.keyspace.member_scans.scan(
        c.db.index, argv[1], members, cursor, count
    )
    return scan_reply(cursor, [m for m in batch if match(m)])


@command("sismember", 3, "readonly fast", K1, "set", "Tells whether a value is a member.")
def sismember(c: Client, argv: list[bytes]) -> bytes:
    found = read_set(c, argv[1])
    return ONE if found is not None and argv[2] in found[1] else ZERO


@command("smismember", -3, "readonly fast", K1, "set", "Tells whether values are members.")
def smismember(c: Client, argv: list[bytes]) -> bytes:
    found = read_set(c, argv[1])
    s = set() if found is None else found[1]
    return b"*%d\r\n" % (len(argv) - 2) + b"".join(ONE if m in s else ZERO for m in argv[2:])


@command("scard", 2, "readonly fast", K1, "set", "Returns the number of members.")
def scard(c: Client, argv: list[bytes]) -> bytes:
    found = read_set(c, argv[1])
    return integer(0 if found is None else len(found[1]))


def _count_arg(argv: list[bytes]) -> int | None:
    if len(argv) > 3:
        raise CommandError("ERR syntax error")
    if len(argv) == 2:
        return None
    n = to_int(argv[2], "ERR value is out of range, must be positive")
    return n


@command("spop", -2, "write fast", K1, "set", "Removes and returns random members.")
def spop(c: Client, argv: list[bytes]) -> bytes:
    count = _count_arg(argv)
    if count is not None and count < 0:
        raise CommandError("ERR value is out of range, must be positive")
    found = read_set(c, argv[1])
    if found is None:
        return null(c.resp) if count is None else EMPTY_ARRAY
    e, s = found
    picked = random.sample(list(s), min(1 if count is None else count, len(s)))
    s.difference_update(picked)
    c.db.resized(argv[1], e, -_size(picked))
    if picked:
        c.db.notify_emptied(NOTIFY_SET, b"spop", argv[1])
    return bulk(picked[0]) if count is None else bulk_array(picked)


LONG_MAX = 2**63 - 1
# A reply larger than this is refused: Redis would stream it for as long as it takes (for
# -LONG_MAX, forever); a reply here is built whole before it is sent.
MAX_REPLY_BYTES = 1 << 30
CHUNK = 65536  # members picked per step of a negative count


@command("srandmember", -2, "readonly", K1, "set", "Returns random members.")
def srandmember(c: Client, argv: list[bytes]) -> bytes:
    if len(argv) > 3:
        raise CommandError("ERR syntax error")
    count = None
    if len(argv) == 3:
        count = to_int(argv[2])
        if not -LONG_MAX <= count <= LONG_MAX:  # getRangeLongFromObjectOrReply(), as in Redis
            raise CommandError(
                f"ERR value is out of range, value must between {-LONG_MAX} and {LONG_MAX}"
            )
    found = read_set(c, argv[1])
    if found is None:
        return null(c.resp) if count is None else EMPTY_ARRAY
    if count is None:
        return bulk(random_element(found[1]))
    members = list(found[1])
    if count >= 0:
        return bulk_array(random.sample(members, min(count, len(members))))
    count = -count
    # Repetitions allowed: encode each member once, then pick encoded members chunk by chunk,
    # so the only big allocation is the reply itself.
    encoded = [bulk(m) for m in members]
    if count * min(map(len, encoded)) > MAX_REPLY_BYTES:
        raise CommandError("ERR reply too large: the count asks for more than 1 GB")
    parts = [b"*%d\r\n" % count]
    choices = random.choices
    while count > 0:
        n = min(count, CHUNK)
        parts.append(b"".join(choices(encoded, k=n)))
        count -= n
    return b"".join(parts)


# ------------------------------------------------------------------ set algebra


def _read_sets(c: Client, keys: list[bytes]) -> list[set[bytes] | None]:
    """Every key's set (None when missing); any key of another type fails the command first,
    as Redis checks them all before it computes anything."""
    db = c.db
    data, clock = db.data, db.keyspace.clock
    lfu = db.keyspace.lfu
    out: list[set[bytes] | None] = []
    for key in keys:
        e = data.get(key)
        if e is not None and db.expires:
            e = db.lookup(key)  # may have expired
        if e is None:
            out.append(None)
            continue
        v = e.value
        if v.__class__ is not set:
            raise CommandError(WRONGTYPE)
        e.lru = clock
        if lfu and not db.expires:  # lookup() counted it if it ran
            db.lfu_touch(key)
        out.append(v)
    return out


def _inter(sets: list[set[bytes] | None]) -> set[bytes]:
    if None in sets:
        return set()
    if len(sets) == 2:
        return sets[0] & sets[1]  # type: ignore[operator]  # walks the smaller set
    # Smallest first (Redis's O(N*M), N the smallest set): set.intersection iterates the
    # smaller operand of each step.
    ordered = sorted(sets, key=len)  # type: ignore[arg-type]
    first = ordered[0]
    assert first is not None
    return first.intersection(*ordered[1:])


def _union(sets: list[set[bytes] | None]) -> set[bytes]:
    return set().union(*(s for s in sets if s is not None))


def _diff(sets: list[set[bytes] | None]) -> set[bytes]:
    first = sets[0]
    if not first:
        return set()
    return first.difference(*(s for s in sets[1:] if s))


def _set_reply(members: set[bytes], resp: int) -> bytes:
    """An array (RESP2) or a set (RESP3) of bulk strings, as Redis answers SINTER & co."""
    return bulks((b"~%d\r\n" if resp == 3 else b"*%d\r\n") % len(members), members)


def _store(c: Client, dst: bytes, result: set[bytes], event: bytes) -> bytes:
    """*STORE: the result replaces dst whatever it held; an empty result deletes dst."""
    if result:
        c.db.set(dst, result, CONTAINER_OVERHEAD + _size(list(result)))
        c.db.notify(NOTIFY_SET, event, dst)
    elif c.db.delete(dst):
        c.db.notify(NOTIFY_GENERIC, b"del", dst)
    return integer(len(result))


KALL = (1, -1, 1)


@command("sinter", -2, "readonly", KALL, "set", "Returns the intersect of multiple sets.")
def sinter(c: Client, argv: list[bytes]) -> bytes:
    return _set_reply(_inter(_read_sets(c, argv[1:])), c.resp)


@command("sinterstore", -3, "write denyoom", KALL, "set", "Stores the intersect of sets.")
def sinterstore(c: Client, argv: list[bytes]) -> bytes:
    return _store(c, argv[1], _inter(_read_sets(c, argv[2:])), b"sinterstore")


@command("sunion", -2, "readonly", KALL, "set", "Returns the union of multiple sets.")
def sunion(c: Client, argv: list[bytes]) -> bytes:
    return _set_reply(_union(_read_sets(c, argv[1:])), c.resp)


@command("sunionstore", -3, "write denyoom", KALL, "set", "Stores the union of sets.")
def sunionstore(c: Client, argv: list[bytes]) -> bytes:
    return _store(c, argv[1], _union(_read_sets(c, argv[2:])), b"sunionstore")


@command("sdiff", -2, "readonly", KALL, "set", "Returns the difference of multiple sets.")
def sdiff(c: Client, argv: list[bytes]) -> bytes:
    return _set_reply(_diff(_read_sets(c, argv[1:])), c.resp)


@command("sdiffstore", -3, "write denyoom", KALL, "set", "Stores the difference of sets.")
def sdiffstore(c: Client, argv: list[bytes]) -> bytes:
    return _store(c, argv[1], _diff(_read_sets(c, argv[2:])), b"sdiffstore")


@command(
    "sintercard", -3, "readonly movablekeys", (0, 0, 0), "set",
    "Returns the number of members of the intersect of multiple sets.", "7.0.0",
)
def sintercard(c: Client, argv: list[bytes]) -> bytes:
    numkeys = to_int(argv[1], "ERR numkeys should be greater than 0")
    if numkeys < 1:
        raise CommandError("ERR numkeys should be greater than 0")
    if numkeys > len(argv) - 2:
        raise CommandError("ERR Number of keys can't be greater than number of args")
    limit = 0
    i = 2 + numkeys
    while i < len(argv):
        if argv[i].lower() == b"limit" and i + 1 < len(argv):
            limit = to_int(argv[i + 1], "ERR LIMIT can't be negative")
            if limit < 0:
                raise CommandError("ERR LIMIT can't be negative")
            i += 2
        else:
            raise CommandError(SYNTAX)
    sets = _read_sets(c, argv[2 : 2 + numkeys])
    if any(s is None for s in sets):
        return ZERO
    ordered: list[set[bytes]] = sorted(sets, key=len)  # type: ignore[arg-type]
    if not limit:
        return integer(len(ordered[0].intersection(*ordered[1:])))
    # Stop at the limit: walk the smallest set, as Redis does.
    n = 0
    rest = ordered[1:]
    for m in ordered[0]:
        if all(m in s for s in rest):
            n += 1
            if n >= limit:
                break
    return integer(n)


@command("smove", 4, "write fast", (1, 2, 1), "set", "Moves a member from one set to another.")
def smove(c: Client, argv: list[bytes]) -> bytes:
    db, src, dst, member = c.db, argv[1], argv[2], argv[3]
    found = read_set(c, src)
    dst_e = db.lookup(dst)
    if found is None:
        return ZERO
    if dst_e is not None and not isinstance(dst_e.value, set):
        raise CommandError(WRONGTYPE)
    e, s = found
    if src == dst:
        return ONE if member in s else ZERO
    if member not in s:
        return ZERO
    s.discard(member)
    db.resized(src, e, -_size([member]))
    db.notify_emptied(NOTIFY_SET, b"srem", src)
    if dst_e is None:
        db.set(dst, {member}, CONTAINER_OVERHEAD + _size([member]))
        db.notify(NOTIFY_SET, b"sadd", dst)
    elif member not in dst_e.value:
        dst_e.value.add(member)
        db.resized(dst, dst_e, _size([member]))  # WATCHers of dst wake only when it changed
        db.notify(NOTIFY_SET, b"sadd", dst)
    return ONE
