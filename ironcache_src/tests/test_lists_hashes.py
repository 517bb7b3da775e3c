"""List and hash commands of Redis compatibility part 1: LINSERT, LPOS, LMPOP, HRANDFIELD,
MEMORY USAGE, with Redis 7.0's replies and error wording (IRONCACHE_TEST_TARGET=redis runs the
same tests against redis-server)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
import redis

from support import Server, ironcache_only, wire_error

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
RANK_ZERO = (
    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use "
    "negative to start from the end of the list"
)


# -- LINSERT ------------------------------------------------------------------------------------

def test_linsert(server: Server, r: redis.Redis) -> None:
    r.rpush("l", "a", "b", "c", "b")
    assert r.linsert("l", "BEFORE", "b", "x") == 5  # before the first match only
    assert r.linsert("l", "after", "b", "y") == 6
    assert r.lrange("l", 0, -1) == ["a", "x", "b", "y", "c", "b"]
    assert r.linsert("l", "AFTER", "b-not-there", "z") == -1
    assert r.linsert("nokey", "BEFORE", "a", "z") == 0
    assert r.exists("nokey") == 0
    assert r.linsert("l", "after", "b", "") == 7  # the last element too
    r.set("s", "v")
    assert wire_error(server, "LINSERT", "s", "BEFORE", "a", "b") == WRONGTYPE
    # the position is checked before the key: a syntax error even for a string or no key
    assert wire_error(server, "LINSERT", "s", "aft3r", "a", "b") == "ERR syntax error"
    assert wire_error(server, "LINSERT", "nokey", "middle", "a", "b") == "ERR syntax error"
    assert wire_error(server, "LINSERT", "l", "before", "a") == \
        "ERR wrong number of arguments for 'linsert' command"


def test_lrange_ltrim_match_python_slices(r: redis.Redis) -> None:
    """Every (start, end) pair, negative and past the ends, on a list long enough that LRANGE
    walks from the head or from the tail, against Redis's rules written with Python slices."""
    items = [str(i) for i in range(40)]
    r.rpush("l", *items)
    n = len(items)
    for start in (-50, -40, -39, -21, -20, -19, -1, 0, 1, 19, 20, 21, 39, 40, 50):
        for end in (-50, -41, -40, -21, -20, -1, 0, 1, 19, 20, 38, 39, 40, 50):
            s = max(start + n, 0) if start < 0 else start
            e = min(end + n if end < 0 else end, n - 1)
            want = items[s : e + 1] if s <= e and s < n else []
            assert r.lrange("l", start, end) == want, (start, end)
            r.delete("t")
            r.rpush("t", *items)
            r.ltrim("t", start, end)
            assert r.lrange("t", 0, -1) == want, (start, end)


# -- LPOS ---------------------------------------------------------------------------------------

def test_lpos_rank_count_maxlen(server: Server, r: redis.Redis) -> None:
    r.rpush("l", "a", "b", "c", "1", "2", "3", "c", "c")
    assert r.lpos("l", "a") == 0
    assert r.lpos("l", "c") == 2
    assert r.lpos("l", "c", rank=2) == 6
    assert r.lpos("l", "c", rank=4) is None
    assert r.lpos("l", "c", rank=-1) == 7
    assert r.lpos("l", "c", rank=-2) == 6
    assert r.lpos("l", "c", count=0) == [2, 6, 7]
    assert r.lpos("l", "c", count=2) == [2, 6]
    assert r.lpos("l", "c", count=100) == [2, 6, 7]
    assert r.lpos("l", "c", count=0, rank=2) == [6, 7]
    assert r.lpos("l", "c", count=2, rank=-1) == [7, 6]
    assert r.lpos("l", "c", count=0, maxlen=1) == []
    assert r.lpos("l", "c", count=0, maxlen=3) == [2]
    assert r.lpos("l", "c", count=0, maxlen=3, rank=-1) == [7, 6]  # MAXLEN counts from the tail
    assert r.lpos("l", "c", count=0, maxlen=7, rank=2) == [6]
    assert r.lpos("l", "x") is None
    assert r.lpos("l", "x", count=2) == []
    assert r.lpos("nokey", "x") is None
    assert r.lpos("nokey", "x", count=0, rank=2) == []
    with server.raw() as c:
        # an option given twice: the last one counts
        assert c.call("LPOS", "l", "c", "RANK", "5", "RANK", "1") == 2
        # -LONG_MIN does not exist: Redis negates it in place, which leaves it negative, so it
        # reports from the tail with no match skipped and, with COUNT, no limit
        assert c.call("LPOS", "l", "c", "RANK", "-9223372036854775808") == 7
        assert c.call("LPOS", "l", "c", "RANK", "-9223372036854775808", "COUNT", "1") == \
            [7, 6, 2]
        c.call("HELLO", "3")
        assert c.call("LPOS", "l", "x") is None
        assert c.types[-1] == b"_"


def test_lpos_errors(server: Server, r: redis.Redis) -> None:
    r.rpush("l", "a")
    r.set("s", "v")
    assert wire_error(server, "LPOS", "l", "a", "RANK", "0") == RANK_ZERO
    assert wire_error(server, "LPOS", "l", "a", "RANK", "x") == \
        "ERR value is not an integer or out of range"
    assert wire_error(server, "LPOS", "l", "a", "COUNT", "-1") == "ERR COUNT can't be negative"
    assert wire_error(server, "LPOS", "l", "a", "COUNT", "x") == "ERR COUNT can't be negative"
    assert wire_error(server, "LPOS", "l", "a", "MAXLEN", "-1") == "ERR MAXLEN can't be negative"
    assert wire_error(server, "LPOS", "l", "a", "RANK") == "ERR syntax error"
    assert wire_error(server, "LPOS", "l", "a", "BOGUS", "1") == "ERR syntax error"
    # the options are parsed before the key is looked up
    assert wire_error(server, "LPOS", "s", "a", "RANK", "0") == RANK_ZERO
    assert wire_error(server, "LPOS", "s", "a") == WRONGTYPE


# -- LMPOP --------------------------------------------------------------------------------------

def test_lmpop(server: Server, r: redis.Redis) -> None:
    r.rpush("l2", "a", "b", "c", "d")
    assert r.lmpop(2, "nokey", "l2", direction="LEFT") == ["l2", ["a"]]
    assert r.lmpop(2, "nokey", "l2", direction="RIGHT", count=2) == ["l2", ["d", "c"]]
    assert r.lmpop(1, "l2", direction="LEFT", count=10) == ["l2", ["b"]]
    assert r.exists("l2") == 0  # the last element takes the key with it
    assert r.lmpop(2, "nokey", "l2", direction="LEFT") is None
    with server.raw() as c:
        assert c.call("LMPOP", "1", "nokey", "left") is None
        assert c.types[-1] == b"*"  # RESP2: the null array
        c.call("HELLO", "3")
        assert c.call("LMPOP", "1", "nokey", "left") is None
        assert c.types[-1] == b"_"
        # the first non-empty key is popped, the later ones stay
        c.call("RPUSH", "x", "1")
        c.call("RPUSH", "y", "2")
        assert c.call("LMPOP", "3", "nokey", "x", "y", "RIGHT") == [b"x", [b"1"]]
        assert c.call("LRANGE", "y", "0", "-1") == [b"2"]


def test_lmpop_errors(server: Server, r: redis.Redis) -> None:
    r.set("s", "v")
    r.rpush("l", "a")
    numkeys = "ERR numkeys should be greater than 0"
    assert wire_error(server, "LMPOP", "0", "l", "LEFT") == numkeys
    assert wire_error(server, "LMPOP", "-1", "l", "LEFT") == numkeys
    assert wire_error(server, "LMPOP", "x", "l", "LEFT") == numkeys
    assert wire_error(server, "LMPOP", "2", "l", "LEFT") == "ERR syntax error"  # no side left
    assert wire_error(server, "LMPOP", "1", "l", "MIDDLE") == "ERR syntax error"
    assert wire_error(server, "LMPOP", "1", "l", "LEFT", "COUNT", "0") == \
        "ERR count should be greater than 0"
    assert wire_error(server, "LMPOP", "1", "l", "LEFT", "COUNT", "1", "COUNT", "1") == \
        "ERR syntax error"
    assert wire_error(server, "LMPOP", "1", "l") == \
        "ERR wrong number of arguments for 'lmpop' command"
    # a wrong type stops the walk even when a later key has elements
    assert wire_error(server, "LMPOP", "2", "s", "l", "LEFT") == WRONGTYPE
    assert r.llen("l") == 1


def test_lmove_rpoplpush_pushx(server: Server, r: redis.Redis) -> None:
    r.rpush("src", "a", "b", "c")
    assert r.lmove("src", "dst", "LEFT", "RIGHT") == "a"
    assert r.lmove("src", "dst", "RIGHT", "LEFT") == "c"
    assert r.rpoplpush("src", "src") == "b"  # rotation of a one-element list
    assert r.lrange("dst", 0, -1) == ["c", "a"]
    assert r.lmove("nokey", "dst", "LEFT", "LEFT") is None
    assert r.lpushx("nokey", "a") == 0
    assert r.rpushx("dst", "z", "y") == 4
    assert r.lpushx("dst", "q") == 5
    assert r.lrange("dst", 0, -1) == ["q", "c", "a", "z", "y"]
    assert r.exists("nokey") == 0
    r.set("s", "v")
    assert wire_error(server, "LMOVE", "dst", "s", "LEFT", "LEFT") == WRONGTYPE
    assert r.llen("dst") == 5  # the type is checked before anything moves
    assert wire_error(server, "LPUSHX", "s", "a") == WRONGTYPE
    assert wire_error(server, "LMOVE", "dst", "s", "UP", "LEFT") == "ERR syntax error"


@pytest.mark.parametrize("size", [1, 3])
def test_rotation_keeps_the_ttl(r: redis.Redis, size: int) -> None:
    r.rpush("k", *"abc"[:size])
    r.expire("k", 100)
    assert r.rpoplpush("k", "k") == "abc"[size - 1]
    assert r.lmove("k", "k", "LEFT", "RIGHT") == "abc"[size - 1]
    assert 0 < r.ttl("k") <= 100  # a one-element list is never empty in between
    assert r.lrange("k", 0, -1) == list("abc"[:size])


# -- HRANDFIELD ---------------------------------------------------------------------------------

def test_hrandfield(server: Server, r: redis.Redis) -> None:
    fields = {f"f{i}": f"v{i}" for i in range(5)}
    r.hset("h", mapping=fields)
    seen = {r.hrandfield("h") for _ in range(200)}
    assert seen == set(fields)  # every field comes up (chance of a miss: 5 * 0.8**200)
    assert r.hrandfield("nokey") is None
    assert r.hrandfield("nokey", 3) == []
    assert r.hrandfield("h", 0) == []
    distinct = r.hrandfield("h", 3)
    assert len(distinct) == 3 and len(set(distinct)) == 3 and set(distinct) <= set(fields)
    assert sorted(r.hrandfield("h", 10)) == sorted(fields)  # at most the whole hash
    repeated = r.hrandfield("h", -1000)
    assert len(repeated) == 1000 and set(repeated) == set(fields)
    with server.raw() as c:
        pairs = c.call("HRANDFIELD", "h", "-7", "WITHVALUES")
        assert len(pairs) == 14
        assert all(
            fields[f.decode()] == v.decode() for f, v in zip(pairs[::2], pairs[1::2], strict=True)
        )
        pairs = c.call("HRANDFIELD", "h", "2", "withvalues")
        assert len(pairs) == 4 and pairs[0] != pairs[2]
        c.call("HELLO", "3")
        nested = c.call("HRANDFIELD", "h", "3", "WITHVALUES")
        assert len(nested) == 3 and all(len(p) == 2 for p in nested)
        assert all(fields[f.decode()] == v.decode() for f, v in nested)
        nested = c.call("HRANDFIELD", "h", "-3", "WITHVALUES")
        assert len(nested) == 3 and all(len(p) == 2 for p in nested)
        assert len(c.call("HRANDFIELD", "h", "3")) == 3
        assert c.call("HRANDFIELD", "nokey") is None
        assert c.types[-1] == b"_"


def test_hrandfield_uniform_with_negative_count(r: redis.Redis) -> None:
    r.hset("h", mapping={"a": "1", "b": "2"})
    counts = Counter(r.hrandfield("h", -4000))
    # each of two fields: 2000 expected, 4000 draws; 1700 is more than 9 sigma away
    assert set(counts) == {"a", "b"} and min(counts.values()) > 1700


def test_hrandfield_uniform_with_positive_count(r: redis.Redis) -> None:
    r.hset("h", mapping={f"f{i}": "v" for i in range(10)})
    counts: Counter[str] = Counter()
    for _ in range(500):
        picked = r.hrandfield("h", 3)
        assert len(set(picked)) == 3
        counts.update(picked)
    # 150 expected per field (1500 picks over 10 fields), sigma about 11: 100 is 4.5 sigma
    assert len(counts) == 10 and min(counts.values()) > 100


def test_hrandfield_errors(server: Server, r: redis.Redis) -> None:
    r.hset("h", "a", "1")
    r.set("s", "v")
    out_of_range = "ERR value is out of range"
    assert wire_error(server, "HRANDFIELD", "h", "-9223372036854770000", "WITHVALUES") == \
        out_of_range
    long_min = "-9223372036854775808"
    full = (
        "ERR value is out of range, value must between -9223372036854775807 and "
        "9223372036854775807"
    )
    assert wire_error(server, "HRANDFIELD", "h", long_min) == full
    assert wire_error(server, "HRANDFIELD", "h", long_min, "WITHVALUES") == full
    assert wire_error(server, "HRANDFIELD", "h", "x") == \
        "ERR value is not an integer or out of range"
    assert wire_error(server, "HRANDFIELD", "h", "1", "WITHVALUE") == "ERR syntax error"
    assert wire_error(server, "HRANDFIELD", "h", "1", "WITHVALUES", "x") == "ERR syntax error"
    assert wire_error(server, "HRANDFIELD", "s") == WRONGTYPE
    assert wire_error(server, "HRANDFIELD", "s", "2") == WRONGTYPE


@ironcache_only
def test_hrandfield_refuses_a_reply_past_1gb(server: Server, r: redis.Redis) -> None:
    # Redis streams -LONG_MAX picks for as long as it takes; IronCache builds a reply whole
    r.hset("h", "a", "1")
    assert wire_error(server, "HRANDFIELD", "h", "-9223372036854775807") == \
        "ERR reply too large: the count asks for more than 1 GB"
    assert r.hlen("h") == 1


def test_hash_edge_cases(server: Server, r: redis.Redis) -> None:
    r.hset("h", mapping={"f": "hello", "n": "10.5"})
    assert r.hstrlen("h", "f") == 5
    assert r.hstrlen("h", "nofield") == 0
    assert r.hstrlen("nokey", "f") == 0
    assert r.hsetnx("h", "f", "x") == 0
    assert r.hsetnx("h", "g", "x") == 1
    assert r.hget("h", "g") == "x"
    with server.raw() as c:
        assert c.call("HINCRBYFLOAT", "h", "n", "1.5") == b"12"
        assert str(c.call("HINCRBYFLOAT", "h", "f", "1")) == "ERR hash value is not a float"
        assert str(c.call("HINCRBYFLOAT", "h", "n", "inf")) == "ERR value is NaN or Infinity"
        assert str(c.call("HINCRBYFLOAT", "h", "n", "x")) == "ERR value is not a valid float"
        assert c.call("HMSET", "h", "a", "1", "b", "2") == "OK"
    assert wire_error(server, "HMSET", "h", "a") == \
        "ERR wrong number of arguments for 'hmset' command"
    assert wire_error(server, "HMSET", "h", "a", "1", "b") == \
        "ERR wrong number of arguments for 'hmset' command"
    r.set("s", "v")
    for cmd in (["HSTRLEN", "s", "f"], ["HSETNX", "s", "f", "v"], ["HMSET", "s", "f", "v"],
                ["HINCRBYFLOAT", "s", "f", "1"], ["HEXISTS", "s", "f"]):
        assert wire_error(server, *cmd) == WRONGTYPE, cmd


# -- MEMORY USAGE -------------------------------------------------------------------------------

def test_memory_usage(server: Server, r: redis.Redis) -> None:
    r.rpush("l", "a", "b")
    assert r.memory_usage("l") > 0
    assert r.memory_usage("nokey") is None
    assert r.memory_usage("l", samples=0) > 0
    assert wire_error(server, "MEMORY", "USAGE", "l", "SAMPLES", "-1") == "ERR syntax error"
    assert wire_error(server, "MEMORY", "USAGE", "l", "SAMPLES", "x") == \
        "ERR value is not an integer or out of range"
    assert wire_error(server, "MEMORY", "USAGE", "l", "BOGUS") == "ERR syntax error"
    assert wire_error(server, "MEMORY", "USAGE") == \
        "ERR wrong number of arguments for 'memory|usage' command"
    assert wire_error(server, "MEMORY", "BOGUS") == \
        "ERR unknown subcommand 'BOGUS'. Try MEMORY HELP."


@ironcache_only
@pytest.mark.parametrize("build", ["linsert", "lmpop", "lpos", "ltrim"])
def test_list_accounting_matches_a_fresh_push(r: redis.Redis, build: str) -> None:
    """A list changed by LINSERT, LMPOP, LTRIM (or read by LPOS) is accounted as the same list
    pushed from scratch: MEMORY USAGE and used_memory agree with RPUSH of its elements."""
    before = r.info("memory")["used_memory"]
    if build == "linsert":
        r.rpush("l", "a", "c")
        r.linsert("l", "BEFORE", "c", "bbbbbbbbbbbbbbbb")
        r.linsert("l", "AFTER", "c", "d")
    elif build == "lmpop":
        r.rpush("l", "x" * 100, "a", "bbbbbbbbbbbbbbbb", "c", "d", "y" * 50)
        r.lmpop(1, "l", direction="LEFT")
        r.lmpop(1, "l", direction="RIGHT", count=1)
    elif build == "ltrim":
        r.rpush("l", "x" * 100, "w", "a", "bbbbbbbbbbbbbbbb", "c", "d", "y" * 50)
        r.ltrim("l", 2, -2)
    else:
        r.rpush("l", "a", "bbbbbbbbbbbbbbbb", "c", "d")
        r.lpos("l", "c", count=0)
    assert r.lrange("l", 0, -1) == ["a", "bbbbbbbbbbbbbbbb", "c", "d"]
    grown = r.info("memory")["used_memory"] - before
    r.rpush("m", "a", "bbbbbbbbbbbbbbbb", "c", "d")
    assert r.memory_usage("l") == r.memory_usage("m")  # keys of one byte both
    assert r.info("memory")["used_memory"] - before == 2 * grown


# -- crash journal ------------------------------------------------------------------------------

@ironcache_only
def test_list_writes_replay_from_the_crash_journal(tmp_path: Path) -> None:
    """LINSERT, LMPOP, LMOVE, LTRIM and friends are journaled as they were sent and replayed
    after a crash to the same lists, each accounted at what keyspace.value_size() gives."""
    from ironcache import handover, state
    from ironcache.config import Config
    from ironcache.keyspace import Keyspace, now_ms, value_size
    from ironcache.server import Server as IronServer

    snapshot = state.encode({"kind": "checkpoint"}, Keyspace(16), [])
    t = now_ms()
    writes = [
        [b"RPUSH", b"l", b"a", b"b", b"c", b"d", b"e"],
        [b"LINSERT", b"l", b"BEFORE", b"c", b"inserted"],
        [b"LMPOP", b"2", b"nokey", b"l", b"RIGHT", b"COUNT", b"2"],
        [b"LTRIM", b"l", b"1", b"-1"],
        [b"LMOVE", b"l", b"m", b"LEFT", b"RIGHT"],
        [b"RPUSHX", b"m", b"z"],
        [b"RPOPLPUSH", b"l", b"l"],
        [b"HSET", b"h", b"f", b"1"],
        [b"HSETNX", b"h", b"g", b"2"],
        [b"HINCRBYFLOAT", b"h", b"f", b"0.5"],
    ]
    journal = state.HEADER.pack(state.MAGIC, state.FORMAT, state.MINOR, 0, 0, 0) + state.record(
        [(state.OP_WRITE, t, 0, argv) for argv in writes]
    )
    fds = {}
    for name, data in (("state-1", snapshot), ("journal-1", journal)):
        fd = os.memfd_create(name, os.MFD_CLOEXEC)
        os.write(fd, data)
        fds[name] = fd
    config = Config()
    config.values["dir"] = str(tmp_path)
    srv = IronServer(config)
    srv.handover = handover.Handover(srv, fds)
    try:
        assert srv.handover.restore() == []
        db = srv.keyspace.dbs[0]
        assert list(db.lookup(b"l").value) == [b"c", b"inserted"]
        assert list(db.lookup(b"m").value) == [b"b", b"z"]
        assert db.lookup(b"h").value == {b"f": b"1.5", b"g": b"2"}
        for key in (b"l", b"m", b"h"):
            e = db.lookup(key)
            assert e.size == value_size(e.value), key
    finally:
        if srv.handover.journal_fd >= 0:
            os.close(srv.handover.journal_fd)


def test_hrandfield_and_srandmember_without_count_pick_live_elements(r: redis.Redis) -> None:
    """One random element each: only live ones (after deletions and additions that keep the
    size: the snapshot IronCache reuses must not return a deleted field), every one in time."""
    r.hset("hr", mapping={f"f{i}": i for i in range(200)})
    r.sadd("sr", *(f"m{i}" for i in range(200)))
    for i in range(100):
        r.hdel("hr", f"f{i}")
        r.srem("sr", f"m{i}")
    assert {r.hrandfield("hr") for _ in range(50)} <= {f"f{i}" for i in range(100, 200)}
    r.hdel("hr", "f100")
    r.hset("hr", "new", 1)  # same size as before: a snapshot must still see it in time
    r.srem("sr", "m100")
    r.sadd("sr", "new")
    live_h = {f"f{i}" for i in range(101, 200)} | {"new"}
    live_s = {f"m{i}" for i in range(101, 200)} | {"new"}
    seen_h = {r.hrandfield("hr") for _ in range(3000)}
    seen_s = {r.srandmember("sr") for _ in range(3000)}
    assert seen_h <= live_h and seen_s <= live_s
    assert seen_h == live_h and seen_s == live_s
