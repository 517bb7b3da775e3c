"""Subscribers and clients blocked in BLPOP and XREAD BLOCK across a handover restart (the
test plays systemd's part, as test_handover_restart.py does); handover off is the control."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import pytest

from support import IS_REDIS, RawConn, free_port
from test_handover_restart import FdStore, start_process

pytestmark = pytest.mark.skipif(IS_REDIS, reason="IronCache-specific: the fd store handover")


@pytest.mark.parametrize("handover", ["yes", "no"])
def test_subscribers_and_blocked_clients_survive_a_restart(tmp_path: Path, handover: str) -> None:
    port = free_port()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
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
