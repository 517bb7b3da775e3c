"""UNLINK and FLUSHDB/FLUSHALL ASYNC release big values in slices between other requests."""

from __future__ import annotations

import redis

from support import Server, poll


def fill(r: redis.Redis, members: int, keys: int) -> None:
    p = r.pipeline(transaction=False)
    for i in range(0, members, 10000):
        p.sadd("big", *[f"m{j}" for j in range(i, i + 10000)])
    for i in range(0, keys, 10000):
        p.mset({f"k{j}": "v" for j in range(i, i + 10000)})
    p.execute()


def used(r: redis.Redis) -> int:
    return int(r.info("memory")["used_memory"])


def test_unlink_big_set(server: Server) -> None:
    r = server.client()
    try:
        r.select(5)
        r.flushdb()
        fill(r, 200_000, 0)
        assert r.scard("big") == 200_000
        assert r.unlink("big", "missing") == 1
        assert r.exists("big") == 0
        assert r.ping()
        r.sadd("big", "again")  # the key is free at once
        assert r.smembers("big") == {"again"}
        r.flushdb()
    finally:
        r.close()


def test_flush_async_releases_everything(server: Server) -> None:
    r = server.client()
    try:
        r.select(6)
        r.flushdb()
        before = used(r)
        fill(r, 100_000, 50_000)
        assert used(r) > before
        assert r.flushdb(asynchronous=True)
        assert r.dbsize() == 0
        r.set("new", "1")  # writes go on while the old data is released
        assert r.get("new") == "1"
        poll(lambda: used(r) < before + 10_000, timeout=30, what="memory back after FLUSHDB ASYNC")
        r.select(7)
        fill(r, 100_000, 0)
        assert r.flushall(asynchronous=True)
        assert r.dbsize() == 0
        r.select(6)
        assert r.dbsize() == 0
    finally:
        r.close()
