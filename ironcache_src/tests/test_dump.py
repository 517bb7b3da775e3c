"""DUMP / RESTORE: Redis's serialization (ironcache.rdb), both ways with redis-server 7.0.15."""

from __future__ import annotations

import contextlib
import random
import shutil
import struct
import time
import tracemalloc
from collections import deque
from typing import Any

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from ironcache import rdb
from support import REDIS_SERVER

needs_redis = pytest.mark.skipif(shutil.which(REDIS_SERVER) is None,
                                 reason="redis-server not installed")


# ------------------------------------------------------------------ the codec alone


def test_crc64_is_redis_jones() -> None:
    assert rdb.crc64(b"123456789") == 0xE9C6D914C4B8D9CA  # crc64.c's own test vector


def test_string_payload_is_byte_identical_to_redis() -> None:
    # bytes redis-server 7.0.15 gave for DUMP of "bar" and of "12"
    assert rdb.dump(b"bar") == b"\x00\x03bar\n\x00\xe6\xbeI`\xeef\xfd\x17"
    assert rdb.dump(b"12") == b"\x00\xc0\x0c\n\x00<*\xf8Q\\\x04\xbc\xd5"


@pytest.mark.parametrize("data", [b"a" * 1000, b"abcabcabcabd" * 50, bytes(range(256)) * 8,
                                  random.Random(3).randbytes(3000)])
def test_lzf_round_trip(data: bytes) -> None:
    packed = rdb.lzf_compress(data)
    if packed is None:  # incompressible: stored as it is
        assert rdb.string(data) == rdb._len(len(data)) + data
        return
    assert len(packed) < len(data)
    assert rdb.lzf_decompress(packed, len(data)) == data


def test_lzf_refuses_overruns() -> None:
    for blob, ulen in [(b"\x05ab", 6), (b"\x00a\x20\x05", 10), (b"\x00a\xe0", 50), (b"\x01ab", 1)]:
        with pytest.raises(rdb.RdbError):
            rdb.lzf_decompress(blob, ulen)


def _zset_pairs(n: int) -> list[tuple[bytes, float]]:
    scores = [1.5, -2.0, 0.0, 3.0, 1e300, -1e-300, float("inf"), float("-inf"), 12345678.0]
    pairs = [(b"m%d" % i, scores[i % len(scores)] + (i // len(scores))) for i in range(n)]
    return sorted(pairs, key=lambda p: (p[1], p[0]))


@pytest.mark.parametrize(("n", "kind"), [(5, rdb.T_ZSET_LISTPACK), (300, rdb.T_ZSET_2)])
def test_zset_codec_round_trip(n: int, kind: int) -> None:
    pairs = _zset_pairs(n)
    payload = rdb.seal(rdb.encode_zset(pairs))
    assert payload[0] == kind
    t, got = rdb.load(payload)
    assert t == kind
    assert sorted(got, key=lambda p: (p[1], p[0])) == pairs


def test_zset_codec_thresholds() -> None:
    pairs = [(b"x" * 65, 1.0)]
    assert rdb.encode_zset(pairs)[0] == rdb.T_ZSET_2  # member over zset-max-listpack-value
    th = rdb.Thresholds(zset_value=100)
    assert rdb.encode_zset(pairs, th)[0] == rdb.T_ZSET_LISTPACK
    th = rdb.Thresholds(zset_entries=0)
    assert rdb.encode_zset([(b"a", 1.0)], th)[0] == rdb.T_ZSET_2


def test_old_zset_encoding_with_text_scores() -> None:
    # RDB_TYPE_ZSET (3): scores as length-prefixed text, 254/255 for +inf/-inf
    obj = bytes((rdb.T_ZSET,)) + b"\x03" + b"\x01a\x031.5" + b"\x01b\xfe" + b"\x01c\xff"
    assert rdb.load(rdb.seal(obj)) == (rdb.T_ZSET, [(b"a", 1.5), (b"b", float("inf")),
                                                    (b"c", float("-inf"))])
    nan = bytes((rdb.T_ZSET,)) + b"\x01\x01a\xfd"
    with pytest.raises(rdb.RdbError):
        rdb.load(rdb.seal(nan))


def _ziplist(items: list[bytes]) -> bytes:
    body = b""
    prev = 0
    for s in items:
        entry = bytes((prev,)) + bytes((len(s),)) + s
        body += entry
        prev = len(entry)
    return struct.pack("<IIH", 11 + len(body), 10, len(items)) + body + b"\xff"


def test_old_list_encodings_are_read() -> None:
    """Payloads from RDB versions before 10 (ziplist, quicklist of ziplists, linked list)."""
    zl = _ziplist([b"a", b"bb", b"ccc"])
    assert rdb.load(rdb.seal(bytes((rdb.T_LIST_ZIPLIST,)) + rdb.string(zl, False)))[1] == \
        deque([b"a", b"bb", b"ccc"])
    ql = bytes((rdb.T_LIST_QUICKLIST,)) + b"\x02" + rdb.string(zl, False) * 2
    assert list(rdb.load(rdb.seal(ql))[1]) == [b"a", b"bb", b"ccc"] * 2
    linked = bytes((rdb.T_LIST,)) + b"\x02" + rdb.string(b"x") + rdb.string(b"7")
    assert list(rdb.load(rdb.seal(linked))[1]) == [b"x", b"7"]
    hz = bytes((rdb.T_HASH_ZIPLIST,)) + rdb.string(_ziplist([b"f", b"v"]), False)
    assert rdb.load(rdb.seal(hz))[1] == {b"f": b"v"}


def test_listpack_integer_encodings_round_trip() -> None:
    items = [b"0", b"127", b"128", b"-1", b"4095", b"-4096", b"4096", b"32767", b"-32769",
             b"8388607", b"-8388609", b"2147483647", b"-2147483649", b"9223372036854775807",
             b"-9223372036854775808", b"9223372036854775808", b"01", b"-0", b"+1", b"x" * 70,
             b"y" * 5000, b""]
    assert rdb.listpack_items(rdb.listpack(items)) == items


@pytest.mark.parametrize("payload", [
    b"",
    b"\x00\x03bar\n\x00" + b"\x00" * 8,  # checksum wrong
    rdb.seal(b"\x00\x03bar")[:-10] + b"\x0b\x00" + b"\x00" * 8,  # version 11
])
def test_version_or_checksum_errors(payload: bytes) -> None:
    with pytest.raises(rdb.RdbError) as err:
        rdb.load(payload)
    assert err.value.version


@pytest.mark.parametrize("obj", [
    b"\x00\x81\xff\xff\xff\xff\xff\xff\xff\xf7",  # a string claiming 2**64 - 9 bytes
    b"\x02\x81\x00\x00\x00\x01\x00\x00\x00\x00",  # a set claiming 2**32 members
    b"\x00\xc3\x05\x80\x00\x00\xff\xffabcde",  # LZF claiming a 64 KiB result from 5 bytes
    b"\x02\x00",  # an empty set
    b"\x01\x02\x01a",  # a list of 2 strings holding 1
    b"\x10\x0b" + struct.pack("<IH", 11, 2) + b"\x81a\x02\xff",  # listpack count mismatch
    b"\x0b\x0c" + struct.pack("<II", 2, 2) + b"\x01\x00\x01\x00",  # intset with a duplicate
    b"\x04\x02\x01a\x01b\x01a\x01c",  # hash with a duplicate field
    b"\x12\x01\x03\x01a",  # quicklist node of an unknown container
    b"\x07\x00",  # a module value
    b"\x2a",  # an unknown type
])
def test_format_errors(obj: bytes) -> None:
    with pytest.raises(rdb.RdbError) as err:
        rdb.load(rdb.seal(obj))
    assert not err.value.version


def _samples() -> list[bytes]:
    th = rdb.Thresholds()
    values: list[Any] = [
        b"", b"12", b"-7", b"abc" * 40, deque([b"a", b"1", b"x" * 300]), {b"1", b"-2", b"40000"},
        {b"a", b"b"}, {b"f": b"v", b"n": b"1"}, {b"f%d" % i: b"v" * i for i in range(70)},
    ]
    out = [rdb.dump(v, th) for v in values]
    out.append(rdb.seal(rdb.encode_zset(_zset_pairs(4))))
    out.append(rdb.seal(rdb.encode_zset(_zset_pairs(140))))
    return out


SAMPLES = _samples()


def _load_bounded(payload: bytes) -> None:
    """Loading returns or raises RdbError, and allocates about the payload's size at most."""
    tracemalloc.start()
    try:
        with contextlib.suppress(rdb.RdbError):
            rdb.load(payload)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200 * len(payload) + (1 << 20), (peak, payload[:64])


@given(st.binary(max_size=300))
def test_decoder_survives_random_bytes(data: bytes) -> None:
    _load_bounded(data)
    _load_bounded(rdb.seal(data))  # past the checksum: the object decoder itself


@given(st.sampled_from(SAMPLES), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                                          min_size=1, max_size=8),
       st.integers(0, 20))
def test_decoder_survives_mutations(payload: bytes, edits: list[tuple[int, int]],
                                    cut: int) -> None:
    body = bytearray(payload[:-10])
    for pos, byte in edits:
        body[pos % len(body)] = byte
    if cut:
        del body[-min(cut, len(body) - 1):]
    _load_bounded(rdb.seal(bytes(body)))  # valid footer: every check is the decoder's


# ------------------------------------------------------------------ the commands


def test_dump_restore_every_type(rb: redis.Redis) -> None:
    rb.set("s", "hello")
    rb.set("i", "123")
    rb.set("big", "x" * 10000)
    rb.rpush("l", *[b"e%d" % i for i in range(5)])
    rb.rpush("L", *[b"x" * 100 for i in range(1000)])
    rb.sadd("si", 1, 2, 3)
    rb.sadd("ss", *[b"m%d" % i for i in range(600)])
    rb.hset("h", mapping={"a": "1", "b": "2"})
    rb.hset("H", mapping={b"f%d" % i: b"v" * 100 for i in range(10)})
    rb.zadd("z", {"a": 1, "b": 2.5})
    rb.zadd("Z", {b"m%d" % i: i / 3 for i in range(300)})
    for k in (b"s", b"i", b"big", b"l", b"L", b"si", b"ss", b"h", b"H", b"z", b"Z"):
        payload = rb.dump(k)
        assert payload is not None
        rb.restore(k + b"2", 0, payload)
        assert rb.type(k + b"2") == rb.type(k)
    assert rb.get("s2") == b"hello" and rb.get("big2") == b"x" * 10000
    assert rb.lrange("L2", 0, -1) == rb.lrange("L", 0, -1)
    assert rb.smembers("ss2") == rb.smembers("ss")
    assert rb.hgetall("H2") == rb.hgetall("H")
    assert rb.zrange("Z2", 0, -1, withscores=True) == rb.zrange("Z", 0, -1, withscores=True)
    assert rb.dump("missing") is None


def test_restore_options_and_errors(rb: redis.Redis) -> None:
    rb.set("k", "v")
    payload = rb.dump("k")
    with pytest.raises(redis.ResponseError, match="^BUSYKEY Target key name already exists.$"):
        rb.restore("k", 0, payload)
    with pytest.raises(redis.ResponseError, match="^syntax error$"):
        rb.execute_command("RESTORE", "k", 0, payload, "bogus")
    with pytest.raises(redis.ResponseError, match="^Invalid TTL value, must be >= 0$"):
        rb.execute_command("RESTORE", "n", -1, payload)
    with pytest.raises(redis.ResponseError, match="^value is not an integer or out of range$"):
        rb.execute_command("RESTORE", "n", "x", payload)
    with pytest.raises(redis.ResponseError, match="^DUMP payload version or checksum are wrong$"):
        rb.execute_command("RESTORE", "n", 0, payload[:-1] + bytes([payload[-1] ^ 1]))
    with pytest.raises(redis.ResponseError, match="^Bad data format$"):
        rb.execute_command("RESTORE", "n", 0, rdb.seal(b"\x02\x81" + b"\xff" * 8))
    with pytest.raises(redis.ResponseError, match="^Invalid IDLETIME value, must be >= 0$"):
        rb.execute_command("RESTORE", "n", 0, payload, "IDLETIME", -1)
    with pytest.raises(redis.ResponseError, match=r"^Invalid FREQ value, must be >= 0 and <= 255$"):
        rb.execute_command("RESTORE", "n", 0, payload, "FREQ", 256)
    with pytest.raises(redis.ResponseError, match="^syntax error$"):  # not both
        rb.execute_command("RESTORE", "n", 0, payload, "FREQ", 1, "IDLETIME", 1)
    assert rb.exists("n") == 0
    rb.set("k", "old")
    assert rb.execute_command("RESTORE", "k", 5000, payload, "REPLACE") == b"OK"
    assert rb.get("k") == b"v" and 3000 < rb.pttl("k") <= 5000
    at = int(time.time() * 1000) + 60_000
    rb.execute_command("RESTORE", "a", at, payload, "ABSTTL")
    assert rb.pexpiretime("a") == at
    # a relative TTL that overflows wraps into the past, as in Redis: nothing is created
    rb.execute_command("RESTORE", "w", 2**63 - 1, payload)
    assert rb.exists("w") == 0
    # a time in the past: nothing is created, and REPLACE deletes the old value
    rb.execute_command("RESTORE", "a", 1, payload, "ABSTTL", "REPLACE")
    assert rb.exists("a") == 0


def test_restore_idletime_and_freq(make_server: Any) -> None:
    srv = make_server({"maxmemory-policy": "allkeys-lru"})
    c = srv.client(decode_responses=False)
    c.set("k", "v")
    payload = c.dump("k")
    c.execute_command("RESTORE", "idle", 0, payload, "IDLETIME", 1000)
    assert 1000 <= c.object("idletime", "idle") <= 1010
    with pytest.raises(redis.ResponseError, match="LFU maxmemory policy is not selected"):
        c.object("freq", "idle")
    c.config_set("maxmemory-policy", "allkeys-lfu")
    c.execute_command("RESTORE", "f", 0, payload, "FREQ", 100)
    assert c.object("freq", "f") == 100
    with pytest.raises(redis.ResponseError, match="LFU maxmemory policy is selected"):
        c.object("idletime", "f")
    c.close()


def test_restore_forged_lengths_stay_bounded(rb: redis.Redis) -> None:
    """Lengths that claim far more than the payload holds are refused, not allocated."""
    for obj in (b"\x00\x81\xff\xff\xff\xff\xff\xff\xff\xf7", b"\x01\x81" + b"\x7f" * 8,
                b"\x00\xc3\x05\x81\x00\x00\x00\xff\xff\xff\xff\xffabcde",
                b"\x12\x80\xff\xff\xff\xff"):
        with pytest.raises(redis.ResponseError, match="^Bad data format$"):
            rb.restore("x", 0, rdb.seal(obj))
    assert rb.ping()


# ------------------------------------------------------------------ both ways with redis-server

SMALL_AND_LARGE: list[tuple[str, list[list[Any]]]] = [
    ("str", [["SET", "k", "hello"]]),
    ("int", [["SET", "k", "-1234567"]]),
    ("bigint", [["SET", "k", "98765432109876"]]),
    ("long", [["SET", "k", "abcdefghij" * 500]]),
    ("random", [["SET", "k", random.Random(1).randbytes(2000)]]),
    ("list", [["RPUSH", "k", "a", "1", "-300", "70000", "9999999999", "x" * 200]]),
    ("biglist", [["RPUSH", "k", *[b"item-%d" % i * (1 + i % 7) for i in range(5000)]]]),
    ("hugeelem", [["RPUSH", "k", "a", "y" * 20000, "b"]]),
    ("intset", [["SADD", "k", 1, -2, 70000, 2**40]]),
    ("set", [["SADD", "k", *[b"m%d" % i for i in range(700)]]]),
    ("numset", [["SADD", "k", *range(600)]]),
    ("hash", [["HSET", "k", "f", "v", "n", "12"]]),
    ("bighash", [["HSET", "k", *[x for i in range(600) for x in (b"f%d" % i, b"v%d" % i)]]]),
    ("longfield", [["HSET", "k", "f", "v" * 100]]),
    ("zset", [["ZADD", "k", "1", "a", "-2.5", "b", "inf", "c", "1e-300", "d"]]),
    ("bigzset", [["ZADD", "k", *[x for i in range(300) for x in (i * 0.25 - 7, b"m%d" % i)]]]),
    ("longmember", [["ZADD", "k", "3", "m" * 100]]),
]


def _read(c: redis.Redis, key: str) -> Any:
    t = c.type(key)
    if t == b"string":
        return c.get(key)
    if t == b"list":
        return c.lrange(key, 0, -1)
    if t == b"set":
        return c.smembers(key)
    if t == b"hash":
        return c.hgetall(key)
    if t == b"zset":
        return c.zrange(key, 0, -1, withscores=True)
    return t


@needs_redis
@pytest.mark.parametrize(("name", "cmds"), SMALL_AND_LARGE, ids=[n for n, _c in SMALL_AND_LARGE])
def test_payloads_move_both_ways_with_redis(rb: redis.Redis, ref: redis.Redis, name: str,
                                            cmds: list[list[Any]]) -> None:
    ref.flushall()
    for cmd in cmds:
        rb.execute_command(*cmd)
        ref.execute_command(*cmd)
    expected = _read(ref, "k")
    assert _read(rb, "k") == expected
    # Redis -> IronCache
    rb.restore("from_redis", 0, ref.dump("k"))
    assert _read(rb, "from_redis") == expected
    # IronCache -> Redis, and Redis gives it the same encoding as its own value
    ref.restore("from_ironcache", 0, rb.dump("k"))
    assert _read(ref, "from_ironcache") == expected
    assert ref.object("encoding", "from_ironcache") == ref.object("encoding", "k")
    assert rb.object("encoding", "k") == ref.object("encoding", "k")


@needs_redis
@pytest.mark.parametrize("n", [3, 200])
def test_zset_payloads_move_both_ways_with_redis(ref: redis.Redis, n: int) -> None:
    """The sorted-set codec against Redis's own listpack and skiplist payloads."""
    ref.flushall()
    pairs = _zset_pairs(n)
    ref.zadd("z", {m: s for m, s in pairs})
    t, got = rdb.load(ref.dump("z"))
    assert t == (rdb.T_ZSET_LISTPACK if n < 128 else rdb.T_ZSET_2)
    assert sorted(got, key=lambda p: (p[1], p[0])) == pairs
    ref.restore("mine", 0, rdb.seal(rdb.encode_zset(pairs)))
    assert ref.zrange("mine", 0, -1, withscores=True) == ref.zrange("z", 0, -1, withscores=True)
    assert ref.object("encoding", "mine") == ref.object("encoding", "z")


def test_dump_of_strings_the_bit_commands_and_pfmerge_edited(rb: redis.Redis) -> None:
    """Such strings are bytearrays in the keyspace: DUMP writes them as strings (it failed with
    an internal error before)."""
    rb.setbit("bits", 9, 1)
    rb.pfmerge("hll", "nosuch")
    for key in ("bits", "hll"):
        payload = rb.dump(key)
        assert payload is not None
        rb.restore(key + "-copy", 0, payload)
        assert rb.get(key + "-copy") == rb.get(key)
