"""Connection commands: PING, ECHO, QUIT, SELECT, AUTH, HELLO (RESP3), CLIENT; error wording."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from support import RespError, Server, ironcache_only, wire_error


def test_ping_echo(server: Server) -> None:
    with server.raw() as c:
        assert c.call("PING") == "PONG"
        assert c.call("PING", "hello") == b"hello"
        assert c.call("ECHO", "a\r\nb") == b"a\r\nb"
        assert c.call("ping") == "PONG"
    assert wire_error(server, "ECHO") == "ERR wrong number of arguments for 'echo' command"
    assert wire_error(server, "PING", "a", "b") == \
        "ERR wrong number of arguments for 'ping' command"


def test_quit_closes(server: Server) -> None:
    with server.raw() as c:
        assert c.call("QUIT") == "OK"
        assert c.is_closed()


@pytest.mark.parametrize("name", ["get", "GET", "gEt", "Get"])
def test_command_names_case_insensitive(server: Server, r: redis.Redis, name: str) -> None:
    r.set("k", "v")
    with server.raw() as c:
        assert c.call(name, "k") == b"v"
        assert c.call(name.replace("g", "s").replace("G", "S"), "k", "w") == "OK"


@pytest.mark.parametrize("name", ["get", "GET", "GeT"])
def test_arity_error_wording(server: Server, name: str) -> None:
    assert wire_error(server, name) == "ERR wrong number of arguments for 'get' command"


@pytest.mark.parametrize(
    ("cmd", "name"),
    [(["SET", "k"], "set"), (["DEL"], "del"), (["HGET", "h"], "hget"),
     (["EXPIRE", "k"], "expire"), (["LRANGE", "l", "0"], "lrange"), (["INCR"], "incr"),
     (["MGET"], "mget"), (["SCAN"], "scan"), (["DBSIZE", "x"], "dbsize")],
)
def test_arity_errors(server: Server, cmd: list[str], name: str) -> None:
    assert wire_error(server, *cmd) == f"ERR wrong number of arguments for '{name}' command"


def test_unknown_command_wording(server: Server) -> None:
    assert wire_error(server, "FOO", "a", "b") == \
        "ERR unknown command 'FOO', with args beginning with: 'a' 'b' "
    assert wire_error(server, "foo") == "ERR unknown command 'foo', with args beginning with: "
    with server.raw() as c:  # the connection stays usable
        assert isinstance(c.call("NOPE"), RespError)
        assert c.call("PING") == "PONG"


def test_unknown_subcommand(server: Server) -> None:
    assert wire_error(server, "CLIENT", "FOO") == "ERR unknown subcommand 'FOO'. Try CLIENT HELP."
    assert wire_error(server, "CLIENT") == "ERR wrong number of arguments for 'client' command"
    assert wire_error(server, "CLIENT", "SETNAME") == \
        "ERR wrong number of arguments for 'client|setname' command"


def test_redis_py_error_classes(r: redis.Redis) -> None:
    r.rpush("l", "x")
    with pytest.raises(redis.ResponseError, match="^WRONGTYPE Operation against a key"):
        r.get("l")
    with pytest.raises(redis.ResponseError, match="wrong number of arguments for 'get'"):
        r.execute_command("GET")


def test_select_and_databases(server: Server) -> None:
    c0 = server.client(db=0)
    c1 = server.client(db=1)
    c15 = server.client(db=15)
    c0.flushall()
    c0.set("k", "zero")
    c1.set("k", "one")
    assert c0.get("k") == "zero"
    assert c1.get("k") == "one"
    assert c15.get("k") is None
    with server.raw() as c:
        assert c.call("SELECT", "1") == "OK"
        assert c.call("GET", "k") == b"one"
        assert c.call("SELECT", "0") == "OK"
        assert c.call("GET", "k") == b"zero"
        assert c.call("SELECT", "16") == RespError("ERR DB index is out of range")
        assert c.call("SELECT", "-1") == RespError("ERR DB index is out of range")
        assert c.call("SELECT", "x") == RespError("ERR value is not an integer or out of range")
        assert c.call("GET", "k") == b"zero"  # a failed SELECT keeps the database
    info = c0.info("keyspace")
    assert info["db0"]["keys"] == 1 and info["db1"]["keys"] == 1
    c0.flushall()


def test_select_respects_databases_directive(make_server: Callable[..., Server]) -> None:
    srv = make_server({"databases": 4})
    with srv.raw() as c:
        assert c.call("SELECT", "3") == "OK"
        assert c.call("SELECT", "4") == RespError("ERR DB index is out of range")
    assert srv.client().config_get("databases") == {"databases": "4"}


# -- AUTH / requirepass ---------------------------------------------------------------------

def test_auth_without_password_configured(server: Server) -> None:
    err = wire_error(server, "AUTH", "x")
    assert err.startswith("ERR AUTH <password> called without any password configured")


def test_requirepass(make_server: Callable[..., Server]) -> None:
    srv = make_server({"requirepass": "s3cret pass"}, password="s3cret pass")
    with srv.raw() as c:
        assert c.call("PING") == RespError("NOAUTH Authentication required.")
        assert c.call("GET", "k") == RespError("NOAUTH Authentication required.")
        wrong = c.call("AUTH", "nope")
        assert wrong == RespError(
            "WRONGPASS invalid username-password pair or user is disabled.")
        assert c.call("PING") == RespError("NOAUTH Authentication required.")
        assert c.call("AUTH", "s3cret pass") == "OK"
        assert c.call("PING") == "PONG"
        assert c.call("SET", "k", "v") == "OK"
    with srv.raw() as c:
        assert c.call("AUTH", "default", "s3cret pass") == "OK"  # the two-argument form
        assert c.call("GET", "k") == b"v"
    with srv.raw() as c:
        # HELLO may authenticate in the same round trip.
        reply = c.call("HELLO", "2", "AUTH", "default", "s3cret pass")
        assert isinstance(reply, list)
        assert c.call("GET", "k") == b"v"
    # redis-py: no password -> AuthenticationError subclasses; right password -> works.
    with pytest.raises(redis.AuthenticationError):
        srv.client(password=None).get("k")
    with pytest.raises(redis.AuthenticationError):
        srv.client(password="wrong").get("k")
    assert srv.client().get("k") == "v"


def test_unauthenticated_frames_are_small(make_server: Callable[..., Server]) -> None:
    srv = make_server({"requirepass": "pw"}, password="pw")
    with srv.raw() as c:
        c.send(b"*20\r\n")
        assert c.read_until_closed() == \
            b"-ERR Protocol error: unauthenticated multibulk length\r\n"
    with srv.raw() as c:
        c.send(b"*2\r\n$4\r\nECHO\r\n$20000\r\n")
        assert c.read_until_closed() == b"-ERR Protocol error: unauthenticated bulk length\r\n"
    with srv.raw() as c:  # after AUTH the normal limits apply
        assert c.call("AUTH", "pw") == "OK"
        assert c.call("ECHO", "x" * 20000) == b"x" * 20000
        assert c.call("DEL", *[f"k{i}" for i in range(30)]) == 0


def test_requirepass_config_set(make_server: Callable[..., Server]) -> None:
    srv = make_server()
    c = srv.client()
    c.config_set("requirepass", "later")
    with srv.raw() as raw:
        assert raw.call("PING") == RespError("NOAUTH Authentication required.")
    assert c.ping() is True  # an authenticated... or pre-existing connection keeps working
    c.config_set("requirepass", "")
    with srv.raw() as raw:
        assert raw.call("PING") == "PONG"


# -- HELLO / RESP3 --------------------------------------------------------------------------

def test_hello_3_on_wire(server: Server, r: redis.Redis) -> None:
    r.hset("h", "f", "v")
    with server.raw() as c:
        c.send_command("HELLO", "3")
        assert c.read_line().startswith(b"%")  # a RESP3 map
    with server.raw() as c:
        hello = c.call("HELLO", "3")
        assert isinstance(hello, dict)
        assert hello[b"proto"] == 3
        assert hello[b"server"] == b"redis"
        assert isinstance(hello[b"version"], bytes)
        assert hello[b"role"] == b"master"
        assert isinstance(hello[b"id"], int)
        c.send_command("HGETALL", "h")
        assert c.read_line() == b"%1"
        assert c.read_reply() == b"f" and c.read_reply() == b"v"
        c.send_command("GET", "missing")
        assert c.read_line() == b"_"
        c.send_command("SMEMBERS", "nokey")
        assert c.read_line() == b"~0"
        c.send_command("HELLO", "2")
        assert c.read_line() == b"*14"  # back to RESP2: the same fields as a flat array
        flat = [c.read_reply() for _ in range(14)]
        assert flat[flat.index(b"proto") + 1] == 2
        c.send_command("GET", "missing")
        assert c.read_line() == b"$-1"


def test_hello_errors(server: Server) -> None:
    assert wire_error(server, "HELLO", "4") == "NOPROTO unsupported protocol version"
    assert wire_error(server, "HELLO", "1") == "NOPROTO unsupported protocol version"
    with server.raw() as c:
        reply = c.call("HELLO")  # no version: current protocol, RESP2 here
        assert isinstance(reply, list) and b"proto" in reply


def test_hello_setname(server: Server) -> None:
    with server.raw() as c:
        c.call("HELLO", "3", "SETNAME", "via-hello")
        assert c.call("CLIENT", "GETNAME") == b"via-hello"


def test_redis_py_resp3(server: Server, r: redis.Redis) -> None:
    c3 = server.client(protocol=3)
    assert c3.ping() is True
    c3.hset("h3", mapping={"a": "1", "b": "2"})
    assert c3.hgetall("h3") == {"a": "1", "b": "2"}
    c3.sadd("s3", "x", "y")
    assert c3.smembers("s3") == {"x", "y"}
    assert c3.get("missing") is None
    c3.set("f", "1.5")
    assert float(c3.incrbyfloat("f", 1)) == 2.5
    info = c3.info("server")
    assert "redis_version" in info
    with c3.pipeline(transaction=True) as p:
        p.set("t", "1").incr("t").hgetall("h3")
        assert p.execute() == [True, 2, {"a": "1", "b": "2"}]
    assert c3.connection_pool.get_connection().protocol in (3, "3")


# -- CLIENT ---------------------------------------------------------------------------------

def test_client_setname_getname_id(server: Server) -> None:
    c = server.client(single_connection_client=True)
    assert c.client_getname() is None
    assert c.client_setname("worker-1") is True
    assert c.client_getname() == "worker-1"
    cid = c.client_id()
    assert isinstance(cid, int) and cid > 0
    other = server.client(single_connection_client=True)
    assert other.client_id() != cid
    with server.raw() as raw:
        assert raw.call("CLIENT", "SETNAME", "bad name") == RespError(
            "ERR Client names cannot contain spaces, newlines or special characters.")
        assert raw.call("CLIENT", "SETNAME", "") == "OK"  # empty name clears it
        assert raw.call("CLIENT", "GETNAME") is None


def test_client_list_and_info(server: Server) -> None:
    c = server.client(single_connection_client=True)
    c.client_setname("lister")
    cid = c.client_id()
    entries = c.client_list()
    mine = [e for e in entries if e.get("name") == "lister"]
    assert len(mine) == 1
    assert int(mine[0]["id"]) == cid
    assert mine[0]["addr"].startswith("127.0.0.1:")
    assert mine[0]["db"] == "0"
    assert "cmd" in mine[0] and "age" in mine[0] and "idle" in mine[0]
    info = c.client_info()
    assert int(info["id"]) == cid
    assert info["name"] == "lister"
    other = server.client(single_connection_client=True)
    other.ping()
    assert len(c.client_list()) >= 2
    assert all(int(e["id"]) > 0 for e in c.client_list(_type="normal"))


@ironcache_only  # CLIENT SETINFO is Redis 7.2; the redis-server this suite checks against is 7.0
def test_client_setinfo_accepted(server: Server) -> None:
    # redis-py and other clients send this at connect; it must not be an unknown command.
    with server.raw() as c:
        assert c.call("CLIENT", "SETINFO", "LIB-NAME", "ironcache-tests") == "OK"
        assert c.call("CLIENT", "SETINFO", "LIB-VER", "1.0") == "OK"
