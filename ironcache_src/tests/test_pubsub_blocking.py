"""Pub/sub and the blocking list/zset commands, through redis-py and raw RESP, with Redis
7.0's replies (IRONCACHE_TEST_TARGET=redis runs the same tests against redis-server)."""

from __future__ import annotations

import threading
import time

import redis

from support import RawConn, Server, poll, wire_error


def _raw(server: Server) -> RawConn:
    return RawConn.tcp("127.0.0.1", server.port)


# -- pub/sub -------------------------------------------------------------------------------------

def test_publish_reaches_channel_and_pattern_subscribers(server: Server, r: redis.Redis) -> None:
    p = r.pubsub()
    p.subscribe("news")
    p.psubscribe("n*")
    assert p.get_message(timeout=5)["type"] == "subscribe"
    assert p.get_message(timeout=5)["type"] == "psubscribe"
    assert r.publish("news", "hi") == 2
    got = [p.get_message(timeout=5) for _ in range(2)]
    assert [(m["type"], m["channel"], m["data"]) for m in got] == [
        ("message", "news", "hi"),
        ("pmessage", "news", "hi"),
    ]
    assert r.pubsub_numsub("news", "none") == [("news", 1), ("none", 0)]
    assert r.pubsub_numpat() == 1
    assert r.pubsub_channels() == ["news"]
    assert r.pubsub_channels("x*") == []
    p.close()


def test_subscribed_context_and_ping(server: Server) -> None:
    with _raw(server) as c:
        c.send_command("SUBSCRIBE", "a", "b")
        assert c.read_reply() == [b"subscribe", b"a", 1]
        assert c.read_reply() == [b"subscribe", b"b", 2]
        c.send_command("GET", "x")
        assert str(c.read_reply()) == (
            "ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT "
            "/ RESET are allowed in this context"
        )
        c.send_command("PING")
        assert c.read_reply() == [b"pong", b""]
        c.send_command("UNSUBSCRIBE")
        got = [c.read_reply(), c.read_reply()]
        assert sorted(x[1] for x in got) == [b"a", b"b"]
        assert [x[2] for x in got] == [1, 0]
        c.send_command("UNSUBSCRIBE")
        assert c.read_reply() == [b"unsubscribe", None, 0]
        c.send_command("PING")
        assert c.read_reply() == "PONG"


def test_resp3_subscriber_gets_pushes_and_may_run_commands(server: Server) -> None:
    with _raw(server) as c, _raw(server) as pub:
        c.send_command("HELLO", "3")
        c.read_reply()
        c.send_command("SUBSCRIBE", "ch")
        assert c.read_reply() == [b"subscribe", b"ch", 1]
        assert c.types[-4] == b">"
        c.send_command("PUBLISH", "ch", "self")  # the push comes before the reply
        assert c.read_reply() == [b"message", b"ch", b"self"]
        assert c.read_reply() == 1
        pub.send_command("PUBLISH", "ch", "m")
        assert pub.read_reply() == 1
        assert c.read_reply() == [b"message", b"ch", b"m"]
        c.send_command("RESET")
        assert c.read_reply() == "RESET"
        pub.send_command("PUBLISH", "ch", "m")
        assert pub.read_reply() == 0


def test_client_list_counts_subscriptions(server: Server, r: redis.Redis) -> None:
    with _raw(server) as c:
        c.send_command("SUBSCRIBE", "a")
        c.read_reply()
        c.send_command("PSUBSCRIBE", "p*", "q*")
        c.read_reply()
        c.read_reply()
        line = [x for x in r.execute_command("CLIENT", "LIST").splitlines() if "sub=1" in x]
        assert len(line) == 1 and "psub=2" in line[0] and "flags=P" in line[0]
        assert len(r.execute_command("CLIENT", "LIST", "TYPE", "pubsub").splitlines()) == 1


# -- blocking ------------------------------------------------------------------------------------

def test_blpop_serves_waiters_in_order(server: Server, r: redis.Redis) -> None:
    a, b = _raw(server), _raw(server)
    try:
        a.send_command("BLPOP", "q", "0")
        time.sleep(0.1)
        b.send_command("BLPOP", "q", "0")
        time.sleep(0.1)
        assert r.rpush("q", "1", "2", "3") == 3
        assert a.read_reply() == [b"q", b"1"]
        assert b.read_reply() == [b"q", b"2"]
        assert r.lrange("q", 0, -1) == ["3"]
    finally:
        a.close()
        b.close()


def test_blocking_forms_answer_at_once_or_time_out(server: Server, r: redis.Redis) -> None:
    r.rpush("l", "a", "b")
    assert r.blpop(["nokey", "l"], 1) == ("l", "a")
    assert r.brpop(["l"], 1) == ("l", "b")
    assert r.blpop(["l"], 0.05) is None
    assert r.blmove("l", "m", 0.05, "LEFT", "RIGHT") is None
    r.zadd("z", {"a": 1, "b": 2})
    assert r.bzpopmax("z", 1) == ("z", "b", 2.0)
    assert r.bzpopmin("z", 1) == ("z", "a", 1.0)
    assert r.bzpopmin("z", 0.05) is None
    assert r.execute_command("BZMPOP", "0.05", "1", "z", "MIN") is None
    assert r.execute_command("BLMPOP", "0.05", "1", "l", "LEFT") is None
    assert wire_error(server, "BLPOP", "l", "-1") == "ERR timeout is negative"
    assert wire_error(server, "BLPOP", "l", "x") == "ERR timeout is not a float or out of range"
    r.set("s", "v")
    assert wire_error(server, "BLPOP", "s", "0.1").startswith("WRONGTYPE")


def test_blmove_and_bzpopmin_are_served_after_the_write(server: Server, r: redis.Redis) -> None:
    out: dict[str, object] = {}
    c = server.client()
    t = threading.Thread(target=lambda: out.update(m=c.blmove("src", "dst", 10)))
    t.start()
    time.sleep(0.2)
    r.rpush("src", "x")
    t.join(10)
    assert out["m"] == "x"
    assert r.lrange("dst", 0, -1) == ["x"] and r.exists("src") == 0
    t = threading.Thread(target=lambda: out.update(z=c.bzpopmin("zz", 10)))
    t.start()
    time.sleep(0.2)
    r.zadd("zz", {"m": 5})
    t.join(10)
    assert out["z"] == ("zz", "m", 5.0)


def test_in_multi_a_blocking_command_does_not_block(server: Server, r: redis.Redis) -> None:
    p = r.pipeline(transaction=True)
    p.blpop(["empty"], 0)
    p.bzpopmin("emptyz", 0)
    assert p.execute() == [None, None]


def test_a_waiter_served_after_the_whole_transaction(server: Server, r: redis.Redis) -> None:
    with _raw(server) as w:
        w.send_command("BLPOP", "t", "0")
        time.sleep(0.1)
        p = r.pipeline(transaction=True)
        p.rpush("t", "a", "b")
        p.lpop("t")
        assert p.execute() == [2, "a"]
        assert w.read_reply() == [b"t", b"b"]


def test_client_unblock(server: Server, r: redis.Redis) -> None:
    with _raw(server) as w:
        w.send_command("CLIENT", "ID")
        cid = w.read_reply()
        w.send_command("BLPOP", "never", "0")
        time.sleep(0.1)
        assert r.execute_command("CLIENT", "UNBLOCK", cid) == 1
        assert w.read_reply() is None
        w.send_command("BLPOP", "never", "0")
        time.sleep(0.1)
        assert r.execute_command("CLIENT", "UNBLOCK", cid, "ERROR") == 1
        assert str(w.read_reply()) == "UNBLOCKED client unblocked via CLIENT UNBLOCK"
        assert r.execute_command("CLIENT", "UNBLOCK", cid) == 0


def test_a_blocked_clients_pipeline_waits(server: Server, r: redis.Redis) -> None:
    with _raw(server) as w:
        w.send(b"*3\r\n$5\r\nBLPOP\r\n$2\r\npq\r\n$1\r\n0\r\n*1\r\n$4\r\nPING\r\n")
        time.sleep(0.2)
        w.sock.settimeout(0.2)
        try:
            w.read_reply()
            raise AssertionError("answered while blocked")
        except TimeoutError:
            pass
        w.sock.settimeout(10)
        r.rpush("pq", "v")
        assert w.read_reply() == [b"pq", b"v"]
        assert w.read_reply() == "PONG"


def test_a_blocked_client_that_hangs_up_with_a_pipeline_is_gone(
    server: Server, r: redis.Redis
) -> None:
    """A blocked client's input is still read, so its close is seen while it waits (its
    pipelined requests are held, not its socket)."""
    w = _raw(server)
    w.send(b"*3\r\n$5\r\nBLPOP\r\n$2\r\nhq\r\n$1\r\n0\r\n*1\r\n$4\r\nPING\r\n")
    poll(lambda: r.info("clients")["blocked_clients"] == 1, timeout=10, what="BLPOP to block")
    w.close()
    poll(lambda: r.info("clients")["blocked_clients"] == 0, timeout=10, what="the close to be seen")
    r.rpush("hq", "v")
    assert r.lrange("hq", 0, -1) == ["v"]  # nobody took it: the waiter is gone
