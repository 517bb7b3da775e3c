"""HSCAN and SSCAN of big collections: a cursor, about COUNT elements per call, Redis's
guarantee (an element present for the whole iteration is returned at least once)."""

from __future__ import annotations

from typing import Any

import redis

from ironcache.keyspace import SCAN_WHOLE, MemberScans
from support import IS_REDIS, ironcache_only


def full_scan(r: redis.Redis, cmd: str, key: str, count: int, between: Any = None) -> tuple[
    list[Any], int
]:
    """Every element an iteration returns, and the number of calls it took."""
    cursor, out, calls = 0, [], 0
    while True:
        cursor, items = r.execute_command(cmd, key, cursor, "COUNT", count)
        cursor = int(cursor)
        if isinstance(items, dict):  # redis-py's HSCAN reply: a dict
            items = [x for pair in items.items() for x in pair]
        calls += 1
        if not IS_REDIS:  # a hint in Redis, which may return a few more (a bucket's chain)
            assert len(items) <= count * (2 if cmd == "HSCAN" else 1)
        out += items
        if cursor == 0:
            return out, calls
        if between is not None:
            between(calls)
        assert calls < 100_000


def test_small_collections_answer_in_one_reply(r: redis.Redis) -> None:
    r.hset("h", mapping={f"f{i}": i for i in range(SCAN_WHOLE)})
    r.sadd("s", *range(SCAN_WHOLE))  # integers: an intset in Redis
    cursor, items = r.hscan("h", 0, count=10)
    assert cursor == 0 and len(items) == SCAN_WHOLE
    cursor, members = r.sscan("s", 0, count=10)
    assert cursor == 0 and len(members) == SCAN_WHOLE


def test_hscan_of_a_big_hash_iterates_by_cursor(r: redis.Redis) -> None:
    n = 5000
    r.hset("h", mapping={f"f{i}": f"v{i}" for i in range(n)})
    items, calls = full_scan(r, "HSCAN", "h", 50)
    pairs = dict(zip(items[0::2], items[1::2], strict=True))
    assert pairs == {f"f{i}": f"v{i}" for i in range(n)}
    assert len(items) == 2 * n  # nothing changed: each field once
    assert IS_REDIS or calls >= n // 50  # COUNT bounds each reply
    cursor, items = r.hscan("h", 0, match="f1?", count=1000)
    assert cursor != 0 and set(items) <= {f"f{i}" for i in range(10, 20)}


def test_sscan_keeps_the_guarantee_under_writes(r: redis.Redis) -> None:
    n = 4000
    r.sadd("s", *[f"m{i}" for i in range(n)])

    def churn(call: int) -> None:  # deletes some members, adds new ones, between calls
        r.srem("s", f"m{call * 7 % n}")
        r.sadd("s", f"new{call}")

    members, unused_calls = full_scan(r, "SSCAN", "s", 20, churn)
    deleted = {f"m{c * 7 % n}" for c in range(1, n)}
    kept = {f"m{i}" for i in range(n)} - deleted
    assert kept <= set(members)  # present all along: returned
    assert not {m for m in members if m.startswith("new")} - set(r.smembers("s"))


@ironcache_only
def test_a_cursor_of_another_key_or_unknown_starts_over(r: redis.Redis) -> None:
    r.sadd("a", *[f"m{i}" for i in range(1000)])
    r.sadd("b", *[f"x{i}" for i in range(1000)])
    cursor, unused = r.sscan("a", 0, count=10)
    assert cursor != 0
    # a's cursor on b: b is iterated from its start, with b's members only
    members, calls = [], 0
    while True:
        cursor, batch = r.sscan("b", cursor, count=100)
        members += batch
        calls += 1
        if cursor == 0:
            break
    assert set(members) == {f"x{i}" for i in range(1000)}
    cursor, batch = r.sscan("a", 123456789, count=10)  # no such snapshot: from the start
    assert cursor != 0 and len(batch) == 10


@ironcache_only
def test_snapshots_are_taken_once_per_iteration_and_bounded() -> None:
    scans = MemberScans()
    members = {f"m{i}".encode() for i in range(10_000)}
    cursor, seen, calls = 0, [], 0
    while True:
        cursor, batch = scans.scan(0, b"k", members, cursor, 100)
        assert len(batch) <= 100
        seen += batch
        calls += 1
        if cursor == 0:
            break
    assert sorted(seen) == sorted(members) and calls == 100
    assert scans.taken == 1 and scans.slots == 0  # one snapshot, dropped at the end
    # Many iterations left unfinished: the oldest snapshots go, their cursors start over.
    import ironcache.keyspace as ks

    cursors = [scans.scan(0, b"k%d" % i, members, 0, 10)[0] for i in range(ks.SCAN_SNAPSHOTS + 5)]
    assert len(scans.snapshots) == ks.SCAN_SNAPSHOTS
    restarted, batch = scans.scan(0, b"k0", members, cursors[0], 10)
    assert scans.taken == ks.SCAN_SNAPSHOTS + 7 and len(batch) == 10 and restarted != 0
    # Of one collection, SCAN_SNAPSHOTS_PER_KEY at most: its memory is bounded too.
    scans = MemberScans()
    mine = [scans.scan(0, b"k", members, 0, 10)[0] for _i in range(ks.SCAN_SNAPSHOTS_PER_KEY + 2)]
    assert len(scans.snapshots) == ks.SCAN_SNAPSHOTS_PER_KEY
    assert scans.slots == ks.SCAN_SNAPSHOTS_PER_KEY * len(members)
    unused, batch = scans.scan(0, b"k", members, mine[-1], 10)  # the newest go on
    assert scans.taken == ks.SCAN_SNAPSHOTS_PER_KEY + 2 and len(batch) == 10
