"""Generic key commands: DEL/EXISTS/expiry family/TYPE/KEYS/SCAN/RENAME/RANDOMKEY/TOUCH/..."""

from __future__ import annotations

import time

import pytest
import redis

from support import Server, wire_error


def test_del_unlink_exists(r: redis.Redis) -> None:
    r.mset({"a": "1", "b": "2", "c": "3"})
    assert r.exists("a", "a", "missing", "b") == 3  # duplicates count twice
    assert r.delete("a", "missing") == 1
    assert r.unlink("b", "c", "c") == 2
    assert r.exists("a", "b", "c") == 0
    assert r.delete("nothing") == 0


def test_type(r: redis.Redis) -> None:
    r.set("s", "v")
    r.hset("h", "f", "v")
    r.rpush("l", "x")
    r.sadd("st", "m")
    assert [r.type(k) for k in ("s", "h", "l", "st", "missing")] == \
        ["string", "hash", "list", "set", "none"]


def test_ttl_pttl_persist(r: redis.Redis) -> None:
    assert r.ttl("missing") == -2
    assert r.pttl("missing") == -2
    r.set("k", "v")
    assert r.ttl("k") == -1
    assert r.pttl("k") == -1
    assert r.expire("k", 100) is True
    assert 95 <= r.ttl("k") <= 100
    assert 95_000 <= r.pttl("k") <= 100_000
    assert r.persist("k") is True
    assert r.persist("k") is False
    assert r.ttl("k") == -1
    assert r.persist("missing") is False
    assert r.expire("missing", 100) is False


def test_expiretime(r: redis.Redis) -> None:
    assert r.expiretime("missing") == -2
    r.set("k", "v")
    assert r.expiretime("k") == -1
    assert r.pexpiretime("k") == -1
    at = int(time.time()) + 500
    assert r.expireat("k", at) is True
    assert r.expiretime("k") == at
    assert r.pexpiretime("k") == at * 1000
    assert r.pexpireat("k", at * 1000 + 1234) is True
    assert r.pexpiretime("k") == at * 1000 + 1234


def test_pexpire(r: redis.Redis) -> None:
    r.set("k", "v")
    assert r.pexpire("k", 50_000) is True
    assert 45_000 <= r.pttl("k") <= 50_000


def test_expire_in_the_past_deletes(r: redis.Redis) -> None:
    r.set("a", "v")
    r.set("b", "v")
    r.set("c", "v")
    assert r.expire("a", -1) is True
    assert r.pexpire("b", 0) is True
    assert r.expireat("c", int(time.time()) - 100) is True
    assert r.exists("a", "b", "c") == 0


def test_expire_nx_xx_gt_lt(r: redis.Redis) -> None:
    r.set("k", "v")
    assert r.expire("k", 100, xx=True) is False  # no TTL yet
    assert r.ttl("k") == -1
    assert r.expire("k", 100, gt=True) is False  # no TTL counts as infinite
    assert r.expire("k", 100, nx=True) is True
    assert r.expire("k", 200, nx=True) is False
    assert 95 <= r.ttl("k") <= 100
    assert r.expire("k", 200, xx=True) is True
    assert 195 <= r.ttl("k") <= 200
    assert r.expire("k", 100, gt=True) is False
    assert r.expire("k", 300, gt=True) is True
    assert 295 <= r.ttl("k") <= 300
    assert r.expire("k", 400, lt=True) is False
    assert r.expire("k", 50, lt=True) is True
    assert 45 <= r.ttl("k") <= 50
    r.set("p", "v")
    assert r.expire("p", 100, lt=True) is True  # infinite > 100
    assert r.pexpire("p", 500_000, gt=True) is True
    assert r.pexpireat("p", (int(time.time()) + 10) * 1000, lt=True) is True
    assert r.expireat("p", int(time.time()) + 1000, nx=True) is False


def test_expire_option_errors(server: Server) -> None:
    assert wire_error(server, "EXPIRE", "k", "10", "NX", "XX") == \
        "ERR NX and XX, GT or LT options at the same time are not compatible"
    assert wire_error(server, "EXPIRE", "k", "10", "GT", "LT") == \
        "ERR GT and LT options at the same time are not compatible"
    assert wire_error(server, "EXPIRE", "k", "10", "FOO") == "ERR Unsupported option FOO"
    # options are checked before the number
    assert wire_error(server, "PEXPIRE", "k", "ten", "FOO") == "ERR Unsupported option FOO"
    assert wire_error(server, "EXPIRE", "k", "ten", "NX", "XX") == \
        "ERR NX and XX, GT or LT options at the same time are not compatible"
    assert wire_error(server, "EXPIRE", "k", "ten") == \
        "ERR value is not an integer or out of range"
    assert wire_error(server, "EXPIRE", "k", str(2**63 - 1)) == \
        "ERR invalid expire time in 'expire' command"


def test_keys_patterns(r: redis.Redis) -> None:
    r.mset({"hello": "1", "hallo": "1", "hxllo": "1", "hllo": "1", "heeeello": "1",
            "a*b": "1", "other": "1"})
    assert sorted(r.keys("h?llo")) == ["hallo", "hello", "hxllo"]
    assert sorted(r.keys("h*llo")) == ["hallo", "heeeello", "hello", "hllo", "hxllo"]
    assert sorted(r.keys("h[ae]llo")) == ["hallo", "hello"]
    assert sorted(r.keys("h[^e]llo")) == ["hallo", "hxllo"]
    assert sorted(r.keys("h[a-b]llo")) == ["hallo"]
    assert r.keys("a\\*b") == ["a*b"]
    assert len(r.keys("*")) == 7
    assert r.keys("nomatch*") == []


def test_rename_renamenx(server: Server, r: redis.Redis) -> None:
    r.set("a", "1", ex=100)
    assert r.rename("a", "b") is True
    assert r.exists("a") == 0
    assert r.get("b") == "1"
    assert 95 <= r.ttl("b") <= 100  # the TTL moves with the value
    r.set("c", "2")
    assert r.renamenx("b", "c") is False
    assert r.renamenx("b", "d") is True
    assert r.get("d") == "1"
    r.hset("h", "f", "v")
    assert r.rename("h", "d") is True  # overwrites whatever type was there
    assert r.type("d") == "hash"
    assert r.rename("d", "d") is True
    assert wire_error(server, "RENAME", "nokey", "x") == "ERR no such key"
    assert wire_error(server, "RENAMENX", "nokey", "x") == "ERR no such key"


def test_randomkey(r: redis.Redis) -> None:
    assert r.randomkey() is None
    r.mset({"a": "1", "b": "2"})
    for _ in range(20):
        assert r.randomkey() in ("a", "b")


def test_touch(r: redis.Redis) -> None:
    r.mset({"a": "1", "b": "2"})
    assert r.touch("a", "b", "missing") == 2


def test_dbsize(r: redis.Redis) -> None:
    assert r.dbsize() == 0
    r.mset({f"k{i}": "v" for i in range(25)})
    r.hset("h", "f", "v")
    assert r.dbsize() == 26


def _populate(r: redis.Redis) -> dict[str, str]:
    kinds: dict[str, str] = {}
    pipe = r.pipeline(transaction=False)
    for i in range(600):
        pipe.set(f"str:{i}", i)
        kinds[f"str:{i}"] = "string"
    for i in range(150):
        pipe.hset(f"hash:{i}", "f", i)
        kinds[f"hash:{i}"] = "hash"
    for i in range(100):
        pipe.rpush(f"list:{i}", i)
        kinds[f"list:{i}"] = "list"
    for i in range(50):
        pipe.sadd(f"set:{i}", i)
        kinds[f"set:{i}"] = "set"
    pipe.execute()
    return kinds


def _scan_all(r: redis.Redis, *args: str | int) -> list[str]:
    """Iterate SCAN by hand to cursor 0 (bounded), returning every key seen."""
    cursor = "0"
    seen: list[str] = []
    for _ in range(100_000):
        reply = r.execute_command("SCAN", cursor, *args)
        cursor, keys = str(reply[0]), reply[1]
        assert isinstance(keys, list)
        seen.extend(keys)
        if cursor == "0":
            return seen
    raise AssertionError("SCAN did not finish")


def test_scan_iterates_to_completion(r: redis.Redis) -> None:
    kinds = _populate(r)
    assert set(_scan_all(r)) == set(kinds)
    assert set(_scan_all(r, "COUNT", 7)) == set(kinds)
    assert set(_scan_all(r, "COUNT", 1000)) == set(kinds)
    assert set(r.scan_iter(count=50)) == set(kinds)


def test_scan_match(r: redis.Redis) -> None:
    kinds = _populate(r)
    expected = {k for k in kinds if k.startswith("str:1")}
    assert set(_scan_all(r, "MATCH", "str:1*")) == expected
    assert set(_scan_all(r, "MATCH", "str:1*", "COUNT", 20)) == expected
    assert set(r.scan_iter(match="set:?")) == {f"set:{i}" for i in range(10)}
    assert _scan_all(r, "MATCH", "nomatch*") == []


def test_scan_type(r: redis.Redis) -> None:
    kinds = _populate(r)
    for t in ("string", "hash", "list", "set"):
        assert set(_scan_all(r, "TYPE", t)) == {k for k, v in kinds.items() if v == t}, t
    assert set(r.scan_iter(_type="HASH", match="hash:1*")) == \
        {k for k, v in kinds.items() if v == "hash" and k.startswith("hash:1")}
    assert _scan_all(r, "TYPE", "bogus") == []


def test_scan_reply_shape_and_errors(server: Server, r: redis.Redis) -> None:
    r.set("k", "v")
    with server.raw() as c:
        reply = c.call("SCAN", "0")
    assert isinstance(reply, list) and len(reply) == 2
    assert reply[0] == b"0"
    assert reply[1] == [b"k"]
    assert wire_error(server, "SCAN", "x") == "ERR invalid cursor"
    assert wire_error(server, "SCAN", "0", "COUNT", "0") == "ERR syntax error"
    assert wire_error(server, "SCAN", "0", "BOGUS") == "ERR syntax error"


def test_scan_empty_db(r: redis.Redis) -> None:
    assert r.scan(0) == (0, [])


@pytest.mark.parametrize("db", [0, 3])
def test_flushdb_flushall(server: Server, db: int) -> None:
    c0 = server.client(db=db)
    c1 = server.client(db=db + 1)
    c0.flushall()
    c0.set("a", "1")
    c1.set("b", "2")
    assert c0.flushdb() is True
    assert c0.dbsize() == 0
    assert c1.dbsize() == 1
    c0.set("a", "1")
    assert c0.flushall() is True
    assert c0.dbsize() == 0 and c1.dbsize() == 0
    assert c0.execute_command("FLUSHALL", "ASYNC")
    assert c0.execute_command("FLUSHDB", "SYNC")
