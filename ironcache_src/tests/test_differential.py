"""Differential test: hypothesis-generated command sequences run on IronCache and on a real
redis-server side by side; every reply must match (RESP2 and RESP3), errors word for word.

Runs only when the target is IronCache and `redis-server` is installed. Replies whose order
Redis leaves unspecified (HKEYS, SMEMBERS, KEYS, ...) are sorted; TTLs are reduced to their
sign, as they depend on the clock.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from support import IS_REDIS, REDIS_SERVER, RawConn, RedisReference, RespError, Server

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fuzz.normalize import normalize as normalize_reply  # noqa: E402

pytestmark = [
    pytest.mark.skipif(IS_REDIS, reason="compares IronCache with redis-server"),
    pytest.mark.skipif(shutil.which(REDIS_SERVER) is None, reason="redis-server not installed"),
]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = RedisReference(Path(tmp_path_factory.mktemp("redis-reference"))).start()
    yield srv
    srv.stop()


# Each example is one sequence of up to 25 commands run on both servers (about 10 ms).
EXAMPLES = 400 if os.environ.get("HYPOTHESIS_PROFILE") != "explore" else 2000

KEYS = ["a", "b", "c"]
FIELDS = ["f", "g", "h"]
# No values near 2**63: INCRBYFLOAT there depends on Redis's 80-bit long double, which
# test_strings checks on its own.
VALUES = ["", "0", "1", "-1", "10", "1.5", "abc", "x y", "3.0e2", "-0.25", "007", " 1"]
INTS = ["0", "1", "2", "-1", "-2", "3", "-5", "100", "x", "1.5", "536870912"]
FLOATS = ["0.1", "1", "-1.5", "1e2", "abc", "0", "2.5e-1", "inf"]
TTLS = ["100", "1000", "0", "-1", "x"]

# name -> argument kinds; the strategy below fills them in
TEMPLATES: dict[str, list[list[str]]] = {
    "GET": [["K"]], "SET": [["K", "V"], ["K", "V", "SETOPT"], ["K", "V", "SETOPT", "SETOPT"]],
    "SETNX": [["K", "V"]], "MSET": [["K", "V", "K", "V"]], "MGET": [["K", "K", "K"]],
    "MSETNX": [["K", "V", "K", "V"]], "GETSET": [["K", "V"]], "GETDEL": [["K"]],
    "GETEX": [["K"], ["K", "PERSIST"]], "APPEND": [["K", "V"]], "STRLEN": [["K"]],
    "INCR": [["K"]], "DECR": [["K"]], "INCRBY": [["K", "I"]], "DECRBY": [["K", "I"]],
    "INCRBYFLOAT": [["K", "FL"]], "GETRANGE": [["K", "I", "I"]], "SETRANGE": [["K", "I", "V"]],
    "DEL": [["K", "K"]], "UNLINK": [["K"]], "EXISTS": [["K", "K", "K"]], "TYPE": [["K"]],
    "EXPIRE": [["K", "TTL"], ["K", "TTL", "XOPT"]], "PEXPIRE": [["K", "TTL"]],
    "EXPIREAT": [["K", "AT"], ["K", "AT", "XOPT"]], "PEXPIREAT": [["K", "AT"]],
    "PEXPIRETIME": [["K"]], "HMSET": [["K", "F", "V"]],
    "TTL": [["K"]], "PTTL": [["K"]], "PERSIST": [["K"]], "EXPIRETIME": [["K"]],
    "RENAME": [["K", "K"]], "RENAMENX": [["K", "K"]], "TOUCH": [["K", "K"]],
    "KEYS": [["PAT"]], "DBSIZE": [[]], "SCAN": [["0", "COUNT", "1000"],
                                               ["0", "COUNT", "1000", "MATCH", "PAT"],
                                               ["0", "COUNT", "1000", "TYPE", "TYPENAME"]],
    "HSET": [["K", "F", "V"], ["K", "F", "V", "F", "V"]], "HGET": [["K", "F"]],
    "HMGET": [["K", "F", "F"]], "HDEL": [["K", "F", "F"]], "HGETALL": [["K"]], "HKEYS": [["K"]],
    "HVALS": [["K"]], "HLEN": [["K"]], "HEXISTS": [["K", "F"]], "HINCRBY": [["K", "F", "I"]],
    "HINCRBYFLOAT": [["K", "F", "FL"]], "HSETNX": [["K", "F", "V"]],
    "HSCAN": [["K", "0", "COUNT", "1000"]],
    "LPUSH": [["K", "V", "V"]], "RPUSH": [["K", "V"]], "LPOP": [["K"], ["K", "I"]],
    "RPOP": [["K"], ["K", "I"]], "LRANGE": [["K", "I", "I"]], "LLEN": [["K"]],
    "LINDEX": [["K", "I"]], "LREM": [["K", "I", "V"]], "LTRIM": [["K", "I", "I"]],
    "SADD": [["K", "V", "V"]], "SREM": [["K", "V"]], "SMEMBERS": [["K"]],
    "SISMEMBER": [["K", "V"]], "SCARD": [["K"]],
    "MULTI": [[]], "EXEC": [[]], "DISCARD": [[]], "WATCH": [["K"]], "UNWATCH": [[]],
    "SELECT": [["DB"]], "FLUSHDB": [[]], "PING": [[], ["V"]], "ECHO": [["V"]],
}

SETOPTS = ["NX", "XX", "GET", "KEEPTTL", "EX 100", "PX 100000", "EX 0", "EX x", "BOGUS",
           "EXAT 4102444800", "PXAT 1", "EXAT x", "PXAT 4102444800000"]
ATS = ["1", "4102444800", "0", "-5", "x"]  # the past (deletes), 2100, edge cases


@st.composite
def commands(draw: st.DrawFn, arity_mistakes: bool = False) -> list[str]:
    name = draw(st.sampled_from(sorted(TEMPLATES)))
    kinds = draw(st.sampled_from(TEMPLATES[name]))
    args: list[str] = []
    for kind in kinds:
        if kind == "K":
            args.append(draw(st.sampled_from(KEYS)))
        elif kind == "F":
            args.append(draw(st.sampled_from(FIELDS)))
        elif kind == "V":
            args.append(draw(st.sampled_from(VALUES)))
        elif kind == "I":
            args.append(draw(st.sampled_from(INTS)))
        elif kind == "FL":
            args.append(draw(st.sampled_from(FLOATS)))
        elif kind == "TTL":
            args.append(draw(st.sampled_from(TTLS)))
        elif kind == "AT":
            args.append(draw(st.sampled_from(ATS)))
        elif kind == "XOPT":
            args.append(draw(st.sampled_from(["NX", "XX", "GT", "LT"])))
        elif kind == "SETOPT":
            args.extend(draw(st.sampled_from(SETOPTS)).split())
        elif kind == "PERSIST":
            args.extend(draw(st.sampled_from(["PERSIST", "EX 100", "PX 5000", "EX 0", "EXAT 1",
                                              "PXAT 4102444800000", "EX 1 PX 1"])).split())
        elif kind == "PAT":
            args.append(draw(st.sampled_from(["*", "a", "[ab]", "?", "c*", "z*"])))
        elif kind == "TYPENAME":
            args.append(draw(st.sampled_from(["string", "hash", "list", "set"])))
        elif kind == "DB":
            args.append(draw(st.sampled_from(["0", "1", "15", "16", "99", "x"])))
        else:
            args.append(kind)
    shapes = ["ok"] * 12 + ["case"] + (["drop", "add"] if arity_mistakes else [])
    shape = draw(st.sampled_from(shapes))
    if shape == "drop" and args:
        args.pop()
    elif shape == "add":
        args.append(draw(st.sampled_from(VALUES)))
    elif shape == "case":
        name = name.lower() if draw(st.booleans()) else name.capitalize()
    return [name, *args]


def normalize(cmd: list[str], reply: Any) -> Any:
    return normalize_reply(cmd, reply, RespError)


def run_sequence(conn: RawConn, seq: list[list[str]]) -> list[Any]:
    out: list[Any] = []
    queued: list[list[str]] = []
    in_multi = False
    for cmd in seq:
        conn.types.clear()
        reply = conn.call(*cmd)
        # RESP3 null vs RESP2 null, set vs array, ...: the wire types must match too
        types = b"".join(sorted(conn.types))
        name = cmd[0].upper()
        if name == "MULTI" and reply == "OK":
            in_multi, queued = True, []
        elif in_multi and name == "EXEC":
            if isinstance(reply, list) and len(reply) == len(queued):
                reply = [normalize(q, rep) for q, rep in zip(queued, reply, strict=True)]
            in_multi = False
        elif in_multi and name == "DISCARD":
            in_multi = False
        elif in_multi and reply == "QUEUED":
            queued.append(cmd)
        else:
            reply = normalize(cmd, reply)
        out.append((cmd, (reply, types)))
    return out


def _compare(server: Server, reference: Server, seq: list[list[str]], protocol: int) -> None:
    results = []
    for srv in (server, reference):
        with srv.raw() as conn:
            assert conn.call("FLUSHALL") == "OK"
            if protocol == 3:
                assert isinstance(conn.call("HELLO", "3"), dict)
            results.append(run_sequence(conn, seq))
    ours, theirs = results
    for (cmd, mine), (_, expected) in zip(ours, theirs, strict=True):
        assert mine == expected, f"{' '.join(cmd)!r}: IronCache {mine!r} != Redis {expected!r}" \
                                 f"\nsequence: {seq}"


@settings(max_examples=EXAMPLES)
@given(seq=st.lists(commands(), min_size=1, max_size=25))
def test_same_replies_as_redis_resp2(server: Server, reference: Server,
                                     seq: list[list[str]]) -> None:
    _compare(server, reference, seq, 2)


@settings(max_examples=EXAMPLES)
@given(seq=st.lists(commands(), min_size=1, max_size=25))
def test_same_replies_as_redis_resp3(server: Server, reference: Server,
                                     seq: list[list[str]]) -> None:
    _compare(server, reference, seq, 3)


@settings(max_examples=EXAMPLES)
@given(seq=st.lists(commands(arity_mistakes=True), min_size=1, max_size=25))
def test_same_replies_as_redis_with_arity_mistakes(server: Server, reference: Server,
                                                   seq: list[list[str]]) -> None:
    _compare(server, reference, seq, 2)
