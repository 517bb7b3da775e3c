"""COPY, MOVE, SWAPDB, OBJECT, SORT / SORT_RO: behaviour, WATCH, and replies compared with Redis."""

from __future__ import annotations

import shutil
from typing import Any

import pytest
import redis

from support import REDIS_SERVER, Server, ironcache_only


def test_copy(r: redis.Redis) -> None:
    r.set("s", "v", ex=100)
    r.rpush("l", "a", "b")
    assert r.copy("s", "s2") is True
    assert r.get("s2") == "v" and 0 < r.ttl("s2") <= 100
    assert r.copy("s", "s2") is False  # exists, no REPLACE
    r.set("s", "new")
    assert r.copy("s", "s2", replace=True) is True
    assert r.get("s2") == "new" and r.ttl("s2") == -1  # no TTL on the source: none copied
    assert r.copy("l", "l2", destination_db=3) is True
    r.rpush("l", "c")  # the copy is independent
    c3 = r.connection_pool.connection_kwargs
    other = redis.Redis(host=c3["host"], port=c3["port"], db=3, decode_responses=True)
    assert other.lrange("l2", 0, -1) == ["a", "b"]
    other.close()
    assert r.copy("missing", "x") is False
    with pytest.raises(redis.ResponseError, match="^source and destination objects are the same$"):
        r.copy("s", "s")
    assert r.copy("s", "s", destination_db=1) is True
    with pytest.raises(redis.ResponseError, match="^DB index is out of range$"):
        r.copy("s", "x", destination_db=16)
    with pytest.raises(redis.ResponseError, match="^value is not an integer or out of range$"):
        r.execute_command("COPY", "s", "x", "DB", "one")
    with pytest.raises(redis.ResponseError, match="^syntax error$"):
        r.execute_command("COPY", "s", "x", "DB")


def test_move(r: redis.Redis) -> None:
    r.set("k", "v", ex=100)
    assert r.move("k", 1) is True
    assert r.exists("k") == 0
    r.execute_command("SELECT", 1)
    assert r.get("k") == "v" and 0 < r.ttl("k") <= 100
    r.execute_command("SELECT", 0)
    r.set("k", "here")
    assert r.move("k", 1) is False  # taken in the target
    assert r.move("missing", 1) is False
    with pytest.raises(redis.ResponseError, match="^source and destination objects are the same$"):
        r.move("k", 0)
    with pytest.raises(redis.ResponseError, match="^DB index is out of range$"):
        r.move("k", 99)


def test_swapdb_and_watch(server: Server) -> None:
    a = server.client()
    b = server.client()
    a.flushall()
    a.set("k", "db0")
    b.execute_command("SELECT", 1)
    b.set("k", "db1")
    b.set("only1", "x")
    assert a.swapdb(0, 1) is True
    assert a.get("k") == "db1" and b.get("k") == "db0"  # clients stay on their index
    assert a.exists("only1") == 1 and b.exists("only1") == 0
    assert a.swapdb(3, 3) is True
    with pytest.raises(redis.ResponseError, match="^invalid first DB index$"):
        a.swapdb("x", 1)
    with pytest.raises(redis.ResponseError, match="^invalid second DB index$"):
        a.swapdb(1, "x")
    with pytest.raises(redis.ResponseError, match="^DB index is out of range$"):
        a.swapdb(0, 16)
    # WATCH: a watched key that exists on either side is dirtied; one absent from both is not
    for key, dirty in (("k", True), ("nowhere", False)):
        with a.pipeline() as p:
            p.watch(key)
            b.swapdb(0, 1)
            p.multi()
            p.ping()
            if dirty:
                with pytest.raises(redis.WatchError):
                    p.execute()
            else:
                assert p.execute() == [True]
    a.close()
    b.close()


@pytest.mark.parametrize("change", [
    ["MOVE", "w", "1"], ["COPY", "src", "w", "REPLACE"], ["COPY", "src", "w"],
    ["SORT", "src", "STORE", "w"], ["RESTORE", "w", "0", "@", "REPLACE"],
])
def test_watch_sees_keyops(server: Server, change: list[str]) -> None:
    a = server.client(decode_responses=False)
    b = server.client(decode_responses=False)
    a.flushall()
    a.rpush("src", "3", "1", "2")
    a.set("w", "x")
    payload = a.dump("src")
    with a.pipeline() as p:
        p.watch("w")
        b.execute_command(*[payload if x == "@" else x for x in change])
        p.multi()
        p.ping()
        if change[:1] == ["COPY"] and "REPLACE" not in change:  # w exists: nothing copied
            assert p.execute() == [True]
        else:
            with pytest.raises(redis.WatchError):
                p.execute()
    a.close()
    b.close()


def test_object(r: redis.Redis) -> None:
    r.set("s", "hello")
    assert r.object("encoding", "s") == "embstr"
    assert r.object("refcount", "s") == 1
    assert r.object("idletime", "s") == 0
    assert r.object("encoding", "missing") is None
    assert r.execute_command("OBJECT", "HELP")[0].startswith("OBJECT <subcommand>")
    with pytest.raises(redis.ResponseError, match="^unknown subcommand 'x'. Try OBJECT HELP.$"):
        r.execute_command("OBJECT", "x", "s")
    with pytest.raises(redis.ResponseError, match="LFU maxmemory policy is not selected"):
        r.object("freq", "s")


# Commands run on IronCache and on redis-server alike: every reply (or error) must be equal.
SETUP = [
    ["RPUSH", "l", "3", "1", "2", "10", "-5", "2.5"],
    ["RPUSH", "words", "banana", "apple", "cherry", "apple"],
    ["SADD", "nums", "5", "3", "9", "1"],
    ["SADD", "strs", "b", "a", "c"],
    ["MSET", "w_3", "30", "w_1", "10", "w_2", "20", "w_10", "5", "w_-5", "x", "n_1", "one",
     "n_2", "two"],
    ["HSET", "h_1", "f", "9"], ["HSET", "h_2", "f", "8"], ["HSET", "h_3", "f", "7"],
    ["SET", "str", "v"],
    ["RPUSH", "mixed", "a", "1"],
]
CASES = [
    ["SORT", "l"], ["SORT", "l", "DESC"], ["SORT", "l", "LIMIT", "1", "2"],
    ["SORT", "l", "LIMIT", "-1", "2"], ["SORT", "l", "LIMIT", "2", "-1"],
    ["SORT", "l", "LIMIT", "10", "2"], ["SORT", "l", "LIMIT", "0", "0"],
    ["SORT", "words", "ALPHA"], ["SORT", "words", "ALPHA", "DESC", "LIMIT", "0", "2"],
    ["SORT", "words"], ["SORT", "mixed"], ["SORT", "mixed", "ALPHA"],
    ["SORT", "nums"], ["SORT", "strs", "ALPHA"],
    ["SORT", "nums", "BY", "nosort"], ["SORT", "l", "BY", "nosort"],
    ["SORT", "l", "BY", "nosort", "DESC"], ["SORT", "l", "BY", "nosort", "LIMIT", "1", "3"],
    ["SORT", "l", "BY", "nosort", "DESC", "LIMIT", "1", "3"],
    ["SORT", "l", "BY", "w_*"], ["SORT", "l", "BY", "w_*", "ALPHA"],
    ["SORT", "nums", "BY", "h_*->f"], ["SORT", "nums", "BY", "h_*->f", "DESC"],
    ["SORT", "nums", "BY", "h_*->f", "GET", "#", "GET", "n_*", "GET", "h_*->f", "GET", "nokey"],
    ["SORT", "l", "GET", "w_*", "GET", "#"], ["SORT", "l", "BY", "w_*->", "ALPHA"],
    ["SORT", "str"], ["SORT", "missing"], ["SORT", "missing", "STORE", "dst"], ["EXISTS", "dst"],
    ["SORT", "l", "STORE", "dst"], ["LRANGE", "dst", "0", "-1"],
    ["SORT", "nums", "BY", "nosort", "STORE", "dst2"], ["LRANGE", "dst2", "0", "-1"],
    ["SORT", "l", "GET", "n_*", "STORE", "dst3"], ["LRANGE", "dst3", "0", "-1"],
    ["SORT_RO", "l", "DESC"], ["SORT_RO", "l", "STORE", "x"], ["SORT", "l", "LIMIT", "1"],
    ["SORT", "l", "LIMIT", "a", "1"], ["SORT", "l", "bogus"], ["SORT", "l", "BY"],
    ["SORT", "l", "GET"],
    ["OBJECT", "ENCODING", "l"], ["OBJECT", "ENCODING", "nums"], ["OBJECT", "ENCODING", "strs"],
    ["OBJECT", "ENCODING", "h_1"], ["OBJECT", "ENCODING", "str"], ["OBJECT", "ENCODING", "w_1"],
    ["OBJECT", "REFCOUNT", "w_1"], ["OBJECT", "REFCOUNT", "str"], ["OBJECT", "ENCODING"],
    ["OBJECT", "HELP"], ["OBJECT", "help", "x"], ["OBJECT", "FREQ", "str"],
    ["COPY", "l", "l"], ["COPY", "l", "lc", "DB", "-1"], ["COPY", "l", "lc", "REPLACE", "x"],
    ["MOVE", "l", "x"], ["MOVE", "l", "-1"], ["MOVE", "l", "4294967296"],
    ["COPY", "l", "x", "DB", "2147483648"], ["SWAPDB", "4294967296", "0"],
    ["SWAPDB", "0", "2147483648"], ["MOVE", "nokey", "0"], ["SWAPDB", "0", "-1"],
    ["SWAPDB", "a", "b"],
    ["RESTORE", "k", "0", "garbage"], ["RESTORE", "str", "0", "garbage"],
    ["RESTORE", "k", "0", "garbage", "IDLETIME"], ["DUMP", "nokey"],
    ["COMMAND", "GETKEYS", "SORT", "abc", "STORE", "invalid", "STORE", "def"],
    ["COMMAND", "GETKEYS", "SORT", "abc", "LIMIT", "store", "x", "GET", "store", "STORE"],
    ["COMMAND", "GETKEYS", "SORT", "abc", "BY", "store", "store", "d"],
    ["COMMAND", "GETKEYS", "SORT_RO", "abc", "STORE", "d"],
]


def _run(c: redis.Redis, cmd: list[str]) -> Any:
    try:
        if cmd[:2] == ["COMMAND", "GETKEYS"]:  # redis-py parses COMMAND replies as COMMAND INFO
            return c.command_getkeys(*cmd[2:])
        return c.execute_command(*cmd)
    except redis.ResponseError as e:
        return f"error: {e}"


@pytest.mark.skipif(shutil.which(REDIS_SERVER) is None, reason="redis-server not installed")
def test_replies_as_redis(rb: redis.Redis, ref: redis.Redis) -> None:
    ref.flushall()
    for cmd in SETUP:
        rb.execute_command(*cmd)
        ref.execute_command(*cmd)
    for cmd in CASES:
        assert _run(rb, cmd) == _run(ref, cmd), cmd


@pytest.mark.skipif(shutil.which(REDIS_SERVER) is None, reason="redis-server not installed")
@pytest.mark.parametrize("setup", [
    ["SADD", "k", *[str(i) for i in range(513)]],  # over set-max-intset-entries
    ["HSET", "k", "f", "x" * 65],  # over hash-max-listpack-value
    ["HSET", "k", *[f"f{i // 2}" if i % 2 == 0 else "v" for i in range(1026)]],
    ["SET", "k", "x" * 45], ["SET", "k", "12345678901234567890"], ["SET", "k", "-0"],
    ["SET", "k", "9999"], ["SET", "k", "10000"],
])
def test_object_encoding_thresholds_as_redis(rb: redis.Redis, ref: redis.Redis,
                                             setup: list[str]) -> None:
    ref.flushall()
    rb.execute_command(*setup)
    ref.execute_command(*setup)
    for sub in ("ENCODING", "REFCOUNT"):
        assert rb.execute_command("OBJECT", sub, "k") == ref.execute_command("OBJECT", sub, "k")


def test_lfu_counts_accesses_and_evicts_the_least_used(make_server: Any) -> None:
    srv = make_server({"maxmemory-policy": "allkeys-lfu", "lfu-log-factor": "0"})
    c = srv.client()
    c.set("k", "v")
    assert c.object("freq", "k") == 5  # LFU_INIT_VAL
    for _i in range(20):
        c.get("k")
    # log factor 0: every access counts; OBJECT itself does not
    assert c.object("freq", "k") == c.object("freq", "k") == 25
    c.config_set("lfu-log-factor", "1")
    for _i in range(400):
        c.get("k")
    # logarithmic: each access counts with chance 1/(counter - 5 + 1), about 10 more here
    assert 25 < c.object("freq", "k") < 100
    c.config_set("maxmemory-policy", "noeviction")
    with pytest.raises(redis.ResponseError, match="LFU maxmemory policy is not selected"):
        c.object("freq", "k")
    c.close()


@pytest.mark.parametrize("with_ttls", [False, True], ids=["no-ttl", "ttl-in-db"])
def test_lfu_counts_every_command_that_reads_or_writes_a_key(
    make_server: Any, with_ttls: bool
) -> None:
    """Writes are accesses too: a counter, a queue or a set that is only written must not look
    cold to the LFU eviction. With lfu-log-factor 0 every access adds one: each command below
    runs 10 times on a key it created (LFU_INIT_VAL 5), SINTER k k reads its key twice. With a
    key with a TTL in the database, lookups take the expiring path: counted once all the same.
    A maxmemory keeps Redis from sharing small integers (whose one counter every INCR'd key
    holding that value would read) when the test runs against it."""
    srv = make_server(
        {"maxmemory-policy": "allkeys-lfu", "lfu-log-factor": "0", "maxmemory": "256mb"}
    )
    c = srv.client()
    if with_ttls:
        c.set("other", "v", ex=1000)
    commands = {
        "s": ("SADD", "s", "a"),
        "s2": ("SADD", "s2", "a", "b"),
        "l": ("LPUSH", "l", "a"),
        "l2": ("RPUSH", "l2", "a"),
        "h": ("HSET", "h", "f", "v"),
        "h2": ("HSET", "h2", "f", "v", "g", "w"),
        "n": ("INCR", "n"),
        "n2": ("INCRBY", "n2", "3"),
        "z": ("ZADD", "z", "1", "a"),
        "k": ("SET", "k", "v"),
    }
    for key, cmd in commands.items():
        for _i in range(11):  # the first creates the key
            c.execute_command(*cmd)
        assert c.object("freq", key) == 15, cmd
    for _i in range(10):
        c.get("k")
        c.sinter("s", "s")
    assert c.object("freq", "k") == 25
    assert c.object("freq", "s") == 35
    c.close()


@ironcache_only  # Redis's memory figures include its allocator's slack: no simple limit fits
def test_lfu_eviction_keeps_the_most_used(make_server: Any) -> None:
    srv = make_server({"maxmemory-policy": "allkeys-lfu", "maxmemory-samples": "10"})
    c = srv.client()
    c.set("hot", "v")
    for _i in range(50):
        c.get("hot")
    for i in range(300):
        c.set(f"cold{i}", "x" * 200)
    mem = c.info("memory")
    c.config_set("maxmemory", str(mem["used_memory"] - mem["used_memory_dataset"] // 2))
    c.set("trigger", "x")  # evicts down to the limit
    assert c.dbsize() < 300
    assert c.get("hot") == "v"
    c.close()


@ironcache_only
def test_crash_journal_replays_the_key_operations(tmp_path: Any) -> None:
    """RESTORE, COPY, MOVE, SWAPDB and SORT ... STORE rebuild the same dataset when the
    crash journal is replayed (each at the time it first ran)."""
    import os

    from ironcache import handover, rdb, state
    from ironcache.config import Config
    from ironcache.keyspace import Keyspace, now_ms
    from ironcache.server import Server as IronServer

    def memfd(data: bytes) -> int:
        fd = os.memfd_create("test", os.MFD_CLOEXEC)
        os.write(fd, data)
        return fd

    base = Keyspace(16)
    base.dbs[0].set(b"l", rdb.deque([b"3", b"1", b"2"]))
    snapshot = state.encode({"kind": "checkpoint"}, base, [])
    then = now_ms() - 50_000
    w = state.OP_WRITE
    journal = state.HEADER.pack(state.MAGIC, state.FORMAT, state.MINOR, 0, 0, 0) + state.record([
        (w, then, 0, [b"RESTORE", b"r", b"100000", rdb.dump({b"f": b"v"})]),
        (w, then, 0, [b"SORT", b"l", b"STORE", b"sorted"]),
        (w, then, 0, [b"COPY", b"l", b"l", b"DB", b"2"]),
        (w, then, 0, [b"MOVE", b"r", b"1"]),
        (w, then, 0, [b"SWAPDB", b"1", b"3"]),
    ])
    config = Config()
    config.values["dir"] = str(tmp_path)
    srv = IronServer(config)
    srv.handover = handover.Handover(srv, {"state-4": memfd(snapshot), "journal-4": memfd(journal)})
    assert srv.handover.restore() == []
    dbs = srv.keyspace.dbs
    assert list(dbs[0].lookup(b"sorted").value) == [b"1", b"2", b"3"]
    assert list(dbs[2].lookup(b"l").value) == [b"3", b"1", b"2"]
    assert dbs[0].lookup(b"r") is None and dbs[1].lookup(b"r") is None
    assert dbs[3].lookup(b"r").value == {b"f": b"v"}
    # the TTL counts from when RESTORE first ran: about 50 s of 100 left
    assert 45 < (dbs[3].expires[b"r"] - now_ms()) / 1000 <= 50
    if srv.handover.journal_fd >= 0:
        os.close(srv.handover.journal_fd)


@ironcache_only
def test_memory_accounting_follows_key_operations(rb: redis.Redis) -> None:
    """MOVE and SWAPDB change no size; COPY, RESTORE and SORT STORE add what they create;
    once everything is deleted the estimate is back to zero (no drift)."""
    def used() -> int:
        return int(rb.info("memory")["used_memory"])

    rb.rpush("l", *[str(i) for i in range(300)])
    rb.hset("h", mapping={f"f{i}": "v" * i for i in range(100)})
    before = used()
    rb.move("l", 2)
    rb.swapdb(0, 2)
    rb.swapdb(0, 2)
    assert used() == before
    rb.execute_command("SELECT", 2)
    rb.copy("l", "l2")
    rb.restore("h2", 0, rb.dump("l"))
    rb.sort("l", store="sorted")
    assert used() > before
    rb.execute_command("SELECT", 0)
    rb.flushall()
    assert used() == 0


def test_type_ttl_exists_object_leave_the_access_time(make_server: Any) -> None:
    """Redis's LOOKUP_NOTOUCH: TYPE, TTL, EXISTS and OBJECT do not count as accesses; TOUCH
    and GET do. Under LFU a read counts once per access (log factor 0: every one)."""
    srv = make_server({"maxmemory-policy": "allkeys-lfu", "lfu-log-factor": "0"})
    c = srv.client()
    c.set("k", "v")
    for _i in range(3):
        c.ttl("k"), c.pttl("k"), c.type("k"), c.exists("k"), c.expiretime("k")
        c.object("encoding", "k"), c.object("freq", "k")
    assert c.object("freq", "k") == 5
    c.touch("k")
    c.get("k")
    assert c.object("freq", "k") == 7
    c.close()
