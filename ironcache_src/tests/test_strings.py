"""String commands, with the options and edge cases clients rely on (checked against Redis)."""

from __future__ import annotations

import time

import pytest
import redis

from support import RespError, Server, poll, wire_error


def test_set_get_basic(r: redis.Redis) -> None:
    assert r.get("missing") is None
    assert r.set("k", "v") is True
    assert r.get("k") == "v"
    assert r.set("k", "") is True
    assert r.get("k") == ""


def test_binary_safe_values(server: Server) -> None:
    c = server.client(decode_responses=False)
    value = bytes(range(256)) * 4 + b"\r\n$3\r\n*1\r\n"
    c.set(b"bin\x00key\r\n", value)
    assert c.get(b"bin\x00key\r\n") == value
    c.delete(b"bin\x00key\r\n")


def test_set_ex_px(r: redis.Redis) -> None:
    r.set("k", "v", ex=100)
    assert 95 <= r.ttl("k") <= 100
    r.set("k", "v", px=100_000)
    assert 95_000 <= r.pttl("k") <= 100_000
    r.set("k", "v")  # a plain SET clears the TTL
    assert r.ttl("k") == -1


def test_set_exat_pxat(r: redis.Redis) -> None:
    now = int(time.time())
    r.set("k", "v", exat=now + 1000)
    assert 990 <= r.ttl("k") <= 1000
    assert r.expiretime("k") == now + 1000
    r.set("k", "v", pxat=(now + 2000) * 1000)
    assert r.expiretime("k") == now + 2000
    assert r.pexpiretime("k") == (now + 2000) * 1000


def test_set_exat_in_the_past_deletes(r: redis.Redis) -> None:
    r.set("k", "v")
    assert r.set("k", "v2", exat=int(time.time()) - 10) is True
    assert r.get("k") is None
    assert r.exists("k") == 0


def test_set_nx_xx(r: redis.Redis) -> None:
    assert r.set("k", "1", xx=True) is None
    assert r.get("k") is None
    assert r.set("k", "1", nx=True) is True
    assert r.set("k", "2", nx=True) is None
    assert r.get("k") == "1"
    assert r.set("k", "3", xx=True) is True
    assert r.get("k") == "3"


def test_set_keepttl(r: redis.Redis) -> None:
    r.set("k", "v", ex=500)
    r.set("k", "v2", keepttl=True)
    assert r.get("k") == "v2"
    assert 490 <= r.ttl("k") <= 500


def test_set_get_option(r: redis.Redis) -> None:
    assert r.set("k", "a", get=True) is None
    assert r.set("k", "b", get=True) == "a"
    assert r.get("k") == "b"
    # NX + GET (Redis >= 7.0): returns the old value, does not set.
    assert r.set("k", "c", nx=True, get=True) == "b"
    assert r.get("k") == "b"
    assert r.set("k2", "x", xx=True, get=True) is None
    assert r.exists("k2") == 0


def test_set_get_on_wrong_type(server: Server, r: redis.Redis) -> None:
    r.rpush("l", "x")
    assert wire_error(server, "SET", "l", "v", "GET").startswith("WRONGTYPE ")
    assert r.type("l") == "list"


def test_set_option_errors(server: Server) -> None:
    assert wire_error(server, "SET", "k", "v", "NX", "XX") == "ERR syntax error"
    assert wire_error(server, "SET", "k", "v", "EX", "10", "PX", "100") == "ERR syntax error"
    assert wire_error(server, "SET", "k", "v", "EX") == "ERR syntax error"
    assert wire_error(server, "SET", "k", "v", "BOGUS") == "ERR syntax error"
    assert wire_error(server, "SET", "k", "v", "EX", "0") == \
        "ERR invalid expire time in 'set' command"
    assert wire_error(server, "SET", "k", "v", "PX", "-5") == \
        "ERR invalid expire time in 'set' command"
    assert wire_error(server, "SET", "k", "v", "EX", "abc") == \
        "ERR value is not an integer or out of range"
    assert wire_error(server, "SET", "k", "v", "KEEPTTL", "EX", "10") == "ERR syntax error"


def test_set_repeated_option_last_wins(r: redis.Redis, server: Server) -> None:
    with server.raw() as c:
        assert c.call("SET", "k", "v", "PX", "100000", "PX", "200000") == "OK"
        assert c.call("SET", "k2", "v", "EX", "0", "EX", "100") == "OK"
    assert 190_000 <= r.pttl("k") <= 200_000
    assert 95 <= r.ttl("k2") <= 100


def test_set_options_case_insensitive(server: Server, r: redis.Redis) -> None:
    with server.raw() as c:
        assert c.call("set", "k", "v", "ex", "100", "nx") == "OK"
    assert 0 < r.ttl("k") <= 100


def test_setnx_setex_psetex(server: Server, r: redis.Redis) -> None:
    assert r.setnx("k", "1") is True
    assert r.setnx("k", "2") is False
    assert r.get("k") == "1"
    assert r.setex("e", 100, "v") is True
    assert 95 <= r.ttl("e") <= 100
    assert r.psetex("p", 100_000, "v") is True
    assert 95_000 <= r.pttl("p") <= 100_000
    assert wire_error(server, "SETEX", "e", "0", "v") == \
        "ERR invalid expire time in 'setex' command"
    assert wire_error(server, "PSETEX", "e", "-1", "v") == \
        "ERR invalid expire time in 'psetex' command"


def test_mget_mset_msetnx(r: redis.Redis) -> None:
    assert r.mset({"a": "1", "b": "2"}) is True
    r.rpush("list", "x")
    assert r.mget("a", "b", "missing", "list") == ["1", "2", None, None]
    assert r.msetnx({"c": "3", "a": "new"}) is False  # all or nothing
    assert r.get("c") is None
    assert r.get("a") == "1"
    assert r.msetnx({"c": "3", "d": "4"}) is True
    assert r.mget("c", "d") == ["3", "4"]


def test_mset_odd_arguments(server: Server) -> None:
    assert wire_error(server, "MSET", "a", "1", "b") == \
        "ERR wrong number of arguments for 'mset' command"


def test_getset_getdel(server: Server, r: redis.Redis) -> None:
    assert r.getset("k", "1") is None
    assert r.getset("k", "2") == "1"
    assert r.getdel("k") == "2"
    assert r.exists("k") == 0
    assert r.getdel("k") is None
    r.hset("h", "f", "v")
    assert wire_error(server, "GETDEL", "h").startswith("WRONGTYPE")
    assert r.exists("h") == 1


def test_getex(server: Server, r: redis.Redis) -> None:
    assert r.getex("missing", ex=10) is None
    r.set("k", "v")
    assert r.getex("k") == "v"
    assert r.ttl("k") == -1
    assert r.getex("k", ex=100) == "v"
    assert 95 <= r.ttl("k") <= 100
    assert r.getex("k", px=200_000) == "v"
    assert 190_000 <= r.pttl("k") <= 200_000
    now = int(time.time())
    assert r.getex("k", exat=now + 300) == "v"
    assert r.expiretime("k") == now + 300
    assert r.getex("k", pxat=(now + 400) * 1000) == "v"
    assert r.expiretime("k") == now + 400
    assert r.getex("k", persist=True) == "v"
    assert r.ttl("k") == -1
    assert wire_error(server, "GETEX", "k", "EX", "0") == \
        "ERR invalid expire time in 'getex' command"
    assert wire_error(server, "GETEX", "k", "EX", "10", "PERSIST") == "ERR syntax error"


def test_append_strlen(r: redis.Redis) -> None:
    assert r.strlen("k") == 0
    assert r.append("k", "Hello") == 5
    assert r.append("k", " World") == 11
    assert r.get("k") == "Hello World"
    assert r.strlen("k") == 11


def test_incr_decr(server: Server, r: redis.Redis) -> None:
    assert r.incr("n") == 1
    assert r.incrby("n", 10) == 11
    assert r.decr("n") == 10
    assert r.decrby("n", 15) == -5
    assert r.get("n") == "-5"
    r.set("big", str(2**63 - 1))
    assert wire_error(server, "INCR", "big") == "ERR increment or decrement would overflow"
    r.set("s", "abc")
    assert wire_error(server, "INCR", "s") == "ERR value is not an integer or out of range"
    r.set("s", " 1")
    assert wire_error(server, "INCR", "s") == "ERR value is not an integer or out of range"
    assert wire_error(server, "INCRBY", "n", "1.5") == \
        "ERR value is not an integer or out of range"
    r.set("ttl", "1", ex=100)
    r.incr("ttl")
    assert 0 < r.ttl("ttl") <= 100  # INCR keeps the TTL


@pytest.mark.parametrize(
    ("start", "incr", "expected"),
    [
        ("10.50", "0.1", "10.6"),
        ("10.6", "-5", "5.6"),
        ("5.0e3", "2.0e2", "5200"),
        ("3.0", "0", "3"),
        ("0", "0.1", "0.1"),
        ("0.1", "0.2", "0.3"),
        ("1", "1.5", "2.5"),
        ("-1", "0.25", "-0.75"),
        ("10", "-10", "0"),
        ("100", "1e2", "200"),
        ("1e17", "0", "100000000000000000"),  # never exponent notation
        ("1e20", "1", "100000000000000000000"),
        ("0.000001", "0", "0.000001"),
        ("1", "-0.5e-3", "0.9995"),
    ],
)
def test_incrbyfloat_formatting(server: Server, r: redis.Redis, start: str, incr: str,
                                expected: str) -> None:
    r.set("f", start)
    with server.raw() as c:
        assert c.call("INCRBYFLOAT", "f", incr) == expected.encode()
    assert r.get("f") == expected


def test_incrbyfloat_missing_and_errors(server: Server, r: redis.Redis) -> None:
    with server.raw() as c:
        assert c.call("INCRBYFLOAT", "nf", "1.5") == b"1.5"
    r.set("s", "abc")
    assert wire_error(server, "INCRBYFLOAT", "s", "1") == "ERR value is not a valid float"
    assert wire_error(server, "INCRBYFLOAT", "nf", "x") == "ERR value is not a valid float"
    r.set("huge", "1e308")
    assert wire_error(server, "INCRBYFLOAT", "huge", "inf") == \
        "ERR increment would produce NaN or Infinity"
    assert wire_error(server, "INCRBYFLOAT", "huge", "nan") == "ERR value is not a valid float"
    assert r.get("huge") == "1e308"


def test_getrange(r: redis.Redis) -> None:
    r.set("s", "This is a string")
    assert r.getrange("s", 0, 3) == "This"
    assert r.getrange("s", -3, -1) == "ing"
    assert r.getrange("s", 0, -1) == "This is a string"
    assert r.getrange("s", 10, 100) == "string"
    assert r.getrange("s", -100, 3) == "This"
    assert r.getrange("s", -100, -1) == "This is a string"
    assert r.getrange("s", 5, 3) == ""
    assert r.getrange("s", 100, 200) == ""
    assert r.getrange("missing", 0, -1) == ""


def test_setrange_padding(server: Server, rb: redis.Redis) -> None:
    assert rb.setrange("k", 6, "Redis") == 11
    assert rb.get("k") == b"\x00" * 6 + b"Redis"
    rb.set("h", "Hello World")
    assert rb.setrange("h", 6, "Redis") == 11
    assert rb.get("h") == b"Hello Redis"
    assert rb.setrange("h", 20, "!") == 21
    assert rb.get("h") == b"Hello Redis" + b"\x00" * 9 + b"!"
    assert rb.setrange("empty", 5, "") == 0
    assert rb.exists("empty") == 0
    assert wire_error(server, "SETRANGE", "k", "-1", "x") == "ERR offset is out of range"


def test_string_commands_on_wrong_type(server: Server, r: redis.Redis) -> None:
    r.hset("h", "f", "v")
    wrongtype = "WRONGTYPE Operation against a key holding the wrong kind of value"
    for cmd in (["GET", "h"], ["APPEND", "h", "x"], ["STRLEN", "h"], ["INCR", "h"],
                ["GETRANGE", "h", "0", "1"], ["SETRANGE", "h", "0", "x"], ["GETSET", "h", "x"],
                ["INCRBYFLOAT", "h", "1"]):
        assert wire_error(server, *cmd) == wrongtype, cmd
    # SET overwrites whatever type was there.
    assert r.set("h", "now a string") is True
    assert r.type("h") == "string"


def test_lazy_expiry_on_access(r: redis.Redis) -> None:
    r.set("k", "v", px=50)
    assert poll(lambda: r.get("k") is None, 10, 0.01, "key to expire")
    assert r.exists("k") == 0
    assert r.ttl("k") == -2


def test_set_reply_on_wire(server: Server) -> None:
    with server.raw() as c:
        assert c.call("SET", "wk", "v") == "OK"
        assert c.call("GET", "wk") == b"v"
        assert c.call("GET", "nothere") is None
        assert c.call("SET", "wk", "v", "NX") is None
        assert isinstance(c.call("DEL", "wk"), int)
        assert not isinstance(c.call("PING"), RespError)


# -- LCS ------------------------------------------------------------------------------------

def test_lcs(r: redis.Redis, server: Server) -> None:
    r.mset({"a": "ohmytext", "b": "mynewtext"})
    assert r.lcs("a", "b") == "mytext"
    assert r.lcs("a", "b", len=True) == 6
    assert r.execute_command("LCS", "a", "b", "IDX") == [
        "matches", [[[4, 7], [5, 8]], [[2, 3], [0, 1]]], "len", 6]
    assert r.execute_command("LCS", "a", "b", "IDX", "MINMATCHLEN", "4", "WITHMATCHLEN") == [
        "matches", [[[4, 7], [5, 8], 4]], "len", 6]
    assert r.execute_command("LCS", "a", "b", "IDX", "MINMATCHLEN", "-5") == [
        "matches", [[[4, 7], [5, 8]], [[2, 3], [0, 1]]], "len", 6]
    assert r.lcs("a", "nokey") == "" and r.lcs("nokey", "nokey2", len=True) == 0
    assert wire_error(server, "LCS", "a", "b", "LEN", "IDX") == (
        "ERR If you want both the length and indexes, please just use IDX.")
    assert wire_error(server, "LCS", "a", "b", "MINMATCHLEN") == "ERR syntax error"
    assert wire_error(server, "LCS", "a", "b", "MINMATCHLEN", "x") == (
        "ERR value is not an integer or out of range")
    r.rpush("l", "x")
    assert wire_error(server, "LCS", "a", "l") == (
        "ERR The specified keys must contain string values")


def test_lcs_is_a_longest_common_subsequence(r: redis.Redis) -> None:
    """Against a plain dynamic-programming length, on strings long enough for many words."""
    import random

    rnd = random.Random(5)
    for _ in range(20):
        a = "".join(rnd.choice("ACGT") for _ in range(rnd.randrange(0, 300)))
        b = "".join(rnd.choice("ACGT") for _ in range(rnd.randrange(0, 300)))
        r.mset({"a": a, "b": b})
        prev = [0] * (len(b) + 1)
        for ch in a:
            row = [0]
            for j, cb in enumerate(b):
                row.append(prev[j] + 1 if ch == cb else max(prev[j + 1], row[j]))
            prev = row
        got = r.lcs("a", "b")
        assert len(got) == prev[-1] == r.lcs("a", "b", len=True)
        it = iter(a)
        assert all(ch in it for ch in got)  # a subsequence of a (and, the same way, of b)
        it = iter(b)
        assert all(ch in it for ch in got)


def test_lcs_refuses_a_table_over_proto_max_bulk_len(r: redis.Redis, server: Server) -> None:
    r.mset({"a": "x" * 2000, "b": "y" * 2000})
    r.config_set("proto-max-bulk-len", "1mb")
    try:
        assert wire_error(server, "LCS", "a", "b") == (
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len")
    finally:
        r.config_set("proto-max-bulk-len", "512mb")
    assert r.lcs("a", "b", len=True) == 0
