"""Bit commands on strings: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD, BITFIELD_RO,
with Redis 7.0's ranges, limits and error wording (checked against redis-server too), and the
string commands on a value the bit commands edited in place."""

from __future__ import annotations

import random

import pytest
import redis

from support import IS_REDIS, Server, wire_error

OFFSET_ERR = "ERR bit offset is not an integer or out of range"
WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"


def test_setbit_getbit(rb: redis.Redis, server: Server) -> None:
    assert rb.setbit("b", 7, 1) == 0
    assert rb.get("b") == b"\x01"
    assert rb.setbit("b", 7, 1) == 1
    assert rb.setbit("b", 0, 1) == 0 and rb.get("b") == b"\x81"
    assert rb.setbit("b", 20, 1) == 0 and rb.get("b") == b"\x81\x00\x08"
    assert rb.setbit("b", 0, 0) == 1 and rb.get("b") == b"\x01\x00\x08"
    assert [rb.getbit("b", i) for i in (0, 7, 20, 21, 10_000)] == [0, 1, 1, 0, 0]
    assert rb.getbit("nokey", 3) == 0
    rb.set("s", "`")  # 0x60
    assert [rb.getbit("s", i) for i in range(8)] == [0, 1, 1, 0, 0, 0, 0, 0]


def test_setbit_errors_and_limits(r: redis.Redis, server: Server) -> None:
    for off in ("-1", "x", "4294967296000", "1.5", " 1"):
        assert wire_error(server, "SETBIT", "b", off, "1") == OFFSET_ERR, off
    assert wire_error(server, "GETBIT", "b", "-1") == OFFSET_ERR
    for bit in ("2", "-1", "x"):
        assert wire_error(server, "SETBIT", "b", "0", bit) == (
            "ERR bit is not an integer or out of range")
    # 512 MB is the most a string may hold: the offset 2**32 is the first one refused.
    assert wire_error(server, "SETBIT", "b", str(2**32), "1") == OFFSET_ERR
    assert r.getbit("b", 2**32 - 1) == 0
    r.config_set("proto-max-bulk-len", "1mb")
    try:
        assert wire_error(server, "SETBIT", "b", str(8 * 2**20), "1") == OFFSET_ERR
        assert r.setbit("b", 8 * 2**20 - 1, 1) == 0
        assert r.strlen("b") == 2**20
    finally:
        r.config_set("proto-max-bulk-len", "512mb")
    r.rpush("l", "x")
    assert wire_error(server, "SETBIT", "l", "0", "1") == WRONGTYPE
    assert wire_error(server, "GETBIT", "l", "0") == WRONGTYPE


def test_bit_edited_value_is_still_a_string(rb: redis.Redis) -> None:
    """The string commands read and extend a value SETBIT changed in place."""
    rb.set("k", "13")
    rb.expire("k", 100)
    assert rb.setbit("k", 15, 0) == 1  # "3" is 0x33: clearing its low bit gives "2"
    assert rb.get("k") == b"12" and rb.type("k") == b"string"
    assert rb.ttl("k") > 0  # SETBIT keeps the TTL
    rb.setbit("k", 15, 1)
    assert rb.incr("k") == 14
    rb.setbit("k", 8, 0)
    assert rb.append("k", "ab") == 4 and rb.get("k") == b"14ab"
    rb.setbit("k", 0, 0)
    assert rb.setrange("k", 6, "Z") == 7 and rb.get("k") == b"14ab\x00\x00Z"
    assert rb.strlen("k") == 7 and rb.getrange("k", 1, 2) == b"4a"
    assert rb.mget("k", "nokey") == [b"14ab\x00\x00Z", None]
    assert rb.getset("k", "new") == b"14ab\x00\x00Z"
    rb.setbit("k", 0, 1)
    assert rb.set("k", "x", get=True) == b"\xeeew"
    rb.set("f", "1.5")
    rb.setbit("f", 1, 0)
    assert rb.incrbyfloat("f", 1) == 2.5
    rb.setbit("d", 1, 1)
    assert rb.getdel("d") == b"@" and rb.exists("d") == 0
    rb.setbit("e", 1, 1)
    rb.setex("e", 100, "fresh")
    assert rb.get("e") == b"fresh"
    rb.set("t1", "ohmytext")
    rb.setbit("t1", 0, 0)  # unchanged ("o" is 0x6f), but now edited in place
    rb.set("t2", "mynewtext")
    assert rb.execute_command("LCS", "t1", "t2") == b"mytext"


def test_bitcount(rb: redis.Redis, server: Server) -> None:
    rb.set("s", "foobar")
    assert rb.bitcount("s") == 26
    assert rb.bitcount("s", 0, 0) == 4 and rb.bitcount("s", 1, 1) == 6
    assert rb.bitcount("s", 1, 1, "BYTE") == 6
    assert rb.bitcount("s", 5, 30, "BIT") == 17
    assert rb.bitcount("s", -1, -1) == 4
    assert rb.bitcount("s", -2, -1, "bit") == 1
    assert rb.bitcount("s", -1, -2) == 0 and rb.bitcount("s", 10, 100) == 0
    assert rb.bitcount("s", 0, 1000) == 26
    assert rb.bitcount("nokey") == 0
    assert wire_error(server, "BITCOUNT", "s", "0") == "ERR syntax error"
    assert wire_error(server, "BITCOUNT", "s", "0", "1", "nibble") == "ERR syntax error"
    assert wire_error(server, "BITCOUNT", "s", "x", "1") == (
        "ERR value is not an integer or out of range")
    # Redis answers an empty negative range before it reads the unit.
    assert rb.execute_command("BITCOUNT", "s", "-1", "-2", "nibble") == 0


def test_bitcount_matches_a_reference(rb: redis.Redis) -> None:
    rnd = random.Random(7)
    for _ in range(40):
        value = rnd.randbytes(rnd.randrange(1, 40))
        rb.set("s", value)
        bits = "".join(f"{b:08b}" for b in value)
        start, end = rnd.randrange(-70, 70), rnd.randrange(-70, 70)
        n = len(value)
        s, e = (start + n if start < 0 else start), (end + n if end < 0 else end)
        s, e = max(s, 0), min(max(e, 0), n - 1)
        empty = (start < 0 and end < 0 and start > end) or s > e
        want = 0 if empty else bits[8 * s : 8 * e + 8].count("1")
        assert rb.bitcount("s", start, end) == want


def test_bitpos(rb: redis.Redis, server: Server) -> None:
    rb.set("s", b"\xff\xf0\x00")
    assert rb.bitpos("s", 0) == 12
    assert rb.bitpos("s", 1) == 0
    rb.set("s", b"\x00\xff\xf0")
    assert rb.bitpos("s", 1, 0) == 8 and rb.bitpos("s", 1, 2) == 16
    assert rb.bitpos("s", 1, 2, -1, "BYTE") == 16
    assert rb.bitpos("s", 1, 7, 15, "BIT") == 8
    assert rb.bitpos("s", 1, 7, -3, "BIT") == 8
    rb.set("s", b"\xff\xff\xff")
    assert rb.bitpos("s", 0) == 24  # no end given: the bits after the string are clear
    assert rb.bitpos("s", 0, 1) == 24
    assert rb.bitpos("s", 0, 0, -1) == -1  # an end given: only the range counts
    assert rb.bitpos("s", 0, 3, 20, "BIT") == -1
    rb.set("z", b"\x00\x00")
    assert rb.bitpos("z", 1) == -1
    assert rb.bitpos("nokey", 0) == 0 and rb.bitpos("nokey", 1) == -1
    rb.set("empty", "")
    assert rb.bitpos("empty", 0) == -1
    assert wire_error(server, "BITPOS", "s", "2") == "ERR The bit argument must be 1 or 0."
    assert wire_error(server, "BITPOS", "s", "1", "0", "1", "nibble") == "ERR syntax error"
    assert wire_error(server, "BITPOS", "s", "1", "0", "1", "bit", "x") == "ERR syntax error"


def test_bitop(rb: redis.Redis, server: Server) -> None:
    rb.set("a", b"\xff\x0f")
    rb.set("b", b"\x0f")
    assert rb.bitop("AND", "d", "a", "b") == 2 and rb.get("d") == b"\x0f\x00"
    assert rb.bitop("OR", "d", "a", "b") == 2 and rb.get("d") == b"\xff\x0f"
    assert rb.bitop("XOR", "d", "a", "b") == 2 and rb.get("d") == b"\xf0\x0f"
    assert rb.bitop("NOT", "d", "a") == 2 and rb.get("d") == b"\x00\xf0"
    assert rb.bitop("AND", "d", "a", "nokey") == 2 and rb.get("d") == b"\x00\x00"
    assert rb.bitop("OR", "a", "a", "b") == 2  # the destination may be a source
    rb.expire("d", 100)
    assert rb.bitop("XOR", "d", "a") == 2 and rb.ttl("d") == -1
    assert rb.bitop("OR", "d", "nokey", "nokey2") == 0 and rb.exists("d") == 0
    assert wire_error(server, "BITOP", "NOT", "d", "a", "b") == (
        "ERR BITOP NOT must be called with a single source key.")
    assert wire_error(server, "BITOP", "NAND", "d", "a") == "ERR syntax error"
    rb.rpush("l", "x")
    assert wire_error(server, "BITOP", "AND", "d", "a", "l") == WRONGTYPE


def test_bitfield(r: redis.Redis, server: Server) -> None:
    bf = ["BITFIELD", "bf"]
    assert r.execute_command(*bf, "SET", "i8", "0", "-100", "GET", "i8", "0") == [0, -100]
    assert r.execute_command("BITFIELD", "bf", "GET", "u8", "0") == [156]
    assert r.execute_command("BITFIELD", "bf", "INCRBY", "u2", "100", "1",
                             "OVERFLOW", "SAT", "INCRBY", "u2", "102", "5") == [1, 3]
    assert r.execute_command(*bf, "OVERFLOW", "FAIL", "INCRBY", "i8", "0", "-100") == [None]
    assert r.execute_command(*bf, "OVERFLOW", "WRAP", "INCRBY", "i8", "0", "-100") == [56]
    assert r.execute_command(*bf, "SET", "u8", "#1", "255", "GET", "u8", "8") == [0, 255]
    assert r.execute_command("BITFIELD", "bf", "OVERFLOW", "SAT", "SET", "u4", "0", "-1") == [3]
    assert r.execute_command("BITFIELD", "bf", "GET", "u4", "0") == [15]
    old = r.execute_command("BITFIELD", "bf", "GET", "i64", "0")[0]
    assert r.execute_command("BITFIELD", "bf", "SET", "i64", "0", "-1", "GET", "u63", "0") == [
        old, 2**63 - 1]
    assert r.execute_command("BITFIELD", "nokey", "GET", "u8", "0") == [0]
    assert r.exists("nokey") == 0
    assert r.execute_command("BITFIELD", "bf") == []
    assert r.execute_command("BITFIELD_RO", "bf", "GET", "i8", "8") == [-1]
    assert wire_error(server, "BITFIELD_RO", "bf", "SET", "u8", "0", "1") == (
        "ERR BITFIELD_RO only supports the GET subcommand")
    for bad in ("u64", "i65", "u0", "x8", "U8", "i"):
        assert wire_error(server, "BITFIELD", "bf", "GET", bad, "0") == (
            "ERR Invalid bitfield type. Use something like i16 u8. "
            "Note that u64 is not supported but i64 is."), bad
    assert wire_error(server, "BITFIELD", "bf", "OVERFLOW", "UP") == (
        "ERR Invalid OVERFLOW type specified")
    assert wire_error(server, "BITFIELD", "bf", "GET", "u8") == "ERR syntax error"
    assert wire_error(server, "BITFIELD", "bf", "SET", "u8", "0", "x") == (
        "ERR value is not an integer or out of range")
    assert wire_error(server, "BITFIELD", "bf", "GET", "u8", "-1") == OFFSET_ERR


def test_bitfield_matches_a_reference(r: redis.Redis, server: Server) -> None:
    """Random SET/INCRBY/GET with every overflow mode against a model in Python ints."""
    rnd = random.Random(3)
    model = 0  # the string as a big-endian integer of 16 bytes
    r.set("m", b"\x00" * 16)
    for _ in range(150):
        signed = rnd.random() < 0.5
        bits = rnd.randrange(1, 65 if signed else 64)
        offset = rnd.randrange(0, 128 - bits)
        mode = rnd.choice(["WRAP", "SAT", "FAIL"])
        op = rnd.choice(["SET", "INCRBY", "GET"])
        arg = rnd.randrange(-(2**63), 2**63) if rnd.random() < 0.3 else rnd.randrange(-300, 300)
        shift = 128 - offset - bits
        raw = (model >> shift) & ((1 << bits) - 1)
        old = raw - (1 << bits) if signed and raw >> (bits - 1) else raw
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        args = ["BITFIELD", "m", "OVERFLOW", mode, op, f"{'i' if signed else 'u'}{bits}", offset]
        if op == "GET":
            assert r.execute_command(*args) == [old]
            continue
        target = old + arg if op == "INCRBY" else (arg if signed else arg % 2**64)
        if lo <= target <= hi:
            new, failed = target, False
        elif mode == "FAIL":
            new, failed = old, True
        elif mode == "SAT":
            new, failed = (hi if target > hi else lo), False
        else:
            new = target & ((1 << bits) - 1)
            new = new - (1 << bits) if signed and new >> (bits - 1) else new
            failed = False
        want = None if failed else (new if op == "INCRBY" else old)
        assert r.execute_command(*args, arg) == [want], (args, arg)
        mask = ((1 << bits) - 1) << shift
        model = (model & ~mask) | ((new % (1 << bits)) << shift)
    assert server.client(decode_responses=False).get("m") == model.to_bytes(16, "big")


@pytest.mark.skipif(IS_REDIS, reason="IronCache's memory accounting")
def test_setbit_growth_is_accounted(r: redis.Redis) -> None:
    before = r.info("memory")["used_memory"]
    r.setbit("big", 8 * 100_000, 1)
    grown = r.info("memory")["used_memory"] - before
    assert 100_000 <= grown < 101_000
    r.setbit("big", 8 * 200_000, 1)
    assert 200_000 <= r.info("memory")["used_memory"] - before < 201_000
    r.delete("big")
    assert r.info("memory")["used_memory"] - before < 1000


def test_values_larger_than_a_scan_chunk(rb: redis.Redis) -> None:
    """Values of a few MB are scanned in 1 MB chunks: the chunk edges change no answer."""
    size = 3 * 2**20 + 5
    a = bytearray(size)
    a[2**20 - 1] = 0x01  # the last bit of the first chunk
    a[2**20] = 0x80  # the first bit of the second one
    a[-1] = 0xFF
    rb.set("a", bytes(a))
    assert rb.bitcount("a") == 10
    assert rb.bitcount("a", 2**20 - 1, 2**20) == 2
    assert rb.bitcount("a", 8 * 2**20 - 1, 8 * 2**20, "BIT") == 2
    assert rb.bitpos("a", 1) == 8 * 2**20 - 1
    assert rb.bitpos("a", 1, 2**20) == 8 * 2**20
    assert rb.bitpos("a", 1, 2**20 + 1) == 8 * (size - 1)
    assert rb.bitpos("a", 0, size - 1) == 8 * size
    rb.setbit("b", 8 * 2**20 + 3, 1)
    assert rb.bitop("OR", "c", "a", "b") == size
    c = rb.get("c")
    assert c[2**20] == 0x90 and c[:2**20] == bytes(a[:2**20]) and c[-1] == 0xFF
    assert rb.bitop("AND", "c", "a", "b") == size and rb.bitcount("c") == 0
    assert rb.bitop("NOT", "c", "a") == size and rb.bitcount("c") == 8 * size - 10
