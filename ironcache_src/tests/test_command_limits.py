"""Requests whose cost or answer depended on hostile arguments, checked against Redis 7.0.15
(issue 12): SRANDMEMBER counts, INCRBYFLOAT parsing, refusals inside MULTI, argument order
and range checks (LSET, EXPIRE and SET EX overflow, SELECT)."""

from __future__ import annotations

import time

import pytest
import redis

from support import Server, ironcache_only

LONG_RANGE = (
    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
)


def err(r: redis.Redis, *args: str) -> str:
    with pytest.raises(redis.ResponseError) as e:
        r.execute_command(*args)
    return str(e.value)


def test_srandmember_count_range(r: redis.Redis) -> None:
    r.sadd("s", "a")
    assert "ERR " + err(r, "SRANDMEMBER", "s", "-9223372036854775808") == LONG_RANGE
    assert err(r, "SRANDMEMBER", "s", "abc") == "value is not an integer or out of range"
    assert r.srandmember("s", -3) == ["a"] * 3
    assert r.srandmember("missing", -3) == []


def test_srandmember_large_negative_count(r: redis.Redis) -> None:
    r.sadd("s", *[f"m{i}" for i in range(100)])
    t = time.monotonic()
    out = r.srandmember("s", -500_000)
    elapsed = time.monotonic() - t
    assert len(out) == 500_000 and set(out) <= {f"m{i}" for i in range(100)}
    assert len(set(out)) == 100  # 500k picks out of 100 miss none in practice
    assert elapsed < 30  # generous: the reply is built in chunks, not one element at a time


@pytest.mark.parametrize("cmd", [("INCRBYFLOAT", "f"), ("HINCRBYFLOAT", "h", "x")])
def test_incrbyfloat_tiny_exponent_refused_at_once(r: redis.Redis, cmd: tuple[str, ...]) -> None:
    t = time.monotonic()
    assert err(r, *cmd, "1e-1000000") == "value is not a valid float"
    assert err(r, *cmd, "1e4933") == "value is not a valid float"
    assert time.monotonic() - t < 5  # was 19.7 s
    assert r.exists("f", "h") == 0


def test_incrbyfloat_long_double(r: redis.Redis) -> None:
    r.set("f", "10.5")
    assert r.incrbyfloat("f", 0.1) == 10.6
    assert r.get("f") == "10.6"
    assert r.execute_command("INCRBYFLOAT", "f", "0x10") == 26.6  # hex floats, as strtold
    assert r.get("f") == "26.6"
    assert err(r, "INCRBYFLOAT", "f", "inf") == "increment would produce NaN or Infinity"
    assert err(r, "INCRBYFLOAT", "f", " 1") == "value is not a valid float"
    assert err(r, "INCRBYFLOAT", "f", "1" * 5120) == "value is not a valid float"
    r.set("big", "1e4932")
    assert err(r, "INCRBYFLOAT", "big", "1e4932") == "increment would produce NaN or Infinity"
    r.hset("h", "x", "1")
    assert err(r, "HINCRBYFLOAT", "h", "x", "inf") == "value is NaN or Infinity"
    assert r.execute_command("HINCRBYFLOAT", "h", "x", "0x.8") == 1.5


@pytest.mark.parametrize("cmd", [("SHUTDOWN",), ("SAVE",), ("SHUTDOWN", "NOSAVE")])
def test_no_multi_commands_refused_in_transaction(server: Server, cmd: tuple[str, ...]) -> None:
    c = server.client()
    try:
        assert c.execute_command("MULTI") in ("OK", b"OK", True)
        assert err(c, *cmd) == "Command not allowed inside a transaction"
        with pytest.raises(redis.ResponseError, match="previous errors"):
            c.execute_command("EXEC")
        assert c.ping()
    finally:
        c.close()


def test_lset_checks_key_before_index(r: redis.Redis) -> None:
    r.set("str", "x")
    assert err(r, "LSET", "missing", "abc", "v") == "no such key"
    assert err(r, "LSET", "str", "abc", "v").startswith("WRONGTYPE")
    r.rpush("l", "a")
    assert err(r, "LSET", "l", "abc", "v") == "value is not an integer or out of range"
    assert err(r, "LSET", "l", "5", "v") == "index out of range"


def test_expire_overflow(r: redis.Redis) -> None:
    r.set("k", "v")
    big = "9223372036854775807"
    for cmd in ("EXPIRE", "PEXPIRE", "EXPIREAT"):
        assert err(r, cmd, "k", big) == f"invalid expire time in '{cmd.lower()}' command"
    assert err(r, "EXPIRE", "k", "-9223372036854776") == "invalid expire time in 'expire' command"
    for opt in ("EX", "PX", "EXAT"):
        assert err(r, "SET", "k", "v", opt, big) == "invalid expire time in 'set' command"
    assert err(r, "SETEX", "k", "9223372036854775", "v") == "invalid expire time in 'setex' command"
    assert err(r, "PSETEX", "k", big, "v") == "invalid expire time in 'psetex' command"
    assert r.ttl("k") == -1
    # A huge negative PEXPIRE is an expiry in the past: the key goes, as in Redis.
    assert r.execute_command("PEXPIRE", "k", "-9223372036854775808") == 1
    assert r.exists("k") == 0


def test_select_ranges(r: redis.Redis) -> None:
    out_of_int = "value is out of range, value must between -2147483648 and 2147483647"
    assert err(r, "SELECT", "2147483648") == out_of_int
    assert err(r, "SELECT", "-2147483649") == out_of_int
    assert err(r, "SELECT", "9223372036854775808") == "value is not an integer or out of range"
    assert err(r, "SELECT", "01") == "value is not an integer or out of range"
    assert err(r, "SELECT", "-1") == "DB index is out of range"
    assert err(r, "SELECT", "2147483647") == "DB index is out of range"


@ironcache_only
def test_srandmember_refuses_unbuildable_reply(r: redis.Redis) -> None:
    # Redis streams -LONG_MAX replies forever; IronCache refuses what exceeds 1 GB.
    r.sadd("s", "a")
    assert err(r, "SRANDMEMBER", "s", "-9223372036854775807").startswith("reply too large")
    assert r.ping()
