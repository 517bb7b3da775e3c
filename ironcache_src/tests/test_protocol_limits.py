"""The wire: inline commands, big pipelines, malformed frames, limits, and garbage input."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from support import RawConn, RespError, Server, encode_command, ironcache_only, poll

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


# -- Redis's verdicts on the wire (every row as redis-server 7.0.15 answers it: run with
#    IRONCACHE_TEST_TARGET=redis to check them there) ------------------------------------------

_WIRE_CLOSES = [
    (b"*3\r\n$3\r\nSET\r\n$5\r\nsmugg\r\n+v\r\n",
     b"-ERR Protocol error: expected '$', got '+'\r\n"),
    (b"*2\r\n$3\r\nGET\r\n=5\r\ntxt:k\r\n", b"-ERR Protocol error: expected '$', got '='\r\n"),
    (b"*03\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
    (b"*-0\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
    (b"*1\r\n$03\r\nabc\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
    (b"*1\r\n$-1\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
    (b"*1\r\n\r\n", b"-ERR Protocol error: expected '$', got ' '\r\n"),
    (b"*1\r\n\xff\r\n", b"-ERR Protocol error: expected '$', got '\xff'\r\n"),
    (b"*2147483648\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
    (encode_command("PING") + b"*3000000000\r\n",
     b"+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n"),
]


@pytest.mark.parametrize(("wire", "reply"), _WIRE_CLOSES,
                         ids=[repr(w[:20]) for w, _ in _WIRE_CLOSES])
def test_redis_refuses_and_closes(any_server: Server, wire: bytes, reply: bytes) -> None:
    r = any_server.client()
    r.delete("smugg")
    with any_server.raw() as c:
        c.send(wire)
        assert c.read_until_closed() == reply
    assert r.exists("smugg") == 0  # nothing ran that Redis would not run


_WIRE_ANSWERS = [
    # not '*' first: an inline command, whatever it looks like
    (encode_command("PING") + b"~1\r\n$1\r\na\r\n",
     b"+PONG\r\n-ERR unknown command '~1', with args beginning with: \r\n"
     b"-ERR unknown command '$1', with args beginning with: \r\n"
     b"-ERR unknown command 'a', with args beginning with: \r\n"),
    (b"$-1\r\n", b"-ERR unknown command '$-1', with args beginning with: \r\n"),
    (b"_\r\n", b"-ERR unknown command '_', with args beginning with: \r\n"),
    # an error reply is one line: CR and LF from the request become spaces
    (b"*1\r\n$3\r\n\nX\n\r\n", b"-ERR unknown command ' X ', with args beginning with: \r\n"),
    # names print as C strings (to a NUL byte), arguments while under 128 bytes
    (b"*2\r\n$5\r\nFO\x00O\xff\r\n$3\r\na\x00b\r\n",
     b"-ERR unknown command 'FO', with args beginning with: 'a' \r\n"),
    (encode_command("FOO", "a" * 100, "b" * 100),
     b"-ERR unknown command 'FOO', with args beginning with: '" + b"a" * 100 + b"' '"
     + b"b" * 25 + b"' \r\n"),
    # inline words: a vertical tab or form feed does not end one
    (b"ECHO\x0ba\x0cb\r\n",
     b"-ERR unknown command 'ECHO\x0ba\x0cb', with args beginning with: \r\n"),
    (b"ECHO a\x0b\r\n", b"$2\r\na\x0b\r\n"),
    (b"ECHO 'a'\x0bb\r\n", b"-ERR wrong number of arguments for 'echo' command\r\n"),
    # zero and negative counts are skipped; a header line ends at its CR
    (b"*-99999999999\r\n*0\r\n" + encode_command("PING"), b"+PONG\r\n"),
    (b"*1\rx$4\rxPING\r\n", b"+PONG\r\n"),
    (b"*1\r\n$4\r\nPINGxx" + encode_command("PING"), b"+PONG\r\n+PONG\r\n"),
    # a NUL byte hides the line end from Redis: nothing runs (yet)
    (b"ECHO a\x00b\r\n", b""),
    (b"*1\r\n$4\x00\r\nPING\r\n", b""),
]


@pytest.mark.parametrize(("wire", "reply"), _WIRE_ANSWERS,
                         ids=[repr(w[:20]) for w, _ in _WIRE_ANSWERS])
def test_redis_answers(any_server: Server, wire: bytes, reply: bytes) -> None:
    with any_server.raw() as c:
        c.send(wire)
        if reply:
            assert c.read_exact(len(reply)) == reply
        with RawConn.tcp("127.0.0.1", any_server.port) as other:  # orders the check below
            assert other.call("PING") == "PONG"
        c.sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            c._fill()  # nothing more, and the connection stays open


# -- no request stalls the others, and memory stays bounded ---------------------------------

def _rss_kb(srv: Server) -> int:
    assert srv.proc is not None
    with open(f"/proc/{srv.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


HOSTILE = [
    b"*2147483647\r\n$4\r\nPING\r\n",  # hiredis allocated 16 GiB for this count
    b"*2147483648\r\n",
    encode_command("PING") + b"*3000000000\r\n",
    b"*1\r\n*2147483647\r\n",
    encode_command("PING") + b"*2\r\n$4\r\nECHO\r\n~2147483647\r\n",
]


@pytest.mark.parametrize("wire", HOSTILE, ids=[repr(w[:16]) for w in HOSTILE])
def test_huge_counts_never_stall_other_clients(any_server: Server, wire: bytes) -> None:
    """Four connections send a huge count (and stay open, then close) while another PINGs:
    every PING is answered (within a generous 5 s: these used to stall the server 9-33 s),
    and the server's memory does not grow by the count."""
    rss0 = _rss_kb(any_server)
    with any_server.raw(timeout=5) as bystander:
        assert bystander.call("PING") == "PONG"
        hostile = [socket.create_connection(("127.0.0.1", any_server.port)) for _ in range(4)]
        try:
            for h in hostile:
                h.sendall(wire)
            for _ in range(20):
                assert bystander.call("PING") == "PONG"
        finally:
            for h in hostile:
                h.close()
        for _ in range(20):  # closing them frees what they held, and stalls nobody either
            assert bystander.call("PING") == "PONG"
    assert _rss_kb(any_server) - rss0 < 64 * 1024


@pytest.mark.parametrize(("head", "reply"), [
    (b"*", b"-ERR Protocol error: too big mbulk count string\r\n"),
    (b"*1\r\n$", b"-ERR Protocol error: too big bulk count string\r\n"),
    (b"PING ", b"-ERR Protocol error: too big inline request\r\n"),
])
def test_header_lines_are_capped_at_64k(any_server: Server, head: bytes, reply: bytes) -> None:
    """Digits (or spaces) with no line end: refused once past 64 KiB, as Redis does, instead
    of buffering up to client-query-buffer-limit."""
    rss0 = _rss_kb(any_server)
    filler = b"1" if head != b"PING " else b" "
    with any_server.raw(timeout=5) as bystander:
        sock = socket.create_connection(("127.0.0.1", any_server.port), timeout=10)
        sent = 0
        try:
            sock.sendall(head)
            for _ in range(64):  # 2 MiB at most
                sock.sendall(filler * 32768)
                sent += 32768
                assert bystander.call("PING") == "PONG"
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        try:
            while chunk := sock.recv(4096):
                data += chunk
        except ConnectionResetError:
            pass
        sock.close()
        assert data == reply
        assert sent <= 256 * 1024  # refused within a few reads past the cap
        assert bystander.call("PING") == "PONG"
    assert _rss_kb(any_server) - rss0 < 32 * 1024


@ironcache_only
def test_query_buffer_limit_counts_parsed_arguments(make_server: Callable[..., Server]) -> None:
    """A command arriving in parts is charged for the arguments already parsed too (Redis
    7.0 counts only its query buffer: it keeps this client; IronCache charges the memory)."""
    srv = make_server({"client-query-buffer-limit": "1mb"})
    with srv.raw(timeout=10) as c:
        c.send(b"*1000000\r\n")
        arg = b"$10\r\n0123456789\r\n"
        closed = False
        try:
            for _ in range(40):  # 2.4 MB on the wire, 2 MB of arguments
                c.send(arg * 5000)
        except (BrokenPipeError, ConnectionResetError):
            closed = True
        assert closed or c.is_closed(10)
    assert srv.client().ping() is True


# -- client output buffers --------------------------------------------------------------------

def test_client_output_buffer_limit_config(make_server: Callable[..., Server]) -> None:
    srv = make_server()
    r = srv.client()
    default = "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
    assert r.config_get("client-output-buffer-limit") == {"client-output-buffer-limit": default}
    assert r.config_set("client-output-buffer-limit", "normal 1mb 512kb 10") is True
    assert r.config_get("client-output-buffer-limit")["client-output-buffer-limit"] == (
        "normal 1048576 524288 10 slave 268435456 67108864 60 pubsub 33554432 8388608 60")
    assert r.config_set("client-output-buffer-limit", "replica 1mb 2mb 3 normal 0 0 0") is True
    assert r.config_get("client-output-buffer-limit")["client-output-buffer-limit"] == (
        "normal 0 0 0 slave 1048576 2097152 3 pubsub 33554432 8388608 60")
    for bad, why in [("normal 1mb 2mb", "Wrong number of arguments"),
                     ("master 1 2 3", "Invalid client class"),
                     ("normal x 2mb 3", "Error in hard, soft or soft_seconds"),
                     ("normal 1 2mb -3", "Error in hard, soft or soft_seconds")]:
        with pytest.raises(redis.ResponseError, match=why):
            r.config_set("client-output-buffer-limit", bad)


def _unread_pipeline(srv: Server, payload: bytes) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # before connect: a small window
    sock.settimeout(10)
    sock.connect(("127.0.0.1", srv.port))
    sock.sendall(payload)
    return sock


def _closed_by_server(sock: socket.socket, timeout: float = 10.0) -> bool:
    """Read (and drop) everything until the server closes; False if it is still open."""
    deadline = time.monotonic() + timeout
    sock.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            if not sock.recv(1 << 20):
                return True
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True
    return False


def test_output_buffer_hard_limit_disconnects(make_server: Callable[..., Server]) -> None:
    srv = make_server({"client-output-buffer-limit": "normal 1mb 0 0"})
    r = srv.client()
    r.set("big", "x" * (3 * 1024 * 1024))
    sock = _unread_pipeline(srv, encode_command("GET", "big") * 4)
    try:
        time.sleep(0.5)  # the replies pile up unread
        assert _closed_by_server(sock)
    finally:
        sock.close()
    assert r.ping() is True
    # Within the limit, a client is served as before.
    assert r.config_set("client-output-buffer-limit", "normal 0 0 0") is True
    sock = _unread_pipeline(srv, encode_command("GET", "big") * 4)
    try:
        time.sleep(0.5)
        got = 0
        while got < 4 * (3 * 1024 * 1024 + 12):
            chunk = sock.recv(1 << 20)
            assert chunk
            got += len(chunk)
        assert got == 4 * (3 * 1024 * 1024 + 12)
    finally:
        sock.close()


@ironcache_only
def test_output_buffer_soft_limit_disconnects_an_idle_reader(
        make_server: Callable[..., Server]) -> None:
    """Over the soft limit for its seconds: disconnected even though no new reply comes (a
    client that reads nothing sends nothing more we would read)."""
    srv = make_server({"client-output-buffer-limit": "normal 0 1mb 1"})
    r = srv.client()
    r.set("big", "x" * (16 * 1024 * 1024))  # more than the kernel's socket buffers take
    sock = _unread_pipeline(srv, encode_command("GET", "big"))
    try:
        with srv.raw() as other:
            assert other.call("PING") == "PONG"
        # Nothing is read meanwhile (reading would bring the buffer under the limit).
        poll(lambda: "output buffer limit" in srv.log_text(), 10, 0.1, "the disconnection")
        assert _closed_by_server(sock)
    finally:
        sock.close()
    assert r.ping() is True


@ironcache_only
def test_pipelined_replies_are_built_a_few_mb_at_a_time(server: Server,
                                                        rb: redis.Redis) -> None:
    """64 GETs of 1 MiB in one write, nothing read: the server builds about 4 MB of replies,
    then waits for the client to read them before it runs the rest (without this: 64 MiB).
    Once the client reads, every reply arrives, in order."""
    value = bytes(range(256)) * 4096
    rb.set("onemb", value)
    rss0 = _rss_kb(server)
    sock = _unread_pipeline(server, encode_command("GET", "onemb") * 64)
    try:
        with server.raw() as other:
            for _ in range(10):
                assert other.call("PING") == "PONG"
        time.sleep(0.5)
        assert _rss_kb(server) - rss0 < 24 * 1024
        reader = RawConn(sock)
        for _ in range(64):
            assert reader.read_reply() == value
    finally:
        sock.close()
    rb.delete("onemb")
