"""Generic key commands: DEL/EXISTS/expiry family/TYPE/KEYS/SCAN/RENAME/RANDOMKEY/TOUCH/..."""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from support import REDIS_SERVER, RedisReference, Server, wire_error


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


# ------------------------------------------------------------ SCAN without per-cursor state


def _scan_under_churn(seed: int) -> None:
    """One SCAN iteration (COUNT 1..20) while keys are added, deleted, deleted and re-added,
    and the order is compacted: every key present throughout is returned, and it ends."""
    from ironcache.keyspace import Keyspace

    rng = random.Random(seed)
    db = Keyspace(1).dbs[0]
    for i in range(rng.randrange(1000, 3000)):
        db.set(b"k%d" % i, b"v")
    for i in rng.sample(range(3000), 800):  # stale slots and re-added keys before the scan
        db.delete(b"k%d" % i)
        if rng.random() < 0.3:
            db.set(b"k%d" % i, b"v")
    start = set(db.data)
    touched: set[bytes] = set()
    seen: set[bytes] = set()
    next_key, epoch0, cursor = 3000, db.epoch, 0
    for _step in range(100_000):
        cursor, batch = db.scan_slots(cursor, rng.randrange(1, 21))
        seen.update(k for k in batch if k in db.data)
        if cursor == 0:
            break
        if _step == 2:
            db.compact_order()  # at least one compaction with this cursor in flight
        for dummy in range(rng.randrange(0, 8)):
            op = rng.random()
            if op < 0.5 and db.data:
                k = rng.choice(db.order)
                if db.delete(k):
                    touched.add(k)
                    if rng.random() < 0.3:
                        db.set(k, b"v")  # deleted and re-added: a second slot
            elif op < 0.9:
                db.set(b"k%d" % next_key, b"v")
                next_key += 1
            elif op < 0.902:  # rare: each maps cursors back up to SCAN_MARK slots
                db.compact_order()
    else:
        raise AssertionError("the scan did not end")
    assert db.epoch != epoch0, "no compaction ran during the scan: the test proves nothing"
    missed = (start - touched) - seen
    assert not missed, f"seed {seed}: {len(missed)} keys present throughout never returned"


@pytest.mark.parametrize("seed", range(12))
def test_scan_guarantee_under_inserts_deletes_and_compactions(seed: int) -> None:
    _scan_under_churn(seed)


def test_scan_order_stays_bounded_and_survives_flush() -> None:
    from ironcache.keyspace import Keyspace

    db = Keyspace(1).dbs[0]
    for i in range(20_000):
        db.set(b"k%d" % i, b"v")
    for _round in range(5):  # delete and re-add the same keys: no unbounded duplicates
        for i in range(0, 20_000, 2):
            db.delete(b"k%d" % i)
            db.set(b"k%d" % i, b"v")
    assert len(db.order) < 2.2 * len(db.data)
    assert set(db.order) >= set(db.data)
    cursor, batch = db.scan_slots(0, 10)
    db.flush()
    assert db.order == [] and db.scan_slots(cursor, 10) == (0, [])
    db.set(b"new", b"v")
    assert db.scan_slots(cursor, 10) == (0, [b"new"])  # an old cursor starts over, safely


CURSORS = ["0", "+1", "-1", "01", "-0", "", "abc", "1x", " 1", "1 ", "\t1", "-", "+", "+-1",
           "0x1", "18446744073709551615", "18446744073709551616", "-18446744073709551615",
           "-18446744073709551616", "0" * 30 + "1", "9" * 5000, "\u0661"]


@pytest.mark.skipif(shutil.which(REDIS_SERVER) is None, reason="redis-server not installed")
def test_scan_cursor_parsing_as_redis(server: Server, tmp_path: Path) -> None:
    """Redis 7.0 reads cursors with strtoul: signs, '' and leading zeros pass, spaces and
    trailing bytes do not. SSCAN and HSCAN answer small collections whole, cursor 0."""
    ref = RedisReference(tmp_path / "redis").start()
    try:
        replies = {}
        for srv in (server, ref):
            c = srv.client()
            c.flushall()
            c.sadd("s", "1")  # an intset: Redis 7.0 answers it whole (a hashtable set walks
            # its buckets, so a non-zero cursor there would depend on Redis's hash seed)
            c.hset("h", "f", "v")
            got = []
            for cur in CURSORS:
                for cmd in (["SCAN", cur], ["SSCAN", "s", cur], ["HSCAN", "h", cur],
                            ["SSCAN", "nokey", cur]):
                    try:
                        rep: Any = c.execute_command(*cmd)
                        # A non-zero SCAN cursor walks different keys (KEPT
                        # scan-foreign-cursor): only the collections' replies are compared.
                        rep = "array" if cmd[0] == "SCAN" else [rep[0], sorted(rep[1])]
                    except redis.ResponseError as e:
                        rep = str(e)
                    got.append((tuple(cmd), rep))
            replies[srv] = got
            c.flushall()
        assert replies[server] == replies[ref]
        assert ("SCAN", "abc") in [(a[0][0], a[0][1]) for a in replies[server]
                                   if a[1] == "invalid cursor"]  # control: errors compared
    finally:
        ref.stop()


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_scan_keeps_no_copy_per_cursor(make_server: Callable[..., Server]) -> None:
    """64 SCAN 0 COUNT 10 on 200k keys: each answers its ten keys; RSS barely moves (a copy
    of the key list per cursor cost about 1.6 MB each here)."""
    srv = make_server()
    c = srv.client()
    for start in range(0, 200_000, 10_000):
        c.mset({f"key:{i}": "v" for i in range(start, start + 10_000)})
    assert c.dbsize() == 200_000
    c.execute_command("SCAN", "0", "COUNT", "10")  # warm up the reply path
    before = _rss(srv.pid)
    cursors = set()
    for dummy in range(64):
        cursor, keys = c.execute_command("SCAN", "0", "COUNT", "10")
        assert 1 <= len(keys) <= 10 and cursor != b"0"
        cursors.add(cursor)
    grown = _rss(srv.pid) - before
    assert len(cursors) == 1  # the same position each time: no per-cursor state
    assert grown < 3 * 1024 * 1024, f"RSS grew by {grown / 2**20:.1f} MiB"


def test_scan_order_is_rebuilt_from_a_saved_state() -> None:
    """A snapshot or handover stores keys and values only: loading rebuilds SCAN's order."""
    from ironcache import state
    from ironcache.keyspace import Keyspace

    ks = Keyspace(2)
    for i in range(3000):
        ks.dbs[1].set(b"k%d" % i, b"v")
    body, dummy = state.decode(state.encode({}, ks, []), "test")
    loaded = Keyspace(2)
    assert state.load_dataset(loaded, body["dbs"]) == 3000
    db, seen, cursor = loaded.dbs[1], set(), 0
    for _step in range(1000):
        cursor, batch = db.scan_slots(cursor, 100)
        seen.update(batch)
        if cursor == 0:
            break
    assert seen == set(db.data) and len(seen) == 3000
    assert loaded.dbs[0].scan_slots(0, 10) == (0, [])


def test_scan_names_a_deleted_and_readded_key_once(r: redis.Redis) -> None:
    r.flushdb()
    r.incr("c")
    r.delete("c", "c")
    r.setnx("c", "3.0e2")
    cursor, keys = r.scan(0, count=1000)
    assert (cursor, keys) == (0, ["c"])
