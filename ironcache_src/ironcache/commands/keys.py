"""Generic key commands: deletion, expiry, iteration, renaming."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ironcache.commands import (
    SYNTAX,
    CommandError,
    command,
    matcher,
    parse_cursor,
    scan_options,
    scan_reply,
    to_int,
)
from ironcache.keyspace import NOTIFY_GENERIC, NOTIFY_NEW, Database, now_ms, type_name
from ironcache.protocol import OK, ONE, ZERO, bulk, bulk_array, integer, null, simple

if TYPE_CHECKING:
    from ironcache.client import Client

K1 = (1, 1, 1)
KALL = (1, -1, 1)


@command("del", -2, "write", KALL, "generic", "Deletes one or more keys.")
def del_(c: Client, argv: list[bytes]) -> bytes:
    db = c.db
    n = 0
    for k in argv[1:]:
        if db.lookup(k) is not None and db.delete(k):
            n += 1
            db.notify(NOTIFY_GENERIC, b"del", k)
    return integer(n)


@command("unlink", -2, "write fast", KALL, "generic", "Deletes keys, freeing memory later.")
def unlink(c: Client, argv: list[bytes]) -> bytes:
    db = c.db
    n = 0
    for k in argv[1:]:
        if db.lookup(k) is not None and db.unlink(k):
            n += 1
            db.notify(NOTIFY_GENERIC, b"del", k)
    schedule_free(c)
    return integer(n)


def schedule_free(c: Client) -> None:
    """Big values are released a slice per event-loop turn (Keyspace.free_later schedules
    them); with no event loop (a journal replay) nobody waits: release them now."""
    if c.server.loop is None:
        c.server.keyspace.drain()


@command("exists", -2, "readonly fast", KALL, "generic", "Counts how many of the keys exist.")
def exists(c: Client, argv: list[bytes]) -> bytes:
    db = c.db
    return integer(sum(1 for k in argv[1:] if db.peek(k) is not None))


@command("touch", -2, "readonly fast", KALL, "generic", "Updates the last access time of keys.")
def touch(c: Client, argv: list[bytes]) -> bytes:
    db = c.db
    return integer(sum(1 for k in argv[1:] if db.lookup(k) is not None))


def _expire(c: Client, argv: list[bytes], unit: int, absolute: bool, name: str) -> bytes:
    db, key = c.db, argv[1]
    for a in argv[3:]:
        if a.lower() not in (b"nx", b"xx", b"gt", b"lt"):
            raise CommandError(f"ERR Unsupported option {a.decode(errors='replace')}")
    flags = {a.lower() for a in argv[3:]}
    if b"nx" in flags and flags & {b"xx", b"gt", b"lt"}:
        raise CommandError("ERR NX and XX, GT or LT options at the same time are not compatible")
    if b"gt" in flags and b"lt" in flags:
        raise CommandError("ERR GT and LT options at the same time are not compatible")
    n = to_int(argv[2])  # after the options, as in Redis
    base = 0 if absolute else now_ms()
    # Redis checks the unit conversion both ways, the addition of the base time upwards only.
    if unit == 1000 and not -(2**63 // 1000) <= n <= (2**63 - 1) // 1000:
        raise CommandError(f"ERR invalid expire time in '{name}' command")
    when = n * unit
    if when > 2**63 - 1 - base:
        raise CommandError(f"ERR invalid expire time in '{name}' command")
    when += base
    if db.lookup(key) is None:
        return ZERO
    current = db.expires.get(key)
    if b"nx" in flags and current is not None:
        return ZERO
    if b"xx" in flags and current is None:
        return ZERO
    # A key without a TTL counts as never expiring for GT and LT.
    if b"gt" in flags and (current is None or when <= current):
        return ZERO
    if b"lt" in flags and current is not None and when >= current:
        return ZERO
    if when <= now_ms():
        db.expire_now(key)
        db.notify(NOTIFY_GENERIC, b"del", key)
    else:
        db.set_expire(key, when)
        db.notify(NOTIFY_GENERIC, b"expire", key)
    return ONE


@command("expire", -3, "write fast", K1, "generic", "Sets a key's time to live in seconds.")
def expire(c: Client, argv: list[bytes]) -> bytes:
    return _expire(c, argv, 1000, False, "expire")


@command("pexpire", -3, "write fast", K1, "generic", "Sets a key's time to live in ms.")
def pexpire(c: Client, argv: list[bytes]) -> bytes:
    return _expire(c, argv, 1, False, "pexpire")


@command("expireat", -3, "write fast", K1, "generic", "Sets a key's expiry as a Unix time.")
def expireat(c: Client, argv: list[bytes]) -> bytes:
    return _expire(c, argv, 1000, True, "expireat")


@command("pexpireat", -3, "write fast", K1, "generic", "Sets a key's expiry as a Unix time in ms.")
def pexpireat(c: Client, argv: list[bytes]) -> bytes:
    return _expire(c, argv, 1, True, "pexpireat")


def _ttl(c: Client, key: bytes, unit: int, absolute: bool) -> bytes:
    db = c.db
    if db.peek(key) is None:
        return integer(-2)
    when = db.expires.get(key)
    if when is None:
        return integer(-1)
    if absolute:
        return integer(when // unit)
    left = max(when - now_ms(), 0)
    return integer((left + 500) // 1000 if unit == 1000 else left)


@command("ttl", 2, "readonly fast", K1, "generic", "Returns a key's time to live in seconds.")
def ttl(c: Client, argv: list[bytes]) -> bytes:
    return _ttl(c, argv[1], 1000, False)


@command("pttl", 2, "readonly fast", K1, "generic", "Returns a key's time to live in ms.")
def pttl(c: Client, argv: list[bytes]) -> bytes:
    return _ttl(c, argv[1], 1, False)


@command("expiretime", 2, "readonly fast", K1, "generic", "Returns a key's expiry Unix time.")
def expiretime(c: Client, argv: list[bytes]) -> bytes:
    return _ttl(c, argv[1], 1000, True)


@command("pexpiretime", 2, "readonly fast", K1, "generic", "Returns a key's expiry in Unix ms.")
def pexpiretime(c: Client, argv: list[bytes]) -> bytes:
    return _ttl(c, argv[1], 1, True)


@command("persist", 2, "write fast", K1, "generic", "Removes a key's expiry.")
def persist(c: Client, argv: list[bytes]) -> bytes:
    if c.db.lookup(argv[1]) is None:
        return ZERO
    if not c.db.persist(argv[1]):
        return ZERO
    c.db.notify(NOTIFY_GENERIC, b"persist", argv[1])
    return ONE


@command("type", 2, "readonly fast", K1, "generic", "Returns the type of a key's value.")
def type_(c: Client, argv: list[bytes]) -> bytes:
    e = c.db.peek(argv[1])
    return simple("none" if e is None else type_name(e.value))


@command("keys", 2, "readonly", (0, 0, 0), "generic", "Returns the keys matching a pattern.")
def keys(c: Client, argv: list[bytes]) -> bytes:
    match = matcher(argv[1])
    return bulk_array([k for k in c.db.live_keys() if match(k)])


@command("scan", -2, "readonly", (0, 0, 0), "generic", "Iterates over the key names.")
def scan(c: Client, argv: list[bytes]) -> bytes:
    cursor = parse_cursor(argv[1])
    count, match, kind = scan_options(argv, 2, True)
    db = c.db
    # The next cursor is taken before the lookups: expiring a key may compact the order.
    cursor, batch = db.scan_slots(cursor, count)
    out = []
    # A key deleted and added again has a stale slot and a live one until the next compaction:
    # one reply names it once (Redis may repeat a key across calls, never within one).
    for k in dict.fromkeys(batch):
        e = db.lookup(k)
        if e is None or not match(k):
            continue
        if kind is not None and type_name(e.value).encode() != kind:
            continue
        out.append(k)
    return scan_reply(cursor, out)


def _rename(c: Client, argv: list[bytes], nx: bool) -> bytes:
    db: Database = c.db
    src, dst = argv[1], argv[2]
    e = db.lookup(src)
    if e is None:
        raise CommandError("ERR no such key")
    if src == dst:
        return ZERO if nx else OK
    if nx and db.lookup(dst) is not None:
        return ZERO
    replaced = db.lookup(dst) is not None
    when = db.expires.get(src)
    value, size = e.value, e.size
    db.delete(src)
    db.set(dst, value, size)
    if replaced:  # Redis deletes the target and adds it anew: "new" either way
        db.notify(NOTIFY_NEW, b"new", dst)
    if when is not None:
        db.set_expire(dst, when)
    db.notify(NOTIFY_GENERIC, b"rename_from", src)
    db.notify(NOTIFY_GENERIC, b"rename_to", dst)
    return ONE if nx else OK


@command("rename", 3, "write", (1, 2, 1), "generic", "Renames a key, overwriting the target.")
def rename(c: Client, argv: list[bytes]) -> bytes:
    return _rename(c, argv, False)


@command("renamenx", 3, "write fast", (1, 2, 1), "generic", "Renames a key if the target is free.")
def renamenx(c: Client, argv: list[bytes]) -> bytes:
    return _rename(c, argv, True)


@command("randomkey", 1, "readonly", (0, 0, 0), "generic", "Returns a random key name.")
def randomkey(c: Client, argv: list[bytes]) -> bytes:
    k = c.db.random_key()
    return null(c.resp) if k is None else bulk(k)


@command("dbsize", 1, "readonly fast", (0, 0, 0), "server", "Returns the number of keys.")
def dbsize(c: Client, argv: list[bytes]) -> bytes:
    return integer(len(c.db.data))


def _flush_mode(argv: list[bytes]) -> bool:
    """True for ASYNC (the old data is released in slices)."""
    if len(argv) > 2 or (len(argv) == 2 and argv[1].lower() not in (b"async", b"sync")):
        raise CommandError(SYNTAX)
    return len(argv) == 2 and argv[1].lower() == b"async"


@command("flushdb", -1, "write", (0, 0, 0), "server", "Removes all keys from the database.")
def flushdb(c: Client, argv: list[bytes]) -> bytes:
    c.db.flush(lazy=_flush_mode(argv))
    c.server.tracking.flushed()
    schedule_free(c)
    return OK


@command("flushall", -1, "write", (0, 0, 0), "server", "Removes all keys from all databases.")
def flushall(c: Client, argv: list[bytes]) -> bytes:
    lazy = _flush_mode(argv)
    for db in c.server.keyspace.dbs:
        db.flush(lazy)
    c.server.tracking.flushed()
    schedule_free(c)
    return OK
