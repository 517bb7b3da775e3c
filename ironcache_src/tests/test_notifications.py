"""Keyspace notifications (notify-keyspace-events): the same commands publish the same
messages on IronCache and on redis-server 7.0.15 (the `ref` fixture), expired and evicted
events, MULTI and scripts, the setting's forms, and a subscriber across a live restart."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from support import IS_REDIS, RawConn, Server, wire_error

END = b"notify-end"

# Commands of every family, each followed by what Redis announces (checked against `ref`).
SCRIPT = [
    ("SET", "s", "1"),
    ("SET", "s", "2", "EX", "100"),
    ("SET", "s", "2", "NX"),  # not set: nothing
    ("SETNX", "s2", "x"),
    ("SETEX", "s3", "100", "x"),
    ("PSETEX", "s4", "100000", "x"),
    ("MSET", "m1", "a", "m2", "b"),
    ("MSETNX", "m3", "a", "m4", "b"),
    ("GETSET", "m1", "z"),
    ("APPEND", "m1", "zz"),
    ("INCR", "n"),
    ("INCRBY", "n", "5"),
    ("DECR", "n"),
    ("DECRBY", "n", "2"),
    ("INCRBYFLOAT", "f", "1.5"),
    ("SETRANGE", "m2", "3", "xyz"),
    ("SETRANGE", "m2", "3", ""),  # nothing changes: nothing
    ("GETDEL", "m3"),
    ("GETEX", "m4", "EX", "100"),
    ("GETEX", "m4", "PERSIST"),
    ("GETEX", "m4", "PERSIST"),  # no TTL left: nothing
    ("SETBIT", "bits", "7", "1"),
    ("SETBIT", "bits", "7", "1"),  # unchanged: nothing
    ("BITOP", "OR", "bits2", "bits"),
    ("BITOP", "OR", "bits3", "missing"),
    ("BITFIELD", "bits", "SET", "u8", "0", "255"),
    ("PFADD", "hll", "a", "b"),
    ("PFADD", "hll", "a"),  # no register changed: nothing
    ("PFMERGE", "hll2", "hll"),
    ("EXPIRE", "s2", "100"),
    ("PEXPIRE", "s2", "100000", "NX"),  # refused: nothing
    ("PERSIST", "s2"),
    ("PERSIST", "s2"),
    ("EXPIRE", "s3", "0"),  # in the past: a del
    ("RENAME", "s4", "s5"),
    ("RENAMENX", "s5", "s6"),
    ("COPY", "s6", "s7"),
    ("MOVE", "s7", "1"),
    ("DEL", "s6", "nope", "s"),
    ("UNLINK", "s2"),
    ("RPUSH", "l", "a", "b", "c", "d"),
    ("LPUSH", "l", "z"),
    ("LPUSHX", "nolist", "z"),
    ("RPUSHX", "l", "e"),
    ("LINSERT", "l", "BEFORE", "a", "q"),
    ("LINSERT", "l", "BEFORE", "missing", "q"),
    ("LSET", "l", "0", "y"),
    ("LREM", "l", "0", "q"),
    ("LTRIM", "l", "0", "3"),
    ("LPOP", "l"),
    ("RPOP", "l", "1"),
    ("LMOVE", "l", "l2", "LEFT", "RIGHT"),
    ("RPOPLPUSH", "l", "l2"),
    ("LMPOP", "1", "l2", "LEFT", "COUNT", "5"),
    ("SORT", "nosuch", "STORE", "sorted"),
    ("RPUSH", "nums", "3", "1", "2"),
    ("SORT", "nums", "STORE", "sorted"),
    ("HSET", "h", "a", "1", "b", "2"),
    ("HSET", "h", "c", "3"),
    ("HMSET", "h", "d", "4"),
    ("HSETNX", "h", "a", "9"),
    ("HSETNX", "h", "e", "9"),
    ("HINCRBY", "h", "a", "3"),
    ("HINCRBYFLOAT", "h", "a", "1.5"),
    ("HDEL", "h", "nope"),
    ("HDEL", "h", "a", "b", "c", "d", "e"),
    ("SADD", "st", "a", "b", "c"),
    ("SADD", "st", "a"),
    ("SREM", "st", "x"),
    ("SREM", "st", "a"),
    ("SMOVE", "st", "st2", "b"),
    ("SADD", "st3", "b", "q"),
    ("SINTERSTORE", "st4", "st2", "st3"),
    ("SUNIONSTORE", "st5", "st2", "st3"),
    ("SDIFFSTORE", "st6", "st2", "st3"),
    ("SDIFFSTORE", "st6", "st2", "st2"),
    ("SPOP", "st"),
    ("ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d"),
    ("ZADD", "z", "1", "a"),
    ("ZADD", "z", "5", "a"),
    ("ZADD", "z", "INCR", "1", "a"),
    ("ZINCRBY", "z", "1", "b"),
    ("ZREM", "z", "x"),
    ("ZREM", "z", "a"),
    ("ZREMRANGEBYSCORE", "z", "100", "200"),
    ("ZREMRANGEBYSCORE", "z", "0", "3"),
    ("ZADD", "z", "10", "x", "11", "y", "12", "w"),
    ("ZREMRANGEBYRANK", "z", "0", "0"),
    ("ZREMRANGEBYLEX", "z", "-", "+"),
    ("ZADD", "z", "1", "a", "2", "b", "3", "c"),
    ("ZPOPMIN", "z"),
    ("ZPOPMAX", "z", "5"),
    ("ZADD", "za", "1", "a", "2", "b"),
    ("ZADD", "zb", "1", "b"),
    ("ZUNIONSTORE", "zu", "2", "za", "zb"),
    ("ZINTERSTORE", "zi", "2", "za", "zb"),
    ("ZDIFFSTORE", "zd", "2", "za", "zb"),
    ("ZINTERSTORE", "zd", "2", "za", "nosuch"),
    ("ZRANGESTORE", "zr", "za", "0", "-1"),
    ("ZMPOP", "1", "za", "MIN", "COUNT", "10"),
    ("SET", "rn1", "a"),
    ("SET", "rn2", "b"),
    ("RENAME", "rn1", "rn2"),  # over an existing key: "new" too (Redis deletes, then adds)
    ("XADD", "x", "1", "f", "v"),
    ("XGROUP", "CREATE", "x", "g", "$"),
    ("XADD", "x", "2", "f", "v"),
    ("XREADGROUP", "GROUP", "g", "alice", "STREAMS", "x", ">"),  # a new consumer
    ("XCLAIM", "x", "g", "mike", "0", "2-0", "FORCE"),  # another
    ("XGROUP", "CREATECONSUMER", "x", "g", "bob"),
    ("XGROUP", "DELCONSUMER", "x", "g", "bob"),
    ("XGROUP", "DELCONSUMER", "x", "g", "nosuch"),
    ("XGROUP", "SETID", "x", "g", "0"),
    ("XDEL", "x", "1"),
    ("XDEL", "x", "1"),  # nothing deleted: nothing
    ("XADD", "x", "MAXLEN", "1", "3", "f", "v"),  # xadd, then xtrim
    ("XTRIM", "x", "MAXLEN", "0"),
    ("XSETID", "x", "10"),
    ("XGROUP", "DESTROY", "x", "g"),
    ("FLUSHDB",),
]


def _collect(client: redis.Redis, commands: list[tuple[str, ...]], flags: str) -> list[tuple]:
    """Run `commands` with notify-keyspace-events = flags; the messages a subscriber to every
    keyspace and keyevent channel received, in order."""
    client.flushall()
    client.config_set("notify-keyspace-events", flags)
    sub = client.pubsub()
    try:
        sub.psubscribe("__key*__:*")
        sub.subscribe(END)
        for dummy in range(2):
            assert sub.get_message(timeout=5) is not None
        for cmd in commands:
            with contextlib.suppress(redis.ResponseError):
                client.execute_command(*cmd)
        client.publish(END, b"done")
        got = []
        while True:
            m = sub.get_message(timeout=5)
            assert m is not None, f"no end marker; so far: {got}"
            if m["channel"] == END:
                return got
            got.append((m["channel"], m["data"]))
    finally:
        sub.close()
        client.config_set("notify-keyspace-events", "")
        client.flushall()


@pytest.mark.parametrize("flags", ["KEA", "KEAn", "Kl", "E$g", "Kzsh", "En"])
def test_the_same_messages_as_redis(rb: redis.Redis, ref: redis.Redis, flags: str) -> None:
    mine = _collect(rb, SCRIPT, flags)
    theirs = _collect(ref, SCRIPT, flags)
    assert mine == theirs
    assert mine  # every set of flags above announces something


def test_off_by_default_and_without_k_or_e(rb: redis.Redis) -> None:
    assert rb.config_get("notify-keyspace-events") == {"notify-keyspace-events": ""}
    assert _collect(rb, [("SET", "a", "1"), ("DEL", "a")], "") == []
    assert _collect(rb, [("SET", "a", "1"), ("DEL", "a")], "A") == []  # no K, no E
    # the control: the same with K
    assert _collect(rb, [("SET", "a", "1")], "KA") == [(b"__keyspace@0__:a", b"set")]


@pytest.mark.parametrize(
    "value", ["gKE", "$lshzxeKE", "KA", "EA", "AKEm", "An", "nKE", "tdm", "", "x"]
)
def test_config_get_renders_as_redis(rb: redis.Redis, ref: redis.Redis, value: str) -> None:
    try:
        for client in (rb, ref):
            client.config_set("notify-keyspace-events", value)
        assert rb.config_get("notify-keyspace-events") == ref.config_get("notify-keyspace-events")
    finally:
        for client in (rb, ref):
            client.config_set("notify-keyspace-events", "")


def test_a_bad_letter_is_refused_as_redis(server: Server, rb: redis.Redis) -> None:
    err = wire_error(server, "CONFIG", "SET", "notify-keyspace-events", "KEq")
    assert "Invalid event class character. Use 'Ag$lshzxeKEtmdn'." in err
    assert rb.config_get("notify-keyspace-events") == {"notify-keyspace-events": ""}


def _subscriber(client: redis.Redis, *patterns: str) -> redis.client.PubSub:
    sub = client.pubsub()
    sub.psubscribe(*patterns)
    for dummy in patterns:
        assert sub.get_message(timeout=5) is not None
    return sub


def _messages(sub: redis.client.PubSub, n: int, timeout: float = 10) -> list[tuple]:
    got = []
    for dummy in range(n):
        m = sub.get_message(timeout=timeout)
        assert m is not None, f"only {got}"
        got.append((m["channel"], m["data"]))
    return got


@pytest.fixture
def events_on(rb: redis.Redis) -> Iterator[redis.Redis]:
    yield rb
    rb.config_set("notify-keyspace-events", "")
    rb.config_set("maxmemory", "0")
    rb.config_set("maxmemory-policy", "noeviction")


def test_expired_lazily_and_in_the_background(events_on: redis.Redis) -> None:
    rb = events_on
    rb.config_set("notify-keyspace-events", "KEx")
    sub = _subscriber(rb, "__key*__:*")
    try:
        # background: nobody reads the key, the active expire cycle finds it
        rb.psetex("bg", 50, "v")
        assert _messages(sub, 2) == [
            (b"__keyspace@0__:bg", b"expired"),
            (b"__keyevent@0__:expired", b"bg"),
        ]
        # lazily: a read finds it past its time (the cycle cannot, it runs every 100 ms at
        # most; either way exactly one expired event)
        rb.set("lazy", "v", px=1)
        time.sleep(0.01)
        assert rb.get("lazy") is None
        assert _messages(sub, 2) == [
            (b"__keyspace@0__:lazy", b"expired"),
            (b"__keyevent@0__:expired", b"lazy"),
        ]
        assert sub.get_message(timeout=0.3) is None
    finally:
        sub.close()


def test_evicted(events_on: redis.Redis) -> None:
    rb = events_on
    rb.config_set("notify-keyspace-events", "Ee")
    rb.config_set("maxmemory-policy", "allkeys-lru")
    rb.set("foo", "bar")
    sub = _subscriber(rb, "*")
    try:
        rb.config_set("maxmemory", "1")
        assert _messages(sub, 1) == [(b"__keyevent@0__:evicted", b"foo")]
    finally:
        rb.config_set("maxmemory", "0")
        sub.close()


def test_multi_and_scripts_announce_their_commands(
    rb: redis.Redis, ref: redis.Redis
) -> None:
    def run(client: redis.Redis) -> list[tuple]:
        client.flushall()
        client.config_set("notify-keyspace-events", "KEA")
        sub = _subscriber(client, "__key*__:*")
        try:
            pipe = client.pipeline(transaction=True)
            pipe.set("a", "1").lpush("l", "x").expire("a", 100)
            pipe.execute()
            client.eval("redis.call('hset', KEYS[1], 'f', 'v'); redis.call('del', KEYS[2])",
                        2, "h", "a")
            client.eval("redis.call('select', 3); redis.call('incr', 'n')", 0)
            return _messages(sub, 12)
        finally:
            sub.close()
            client.config_set("notify-keyspace-events", "")
            client.flushall()

    mine = run(rb)
    assert mine == run(ref)
    assert (b"__keyevent@3__:incrby", b"n") in mine


def test_set_from_the_config_file(make_server) -> None:  # type: ignore[no-untyped-def]
    srv = make_server({"notify-keyspace-events": "KEl"})
    client = srv.client(decode_responses=False)
    assert client.config_get("notify-keyspace-events") == {"notify-keyspace-events": "lKE"}
    sub = _subscriber(client, "*")
    client.set("ignored", "x")
    client.rpush("l", "a")
    assert _messages(sub, 2) == [(b"__keyspace@0__:l", b"rpush"), (b"__keyevent@0__:rpush", b"l")]
    sub.close()
    client.close()


def test_check_config_refuses_a_bad_letter(tmp_path: Path) -> None:
    from support import run_ironcache

    conf = tmp_path / "bad.conf"
    conf.write_text("notify-keyspace-events KEw\n")
    done = run_ironcache("check-config", str(conf))
    assert done.returncode != 0
    assert "Invalid event class character" in done.stdout + done.stderr
    conf.write_text('notify-keyspace-events "Kx"\n')
    assert run_ironcache("check-config", str(conf)).returncode == 0


@pytest.mark.skipif(IS_REDIS, reason="IronCache-specific: the fd store handover")
@pytest.mark.parametrize("handover", ["yes", "no"])
def test_a_keyevent_subscriber_keeps_receiving_across_a_restart(
    tmp_path: Path, handover: str
) -> None:
    from test_handover_restart import FdStore, start_process, systemd_listener

    listener, port = systemd_listener()
    store = FdStore(tmp_path / "notify.sock")
    directives = {"handover": handover, "save-on-shutdown": "no", "notify-keyspace-events": "KEA"}
    procs = [start_process(tmp_path / "p0", listener, port, store, directives)]
    sub = RawConn.tcp("127.0.0.1", port)
    try:
        sub.send_command("PSUBSCRIBE", "__keyevent@0__:*")
        assert sub.read_reply() == [b"psubscribe", b"__keyevent@0__:*", 1]
        with RawConn.tcp("127.0.0.1", port) as w:
            w.send_command("SET", "before", "1")
            assert w.read_reply() == "OK"
        assert sub.read_reply() == [b"pmessage", b"__keyevent@0__:*", b"__keyevent@0__:set",
                                    b"before"]
        old = procs[-1]
        old.send_signal(signal.SIGTERM)
        assert old.wait() == 0
        procs.append(start_process(tmp_path / "p1", listener, port, store, directives))
        with RawConn.tcp("127.0.0.1", port) as w:
            w.send_command("LPUSH", "after", "x")
            w.read_reply()
            w.send_command("PSETEX", "gone", "30", "x")
            w.read_reply()
        if handover == "no":  # the control: the subscriber was disconnected, nothing arrives
            sub.sock.settimeout(5)
            with pytest.raises(OSError):
                sub.read_reply()
            return
        sub.sock.settimeout(10)
        got = [sub.read_reply() for dummy in range(4)]
        assert [m[2:] for m in got] == [
            [b"__keyevent@0__:lpush", b"after"],
            [b"__keyevent@0__:set", b"gone"],
            [b"__keyevent@0__:expire", b"gone"],
            [b"__keyevent@0__:expired", b"gone"],
        ]
    finally:
        sub.close()
        for srv in procs:
            if srv.alive():
                srv.send_signal(signal.SIGTERM)
                srv.wait()
        store.close()
        listener.close()


def _monitor_lines(port: int, client: redis.Redis) -> list[bytes]:
    """What MONITOR shows of an EVAL and an FCALL, timestamps and addresses cut off."""
    client.function_load(
        "#!lua name=notifylib\n"
        "redis.register_function('notifyfn', function() return redis.call('set', 'f', 'v') end)",
        replace=True,
    )
    with RawConn.tcp("127.0.0.1", port) as mon:
        mon.send_command("MONITOR")
        assert mon.read_reply() == "OK"
        client.eval("redis.call('set', KEYS[1], ARGV[1]); return redis.call('get', KEYS[1])",
                    1, "k", "v")
        client.fcall("notifyfn", 0)
        client.ping()
        lines = []
        while not lines or b'"ping"' not in lines[-1].lower():
            line = str(mon.read_reply()).encode()
            lines.append(line.split(b" ", 1)[1])  # the time differs
    client.function_delete("notifylib")
    return [line.split(b"]", 1)[1] if b" lua]" not in line else line for line in lines]


def test_monitor_shows_the_commands_scripts_run(server: Server, rb: redis.Redis,
                                                ref: redis.Redis) -> None:
    ref_port = ref.connection_pool.connection_kwargs["port"]
    mine = _monitor_lines(server.port, rb)
    assert b'[0 lua] "set" "k" "v"' in mine
    assert mine == _monitor_lines(ref_port, ref)


def _subscribe_with_replies_off(port: int) -> list:
    with RawConn.tcp("127.0.0.1", port) as c:
        c.send_command("CLIENT", "REPLY", "OFF")
        c.send_command("PSUBSCRIBE", "p*")
        c.send_command("SUBSCRIBE", "a")
        c.send_command("UNSUBSCRIBE", "a")
        return [c.read_reply() for dummy in range(3)]


def test_subscribe_confirmations_ignore_client_reply_off(server: Server, ref: redis.Redis) -> None:
    """As Redis (CLIENT_PUSHING): a subscriber with replies off still learns it subscribed."""
    mine = _subscribe_with_replies_off(server.port)
    assert mine == _subscribe_with_replies_off(ref.connection_pool.connection_kwargs["port"])
    assert mine[0] == [b"psubscribe", b"p*", 1]
