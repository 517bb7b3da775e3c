"""Hashes, lists and sets."""

from __future__ import annotations

import pytest
import redis

from support import Server, wire_error

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"


# -- hashes ---------------------------------------------------------------------------------

def test_hset_hget_hmget(r: redis.Redis) -> None:
    assert r.hset("h", mapping={"a": "1", "b": "2"}) == 2
    assert r.hset("h", mapping={"b": "3", "c": "4"}) == 1  # counts only new fields
    assert r.hget("h", "b") == "3"
    assert r.hget("h", "missing") is None
    assert r.hget("nokey", "f") is None
    assert r.hmget("h", ["a", "missing", "c"]) == ["1", None, "4"]
    assert r.hmget("nokey", ["a", "b"]) == [None, None]
    assert r.execute_command("HMSET", "h", "d", "5") is True
    assert r.hlen("h") == 4


def test_hset_arity(server: Server) -> None:
    assert wire_error(server, "HSET", "h", "f") == \
        "ERR wrong number of arguments for 'hset' command"
    assert wire_error(server, "HSET", "h", "f", "v", "g") == \
        "ERR wrong number of arguments for 'hset' command"


def test_hdel_hlen_hexists(r: redis.Redis) -> None:
    r.hset("h", mapping={"a": "1", "b": "2", "c": "3"})
    assert r.hexists("h", "a") is True
    assert r.hexists("h", "z") is False
    assert r.hdel("h", "a", "z", "a") == 1
    assert r.hlen("h") == 2
    assert r.hdel("h", "b", "c") == 2
    assert r.exists("h") == 0  # the last field takes the key with it
    assert r.hlen("h") == 0


def test_hgetall_hkeys_hvals(r: redis.Redis) -> None:
    assert r.hgetall("nokey") == {}
    r.hset("h", mapping={"a": "1", "b": "2", "c": "3"})
    assert r.hgetall("h") == {"a": "1", "b": "2", "c": "3"}
    assert sorted(r.hkeys("h")) == ["a", "b", "c"]
    assert sorted(r.hvals("h")) == ["1", "2", "3"]
    assert r.hkeys("nokey") == []


def test_hincrby_hincrbyfloat(server: Server, r: redis.Redis) -> None:
    assert r.hincrby("h", "n", 5) == 5
    assert r.hincrby("h", "n", -7) == -2
    assert r.hincrbyfloat("h", "f", 10.5) == 10.5
    with server.raw() as c:
        assert c.call("HINCRBYFLOAT", "h", "f", "0.1") == b"10.6"
        assert c.call("HINCRBYFLOAT", "h", "g", "5.0e3") == b"5000"
    r.hset("h", "s", "abc")
    assert wire_error(server, "HINCRBY", "h", "s", "1") == "ERR hash value is not an integer"
    assert wire_error(server, "HINCRBYFLOAT", "h", "s", "1") == "ERR hash value is not a float"
    assert wire_error(server, "HINCRBYFLOAT", "h", "f", "inf") == "ERR value is NaN or Infinity"
    assert wire_error(server, "HINCRBY", "h", "n", "x") == \
        "ERR value is not an integer or out of range"
    r.hset("h", "big", str(2**63 - 1))
    assert wire_error(server, "HINCRBY", "h", "big", "1") == \
        "ERR increment or decrement would overflow"


def test_hsetnx(r: redis.Redis) -> None:
    assert r.hsetnx("h", "f", "1") == 1
    assert r.hsetnx("h", "f", "2") == 0
    assert r.hget("h", "f") == "1"


def test_hscan_complete(r: redis.Redis) -> None:
    fields = {f"field:{i}": str(i) for i in range(700)}
    r.hset("big", mapping=fields)
    assert dict(r.hscan_iter("big", count=30)) == fields
    assert dict(r.hscan_iter("big", match="field:1?")) == \
        {f"field:{i}": str(i) for i in range(10, 20)}
    r.hset("small", mapping={"a": "1", "b": "2"})
    assert r.hscan("small", 0) == (0, {"a": "1", "b": "2"})
    assert r.hscan("nokey", 0) == (0, {})


def test_hscan_by_hand(r: redis.Redis) -> None:
    fields = {f"f{i}": str(i) for i in range(300)}
    r.hset("h", mapping=fields)
    cursor, seen = "0", {}
    for _ in range(10_000):
        cur, flat = r.execute_command("HSCAN", "h", cursor, "COUNT", "17")
        seen.update(flat if isinstance(flat, dict) else dict(zip(flat[::2], flat[1::2],
                                                                   strict=True)))
        cursor = str(cur)
        if cursor == "0":
            break
    assert seen == fields


def test_hash_wrongtype(server: Server, r: redis.Redis) -> None:
    r.set("s", "v")
    for cmd in (["HGET", "s", "f"], ["HSET", "s", "f", "v"], ["HGETALL", "s"], ["HLEN", "s"],
                ["HDEL", "s", "f"], ["HINCRBY", "s", "f", "1"], ["HSCAN", "s", "0"]):
        assert wire_error(server, *cmd) == WRONGTYPE, cmd


# -- lists ----------------------------------------------------------------------------------

def test_push_range_len_index(r: redis.Redis) -> None:
    assert r.rpush("l", "a", "b", "c") == 3
    assert r.lpush("l", "z", "y") == 5
    assert r.lrange("l", 0, -1) == ["y", "z", "a", "b", "c"]
    assert r.lrange("l", -2, -1) == ["b", "c"]
    assert r.lrange("l", 1, 2) == ["z", "a"]
    assert r.lrange("l", 3, 100) == ["b", "c"]
    assert r.lrange("l", -100, 0) == ["y"]
    assert r.lrange("l", 4, 2) == []
    assert r.lrange("nokey", 0, -1) == []
    assert r.llen("l") == 5
    assert r.llen("nokey") == 0
    assert r.lindex("l", 0) == "y"
    assert r.lindex("l", -1) == "c"
    assert r.lindex("l", 99) is None


def test_lpop_rpop_with_count(server: Server, r: redis.Redis) -> None:
    r.rpush("l", "a", "b", "c", "d", "e")
    assert r.lpop("l") == "a"
    assert r.rpop("l") == "e"
    r.rpush("l", "e", "f")
    assert r.lpop("l", 2) == ["b", "c"]
    assert r.rpop("l", 2) == ["f", "e"]
    assert r.lpop("l", 10) == ["d"]
    assert r.exists("l") == 0
    assert r.lpop("l") is None
    assert r.lpop("l", 3) is None
    with server.raw() as c:
        assert c.call("LPOP", "nokey", "2") is None
        c.call("RPUSH", "l2", "x")
        assert c.call("LPOP", "l2", "0") == []
        assert c.call("RPOP", "l2", "1") == [b"x"]
    assert wire_error(server, "LPOP", "l", "-1") == "ERR value is out of range, must be positive"
    assert wire_error(server, "LPOP", "l", "1", "2") == \
        "ERR wrong number of arguments for 'lpop' command"
    assert wire_error(server, "RPOP", "l", "1", "2") == \
        "ERR wrong number of arguments for 'rpop' command"


def test_lrem_signs(r: redis.Redis) -> None:
    r.rpush("l", "a", "b", "a", "c", "a", "d", "a")
    assert r.lrem("l", 2, "a") == 2  # first two from the head
    assert r.lrange("l", 0, -1) == ["b", "c", "a", "d", "a"]
    assert r.lrem("l", -1, "a") == 1  # one from the tail
    assert r.lrange("l", 0, -1) == ["b", "c", "a", "d"]
    r.rpush("l", "a", "a")
    assert r.lrem("l", 0, "a") == 3  # all
    assert r.lrange("l", 0, -1) == ["b", "c", "d"]
    assert r.lrem("l", 0, "zzz") == 0
    assert r.lrem("nokey", 0, "a") == 0
    r.delete("m")
    r.rpush("m", "x")
    assert r.lrem("m", 1, "x") == 1
    assert r.exists("m") == 0


def test_ltrim(r: redis.Redis) -> None:
    r.rpush("l", *"abcdefg")
    assert r.ltrim("l", 1, -2) is True
    assert r.lrange("l", 0, -1) == list("bcdef")
    assert r.ltrim("l", -3, -1) is True
    assert r.lrange("l", 0, -1) == list("def")
    assert r.ltrim("l", 5, 10) is True  # empty range removes the key
    assert r.exists("l") == 0
    assert r.ltrim("nokey", 0, 1) is True


def test_list_wrongtype_and_errors(server: Server, r: redis.Redis) -> None:
    r.set("s", "v")
    for cmd in (["LPUSH", "s", "x"], ["RPUSH", "s", "x"], ["LPOP", "s"], ["LRANGE", "s", "0", "1"],
                ["LLEN", "s"], ["LREM", "s", "0", "x"], ["LTRIM", "s", "0", "1"],
                ["LINDEX", "s", "0"]):
        assert wire_error(server, *cmd) == WRONGTYPE, cmd
    assert wire_error(server, "LRANGE", "l", "a", "1") == \
        "ERR value is not an integer or out of range"
    assert wire_error(server, "LPUSH", "l") == "ERR wrong number of arguments for 'lpush' command"


# -- sets -----------------------------------------------------------------------------------

def test_sets(server: Server, r: redis.Redis) -> None:
    assert r.sadd("s", "a", "b", "a") == 2
    assert r.sadd("s", "b", "c") == 1
    assert r.smembers("s") == {"a", "b", "c"}
    assert r.scard("s") == 3
    assert r.sismember("s", "a") == 1
    assert r.sismember("s", "z") == 0
    assert r.sismember("nokey", "a") == 0
    assert r.srem("s", "a", "z") == 1
    assert r.smembers("nokey") == set()
    assert r.scard("nokey") == 0
    assert r.srem("s", "b", "c") == 2
    assert r.exists("s") == 0
    r.set("str", "v")
    for cmd in (["SADD", "str", "x"], ["SMEMBERS", "str"], ["SCARD", "str"],
                ["SISMEMBER", "str", "x"], ["SREM", "str", "x"]):
        assert wire_error(server, *cmd) == WRONGTYPE, cmd


def test_large_set_members(r: redis.Redis) -> None:
    members = {f"m{i}" for i in range(1000)}
    r.sadd("big", *members)
    assert r.smembers("big") == members
    assert r.scard("big") == 1000


def test_sscan(r: redis.Redis) -> None:
    members = {f"m:{i}" for i in range(700)}
    r.sadd("big", *members)
    assert set(r.sscan_iter("big", count=30)) == members
    assert set(r.sscan_iter("big", match="m:1?")) == {f"m:{i}" for i in range(10, 20)}
    r.sadd("small", "a", "b")
    cursor, got = r.sscan("small", 0)
    assert (cursor, sorted(got)) == (0, ["a", "b"])
    assert r.sscan("nokey", 0) == (0, [])
    r.set("str", "v")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.sscan("str", 0)
    with pytest.raises(redis.ResponseError, match="syntax error"):
        r.execute_command("SSCAN", "small", "0", "TYPE", "set")  # SCAN's option only
    with pytest.raises(redis.ResponseError, match="invalid cursor"):
        r.execute_command("SSCAN", "small", "1x")
