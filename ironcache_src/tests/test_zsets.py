"""Sorted sets: ZADD's options, ranges (rank, score, lex), pops, set operations, scores.

The first tests state the behaviour (they pass against redis-server too:
IRONCACHE_TEST_TARGET=redis); `test_same_replies_as_redis` runs edge cases on both servers.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from support import IS_REDIS, REDIS_SERVER, RespError, Server, wire_error
from test_differential import RedisReference

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"


def test_zadd_options_and_type(r: redis.Redis) -> None:
    assert r.zadd("z", {"a": 1, "b": 2, "c": 3}) == 3
    assert r.type("z") == "zset"
    assert r.zadd("z", {"a": 5, "d": 4}, ch=True) == 2  # one changed, one added
    assert r.zadd("z", {"a": 0, "e": 9}, nx=True) == 1
    assert r.zscore("z", "a") == 5.0
    assert r.zadd("z", {"a": 1, "f": 9}, xx=True) == 0
    assert r.zscore("z", "a") == 1.0 and r.zscore("z", "f") is None
    assert r.zadd("z", {"a": 0}, gt=True, ch=True) == 0
    assert r.zadd("z", {"a": 7}, gt=True, ch=True) == 1
    assert r.zadd("z", {"a": 8}, lt=True, ch=True) == 0
    assert r.zadd("z", {"a": 2}, incr=True) == 9.0
    assert r.zadd("z", {"a": 2}, incr=True, nx=True) is None
    assert r.zincrby("z", -0.5, "a") == 8.5
    assert r.zcard("z") == 5 and r.zcard("missing") == 0
    assert r.zadd("missing", {"a": 1}, xx=True) == 0 and r.exists("missing") == 0


def test_zadd_errors(server: Server) -> None:
    assert wire_error(server, "ZADD", "z", "1", "a", "2") == "ERR syntax error"
    assert wire_error(server, "ZADD", "z", "NX", "XX", "1", "a") == \
        "ERR XX and NX options at the same time are not compatible"
    assert wire_error(server, "ZADD", "z", "GT", "LT", "1", "a") == \
        "ERR GT, LT, and/or NX options at the same time are not compatible"
    assert wire_error(server, "ZADD", "z", "INCR", "1", "a", "2", "b") == \
        "ERR INCR option supports a single increment-element pair"
    for bad in ("nan", "abc", " 1", "1e400", ""):
        assert wire_error(server, "ZADD", "z", bad, "a") == "ERR value is not a valid float"
    with server.raw() as c:
        assert c.call("ZADD", "zinf", "inf", "a") == 1
        assert str(c.call("ZINCRBY", "zinf", "-inf", "a")) == \
            "ERR resulting score is not a number (NaN)"
        c.call("SET", "str", "x")
        assert str(c.call("ZADD", "str", "1", "a")) == WRONGTYPE
        assert str(c.call("ZADD", "str", "x", "a")) == "ERR value is not a valid float"
        c.call("DEL", "zinf", "str")


def test_score_formatting(server: Server) -> None:
    with server.raw() as c:
        c.call("ZADD", "zf", "1.1", "a", "-0", "b", "inf", "c", "-inf", "d", "1e20", "e",
               "0x10", "f")
        assert c.call("ZSCORE", "zf", "a") == b"1.1000000000000001"  # %.17g, as Redis 7.0
        assert c.call("ZSCORE", "zf", "b") == b"0"  # a listpack keeps -0 as the integer 0
        assert c.call("ZSCORE", "zf", "c") == b"inf"
        assert c.call("ZSCORE", "zf", "e") == b"1e+20"
        assert c.call("ZSCORE", "zf", "f") == b"16"
        assert c.call("ZRANGE", "zf", "0", "-1") == [b"d", b"b", b"a", b"f", b"e", b"c"]
        assert c.call("ZSCAN", "zf", "0", "MATCH", "[ae]") == \
            [b"0", [b"a", b"1.1000000000000001", b"e", b"1e+20"]]
        c.call("HELLO", "3")
        assert c.call("ZSCORE", "zf", "a") == 1.1 and c.types[-1] == b","
        assert c.call("ZRANGE", "zf", "0", "0", "WITHSCORES") == [[b"d", float("-inf")]]
        c.call("DEL", "zf")


def test_ranges(r: redis.Redis) -> None:
    r.zadd("z", {m: i for i, m in enumerate("abcdef")})
    assert r.zrange("z", 1, -2) == ["b", "c", "d", "e"]
    assert r.zrevrange("z", 0, 1, withscores=True) == [("f", 5.0), ("e", 4.0)]
    assert r.zrangebyscore("z", "(1", 3) == ["c", "d"]
    assert r.zrevrangebyscore("z", "+inf", "(3", start=1, num=1) == ["e"]
    assert r.zrange("z", "(4", "-inf", byscore=True, desc=True) == ["d", "c", "b", "a"]
    assert r.zcount("z", "-inf", "(2") == 2
    assert r.zrank("z", "c") == 2 and r.zrevrank("z", "c") == 3 and r.zrank("z", "x") is None
    assert r.zmscore("z", ["a", "x", "f"]) == [0.0, None, 5.0]
    r.zadd("lex", {m: 0 for m in ["a", "b", "c", "d", "e"]})
    assert r.zrangebylex("lex", "[b", "(d") == ["b", "c"]
    assert r.zrevrangebylex("lex", "+", "(c") == ["e", "d"]
    assert r.zlexcount("lex", "-", "+") == 5
    assert r.zrangebylex("lex", "-", "+", start=1, num=2) == ["b", "c"]
    assert r.zrangestore("dst", "z", 0, 2) == 3
    assert r.zrange("dst", 0, -1, withscores=True) == [("a", 0.0), ("b", 1.0), ("c", 2.0)]
    assert r.zrangestore("dst", "z", 10, 20) == 0 and r.exists("dst") == 0
    assert r.zremrangebyrank("z", 0, 1) == 2
    assert r.zremrangebyscore("z", "(2", 4) == 2
    assert r.zrange("z", 0, -1) == ["c", "f"]
    assert r.zremrangebylex("lex", "[a", "[c") == 3
    assert r.zrem("lex", "d", "e", "x") == 2 and r.exists("lex") == 0


def test_range_errors(server: Server) -> None:
    with server.raw() as c:
        c.call("ZADD", "z", "1", "a")
        for args, err in [
            (("ZRANGEBYSCORE", "z", "x", "1"), "ERR min or max is not a float"),
            (("ZRANGEBYSCORE", "z", "(nan", "1"), "ERR min or max is not a float"),
            (("ZRANGEBYLEX", "z", "a", "+"), "ERR min or max not valid string range item"),
            (("ZRANGE", "z", "0", "1", "LIMIT", "0", "1"),
             "ERR syntax error, LIMIT is only supported in combination with either BYSCORE "
             "or BYLEX"),
            (("ZRANGE", "z", "-", "+", "BYLEX", "WITHSCORES"),
             "ERR syntax error, WITHSCORES not supported in combination with BYLEX"),
            (("ZREVRANGE", "z", "0", "1", "REV"), "ERR syntax error"),
            (("ZRANGESTORE", "d", "z", "0", "1", "WITHSCORES"), "ERR syntax error"),
            (("ZRANGE", "z", "a", "1"), "ERR value is not an integer or out of range"),
        ]:
            assert str(c.call(*args)) == err, args
        c.call("DEL", "z")


def test_pops(server: Server) -> None:
    with server.raw() as c:
        c.call("ZADD", "z", "1", "a", "2", "b", "3", "c")
        assert c.call("ZPOPMIN", "z") == [b"a", b"1"]
        assert c.call("ZPOPMAX", "z", "5") == [b"c", b"3", b"b", b"2"]
        assert c.call("EXISTS", "z") == 0
        assert c.call("ZPOPMIN", "z") == []
        assert str(c.call("ZPOPMIN", "z", "-1")) == "ERR value is out of range, must be positive"
        c.call("ZADD", "z2", "1", "a", "2", "b")
        assert c.call("ZMPOP", "2", "z", "z2", "MAX", "COUNT", "1") == [b"z2", [[b"b", b"2"]]]
        assert c.call("ZMPOP", "1", "z", "MIN") is None
        assert str(c.call("ZMPOP", "0", "z", "MIN")) == "ERR numkeys should be greater than 0"
        assert str(c.call("ZMPOP", "1", "z2", "MIN", "COUNT", "0")) == \
            "ERR count should be greater than 0"
        c.call("HELLO", "3")
        assert c.call("ZPOPMIN", "z2", "1") == [[b"a", 1.0]]


def test_set_operations(r: redis.Redis) -> None:
    r.zadd("z1", {"a": 1, "b": 2, "c": 3})
    r.zadd("z2", {"b": 10, "c": 20, "d": 30})
    r.sadd("s", "c", "d")
    assert r.zunion(["z1", "z2"], withscores=True) == \
        [("a", 1.0), ("b", 12.0), ("c", 23.0), ("d", 30.0)]
    assert r.zinter({"z1": 2, "z2": 1}, aggregate="MAX", withscores=True) == \
        [("b", 10.0), ("c", 20.0)]
    assert r.zinter(["z1", "s"], withscores=True) == [("c", 4.0)]  # set members score 1
    assert r.zdiff(["z1", "z2"]) == ["a"]
    assert r.zunionstore("out", {"z1": 1, "s": 5}, aggregate="MIN") == 4
    assert r.zrange("out", 0, -1, withscores=True) == \
        [("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 5.0)]
    assert r.zinterstore("out", ["z1", "missing"]) == 0 and r.exists("out") == 0
    assert r.zdiffstore("out", ["z2", "z1"]) == 1
    assert r.zintercard(2, ["z1", "z2"]) == 2
    assert r.zintercard(2, ["z1", "z2"], limit=1) == 1


def test_set_operation_errors(server: Server) -> None:
    assert wire_error(server, "ZUNION", "0", "a") == \
        "ERR at least 1 input key is needed for 'zunion' command"
    assert wire_error(server, "ZINTERSTORE", "d", "3", "a") == "ERR syntax error"
    assert wire_error(server, "ZUNION", "1", "a", "WEIGHTS", "x") == \
        "ERR weight value is not a float"
    assert wire_error(server, "ZINTERCARD", "1", "a", "LIMIT", "-1") == \
        "ERR LIMIT can't be negative"
    assert wire_error(server, "ZDIFF", "1", "a", "WEIGHTS", "1") == "ERR syntax error"


def test_zrandmember_counts(server: Server) -> None:
    with server.raw() as c:
        c.call("ZADD", "z", "1", "a", "2", "b", "3", "c")
        assert c.call("ZRANDMEMBER", "z") in (b"a", b"b", b"c")
        assert sorted(c.call("ZRANDMEMBER", "z", "10")) == [b"a", b"b", b"c"]
        two = c.call("ZRANDMEMBER", "z", "2")
        assert len(set(two)) == 2
        many = c.call("ZRANDMEMBER", "z", "-50", "WITHSCORES")
        assert len(many) == 100
        assert all(dict(zip(many[::2], many[1::2], strict=True))[m] == s
                   for m, s in [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]
                   if m in many[::2])
        assert c.call("ZRANDMEMBER", "missing", "5") == []
        assert str(c.call("ZRANDMEMBER", "z", "-9223372036854775807", "WITHSCORES")) == \
            "ERR value is out of range"
        c.call("DEL", "z")


def test_wrongtype(server: Server) -> None:
    with server.raw() as c:
        c.call("SET", "str", "x")
        for args in [("ZSCORE", "str", "a"), ("ZRANGE", "str", "0", "1"), ("ZCARD", "str"),
                     ("ZUNION", "1", "str"), ("ZPOPMIN", "str"), ("ZSCAN", "str", "0")]:
            assert str(c.call(*args)) == WRONGTYPE, args
        c.call("DEL", "str")


# ------------------------------------------------------------------ against redis-server

# Sequences run on both servers in a fresh database; every reply must be the same (RESP2
# bulk strings keep Redis's number formatting, so scores are compared as text).
SEQUENCES: list[list[tuple[str, ...]]] = [
    [("ZADD", "z", "1", "a", "1", "b", "2", "c", "-0", "d", "0", "e", "inf", "f"),
     ("ZRANGE", "z", "0", "-1", "WITHSCORES"), ("ZADD", "z", "0", "d"), ("ZSCORE", "z", "d"),
     ("ZRANGEBYSCORE", "z", "(0", "(inf", "WITHSCORES", "LIMIT", "1", "-1"),
     ("ZRANGEBYSCORE", "z", "-inf", "+inf", "LIMIT", "-1", "2"),
     ("ZREVRANGEBYSCORE", "z", "2", "1", "LIMIT", "1", "5", "WITHSCORES"),
     ("ZRANGE", "z", "+inf", "-inf", "BYSCORE", "REV", "LIMIT", "0", "3"),
     ("ZCOUNT", "z", "(1", "(1"), ("ZCOUNT", "z", "", " 2"), ("ZCOUNT", "z", "1", "1e999"),
     ("ZINCRBY", "z", "1e308", "c"), ("ZINCRBY", "z", "1e308", "c"), ("ZSCORE", "z", "c"),
     ("ZADD", "z", "GT", "CH", "INCR", "-1", "a"), ("ZADD", "z", "LT", "INCR", "-1", "a"),
     ("ZADD", "z", "XX", "CH", "5", "a", "6", "new"), ("ZRANK", "z", "a"),
     ("ZREVRANK", "z", "a"), ("ZRANGESTORE", "dst", "z", "(0", "10", "BYSCORE", "LIMIT", "1",
                               "2"), ("ZRANGE", "dst", "0", "-1", "WITHSCORES")],
    [("ZADD", "l", "0", "a", "0", "b", "0", "c", "0", "d"),
     ("ZRANGEBYLEX", "l", "-", "+"), ("ZRANGEBYLEX", "l", "+", "-"),
     ("ZRANGEBYLEX", "l", "(a", "[c", "LIMIT", "1", "1"), ("ZREVRANGEBYLEX", "l", "[c", "-"),
     ("ZRANGE", "l", "[d", "(a", "BYLEX", "REV"), ("ZLEXCOUNT", "l", "(b", "+"),
     ("ZRANGEBYLEX", "l", "(c", "(c"), ("ZREMRANGEBYLEX", "l", "(a", "(d"),
     ("ZRANGE", "l", "0", "-1"),
     # mixed scores: Redis walks its listpack; so does IronCache
     ("ZADD", "m", "1", "b", "2", "a", "3", "d", "4", "c"), ("ZRANGEBYLEX", "m", "[b", "[c"),
     ("ZREVRANGEBYLEX", "m", "[c", "[b"), ("ZLEXCOUNT", "m", "-", "[b"),
     ("ZRANGEBYLEX", "m", "[a", "+")],
    [("ZADD", "a", "1", "x", "2", "y"), ("SADD", "s", "y", "z"), ("ZADD", "b", "inf", "x"),
     ("ZADD", "c", "-inf", "x"),
     ("ZUNION", "3", "a", "b", "c", "WITHSCORES"), ("ZINTER", "2", "b", "c", "WITHSCORES"),
     ("ZUNION", "2", "a", "s", "WEIGHTS", "0", "inf", "WITHSCORES"),
     ("ZINTER", "2", "a", "s", "AGGREGATE", "MAX", "WEIGHTS", "2", "-1", "WITHSCORES"),
     ("ZUNIONSTORE", "out", "2", "a", "s", "AGGREGATE", "min"), ("ZRANGE", "out", "0", "-1",
                                                                  "WITHSCORES"),
     ("ZDIFF", "2", "a", "s", "WITHSCORES"), ("ZDIFFSTORE", "out", "1", "nothing"),
     ("EXISTS", "out"), ("ZINTERCARD", "2", "a", "s", "LIMIT", "0"),
     ("ZUNION", "2", "a", "WITHSCORES"), ("ZUNION", "1", "a", "AGGREGATE"),
     ("ZINTERCARD", "1", "a", "WITHSCORES"), ("ZUNIONSTORE", "out", "1", "a", "WITHSCORES")],
    [("ZADD", "p", "1", "a", "2", "b", "3", "c"), ("ZPOPMAX", "p", "0"), ("ZPOPMIN", "p", "x"),
     ("ZPOPMIN", "p", "1", "2"), ("ZMPOP", "1", "p", "MIN", "COUNT", "1", "COUNT", "1"),
     ("ZMPOP", "2", "p", "MIN"), ("ZMPOP", "1", "p", "LEFT"), ("ZMPOP", "x", "p", "MIN"),
     ("ZREMRANGEBYRANK", "p", "-1", "-1"), ("ZREMRANGEBYSCORE", "p", "-inf", "(2"),
     ("ZSCAN", "p", "0"), ("ZSCAN", "p", "x"), ("ZSCAN", "nokey", "0", "BAD"),
     ("ZRANDMEMBER", "p", "1", "BAD"), ("ZRANDMEMBER", "p", "x"),
     ("ZRANDMEMBER", "p", "0"), ("ZADD", "p", "nan", "a"), ("ZADD", "p", "0x1p3", "h"),
     ("ZADD", "p", "1e-400", "h"), ("ZADD", "p", "INFINITY", "i"), ("ZRANGE", "p", "0", "-1",
                                                                    "WITHSCORES")],
    # GEO: points as geohash scores, positions, distances, hashes, refusals
    [("GEOADD", "g", "13.361389", "38.115556", "Palermo", "15.087269", "37.502669", "Catania"),
     ("GEOADD", "g", "-180", "-85.05112878", "edge", "180", "85.05112878", "edge2"),
     ("GEOADD", "g", "200", "100", "x"), ("GEOADD", "g", "NX", "XX", "1", "2", "x"),
     ("GEOADD", "g", "1", "2"), ("GEOADD", "g", "x", "2", "m"),
     ("GEOADD", "g", "XX", "CH", "13.4", "38.1", "Palermo", "1", "1", "new"),
     ("ZRANGE", "g", "0", "-1", "WITHSCORES"), ("GEOPOS", "g", "Palermo", "nope", "edge2"),
     ("GEOPOS", "nokey", "a"), ("GEODIST", "g", "Palermo", "Catania"),
     ("GEODIST", "g", "Palermo", "Catania", "KM"), ("GEODIST", "g", "Palermo", "Catania", "mi"),
     ("GEODIST", "g", "Palermo", "Catania", "yd"), ("GEODIST", "g", "Palermo", "nope"),
     ("GEODIST", "g", "a", "b", "m", "x"), ("GEOHASH", "g", "Palermo", "Catania", "edge", "no"),
     ("GEOHASH", "nokey", "a"), ("ZADD", "g", "1e300", "weird", "-5", "neg"),
     ("GEOPOS", "g", "weird", "neg"), ("GEOHASH", "g", "weird", "neg"),
     ("SET", "s", "1"), ("GEOADD", "s", "1", "2", "m"), ("GEOPOS", "s", "m"),
     ("COMMAND", "GETKEYSANDFLAGS", "GEOADD", "g", "1", "2", "m")],
    # Members of one length are framed with one join (ZSet.width): every way in of a member
    # of another length, and out again, must leave the replies Redis's.
    [("ZADD", "w", "1", "id:001", "2", "id:002", "3", "id:003"), ("ZRANGEBYSCORE", "w", "1", "2"),
     ("ZRANGE", "w", "0", "-1"), ("ZADD", "w", "2", "id:0002"), ("ZRANGEBYSCORE", "w", "2", "3"),
     ("ZREVRANGE", "w", "0", "-1"), ("ZREM", "w", "id:0002"), ("ZRANGEBYSCORE", "w", "0", "9"),
     ("ZADD", "w", "NX", "4", "x"), ("ZRANGE", "w", "(1", "+inf", "BYSCORE"),
     ("ZINCRBY", "w", "1", "a-much-longer-member"), ("ZRANGEBYSCORE", "w", "-inf", "(4"),
     ("ZPOPMIN", "w", "5"), ("ZADD", "w", "1", "id:009"), ("ZRANGEBYSCORE", "w", "0", "9"),
     ("ZUNIONSTORE", "u", "2", "w", "w2"), ("ZRANGE", "u", "0", "-1"),
     ("ZADD", "w2", "1", "b", "1", "bb"), ("ZUNIONSTORE", "u", "2", "w", "w2"),
     ("ZRANGEBYSCORE", "u", "1", "2"), ("ZRANGESTORE", "r", "w2", "0", "0"),
     ("ZADD", "r", "5", "c"), ("ZRANGE", "r", "0", "-1"), ("ZRANGEBYSCORE", "r", "6", "9"),
     ("GEOADD", "geo", "13.361389", "38.115556", "Palermo", "15.087269", "37.502669", "Cat"),
     ("ZRANGE", "geo", "0", "-1"), ("ZADD", "big", "1", "m" * 600, "2", "n" * 600),
     ("ZRANGEBYSCORE", "big", "0", "1"), ("ZRANGE", "big", "0", "-1")],
]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = RedisReference(Path(tmp_path_factory.mktemp("redis-reference-zset"))).start()
    yield srv
    srv.stop()


def _run(srv: Server, seq: list[tuple[str, ...]], resp: int) -> list[object]:
    with srv.raw() as c:
        c.call("SELECT", "9")
        c.call("FLUSHDB")
        if resp == 3:
            c.call("HELLO", "3")
        out: list[object] = []
        for cmd in seq:
            reply = c.call(*cmd)
            out.append((cmd, str(reply) if isinstance(reply, RespError) else reply,
                        c.types[-1]))
        c.call("FLUSHDB")
    return out


@pytest.mark.skipif(IS_REDIS, reason="compares IronCache with redis-server")
@pytest.mark.skipif(shutil.which(REDIS_SERVER) is None, reason="redis-server not installed")
@pytest.mark.parametrize("resp", [2, 3])
@pytest.mark.parametrize("index", range(len(SEQUENCES)))
def test_same_replies_as_redis(server: Server, reference: Server, index: int, resp: int) -> None:
    assert _run(server, SEQUENCES[index], resp) == _run(reference, SEQUENCES[index], resp)


def test_big_zset_orders_and_ranks(r: redis.Redis) -> None:
    # Past Redis's listpack threshold (128): skiplist semantics, ranks by score then member.
    r.zadd("big", {f"m{i:04d}": i % 50 for i in range(1000)})
    assert r.zcard("big") == 1000
    ranked = r.zrange("big", 0, -1, withscores=True)
    assert ranked == sorted(ranked, key=lambda p: (p[1], p[0]))
    assert r.zrank("big", "m0050") == 1  # score 0: m0000 m0050 m0100 ...
    assert r.zrank("big", "m0001") == 20  # after the 20 members of score 0
    assert r.zcount("big", 10, "(20") == 200
    assert r.zremrangebyscore("big", 0, 24) == 500
    assert r.zcard("big") == 500 and r.zrange("big", 0, 0) == ["m0025"]



@pytest.mark.skipif(IS_REDIS, reason="IronCache's own structure")
def test_score_ranges_across_sublists_match_a_brute_force() -> None:
    """ZSet's range reads bisect sortedcontainers' sublists (1000 members each): across
    their edges, with ties, -0, infinities and exclusive bounds, they select what a scan of
    the sorted members selects."""
    import random

    from ironcache.zset import ZSet

    rnd = random.Random(7)
    scores = [float(rnd.randrange(-50, 50)) for _ in range(4000)]
    scores[:3] = [float("inf"), float("-inf"), -0.0]
    z = ZSet.from_pairs((b"m%05d" % i, s) for i, s in enumerate(scores))
    assert len(z.index._lists) > 3  # several sublists: the edges are exercised
    ordered = list(z)
    bounds = [float("-inf"), -50.0, -3.0, 0.0, -0.0, 7.0, 49.0, 60.0, float("inf")]
    for lo in bounds:
        for hi in bounds:
            for lo_ex in (False, True):
                for hi_ex in (False, True):
                    want = [p for p in ordered
                            if (p[0] > lo if lo_ex else p[0] >= lo)
                            and (p[0] < hi if hi_ex else p[0] <= hi)]
                    assert z.score_items(lo, lo_ex, hi, hi_ex) == want
                    start, stop = z.score_span(lo, lo_ex, hi, hi_ex)
                    assert ordered[start:stop] == want
    small = ZSet.from_pairs([(b"a", 1.0), (b"b", 2.0)])
    assert small.score_items(3.0, False, 9.0, False) == []
    assert small.score_items(2.0, True, 9.0, False) == []
    assert small.score_items(2.0, False, 9.0, False) == [(2.0, b"b")]
    assert ZSet().score_items(0.0, False, 1.0, False) == []


@pytest.mark.skipif(IS_REDIS, reason="IronCache's own structure")
def test_index_add_and_remove_keep_sortedlist_invariants() -> None:
    """zset.index_add / index_remove inline SortedList.add / remove: with positional reads
    (which build SortedList's index) between changes, the index stays the sorted pairs and
    every rank agrees with a brute force."""
    import random

    from ironcache.zset import ZSet

    rnd = random.Random(7)
    z = ZSet()
    for step in range(6000):
        m = b"m%d" % rnd.randrange(1500)
        if rnd.random() < 0.3:
            z.discard(m)
        else:
            z.add(m, float(rnd.randrange(300)))
        if step % 97 == 0 and len(z):
            z.index._check()  # sortedcontainers' own invariant check
            pairs = sorted((s, mm) for mm, s in z.scores.items())
            probe = pairs[rnd.randrange(len(pairs))]
            assert z.rank(probe[1]) == pairs.index(probe)
    assert list(z) == sorted((s, m) for m, s in z.scores.items())


@pytest.mark.skipif(IS_REDIS, reason="IronCache's own structure")
def test_index_keys_order_as_redis_orders_members() -> None:
    """The index compares byte-string keys: encode()'s 8 bytes must sort as the doubles do
    (negative, -0 and 0 as one score, subnormal, infinite), after() must fall between a score's
    keys and the next score's, and ties must order by member bytes, a member before the longer
    members it begins (Redis's memcmp then length): checked against sorted() of the pairs."""
    import math
    import random
    import struct

    from ironcache.zset import ZSet, after, encode

    rnd = random.Random(11)
    special = [-math.inf, -1e308, -1.5, -5e-324, -0.0, 0.0, 5e-324, 2.2e-308, 1.0, 1e308, math.inf]
    randoms = [struct.unpack(">d", rnd.randbytes(8))[0] for _ in range(3000)]
    values = sorted({x for x in special + randoms if not math.isnan(x)})
    keys = [encode(x) for x in values]
    assert all(len(k) == 8 for k in keys)
    assert encode(-0.0) == encode(0.0)
    for a, b, ka, kb in zip(values, values[1:], keys, keys[1:], strict=False):
        assert (ka < kb) == (a < b) and (ka == kb) == (a == b), (a, b)
        assert ka < after(a) <= kb or a == b, (a, b)
    assert encode(math.inf) < after(math.inf)
    members = [b"", b"a", b"a\x00", b"ab", b"b", b"\xff", b"\xff\xff"]
    pairs = [(s, m) for s in (-2.0, 0.0, 3.5) for m in members]
    rnd.shuffle(pairs)
    z = ZSet.from_pairs((m + b"%g" % s, s) for s, m in pairs)
    assert list(z) == sorted((s, m + b"%g" % s) for s, m in pairs)
    ties = ZSet.from_pairs((m, 1.0) for m in reversed(members))
    assert [m for _s, m in ties] == members
    assert ties.lex_span((0, b"a", True), (0, b"b", False)) == (2, 5)  # (a .. [b
