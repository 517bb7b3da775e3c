"""Subscribers and clients blocked in BLPOP and XREAD BLOCK across a handover restart (the
test plays systemd's part, as test_handover_restart.py does); handover off is the control."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from support import IS_REDIS, RawConn
from test_handover_restart import FdStore, start_process, systemd_listener

pytestmark = pytest.mark.skipif(IS_REDIS, reason="IronCache-specific: the fd store handover")


@pytest.mark.parametrize("handover", ["yes", "no"])
def test_subscribers_and_blocked_clients_survive_a_restart(tmp_path: Path, handover: str) -> None:
    listener, port = systemd_listener()
    store = FdStore(tmp_path / "notify.sock")
    directives = {"handover": handover, "save-on-shutdown": "no"}
    procs = [start_process(tmp_path / "p0", listener, port, store, directives)]
    conns: list[RawConn] = []
    try:
        sub = RawConn.tcp("127.0.0.1", port)
        sub3 = RawConn.tcp("127.0.0.1", port)
        waiter = RawConn.tcp("127.0.0.1", port)
        timed = RawConn.tcp("127.0.0.1", port)
        xwaiter = RawConn.tcp("127.0.0.1", port)
        conns += [sub, sub3, waiter, timed, xwaiter]
        sub.send_command("SUBSCRIBE", "news")
        assert sub.read_reply() == [b"subscribe", b"news", 1]
        sub.send_command("PSUBSCRIBE", "n*")
        assert sub.read_reply() == [b"psubscribe", b"n*", 2]
        sub3.send_command("HELLO", "3")
        sub3.read_reply()
        sub3.send_command("SUBSCRIBE", "news")
        assert sub3.read_reply() == [b"subscribe", b"news", 1]
        waiter.send_command("BLPOP", "queue", "0")
        # A pipelined request behind the blocked one waits with it.
        waiter.send_command("PING")
        timed.send_command("BLPOP", "other", "3")
        with RawConn.tcp("127.0.0.1", port) as check:
            check.send_command("XADD", "events", "1-1", "old", "entry")
            check.read_reply()
        # `$`: entries after 1-1, the last one when it blocked; the next process keeps that.
        xwaiter.send_command("XREAD", "BLOCK", "0", "STREAMS", "events", "$")
        with RawConn.tcp("127.0.0.1", port) as check:
            check.send_command("CLIENT", "LIST")
            listing = check.read_reply().decode()
        assert listing.count("flags=b") == 3 and listing.count("flags=P") == 2
        started = time.monotonic()
        old = procs[-1]
        old.send_signal(signal.SIGTERM)
        assert old.wait() == 0
        procs.append(start_process(tmp_path / "p1", listener, port, store, directives))
        with RawConn.tcp("127.0.0.1", port) as pub:
            pub.send_command("PUBLISH", "news", "hello")
            receivers = pub.read_reply()
            pub.send_command("RPUSH", "queue", "item")
            pub.read_reply()
            pub.send_command("XADD", "events", "2-1", "new", "entry")
            pub.read_reply()
        if handover == "no":  # the control: every connection closed, nothing delivered
            assert receivers == 0
            for c in (sub, sub3, waiter, timed, xwaiter):
                c.sock.settimeout(5)
                with pytest.raises(OSError):
                    c.read_reply()
            return
        assert receivers == 3
        assert sub.read_reply() == [b"message", b"news", b"hello"]
        assert sub.read_reply() == [b"pmessage", b"n*", b"news", b"hello"]
        assert sub3.read_reply() == [b"message", b"news", b"hello"]
        assert sub3.types[-4] == b">"  # still RESP3: a push
        assert waiter.read_reply() == [b"queue", b"item"]
        assert waiter.read_reply() == "PONG"
        assert xwaiter.read_reply() == [[b"events", [[b"2-1", [b"new", b"entry"]]]]]
        timed.sock.settimeout(20)
        assert timed.read_reply() is None  # the timeout kept its deadline: it ends, once
        assert time.monotonic() - started >= 2.5
        sub.send_command("PING")
        assert sub.read_reply() == [b"pong", b""]  # still in the subscribed context
    finally:
        for c in conns:
            c.close()
        for srv in procs:
            if srv.alive():
                srv.send_signal(signal.SIGTERM)
                srv.wait()
        store.close()
        listener.close()


@pytest.mark.parametrize("handover", ["yes", "no"])
def test_blocked_clients_and_subscribers_survive_a_crash(tmp_path: Path, handover: str) -> None:
    """kill -9 instead of a clean stop: the journal, not a handover snapshot, carries the
    waits. A client that had been sent a message or a BLPOP reply before the crash stays
    connected too. handover no (the control): every connection closes, nothing delivered."""
    listener, port = systemd_listener()
    store = FdStore(tmp_path / "notify.sock")
    directives = {"handover": handover, "save-on-shutdown": "no"}
    procs = [start_process(tmp_path / "p0", listener, port, store, directives)]
    conns: list[RawConn] = []
    try:
        sub = RawConn.tcp("127.0.0.1", port)
        waiter = RawConn.tcp("127.0.0.1", port)
        served = RawConn.tcp("127.0.0.1", port)
        timed = RawConn.tcp("127.0.0.1", port)
        conns += [sub, waiter, served, timed]
        sub.send_command("SUBSCRIBE", "news")
        assert sub.read_reply() == [b"subscribe", b"news", 1]
        served.send_command("SELECT", "2")
        assert served.read_reply() == "OK"
        served.send_command("BRPOP", "early", "0")
        waiter.send_command("BLMOVE", "queue", "moved", "LEFT", "RIGHT", "0")
        waiter.send_command("PING")  # pipelined behind the wait: runs after it, once
        timed.send_command("BLPOP", "other", "2")
        with RawConn.tcp("127.0.0.1", port) as p:
            p.send_command("CLIENT", "LIST")
            assert p.read_reply().decode().count("flags=b") == 3
            p.send_command("PUBLISH", "news", "before")
            assert p.read_reply() == 1
            p.send_command("SELECT", "2")
            p.read_reply()
            p.send_command("RPUSH", "early", "e1")
            p.read_reply()
        assert sub.read_reply() == [b"message", b"news", b"before"]
        assert served.read_reply() == [b"early", b"e1"]
        served.send_command("BRPOP", "late", "0")  # waits again, in database 2
        poll_blocked(port, 3)
        old = procs[-1]
        old.send_signal(signal.SIGKILL)
        old.wait()
        time.sleep(2.2)  # the timed wait's deadline passes while no process runs
        procs.append(start_process(tmp_path / "p1", listener, port, store, directives))
        with RawConn.tcp("127.0.0.1", port) as p:
            p.send_command("PUBLISH", "news", "after")
            receivers = p.read_reply()
            p.send_command("RPUSH", "queue", "item")
            p.read_reply()
            # Had the timed wait restarted its timeout, it would take this element.
            p.send_command("RPUSH", "other", "o1")
            p.read_reply()
            p.send_command("SELECT", "2")
            p.read_reply()
            p.send_command("LPUSH", "late", "l1")
            p.read_reply()
            p.send_command("SELECT", "0")
            p.read_reply()
            if handover == "no":  # the control: every connection closed, nothing delivered
                assert receivers == 0
                for c in conns:
                    c.sock.settimeout(5)
                    with pytest.raises(OSError):
                        c.read_reply()
                p.send_command("LLEN", "queue")
                assert p.read_reply() == 1
                return
            assert receivers == 1
            assert sub.read_reply() == [b"message", b"news", b"after"]
            assert waiter.read_reply() == b"item"
            assert waiter.read_reply() == "PONG"
            assert timed.read_reply() is None
            assert served.read_reply() == [b"late", b"l1"]
            p.send_command("LRANGE", "moved", "0", "-1")
            assert p.read_reply() == [b"item"]
            p.send_command("LLEN", "other")
            assert p.read_reply() == 1  # nobody took it: the timed wait had ended
            p.send_command("INFO", "handover")
            assert b"handover_source:crash" in p.read_reply()
            p.send_command("CLIENT", "LIST")
            assert p.read_reply().decode().count("flags=b") == 0
        # Once served, a wait is over: a second crash does not bring it back.
        procs[-1].send_signal(signal.SIGKILL)
        procs[-1].wait()
        procs.append(start_process(tmp_path / "p2", listener, port, store, directives))
        with RawConn.tcp("127.0.0.1", port) as p:
            p.send_command("RPUSH", "queue", "second")
            p.read_reply()
            p.send_command("LLEN", "queue")
            assert p.read_reply() == 1
        for c in (waiter, served, sub):
            c.send_command("PING")
        assert waiter.read_reply() == "PONG"
        assert served.read_reply() == "PONG"
        assert sub.read_reply() == [b"pong", b""]
    finally:
        for c in conns:
            c.close()
        for srv in procs:
            if srv.alive():
                srv.send_signal(signal.SIGTERM)
                srv.wait()
        store.close()
        listener.close()


def poll_blocked(port: int, count: int) -> None:
    """Until `count` clients are blocked (a wait begins after its request was read)."""
    deadline = time.monotonic() + 10
    while True:
        with RawConn.tcp("127.0.0.1", port) as c:
            c.send_command("CLIENT", "LIST")
            if c.read_reply().decode().count("flags=b") == count:
                return
        assert time.monotonic() < deadline, f"{count} clients never blocked"
        time.sleep(0.02)
