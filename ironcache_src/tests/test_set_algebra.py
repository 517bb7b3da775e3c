"""Set algebra: SINTER/SUNION/SDIFF and their STORE forms, SINTERCARD, SMOVE, SMISMEMBER,
with Redis 7.0's replies and error wording (checked against redis-server too)."""

from __future__ import annotations

import pytest
import redis

from support import Server, wire_error

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"


@pytest.fixture
def sets(r: redis.Redis) -> redis.Redis:
    r.sadd("s1", "a", "b", "c", "d")
    r.sadd("s2", "c", "d", "e")
    r.sadd("s3", "d", "e", "f")
    return r


def test_inter_union_diff(sets: redis.Redis) -> None:
    r = sets
    assert r.sinter("s1", "s2") == {"c", "d"}
    assert r.sinter("s1", "s2", "s3") == {"d"}
    assert r.sinter("s1") == {"a", "b", "c", "d"}
    assert r.sunion("s1", "s3") == {"a", "b", "c", "d", "e", "f"}
    assert r.sdiff("s1", "s2", "s3") == {"a", "b"}
    assert r.sdiff("s2", "s1") == {"e"}
    # A missing key is an empty set.
    assert r.sinter("s1", "nokey") == set()
    assert r.sunion("nokey", "s2") == {"c", "d", "e"}
    assert r.sdiff("nokey", "s1") == set()
    assert r.sdiff("s1", "nokey") == {"a", "b", "c", "d"}
    assert r.sdiff("s1", "s1") == set()


def test_store_forms_replace_or_delete_the_destination(sets: redis.Redis) -> None:
    r = sets
    r.set("dst", "a string")
    r.expire("dst", 100)
    assert r.sinterstore("dst", ["s1", "s2"]) == 2
    assert r.type("dst") == "set" and r.smembers("dst") == {"c", "d"}
    assert r.ttl("dst") == -1
    assert r.sunionstore("dst", ["s1", "s3"]) == 6
    assert r.sdiffstore("dst", ["s1", "s2"]) == 2 and r.smembers("dst") == {"a", "b"}
    # The destination may be a source.
    assert r.sunionstore("s1", ["s1", "s3"]) == 6
    assert r.scard("s1") == 6
    # An empty result deletes the destination.
    assert r.sinterstore("dst", ["s2", "nokey"]) == 0
    assert r.exists("dst") == 0
    r.sadd("dst", "x")
    assert r.sdiffstore("dst", ["s2", "s2"]) == 0
    assert r.exists("dst") == 0
    assert r.sunionstore("dst", ["nokey"]) == 0 and r.exists("dst") == 0


def test_stored_set_is_a_copy(sets: redis.Redis) -> None:
    r = sets
    r.sunionstore("copy", ["s2"])
    r.sadd("copy", "new")
    assert r.smembers("s2") == {"c", "d", "e"}


def test_sintercard(sets: redis.Redis, server: Server) -> None:
    r = sets
    assert r.sintercard(2, ["s1", "s2"]) == 2
    assert r.sintercard(3, ["s1", "s2", "s3"]) == 1
    assert r.sintercard(2, ["s1", "s2"], limit=1) == 1
    assert r.sintercard(2, ["s1", "s2"], limit=0) == 2
    assert r.sintercard(2, ["s1", "s2"], limit=10) == 2
    assert r.sintercard(2, ["s1", "nokey"]) == 0
    assert wire_error(server, "SINTERCARD", "0", "s1") == "ERR numkeys should be greater than 0"
    assert wire_error(server, "SINTERCARD", "x", "s1") == "ERR numkeys should be greater than 0"
    assert (wire_error(server, "SINTERCARD", "3", "s1", "s2")
            == "ERR Number of keys can't be greater than number of args")
    for limit in ("-1", "x"):
        assert wire_error(server, "SINTERCARD", "1", "s1", "LIMIT", limit) == (
            "ERR LIMIT can't be negative")
    assert wire_error(server, "SINTERCARD", "1", "s1", "LIMIT") == "ERR syntax error"
    assert wire_error(server, "SINTERCARD", "1", "s1", "s2") == "ERR syntax error"


def test_smove(sets: redis.Redis) -> None:
    r = sets
    assert r.smove("s1", "s2", "a") is True
    assert "a" not in r.smembers("s1") and "a" in r.smembers("s2")
    assert r.smove("s1", "s2", "zzz") is False
    assert r.smove("nokey", "s2", "a") is False
    assert r.smove("s1", "new", "b") is True and r.smembers("new") == {"b"}
    assert r.smove("s1", "s1", "c") is True and r.smove("s1", "s1", "zzz") is False
    # Moving a member already in the destination still removes it from the source.
    assert r.smove("s1", "s2", "c") is True
    assert r.smembers("s1") == {"d"}
    assert r.smove("s1", "s2", "d") is True and r.exists("s1") == 0  # emptied: deleted


def test_smove_leaves_a_watched_destination_alone_when_the_member_was_there(
        server: Server, sets: redis.Redis) -> None:
    r = sets
    watcher = server.client()
    with watcher.pipeline() as p:
        p.watch("s2")
        p.multi()
        p.scard("s2")
        r.smove("s1", "s2", "c")  # c is in s2 already: s2 does not change
        assert p.execute() == [3]
    with watcher.pipeline() as p:
        p.watch("s2")
        p.multi()
        p.scard("s2")
        r.smove("s1", "s2", "a")
        with pytest.raises(redis.WatchError):
            p.execute()
    watcher.close()


def test_wrong_types(sets: redis.Redis, server: Server) -> None:
    r = sets
    r.set("str", "v")
    for cmd in (["SINTER", "s1", "str"], ["SUNION", "str", "s1"], ["SDIFF", "s1", "str"],
                ["SINTER", "nokey", "str"], ["SINTERSTORE", "d", "s1", "str"],
                ["SUNIONSTORE", "d", "str"], ["SDIFFSTORE", "d", "s1", "str"],
                ["SINTERCARD", "2", "s1", "str"], ["SMOVE", "str", "s1", "a"],
                ["SMOVE", "s1", "str", "a"], ["SMISMEMBER", "str", "a"]):
        assert wire_error(server, *cmd) == WRONGTYPE, cmd
    assert r.smove("nokey", "str", "a") is False  # a missing source answers first
    assert r.exists("d") == 0


def test_smismember(sets: redis.Redis, server: Server) -> None:
    assert sets.smismember("s1", ["a", "z", "d"]) == [1, 0, 1]
    assert sets.smismember("nokey", ["a"]) == [0]
    assert (wire_error(server, "SMISMEMBER", "s1")
            == "ERR wrong number of arguments for 'smismember' command")


def test_resp3_replies_are_sets(server: Server, sets: redis.Redis) -> None:
    with server.raw() as c:
        c.send(b"HELLO 3\r\n")
        c.read_reply()
        c.send(b"SINTER s1 s2\r\n")
        assert c.read_line() == b"~2"


def test_sadd_of_members_already_there_leaves_watchers_alone(
        server: Server, sets: redis.Redis) -> None:
    watcher = server.client()
    with watcher.pipeline() as p:
        p.watch("s1")
        p.multi()
        p.scard("s1")
        assert sets.sadd("s1", "a") == 0 and sets.sadd("s1", "a", "b") == 0
        assert p.execute() == [4]
    with watcher.pipeline() as p:
        p.watch("s1")
        p.multi()
        p.scard("s1")
        assert sets.sadd("s1", "a", "new") == 1
        with pytest.raises(redis.WatchError):
            p.execute()
    watcher.close()


def test_long_members_in_replies(r: redis.Redis) -> None:
    big = {"x" * 600, "y" * 70_000, "z"}
    r.sadd("b1", *big)
    r.sadd("b2", *big, "other")
    assert r.sinter("b1", "b2") == big and r.smembers("b1") == big
