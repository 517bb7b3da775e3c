"""The wire: inline commands, big pipelines, malformed frames, limits, and garbage input."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from support import RawConn, RespError, Server, encode_command, poll

# -- inline commands (telnet, redis-benchmark's inline mode) --------------------------------

def test_inline_ping(any_server: Server) -> None:
    with any_server.raw() as c:
        c.send(b"PING\r\n")
        assert c.read_line() == b"+PONG"
        c.send(b"ping\n")  # a bare LF ends a line too
        assert c.read_line() == b"+PONG"


def test_inline_commands_with_arguments_and_quotes(any_server: Server) -> None:
    r = any_server.client()
    r.flushall()
    with any_server.raw() as c:
        c.send(b"SET inline hello\r\nGET inline\r\n")
        assert c.read_reply() == "OK"
        assert c.read_reply() == b"hello"
        c.send(b'SET q "hello world"\r\n')
        assert c.read_reply() == "OK"
        c.send(b"SET q2 'single quoted'\r\n")
        assert c.read_reply() == "OK"
        c.send(b'SET q3 "tab\\there\\x41"\r\n')
        assert c.read_reply() == "OK"
        c.send(b"  ECHO    spaced   \r\n")
        assert c.read_reply() == b"spaced"
    assert r.get("q") == "hello world"
    assert r.get("q2") == "single quoted"
    assert r.get("q3") == "tab\thereA"


def test_inline_empty_lines_ignored(any_server: Server) -> None:
    with any_server.raw() as c:
        c.send(b"\r\n\r\nPING\r\n")
        assert c.read_line() == b"+PONG"


def test_inline_unbalanced_quotes(any_server: Server) -> None:
    with any_server.raw() as c:
        c.send(b'SET k "unterminated\r\n')
        data = c.read_until_closed()
    assert data.startswith(b"-ERR Protocol error: unbalanced quotes in request")


def test_inline_and_multibulk_mixed(any_server: Server) -> None:
    with any_server.raw() as c:
        c.send(b"PING\r\n" + encode_command("ECHO", "x") + b"PING\r\n")
        assert [c.read_reply() for _ in range(3)] == ["PONG", b"x", "PONG"]


# -- pipelines --------------------------------------------------------------------------------

def test_10k_commands_in_one_write(any_server: Server) -> None:
    r = any_server.client()
    r.flushall()
    payload = b"".join(encode_command("INCR", "counter") for _ in range(10_000))
    with any_server.raw(timeout=30) as c:
        c.send(payload)
        replies = [c.read_reply() for _ in range(10_000)]
    assert replies == list(range(1, 10_001))
    assert r.get("counter") == "10000"


def test_10k_inline_commands_in_one_write(any_server: Server) -> None:
    with any_server.raw(timeout=30) as c:
        c.send(b"PING\r\n" * 10_000)
        for _ in range(10_000):
            assert c.read_line() == b"+PONG"


def test_redis_py_10k_pipeline(r: redis.Redis) -> None:
    with r.pipeline(transaction=False) as p:
        for i in range(10_000):
            p.set(f"p:{i}", i)
        assert p.execute() == [True] * 10_000
    with r.pipeline(transaction=False) as p:
        for i in range(10_000):
            p.get(f"p:{i}")
        assert p.execute() == [str(i) for i in range(10_000)]
    assert r.dbsize() == 10_000


def test_frames_split_across_writes(any_server: Server) -> None:
    payload = encode_command("SET", "split", "v" * 1000) + encode_command("GET", "split")
    with any_server.raw() as c:
        for i in range(len(payload)):
            c.send(payload[i:i + 1])
        assert c.read_reply() == "OK"
        assert c.read_reply() == b"v" * 1000


def test_large_value(server: Server, rb: redis.Redis) -> None:
    big = b"\x01" * (8 * 1024 * 1024)
    assert rb.set("big", big) is True
    assert rb.get("big") == big
    assert rb.strlen("big") == len(big)


# -- malformed frames -----------------------------------------------------------------------

@pytest.mark.parametrize(
    "frame",
    [
        b"*1\r\n$abc\r\n",  # bulk length not a number
        b"*abc\r\n",  # multibulk length not a number
        b"*1\r\nfoo\r\n",  # '$' expected
        b"*2\r\n$4\r\nPING\r\n:1\r\n",
        b"*1\r\n$-5\r\n",
        b"*99999999999\r\n",  # multibulk length out of range
    ],
)
def test_malformed_frame_gets_protocol_error_and_close(any_server: Server,
                                                       frame: bytes) -> None:
    r = any_server.client()
    r.flushall()
    r.set("survivor", "yes")
    bystander = any_server.raw()
    assert bystander.call("PING") == "PONG"
    with any_server.raw() as c:
        c.send(frame)
        data = c.read_until_closed()
    assert data.startswith(b"-ERR Protocol error: "), data
    assert data.endswith(b"\r\n")
    # Everyone else is served on, and no data was lost.
    assert bystander.call("GET", "survivor") == b"yes"
    bystander.close()
    assert r.get("survivor") == "yes"


def test_protocol_error_after_good_commands(any_server: Server) -> None:
    with any_server.raw() as c:
        c.send(encode_command("SET", "before", "1") + b"*1\r\n$x\r\n" +
               encode_command("SET", "after", "1"))
        assert c.read_reply() == "OK"  # the command before the bad frame is answered
        data = c.read_until_closed()
    assert data.startswith(b"-ERR Protocol error: ")
    assert any_server.client().exists("after") == 0


def test_proto_max_bulk_len(make_server: Callable[..., Server]) -> None:
    srv = make_server({"proto-max-bulk-len": "1mb"})
    c = srv.client()
    assert c.config_get("proto-max-bulk-len") == {"proto-max-bulk-len": str(1024 * 1024)}
    assert c.set("ok", "x" * (1024 * 1024)) is True
    with srv.raw() as raw:
        raw.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000000\r\n")
        data = raw.read_until_closed()
    assert data == b"-ERR Protocol error: invalid bulk length\r\n"
    assert c.ping() is True
    # CONFIG SET raises it at runtime.
    assert c.config_set("proto-max-bulk-len", "4mb") is True
    assert c.set("bigger", "x" * 2_000_000) is True


def test_client_query_buffer_limit(make_server: Callable[..., Server]) -> None:
    srv = make_server({"client-query-buffer-limit": "1mb"})
    with srv.raw(timeout=10) as raw:
        # An inline line with no newline keeps growing the query buffer.
        chunk = b"x" * 65536
        closed = False
        try:
            for _ in range(64):  # 4 MB at most
                raw.send(chunk)
        except (BrokenPipeError, ConnectionResetError):
            closed = True
        if not closed:
            closed = raw.is_closed(10)
    assert closed
    assert srv.client().ping() is True


def test_maxclients(make_server: Callable[..., Server]) -> None:
    srv = make_server({"maxclients": 3})
    held = [srv.raw() for _ in range(3)]
    for c in held:
        assert c.call("PING") == "PONG"
    extra = srv.raw()
    data = extra.read_until_closed()
    assert data == b"-ERR max number of clients reached\r\n"
    extra.close()
    # The ones inside keep working; closing one makes room.
    assert held[0].call("PING") == "PONG"
    held.pop().close()

    def can_connect() -> bool:
        c = srv.raw()
        try:
            return c.call("PING") == "PONG"
        except (ConnectionResetError, BrokenPipeError):
            return False
        finally:
            c.close()

    poll(can_connect, 10, 0.05, "a free client slot")
    assert held[0].call("INFO", "stats") is not None
    for c in held:
        c.close()
    poll(lambda: srv.client().info("stats")["rejected_connections"] >= 1, 5,
         what="rejected_connections")


def test_maxclients_config_set(make_server: Callable[..., Server]) -> None:
    srv = make_server()
    admin = srv.client(single_connection_client=True)
    admin.config_set("maxclients", "2")
    one = srv.raw()
    assert one.call("PING") == "PONG"
    extra = srv.raw()
    assert extra.read_until_closed() == b"-ERR max number of clients reached\r\n"
    extra.close()
    one.close()


def test_idle_timeout(make_server: Callable[..., Server]) -> None:
    srv = make_server({"timeout": 1})
    with srv.raw() as c:
        assert c.call("PING") == "PONG"
        assert c.is_closed(15)  # idle longer than `timeout`: closed by the server
    assert srv.client().ping() is True


# -- garbage: the server never crashes, and serves the next client ----------------------------

_commands = st.sampled_from([
    [b"PING"], [b"ECHO", b"hi"], [b"SET", b"fz", b"v"], [b"GET", b"fz"], [b"INCR", b"fzn"],
    [b"HSET", b"fzh", b"f", b"v"], [b"LPUSH", b"fzl", b"x"], [b"MULTI"], [b"EXEC"],
    [b"DISCARD"], [b"DEL", b"fz"], [b"EXISTS", b"fz"], [b"TTL", b"fz"], [b"NOSUCH"], [b"GET"],
])


@st.composite
def _garbage(draw: st.DrawFn) -> bytes:
    frames = [encode_command(*cmd) for cmd in draw(st.lists(_commands, max_size=4))]
    data = b"".join(frames)
    kind = draw(st.sampled_from(["random", "truncate", "mutate", "splice"]))
    if kind == "random":
        return draw(st.binary(max_size=300))
    if kind == "truncate" and data:
        return data[:draw(st.integers(0, len(data)))]
    if kind == "mutate" and data:
        pos = draw(st.integers(0, len(data) - 1))
        return data[:pos] + draw(st.binary(min_size=1, max_size=8)) + data[pos + 1:]
    return data + draw(st.sampled_from([b"*", b"$", b"*-1\r\n", b"*1\r\n$", b"\r\n", b"\x00",
                                        b"*2\r\n$3\r\nGET\r\n", b"$5\r\nhello\r\n",
                                        b"*1\r\n$4\r\nPING\r\n"]))


_probe_value = "still-here"


@given(payload=_garbage())
def test_garbage_never_crashes_server(any_server: Server, payload: bytes) -> None:
    keeper = any_server.client(db=9)
    keeper.set("probe", _probe_value)
    sock = socket.create_connection(("127.0.0.1", any_server.port), timeout=5)
    try:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)  # the server sees EOF after the garbage
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                if not sock.recv(65536):
                    break
            except (TimeoutError, ConnectionResetError):
                break
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        sock.close()
    assert any_server.alive(), any_server.log_text()[-2000:]
    with RawConn.tcp("127.0.0.1", any_server.port) as second:
        assert second.call("PING") == "PONG"
        assert second.call("SELECT", "9") == "OK"
        assert second.call("GET", "probe") == _probe_value.encode()


@given(payload=_garbage())
def test_garbage_on_open_connection_does_not_disturb_others(any_server: Server,
                                                            payload: bytes) -> None:
    """A client that sends garbage and then waits (no EOF) must not block a second client."""
    sock = socket.create_connection(("127.0.0.1", any_server.port), timeout=5)
    try:
        sock.sendall(payload)
        with RawConn.tcp("127.0.0.1", any_server.port) as second:
            assert second.call("PING") == "PONG"
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        sock.close()
    assert any_server.alive()


def test_error_reply_type_is_error(server: Server) -> None:
    with server.raw() as c:
        c.send_command("NOSUCHCMD")
        assert isinstance(c.read_reply(), RespError)


def test_quit_in_a_pipeline(any_server: Server) -> None:
    with any_server.raw() as c:
        c.send(b"PING\r\n" + encode_command("QUIT") + b"PING\r\n")
        data = c.read_until_closed()
    assert data == b"+PONG\r\n+OK\r\n"


def test_many_simultaneous_clients(server: Server, r: redis.Redis) -> None:
    before = r.info("clients")["connected_clients"]
    conns = [RawConn.tcp("127.0.0.1", server.port) for _ in range(200)]
    try:
        for i, c in enumerate(conns):
            c.send_command("SET", f"client:{i}", i)
        for c in conns:
            assert c.read_reply() == "OK"
        assert r.info("clients")["connected_clients"] >= before + 200
    finally:
        for c in conns:
            c.close()
    poll(lambda: r.info("clients")["connected_clients"] <= before, 10,
         what="closed clients to leave connected_clients")
    assert r.dbsize() == 200


def test_slow_reader_does_not_block_others(server: Server, rb: redis.Redis) -> None:
    big = b"z" * (16 * 1024 * 1024)
    rb.set("big", big)
    slow = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        slow.sendall(encode_command("GET", "big") * 4)  # 64 MB of replies nobody reads yet
        with RawConn.tcp("127.0.0.1", server.port) as other:
            for i in range(50):
                assert other.call("SET", f"o{i}", "v") == "OK"
                assert other.call("GET", f"o{i}") == b"v"
        # The slow client gets everything once it reads.
        got = 0
        expected = 4 * (len(big) + len(b"$16777216\r\n\r\n"))
        while got < expected:
            chunk = slow.recv(1 << 20)
            assert chunk, "connection closed before all replies arrived"
            got += len(chunk)
        assert got == expected
    finally:
        slow.close()
    rb.delete("big")
