"""CLIENT TRACKING (server-assisted client-side caching): the same exchanges give the same
bytes on IronCache and on redis-server 7.0.15 (the `ref` fixture): every option and error,
default mode, REDIRECT to a RESP2 subscriber, NOLOOP, OPTIN/OPTOUT, BCAST prefixes, FLUSHALL,
invalidations after the writer's own reply, CLIENT LIST / TRACKINGINFO / INFO; the table's
limit; and tracking across a handover restart (redis-py 5's client-side cache refuses servers
that answer below 7.4 in HELLO: IronCache answers 7.2.0, so it is not exercised here)."""

from __future__ import annotations

import re
import signal
from pathlib import Path
from typing import Any

import pytest
import redis

from support import IS_REDIS, RawConn, Server, poll
from test_handover_restart import FdStore, start_process, systemd_listener


def _port(client: redis.Redis) -> int:
    return int(client.connection_pool.connection_kwargs["port"])


def scenario(port: int) -> list[Any]:
    """Run the exchanges on one server; what each connection read, in order, with client ids
    replaced by their role (ids differ between the servers)."""
    seen: list[Any] = []
    conns = [RawConn.tcp("127.0.0.1", port) for _ in range(4)]
    r, w, red, r3 = conns
    ids: dict[int, str] = {}
    for name, c in zip(("r", "w", "red", "r3"), conns, strict=True):
        ids[c.call("CLIENT", "ID")] = name

    def norm(v: Any, with_ids: bool = False) -> Any:
        if isinstance(v, list):
            return [norm(x, with_ids) for x in v]
        if isinstance(v, dict):
            return {k: norm(x, with_ids) for k, x in v.items()}
        if isinstance(v, bytes) and v.startswith(b"id="):
            flags = re.search(rb" flags=(\S+) ", v)
            redir = re.search(rb" redir=(-?\d+) ", v)
            assert flags and redir
            return (flags.group(1), ids.get(int(redir.group(1)), redir.group(1)))
        if with_ids and isinstance(v, int) and v in ids:
            return ids[v]
        return v

    def call(c: RawConn, *args: Any) -> None:
        c.types.clear()
        seen.append((norm(c.call(*args)), c.types[:1]))

    def call_ids(c: RawConn, *args: Any) -> None:
        """A reply that names client ids (GETREDIR, TRACKINGINFO's redirect)."""
        c.types.clear()
        seen.append((norm(c.call(*args), True), c.types[:1]))

    def r3_line() -> None:
        """r3's CLIENT LIST line and INFO, read in RESP2 (RESP3 has them verbatim)."""
        with RawConn.tcp("127.0.0.1", port) as other:
            seen.append(norm(other.call("CLIENT", "LIST", "ID", r3_id)))
            info = other.call("INFO", "clients")
            seen.append(re.findall(rb"tracking_clients:\d+", info))

    def read(c: RawConn) -> None:
        c.types.clear()
        seen.append(("read", norm(c.read_reply(), True), c.types[:1]))

    try:
        call(w, "FLUSHALL")
        rid = next(k for k, v in ids.items() if v == "red")
        r3_id = next(k for k, v in ids.items() if v == "r3")
        # Errors, in Redis's order of checks.
        for args in (
            ("CLIENT", "TRACKING", "maybe"),
            ("CLIENT", "TRACKING", "on", "bogus"),
            ("CLIENT", "TRACKING", "on", "REDIRECT"),
            ("CLIENT", "TRACKING", "on", "REDIRECT", "x"),
            ("CLIENT", "TRACKING", "on", "REDIRECT", "999999"),
            ("CLIENT", "TRACKING", "on", "REDIRECT", rid, "REDIRECT", rid),
            ("CLIENT", "TRACKING", "on", "PREFIX", "a"),
            ("CLIENT", "TRACKING", "on", "BCAST", "OPTIN"),
            ("CLIENT", "TRACKING", "on", "OPTIN", "OPTOUT"),
            ("CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "ab", "PREFIX", "a"),
            ("CLIENT", "CACHING", "yes"),
            ("CLIENT", "TRACKING"),
            ("CLIENT", "GETREDIR", "x"),
        ):
            call(r, *args)
        call_ids(r, "CLIENT", "TRACKINGINFO")
        call_ids(r, "CLIENT", "GETREDIR")
        # RESP2 with REDIRECT to a subscriber of __redis__:invalidate.
        call(red, "SUBSCRIBE", "__redis__:invalidate")
        call(r, "CLIENT", "TRACKING", "on", "REDIRECT", rid)
        call(r, "CLIENT", "INFO")
        call_ids(r, "CLIENT", "GETREDIR")
        call(r, "CLIENT", "TRACKING", "on", "BCAST")  # switching mode: refused
        call(w, "MSET", "a", "1", "b", "1")
        call(r, "GET", "a")
        call(r, "MGET", "a", "b", "c")
        call(w, "INCR", "b")
        read(red)
        call(w, "INCR", "b")  # forgotten after the first invalidation
        call(w, "DEL", "a", "c")  # c does not exist: not changed
        read(red)
        call(r, "CLIENT", "TRACKING", "off")
        call(r, "CLIENT", "INFO")
        # RESP3: pushes on the connection itself; its own write's come after its reply.
        r3.call("HELLO", "3")  # (the version it answers differs)
        call(r3, "CLIENT", "TRACKING", "on")
        call(r3, "HSET", "h", "f", "1")
        call(r3, "HGET", "h", "f")
        call(r3, "HDEL", "h", "f")
        read(r3)
        call(r3, "GET", "x")
        call(r3, "MULTI")
        call(r3, "SET", "x", "1")
        call(r3, "GET", "y")
        call(r3, "EXEC")
        read(r3)
        call(r3, "GET", "y")
        call(w, "SET", "y", "2")
        read(r3)
        # NOLOOP: its own writes are not announced, the others' are.
        call(r3, "CLIENT", "TRACKING", "on", "NOLOOP")
        call(r3, "MGET", "k1", "k2")
        call(r3, "SET", "k1", "x")
        call(w, "SET", "k2", "x")
        read(r3)
        call(r3, "CLIENT", "TRACKING", "off")
        # OPTIN: only after CLIENT CACHING yes, for the next command only.
        call(r3, "CLIENT", "TRACKING", "on", "OPTIN")
        call(r3, "CLIENT", "CACHING", "no")
        call(r3, "GET", "o1")
        call(r3, "CLIENT", "CACHING", "yes")
        call_ids(r3, "CLIENT", "TRACKINGINFO")
        call(r3, "GET", "o2")
        call(r3, "GET", "o3")
        call(w, "MSET", "o1", "1", "o2", "1", "o3", "1")
        read(r3)
        call(r3, "CLIENT", "TRACKING", "off")
        # OPTOUT: everything but the command after CLIENT CACHING no.
        call(r3, "CLIENT", "TRACKING", "on", "OPTOUT")
        call(r3, "CLIENT", "CACHING", "no")
        call(r3, "GET", "p1")
        call(r3, "GET", "p2")
        call(w, "MSET", "p1", "1", "p2", "1")
        read(r3)
        call(r3, "CLIENT", "TRACKING", "off")
        # BCAST with prefixes (one message per prefix), NOLOOP leaves out its own keys.
        call(r3, "CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "u:", "PREFIX", "v:", "NOLOOP")
        call(r3, "CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "u:x")
        call_ids(r3, "CLIENT", "TRACKINGINFO")
        r3_line()
        call(w, "SET", "u:1", "1")
        read(r3)
        call(w, "SET", "zz", "1")
        call(w, "SET", "v:1", "1")
        read(r3)
        call(r3, "SET", "u:2", "1")  # its own: nothing
        call(w, "SET", "v:2", "1")
        read(r3)
        call(r3, "CLIENT", "TRACKING", "off")
        # FLUSHALL: a null invalidation, to itself after its reply.
        call(r3, "CLIENT", "TRACKING", "on")
        call(r3, "GET", "q")
        call(r3, "FLUSHALL")
        read(r3)
        call(r3, "GET", "q")
        call(w, "FLUSHDB")
        read(r3)
        # The redirect client goes away: tracking-redir-broken, flag R.
        wid = next(k for k, v in ids.items() if v == "w")
        call(r3, "CLIENT", "TRACKING", "on", "REDIRECT", wid)
        call(r3, "GET", "q")
        w.close()
        with RawConn.tcp("127.0.0.1", port) as other:
            poll(lambda: other.call("CLIENT", "LIST", "ID", wid) == b"")
            other.call("SET", "q", "1")
        read(r3)
        call_ids(r3, "CLIENT", "TRACKINGINFO")
        r3_line()
        call(r3, "RESET")
        call(r3, "CLIENT", "INFO")
        call_ids(r3, "CLIENT", "TRACKINGINFO")
        call(r3, "PING")
    finally:
        for c in conns:
            c.close()
    return seen


def test_tracking_matches_redis(server: Server, ref: redis.Redis) -> None:
    ours = scenario(server.port)
    theirs = scenario(_port(ref))
    for i, (a, b) in enumerate(zip(ours, theirs, strict=False)):
        assert a == b, f"step {i}: IronCache {a!r} != Redis {b!r}"
    assert len(ours) == len(theirs)


def test_info_counts_keys_items_prefixes(server: Server, ref: redis.Redis) -> None:
    def counts(port: int) -> list[int]:
        with RawConn.tcp("127.0.0.1", port) as a, RawConn.tcp("127.0.0.1", port) as b:
            a.call("FLUSHALL")
            a.call("CLIENT", "TRACKING", "on")
            b.call("CLIENT", "TRACKING", "on")
            a.call("MGET", "i1", "i2", "i3")
            b.call("MGET", "i2", "i3")
            with RawConn.tcp("127.0.0.1", port) as c:
                c.call("CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "x", "PREFIX", "y")
                info = a.call("INFO").decode()
            return [
                int(re.search(rf"{f}:(\d+)", info).group(1))  # type: ignore[union-attr]
                for f in ("tracking_clients", "tracking_total_keys", "tracking_total_items",
                          "tracking_total_prefixes")
            ]

    assert counts(server.port) == counts(_port(ref)) == [3, 3, 5, 2]


@pytest.mark.skipif(IS_REDIS, reason="IronCache's cron timing")
def test_table_limit_invalidates_the_excess(server: Server) -> None:
    """tracking-table-max-keys: the cron invalidates keys until the table fits (Redis's
    eviction of the table), 100 more keys per pass while it cannot."""
    with server.raw() as r, server.raw() as red, server.raw() as admin:
        rid = red.call("CLIENT", "ID")
        red.call("SUBSCRIBE", "__redis__:invalidate")
        r.call("CLIENT", "TRACKING", "on", "REDIRECT", rid)
        for i in range(250):
            r.call("GET", f"lim{i}")
        admin.call("CONFIG", "SET", "tracking-table-max-keys", "1")
        try:
            got = set()
            for dummy in range(249):
                got.update(red.read_reply()[2])
            assert len(got) == 249
            info = admin.call("INFO", "stats").decode()
            assert "tracking_total_keys:1\r" in info
        finally:
            admin.call("CONFIG", "SET", "tracking-table-max-keys", "1000000")


@pytest.mark.skipif(IS_REDIS, reason="IronCache-specific: the fd store handover")
@pytest.mark.parametrize("handover", ["yes", "no"])
def test_tracking_across_a_handover(tmp_path: Path, handover: str) -> None:
    """Connections outlive the process and keep their tracking mode: the keys they read are
    not carried, so each gets a null invalidation (drop the whole cache), then tracks anew.
    Control: without the handover the connection is closed, nothing is delivered."""
    listener, port = systemd_listener()
    store = FdStore(tmp_path / "notify.sock")
    directives = {"handover": handover, "save-on-shutdown": "no"}
    procs = [start_process(tmp_path / "p0", listener, port, store, directives)]
    try:
        r3 = RawConn.tcp("127.0.0.1", port)
        r3.call("HELLO", "3")
        assert r3.call("CLIENT", "TRACKING", "on", "NOLOOP") == "OK"
        with RawConn.tcp("127.0.0.1", port) as w:
            w.call("SET", "k", "old")
        assert r3.call("GET", "k") == b"old"
        old = procs[-1]
        old.send_signal(signal.SIGTERM)
        assert old.wait() == 0
        procs.append(start_process(tmp_path / "p1", listener, port, store, directives))
        with RawConn.tcp("127.0.0.1", port) as w:
            w.call("SET", "k", "new")
        if handover == "no":
            r3.sock.settimeout(5)
            with pytest.raises(OSError):
                r3.read_reply()
            return
        r3.types.clear()
        assert r3.read_reply() == [b"invalidate", None]  # the whole cache
        assert r3.types[:1] == [b">"]
        info = r3.call("CLIENT", "TRACKINGINFO")
        assert info[b"flags"] == [b"on", b"noloop"]
        assert r3.call("GET", "k") == b"new"
        with RawConn.tcp("127.0.0.1", port) as w:
            w.call("SET", "k", "newer")
        assert r3.read_reply() == [b"invalidate", [b"k"]]
        r3.close()
    finally:
        for p in procs:
            if p.alive:
                p.stop()
        listener.close()


@pytest.mark.skipif(IS_REDIS, reason="IronCache's internals")
def test_no_cost_when_nobody_tracks(tmp_path: Path) -> None:
    """The keyspace calls the tracking table only while something is tracked: the hook is
    None before anyone tracks, set while a client tracks (the control), and None again once
    tracking is off and the keys it read were invalidated."""
    from ironcache.client import Client
    from ironcache.config import Config
    from ironcache.listener import Listener
    from ironcache.protocol import encode_request
    from ironcache.server import Server as IronServer

    config = Config()
    config.values["dir"] = str(tmp_path)
    srv = IronServer(config)
    c = Client(srv, Listener("unix", "(test)"))
    srv.clients[c.id] = c
    ks = srv.keyspace
    assert ks.invalidate is None
    assert c.process(encode_request([b"SET", b"k", b"1"])) == b"+OK\r\n"
    assert c.process(encode_request([b"CLIENT", b"TRACKING", b"on"])) == b"+OK\r\n"
    assert ks.invalidate is not None
    c.process(encode_request([b"GET", b"k"]))
    assert srv.tracking.table == {b"k": {c.id}}
    c.process(encode_request([b"CLIENT", b"TRACKING", b"off"]))
    assert ks.invalidate is not None  # k is still in the table, as in Redis
    c.process(encode_request([b"SET", b"k", b"2"]))
    assert srv.tracking.table == {} and ks.invalidate is None
