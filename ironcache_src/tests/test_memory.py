"""Expiry (lazy and active) and eviction under maxmemory for every policy."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from support import RespError, Server, poll

VALUE = "x" * 1000
OOM = "OOM command not allowed when used memory > 'maxmemory'."


def test_active_expiry_without_access(server: Server) -> None:
    c = server.client(db=4)
    c.flushdb()
    c.config_resetstat()
    with c.pipeline(transaction=False) as p:
        for i in range(200):
            p.set(f"short:{i}", "v", px=100)
        for i in range(20):
            p.set(f"long:{i}", "v", ex=1000)
        p.execute()
    # Nobody touches the short keys: the server's own cycle must remove them.
    poll(lambda: c.dbsize() == 20, 15, 0.05, "active expiry to remove keys with short TTLs")
    assert c.info("stats")["expired_keys"] >= 200
    assert c.info("keyspace")["db4"]["keys"] == 20
    c.flushdb()


def test_lazy_expiry_counts(r: redis.Redis) -> None:
    r.config_resetstat()
    r.set("k", "v", px=30)
    poll(lambda: r.get("k") is None, 10, 0.01, "key to expire")
    assert r.info("stats")["expired_keys"] >= 1
    assert r.info("stats")["keyspace_misses"] >= 1


def test_expired_key_invisible_everywhere(r: redis.Redis) -> None:
    r.set("a", "1", px=30)
    r.hset("h", "f", "v")
    r.pexpire("h", 30)
    poll(lambda: r.exists("a", "h") == 0, 10, 0.01, "keys to expire")
    assert r.keys("*") == []
    assert r.type("h") == "none"
    assert r.hgetall("h") == {}
    assert r.set("a", "new", nx=True) is True


def _fill(c: redis.Redis, prefix: str, count: int, ex: int | None = None,
          batch: int = 50) -> list[RespError | object]:
    """Write `count` 1 KB values in small pipelines; return every reply (errors included)."""
    replies: list[RespError | object] = []
    for start in range(0, count, batch):
        with c.pipeline(transaction=False) as p:
            for i in range(start, min(start + batch, count)):
                p.set(f"{prefix}:{i}", VALUE, ex=ex)
            replies.extend(p.execute(raise_on_error=False))
    return replies


def _eviction_server(make_server: Callable[..., Server], policy: str) -> tuple[Server, int]:
    srv = make_server()
    c = srv.client()
    baseline = c.info("memory")["used_memory"]
    limit = baseline + 2 * 1024 * 1024
    assert c.config_set("maxmemory-policy", policy)
    assert c.config_set("maxmemory", str(limit))
    return srv, limit


@pytest.mark.parametrize("policy", ["allkeys-lru", "allkeys-lfu", "allkeys-random"])
def test_allkeys_eviction_bounds_memory(make_server: Callable[..., Server], policy: str) -> None:
    srv, limit = _eviction_server(make_server, policy)
    c = srv.client()
    replies = _fill(c, "k", 8000)  # ~8 MB into a ~2 MB budget
    assert all(rep is True for rep in replies), [rep for rep in replies if rep is not True][:3]
    mem = c.info("memory")
    assert mem["used_memory"] <= limit * 1.1
    assert c.info("stats")["evicted_keys"] > 0
    assert 0 < c.dbsize() < 8000
    assert c.get("k:7999") == VALUE  # the latest write is there


@pytest.mark.parametrize("policy", ["volatile-lru", "volatile-lfu", "volatile-random",
                                    "volatile-ttl"])
def test_volatile_policies_evict_only_keys_with_ttl(make_server: Callable[..., Server],
                                                     policy: str) -> None:
    srv, limit = _eviction_server(make_server, policy)
    c = srv.client()
    assert all(rep is True for rep in _fill(c, "persistent", 300))
    replies = _fill(c, "volatile", 8000, ex=10_000)
    assert all(rep is True for rep in replies), [rep for rep in replies if rep is not True][:3]
    assert c.info("stats")["evicted_keys"] > 0
    assert c.info("memory")["used_memory"] <= limit * 1.1
    assert c.exists(*[f"persistent:{i}" for i in range(300)]) == 300
    assert c.dbsize() < 8300


def test_volatile_ttl_evicts_shortest_ttl_first(make_server: Callable[..., Server]) -> None:
    srv, _ = _eviction_server(make_server, "volatile-ttl")
    c = srv.client()
    assert all(rep is True for rep in _fill(c, "long", 100, ex=100_000))
    replies = _fill(c, "short", 8000, ex=1000)
    assert all(rep is True for rep in replies)
    assert c.info("stats")["evicted_keys"] > 0
    # Sampling is approximate, but the long-lived keys must fare far better than the short ones.
    assert c.exists(*[f"long:{i}" for i in range(100)]) >= 80


def test_volatile_policy_without_volatile_keys_gives_oom(
        make_server: Callable[..., Server]) -> None:
    srv, _ = _eviction_server(make_server, "volatile-lru")
    c = srv.client()
    replies = _fill(c, "persistent", 8000)
    errors = [rep for rep in replies if isinstance(rep, Exception)]
    assert errors, "writes past maxmemory with nothing evictable must fail"
    assert all(isinstance(e, redis.exceptions.OutOfMemoryError) for e in errors), errors[:3]
    assert c.info("stats")["evicted_keys"] == 0


def test_noeviction_returns_oom(make_server: Callable[..., Server]) -> None:
    srv, limit = _eviction_server(make_server, "noeviction")
    c = srv.client()
    _fill(c, "k", 8000)
    with srv.raw() as raw:
        reply = raw.call("SET", "one-more", VALUE)
        assert reply == RespError(OOM)
        assert raw.call("GET", "k:0") == VALUE.encode()  # reads still work
        assert raw.call("DEL", "k:0") == 1  # so do deletes
        assert isinstance(raw.call("DBSIZE"), int)
    assert c.info("stats")["evicted_keys"] == 0
    assert c.info("memory")["used_memory"] <= limit * 1.1
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        for i in range(100):
            c.set(f"more:{i}", VALUE)
    # Raising the limit makes room again.
    c.config_set("maxmemory", "0")
    assert c.set("after", VALUE) is True


def test_flushall_frees_memory(make_server: Callable[..., Server]) -> None:
    srv, _ = _eviction_server(make_server, "noeviction")
    c = srv.client()
    _fill(c, "k", 8000)
    assert c.flushall() is True
    assert c.set("fresh", VALUE) is True


def test_maxmemory_config_units(make_server: Callable[..., Server]) -> None:
    c = make_server({"maxmemory": "64mb", "maxmemory-policy": "allkeys-lru"}).client()
    assert c.config_get("maxmemory") == {"maxmemory": str(64 * 1024 * 1024)}
    assert c.info("memory")["maxmemory"] == 64 * 1024 * 1024
    assert c.info("memory")["maxmemory_policy"] == "allkeys-lru"


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize("kind", ["string", "hash", "list", "set", "zset", "bitmap"])
def test_process_memory_stays_bounded(make_server: Callable[..., Server], kind: str) -> None:
    """The real footprint (RSS), not only the server's own accounting, stays bounded when
    ten times maxmemory is written, whatever the data type."""
    srv = make_server({"maxmemory-policy": "allkeys-lru"})
    c = srv.client()
    c.config_set("maxmemory", str(c.info("memory")["used_memory"] + 4 * 1024 * 1024))
    rss_before = _rss(srv.pid)
    item = "y" * 200
    for start in range(0, 40_000, 500):  # 40k keys x 5 items x 200 B = 40 MB
        with c.pipeline(transaction=False) as p:
            for i in range(start, start + 500):
                key = f"{kind}:{i}"
                if kind == "string":
                    p.set(key, item * 5)
                elif kind == "hash":
                    p.hset(key, mapping={f"f{j}": item for j in range(5)})
                elif kind == "bitmap":  # 1000-byte strings grown in place by SETBIT
                    p.setbit(key, 7999, 1)
                elif kind == "list":
                    p.rpush(key, *([item] * 5))
                elif kind == "zset":
                    p.zadd(key, {f"{j}{item}": j for j in range(5)})
                else:
                    p.sadd(key, *(f"{j}{item}" for j in range(5)))
            assert all(rep is not None and rep is not False for rep in p.execute())
    grown = _rss(srv.pid) - rss_before
    assert c.info("stats")["evicted_keys"] > 0
    assert c.dbsize() < 40_000
    assert grown < 30 * 1024 * 1024, f"RSS grew by {grown / 2**20:.1f} MiB for a 4 MiB budget"


def test_sorted_set_memory_is_accounted_and_given_back(make_server: Callable[..., Server]) -> None:
    """used_memory follows a sorted set's growth (ZADD, ZUNIONSTORE) and goes back down to
    where it was when its members are removed (ZREM, ZPOPMIN, ZREMRANGEBYSCORE)."""
    c = make_server().client()
    base = c.info("memory")["used_memory"]
    members = {f"member-{i:05d}-" + "m" * 50: i for i in range(2000)}
    c.zadd("z", members)
    grown = c.info("memory")["used_memory"] - base
    assert grown > 2000 * 60  # at least the members' bytes, plus overheads
    c.zunionstore("copy", ["z"])
    assert c.info("memory")["used_memory"] - base > 1.9 * grown
    c.delete("copy")
    names = list(members)
    c.zrem("z", *names[:500])
    c.zpopmin("z", 500)
    c.zremrangebyscore("z", 1000, 1499)
    assert c.zcard("z") == 500
    c.zremrangebyrank("z", 0, -1)
    assert c.exists("z") == 0
    assert c.info("memory")["used_memory"] == base
