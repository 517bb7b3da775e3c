"""Several requests in one read: what one changes applies to the very next one.

The server runs a read's requests in one loop that checks the connection's MULTI and auth
state and the memory limit once, and again after any command that may change them; these
tests send such a command in the middle of one write and read every reply.
"""

from __future__ import annotations

from collections.abc import Callable

from support import RespError, Server, encode_command


def one_write(srv: Server, *commands: tuple[str, ...], password: str | None = None) -> list:
    with srv.raw() as c:
        if password is not None:
            assert c.call("AUTH", password) == "OK"
        c.send(b"".join(encode_command(*cmd) for cmd in commands))
        return [c.read_reply() for _ in commands]


def test_multi_and_exec_in_the_middle_of_a_read(server: Server) -> None:
    server.client().delete("batch:n")
    replies = one_write(
        server,
        ("SET", "batch:n", "1"),
        ("MULTI",),
        ("INCR", "batch:n"),
        ("GET", "batch:n"),
        ("EXEC",),
        ("INCR", "batch:n"),
    )
    assert replies == ["OK", "OK", "QUEUED", "QUEUED", [2, b"2"], 3]


def test_discard_and_a_refused_exec_in_one_read(server: Server) -> None:
    server.client().delete("batch:d")
    replies = one_write(
        server,
        ("MULTI",),
        ("SET", "batch:d", "x"),
        ("DISCARD",),
        ("GET", "batch:d"),
        ("MULTI",),
        ("GET",),  # wrong arity: the transaction is refused at EXEC
        ("EXEC",),
        ("EXISTS", "batch:d"),
    )
    assert replies[:4] == ["OK", "QUEUED", "OK", None]
    assert replies[4] == "OK"
    assert replies[5] == RespError("ERR wrong number of arguments for 'get' command")
    assert isinstance(replies[6], RespError) and replies[6].startswith("EXECABORT")
    assert replies[7] == 0


def test_quit_ends_the_read(server: Server) -> None:
    with server.raw() as c:
        c.send(encode_command("SET", "batch:q", "1") + encode_command("QUIT")
               + encode_command("SET", "batch:q", "2"))
        assert c.read_until_closed() == b"+OK\r\n+OK\r\n"
    assert server.client().get("batch:q") == "1"


def test_info_counts_the_commands_before_it(server: Server) -> None:
    replies = one_write(
        server,
        ("CONFIG", "RESETSTAT"),
        ("SET", "batch:i", "1"),
        ("INCR", "batch:i"),
        ("GET", "batch:i"),
        ("INFO", "stats"),
    )
    info = replies[4].decode()
    counted = next(x for x in info.split("\r\n") if x.startswith("total_commands_processed:"))
    # As in Redis: RESETSTAT counts itself once it has run, INFO does not count itself.
    assert counted == "total_commands_processed:4"


def test_reset_requires_auth_again_for_what_follows(make_server: Callable[..., Server]) -> None:
    srv = make_server({"requirepass": "pw"}, password="pw")
    replies = one_write(
        srv,
        ("SET", "k", "v"),
        ("RESET",),
        ("GET", "k"),
        ("AUTH", "pw"),
        ("GET", "k"),
        password="pw",
    )
    assert replies == ["OK", "RESET", RespError("NOAUTH Authentication required."), "OK",
                       b"v"]


def test_maxmemory_lowered_in_the_middle_of_a_read(make_server: Callable[..., Server]) -> None:
    srv = make_server({"maxmemory-policy": "noeviction"})
    srv.client().set("filler", "x" * 1000)
    replies = one_write(
        srv,
        ("SET", "a", "1"),
        ("CONFIG", "SET", "maxmemory", "1"),
        ("SET", "b", "2"),
        ("GET", "a"),
        ("CONFIG", "SET", "maxmemory", "0"),
        ("SET", "c", "3"),
    )
    assert replies[:2] == ["OK", "OK"]
    assert replies[2] == RespError(
        "OOM command not allowed when used memory > 'maxmemory'.")
    assert replies[3:] == [b"1", "OK", "OK"]
