"""HyperLogLog: PFADD, PFCOUNT, PFMERGE, PFSELFTEST, PFDEBUG, with Redis's representation.

The values must be interchangeable with redis-server's: the same bytes for the same
commands, and either server counts the other's values the same (checked on a redis-server
7.0.15 started on loopback for the test)."""

from __future__ import annotations

import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from support import IS_REDIS, REDIS_SERVER, RedisReference, Server, wire_error

NOT_HLL = "WRONGTYPE Key is not a valid HyperLogLog string value."
INVALID = "INVALIDOBJ Corrupted HLL object detected"


def elements(n: int, seed: int = 1) -> list[str]:
    rnd = random.Random(seed)
    return [f"e:{rnd.random()}" for _ in range(n)]


def test_pfadd_pfcount_basics(rb: redis.Redis) -> None:
    assert rb.pfadd("h") == 1  # creates the key
    assert rb.get("h") == b"HYLL\x01\x00\x00\x00" + bytes(7) + b"\x80\x7f\xff"
    assert rb.pfcount("h") == 0
    assert rb.get("h")[15] == 0  # the count is cached in the value
    assert rb.pfadd("h", "a", "b", "c") == 1
    assert rb.pfadd("h", "a", "b", "c") == 0
    assert rb.pfadd("h") == 0
    assert rb.pfcount("h") == 3
    assert rb.pfcount("nokey") == 0
    assert rb.pfadd("h", "") == 1


@pytest.mark.parametrize("n", [10, 1000, 20_000])
def test_estimate_is_close(r: redis.Redis, n: int) -> None:
    items = elements(n)
    for i in range(0, n, 1000):
        r.pfadd("h", *items[i : i + 1000])
    assert abs(r.pfcount("h") - n) <= max(2, 0.03 * n)


def test_sparse_turns_dense_past_hll_sparse_max_bytes(rb: redis.Redis) -> None:
    rb.config_set("hll-sparse-max-bytes", 200)
    try:
        rb.pfadd("h", *elements(20))
        assert rb.execute_command("PFDEBUG", "ENCODING", "h") == b"sparse"
        rb.pfadd("h", *elements(200, 2))
        assert rb.execute_command("PFDEBUG", "ENCODING", "h") == b"dense"
        assert rb.strlen("h") == 16 + 12288
    finally:
        rb.config_set("hll-sparse-max-bytes", 3000)


def test_pfmerge_and_multi_key_count(r: redis.Redis) -> None:
    a, b = elements(3000, 1), elements(3000, 2)
    r.pfadd("x", *a)
    r.pfadd("y", *b)
    r.pfadd("z", *a[:10])
    union = r.pfcount("x", "y", "z", "nokey")
    assert abs(union - 6000) <= 180
    assert r.pfmerge("m", "x", "y", "nokey") is True
    assert r.pfcount("m") == union
    assert r.pfmerge("x", "y") is True  # the destination is merged too
    assert r.pfcount("x") == union
    assert r.pfmerge("new") is True and r.pfcount("new") == 0


def test_type_and_corruption_errors(rb: redis.Redis, server: Server) -> None:
    rb.set("s", "not an hll")
    for cmd in (["PFADD", "s", "a"], ["PFCOUNT", "s"], ["PFCOUNT", "nokey", "s"],
                ["PFMERGE", "d", "s"], ["PFMERGE", "s", "nokey"]):
        assert wire_error(server, *cmd) == NOT_HLL, cmd
    rb.rpush("l", "x")
    assert wire_error(server, "PFADD", "l", "a").startswith("WRONGTYPE Operation")
    rb.pfadd("h", "a", "b", "c")
    rb.append("h", "hello")  # extra opcodes: the runs no longer add up to 16384 registers
    assert wire_error(server, "PFCOUNT", "h") == INVALID
    rb.delete("h")
    rb.pfadd("h", "a", "b", "c")
    rb.setrange("h", 4, "\x00")  # says dense, is sparse-sized
    assert wire_error(server, "PFCOUNT", "h") == NOT_HLL
    assert wire_error(server, "PFDEBUG", "GETREG", "nokey") == (
        "ERR The specified key does not exist")
    assert rb.execute_command("PFSELFTEST") == b"OK"


def test_huge_corrupt_value_costs_no_more_than_a_valid_one(
        rb: redis.Redis, server: Server) -> None:
    """Millions of opcodes past the 16384th register are not walked (Redis stops there too)."""
    rb.set("h", b"HYLL\x01" + bytes(10) + b"\x80" + b"\x3f" * 4_000_000 + b"\xff")  # stale cache
    assert wire_error(server, "PFCOUNT", "h", "h") == INVALID
    assert wire_error(server, "PFCOUNT", "h") == INVALID
    assert wire_error(server, "PFDEBUG", "GETREG", "h") == INVALID


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if shutil.which(REDIS_SERVER) is None:
        pytest.skip("redis-server not installed")
    srv = RedisReference(Path(tmp_path_factory.mktemp("redis-hll"))).start()
    yield srv
    srv.stop()


@pytest.mark.skipif(IS_REDIS, reason="compares IronCache's values with redis-server's")
@pytest.mark.parametrize("max_bytes", [3000, 300])
def test_values_are_interchangeable_with_redis(
        rb: redis.Redis, reference: Server, max_bytes: int) -> None:
    """The same PFADD/PFMERGE/PFCOUNT sequence gives the same bytes on both servers, and a
    value written by one is read and extended by the other."""
    red = reference.client(decode_responses=False)
    red.flushall()
    for c in (rb, red):
        c.config_set("hll-sparse-max-bytes", max_bytes)
    rnd = random.Random(max_bytes)
    try:
        for step in range(120):
            key = rnd.choice([b"h1", b"h2", b"h3"])
            pick = rnd.random()
            if pick < 0.6:
                n = rnd.choice([1, 5, 60])
                cmd = [b"PFADD", key, *(b"%f" % rnd.random() for _ in range(n))]
            elif pick < 0.85:
                cmd = [b"PFCOUNT", *rnd.sample([b"h1", b"h2", b"h3"], rnd.randint(1, 3))]
            else:
                cmd = [b"PFMERGE", key, *rnd.sample([b"h1", b"h2", b"h3"], rnd.randint(0, 3))]
            assert rb.execute_command(*cmd) == red.execute_command(*cmd), (step, cmd[:2])
            for k in (b"h1", b"h2", b"h3"):
                assert rb.get(k) == red.get(k), (step, cmd[:2], k)
        # Crossed: each server extends and counts the other's values.
        for k in (b"h1", b"h2", b"h3"):
            mine, theirs = rb.get(k), red.get(k)
            rb.set(k + b"x", theirs)
            red.set(k + b"x", mine)
            more = [b"more%d" % i for i in range(50)]
            assert rb.pfadd(k + b"x", *more) == red.pfadd(k + b"x", *more)
            assert rb.get(k + b"x") == red.get(k + b"x")
            assert rb.pfcount(k + b"x") == red.pfcount(k + b"x")
    finally:
        rb.config_set("hll-sparse-max-bytes", 3000)
