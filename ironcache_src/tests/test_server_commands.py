"""Server commands: INFO, CONFIG GET/SET/RESETSTAT, TIME, COMMAND, DBSIZE, SHUTDOWN."""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from support import (
    RawConn,
    RespError,
    Server,
    free_port,
    host_address,
    info_fields,
    ironcache_only,
    poll,
    wait_port_closed,
    wire_error,
)

# -- INFO -----------------------------------------------------------------------------------

def test_info_sections_parsed_by_redis_py(r: redis.Redis) -> None:
    server = r.info("server")
    assert re.fullmatch(r"\d+\.\d+\.\d+", server["redis_version"])
    assert isinstance(server["process_id"], int)
    assert isinstance(server["tcp_port"], int)
    assert isinstance(server["uptime_in_seconds"], int)
    assert re.fullmatch(r"[0-9a-f]{40}", server["run_id"])
    assert server["redis_mode"] == "standalone"

    clients = r.info("clients")
    assert clients["connected_clients"] >= 1
    assert "blocked_clients" in clients
    assert "maxclients" in r.info("clients") or "maxclients" in r.info("all")

    memory = r.info("memory")
    for field in ("used_memory", "used_memory_human", "maxmemory", "maxmemory_policy",
                  "used_memory_peak"):
        assert field in memory, field
    assert isinstance(memory["used_memory"], int) and memory["used_memory"] >= 0
    assert isinstance(memory["maxmemory"], int)

    stats = r.info("stats")
    for field in ("total_connections_received", "total_commands_processed",
                  "instantaneous_ops_per_sec", "rejected_connections", "expired_keys",
                  "evicted_keys", "keyspace_hits", "keyspace_misses"):
        assert isinstance(stats[field], int), field

    replication = r.info("replication")
    assert replication["role"] == "master"
    assert replication["connected_slaves"] == 0


def test_info_keyspace(server: Server) -> None:
    c0, c2 = server.client(db=0), server.client(db=2)
    c0.flushall()
    assert c0.info("keyspace") == {}
    c0.mset({"a": "1", "b": "2", "c": "3"})
    c0.expire("a", 1000)
    c2.set("x", "1")
    ks = c0.info("keyspace")
    assert ks["db0"]["keys"] == 3
    assert ks["db0"]["expires"] == 1
    assert ks["db2"] == {"keys": 1, "expires": 0, "avg_ttl": 0}
    c0.flushall()


def test_info_default_all_and_multiple_sections(r: redis.Redis) -> None:
    default = r.info()
    for field in ("redis_version", "connected_clients", "used_memory", "keyspace_hits", "role"):
        assert field in default, field
    everything = r.info("all")
    assert "redis_version" in everything and "used_memory" in everything
    both = r.info("server", "clients")
    assert "redis_version" in both and "connected_clients" in both
    assert "used_memory" not in both


def test_info_raw_format(server: Server) -> None:
    with server.raw() as c:
        text = c.call("INFO", "server")
    assert isinstance(text, bytes)
    lines = text.decode().split("\r\n")
    assert lines[0] == "# Server"
    fields = info_fields(text.decode())
    assert "redis_version" in fields
    with server.raw() as c:
        assert c.call("INFO", "nosuchsection").strip() == b""
        everything = c.call("INFO", "everything").decode()
    assert "# Keyspace" in everything


def test_keyspace_hits_misses_and_resetstat(r: redis.Redis) -> None:
    r.set("k", "v")
    assert r.config_resetstat() is True
    stats = r.info("stats")
    assert stats["keyspace_hits"] == 0 and stats["keyspace_misses"] == 0
    r.get("k")
    r.get("k")
    r.get("missing")
    stats = r.info("stats")
    assert stats["keyspace_hits"] == 2
    assert stats["keyspace_misses"] == 1
    assert stats["total_commands_processed"] >= 3
    r.config_resetstat()
    assert r.info("stats")["keyspace_hits"] == 0


def test_connections_counted(server: Server, r: redis.Redis) -> None:
    before = r.info("stats")["total_connections_received"]
    extra = [server.client(single_connection_client=True) for _ in range(3)]
    for c in extra:
        c.ping()
    assert r.info("stats")["total_connections_received"] >= before + 3
    assert r.info("clients")["connected_clients"] >= 4
    for c in extra:
        c.close()


# -- CONFIG ---------------------------------------------------------------------------------

def test_config_get_glob(r: redis.Redis) -> None:
    got = r.config_get("maxmemory*")
    assert {"maxmemory", "maxmemory-policy", "maxmemory-samples"} <= set(got)
    assert all(k.startswith("maxmemory") for k in got)
    assert r.config_get("port") == {"port": str(r.connection_pool.connection_kwargs["port"])}
    assert r.config_get("nosuchparam") == {}
    assert set(r.config_get("*")) >= {"port", "bind", "maxmemory", "maxclients", "databases",
                                        "requirepass", "timeout", "tcp-keepalive",
                                        "proto-max-bulk-len", "maxmemory-policy", "save",
                                        "appendonly"}
    assert set(r.config_get("m?xclients")) == {"maxclients"}
    assert r.execute_command("CONFIG", "GET", "maxclients", "databases").keys() == \
        {"maxclients", "databases"}


def test_config_get_case_insensitive(r: redis.Redis) -> None:
    got = r.config_get("MAXMEMORY-POLICY")
    assert {k.lower() for k in got} == {"maxmemory-policy"}
    assert list(got.values()) == [r.config_get("maxmemory-policy")["maxmemory-policy"]]


def test_config_set_roundtrip(make_server: Callable[..., Server]) -> None:
    c = make_server().client()
    assert c.config_set("maxmemory", "100mb") is True
    assert c.config_get("maxmemory") == {"maxmemory": str(100 * 1024 * 1024)}
    assert c.config_set("maxmemory-policy", "ALLKEYS-LRU") is True
    assert c.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
    assert c.info("memory")["maxmemory_policy"] == "allkeys-lru"
    assert c.info("memory")["maxmemory"] == 100 * 1024 * 1024
    assert c.config_set("timeout", "300") is True
    assert c.config_get("timeout") == {"timeout": "300"}
    # several pairs at once (Redis >= 7.0): all or nothing
    assert c.execute_command("CONFIG", "SET", "maxmemory-samples", "7", "tcp-keepalive", "60")
    assert c.config_get("maxmemory-samples") == {"maxmemory-samples": "7"}
    assert c.config_get("tcp-keepalive") == {"tcp-keepalive": "60"}
    with pytest.raises(redis.ResponseError):
        c.execute_command("CONFIG", "SET", "maxmemory-samples", "9", "maxmemory-policy", "bad")
    assert c.config_get("maxmemory-samples") == {"maxmemory-samples": "7"}


def test_config_set_errors(server: Server) -> None:
    assert wire_error(server, "CONFIG", "SET", "nosuch", "1") == \
        "ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'"
    bad = wire_error(server, "CONFIG", "SET", "maxmemory-policy", "bogus")
    assert bad.startswith("ERR CONFIG SET failed (possibly related to argument "
                          "'maxmemory-policy')")
    bad = wire_error(server, "CONFIG", "SET", "maxclients", "many")
    assert bad.startswith("ERR CONFIG SET failed (possibly related to argument 'maxclients')")
    assert wire_error(server, "CONFIG", "GET") == \
        "ERR wrong number of arguments for 'config|get' command"
    assert wire_error(server, "CONFIG", "SET", "maxmemory") == \
        "ERR wrong number of arguments for 'config|set' command"


def test_config_resetstat_resets_counters(r: redis.Redis) -> None:
    r.get("missing")
    r.config_resetstat()
    stats = r.info("stats")
    assert stats["keyspace_misses"] == 0
    assert stats["expired_keys"] == 0
    assert stats["evicted_keys"] == 0


# -- TIME, COMMAND, DBSIZE ------------------------------------------------------------------

def test_time(r: redis.Redis) -> None:
    seconds, micros = r.time()
    assert abs(seconds - time.time()) < 60
    assert 0 <= micros < 1_000_000


def test_command_count_and_docs(server: Server, r: redis.Redis) -> None:
    count = r.command_count()
    assert isinstance(count, int) and count >= 50
    with server.raw() as c:
        docs = c.call("COMMAND", "DOCS", "get")
    assert isinstance(docs, list) and docs[0] == b"get"
    doc = docs[1]
    assert b"summary" in doc
    assert b"arguments" in doc or b"since" in doc
    with server.raw() as c:
        all_docs = c.call("COMMAND", "DOCS")
    names = set(all_docs[0::2])
    assert {b"get", b"set", b"hset", b"ping", b"config"} <= names


def test_command_info_and_list(server: Server, r: redis.Redis) -> None:
    with server.raw() as c:
        info = c.call("COMMAND", "INFO", "get", "set", "nosuchcmd")
        assert info[0][0] == b"get"
        assert info[0][1] == 2  # arity
        assert info[1][0] == b"set"
        assert info[1][1] == -3
        assert info[2] is None
        everything = c.call("COMMAND")
    names = {entry[0] for entry in everything}
    assert {b"get", b"set", b"scan", b"multi", b"exec"} <= names
    assert len(everything) == r.command_count()


def test_dbsize_wire(server: Server, r: redis.Redis) -> None:
    r.mset({"a": "1", "b": "1"})
    with server.raw() as c:
        assert c.call("DBSIZE") == 2


# -- SHUTDOWN -------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [[], ["NOSAVE"]])
def test_shutdown_command_exits_zero(make_server: Callable[..., Server], args: list[str]) -> None:
    srv = make_server()
    with srv.raw() as c:
        c.send_command("SHUTDOWN", *args)
        c.read_until_closed()  # no reply on success: the connection just closes
    assert srv.wait() == 0


def test_shutdown_via_redis_py(make_server: Callable[..., Server]) -> None:
    srv = make_server()
    c = srv.client()
    c.set("k", "v")
    with contextlib.suppress(redis.ConnectionError):
        c.shutdown(nosave=True)
    assert srv.wait() == 0


def test_sigint_exits_zero(make_server: Callable[..., Server]) -> None:
    srv = make_server()
    srv.client().set("k", "v")
    assert srv.stop(signal.SIGINT) == 0


def test_server_survives_client_disconnects(server: Server, r: redis.Redis) -> None:
    for _ in range(20):
        raw = server.raw()
        raw.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\npartial")  # cut mid-frame
        raw.close()
    assert poll(lambda: r.ping(), 5, what="PING after abrupt disconnects")
    assert r.get("k") is None


@ironcache_only
def test_info_server_ironcache_fields(server: Server) -> None:
    from ironcache._version import __version__

    info = server.client().info("server")
    assert info["redis_version"] == "7.2.0"
    assert str(info["ironcache_version"]) == __version__
    assert info["process_id"] == server.pid
    assert info["tcp_port"] == server.port
    assert info["socket_activated"] == 0
    assert info["listeners_inherited"] == 0
    assert info["listeners_bound"] == 1
    assert "executable" in info and "config_file" in info
    assert re.fullmatch(r"[0-9a-f]{40}", info["run_id"])


def test_redis_version_is_compatible(r: redis.Redis) -> None:
    major = int(str(r.info("server")["redis_version"]).split(".")[0])
    assert major >= 7  # clients switch features on this


def test_wrong_arguments_for_subcommands(server: Server) -> None:
    reply = wire_error(server, "CONFIG", "FOO")
    assert reply.startswith("ERR unknown subcommand 'FOO'")
    with server.raw() as c:
        assert isinstance(c.call("COMMAND", "FOO"), RespError)
        assert c.call("PING") == "PONG"


def test_config_set_port_rebinds_self_bound(make_server: Callable[..., Server]) -> None:
    srv = make_server()
    old, new = srv.port, free_port()
    c = srv.client(single_connection_client=True)
    assert c.config_set("port", str(new)) is True
    assert c.ping() is True  # the existing connection stays
    fresh = redis.Redis(host="127.0.0.1", port=new, socket_timeout=10)
    assert fresh.ping() is True
    fresh.close()
    wait_port_closed(old)
    srv.port = new  # so teardown and later clients use the new port


def _server_side_timer(port: int, client: socket.socket) -> str:
    local = client.getsockname()[1]
    out = subprocess.run(["ss", "-Htno", "state", "established",
                          f"( sport = :{port} and dport = :{local} )"],
                         capture_output=True, text=True, check=True, timeout=10).stdout
    assert out.strip(), "the server-side socket is not listed"
    return out


@pytest.mark.parametrize(("seconds", "expected"), [(60, True), (0, False)])
def test_tcp_keepalive(make_server: Callable[..., Server], seconds: int, expected: bool) -> None:
    srv = make_server({"tcp-keepalive": seconds})
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"PING\r\n")
        assert s.recv(100) == b"+PONG\r\n"
        assert ("keepalive" in _server_side_timer(srv.port, s)) is expected


# -- protected configuration and protected mode ----------------------------------------------

PROTECTED = "can't set protected config"
IMMUTABLE = "can't set immutable config"


def _set_failed(name: str, why: str) -> str:
    return f"ERR CONFIG SET failed (possibly related to argument '{name}') - {why}"


def test_path_settings_cannot_be_set_at_runtime_by_default(server: Server) -> None:
    assert wire_error(server, "CONFIG", "SET", "dir", "/tmp") == _set_failed("dir", PROTECTED)
    assert wire_error(server, "CONFIG", "SET", "dbfilename", "x") == \
        _set_failed("dbfilename", PROTECTED)
    for name in ("unixsocket", "logfile", "enable-protected-configs"):
        assert wire_error(server, "CONFIG", "SET", name, "/tmp/x") == _set_failed(name, IMMUTABLE)
    c = server.client()
    assert c.config_get("enable-protected-configs") == {"enable-protected-configs": "no"}
    assert c.config_get("protected-mode") == {"protected-mode": "yes"}
    assert c.config_get("dir") == {"dir": str(server.workdir)}


def test_enable_protected_configs_yes_allows_checked_paths(
        make_server: Callable[..., Server], tmp_path_factory: pytest.TempPathFactory) -> None:
    srv = make_server({"enable-protected-configs": "yes"})
    other = tmp_path_factory.mktemp("otherdir")
    assert wire_error(srv, "CONFIG", "SET", "dir", "/nonexistent") == \
        _set_failed("dir", "No such file or directory")
    assert wire_error(srv, "CONFIG", "SET", "dbfilename", "../escape") == \
        _set_failed("dbfilename", "dbfilename can't be a path, just a filename")
    c = srv.client()
    assert c.config_get("dir") == {"dir": str(srv.workdir)}  # the refusals changed nothing
    assert c.config_set("dir", str(other)) is True
    assert c.config_set("dbfilename", "chosen.snapshot") is True
    c.set("k", "v")
    assert c.save() is True
    assert (other / "chosen.snapshot").is_file()


def _host_address() -> str:
    addr = host_address()
    if addr is None:
        pytest.skip("this host has no non-loopback IPv4 address")
    return addr


def test_enable_protected_configs_local_trusts_loopback_only(
        make_server: Callable[..., Server], tmp_path_factory: pytest.TempPathFactory) -> None:
    addr = _host_address()
    srv = make_server({"bind": ["127.0.0.1", addr], "protected-mode": "no",
                       "enable-protected-configs": "local"})
    other = tmp_path_factory.mktemp("localdir")
    with RawConn.tcp(addr, srv.port) as remote:
        assert remote.call("CONFIG", "SET", "dir", str(other)) == _set_failed("dir", PROTECTED)
    # the control: the same command from loopback is allowed
    assert srv.client().config_set("dir", str(other)) is True


def _first_bytes(addr: str, port: int, request: bytes = b"PING\r\n") -> bytes:
    with RawConn.tcp(addr, port) as c:
        c.send(request)
        return c.read_until_closed()


def test_protected_mode_denies_other_hosts_when_no_password(
        make_server: Callable[..., Server], tmp_path: Path) -> None:
    addr = _host_address()
    sock = str(tmp_path / "p.sock")
    srv = make_server({"bind": ["127.0.0.1", addr], "unixsocketperm": 700}, unixsocket=sock)
    denied = _first_bytes(addr, srv.port)
    assert denied.startswith(b"-DENIED ") and b"protected mode" in denied, denied
    assert denied.endswith(b"\r\n") and denied.count(b"\r\n") == 1  # one error, then closed
    assert srv.client().ping() is True  # loopback is served
    with RawConn.unix(sock) as local:
        assert local.call("PING") == "PONG"  # and the unix socket
    assert srv.client().info("stats")["rejected_connections"] >= 1
    # the control: with protected mode off the same client is served
    assert srv.client().config_set("protected-mode", "no") is True
    with RawConn.tcp(addr, srv.port) as remote:
        assert remote.call("PING") == "PONG"
    assert srv.client().config_set("protected-mode", "yes") is True
    assert _first_bytes(addr, srv.port).startswith(b"-DENIED ")


def test_protected_mode_serves_other_hosts_once_a_password_is_set(
        make_server: Callable[..., Server]) -> None:
    addr = _host_address()
    srv = make_server({"bind": ["127.0.0.1", addr], "requirepass": "s3cret"}, password="s3cret")
    with RawConn.tcp(addr, srv.port) as remote:
        assert remote.call("PING") == "NOAUTH Authentication required."
        assert remote.call("AUTH", "s3cret") == "OK"
        assert remote.call("PING") == "PONG"


@ironcache_only
def test_protected_mode_is_announced_at_start(make_server: Callable[..., Server]) -> None:
    addr = _host_address()
    srv = make_server({"bind": ["127.0.0.1", addr]})
    assert "protected mode: no password is set" in srv.log_text()
    quiet = make_server()  # loopback only: nothing to say
    assert "protected mode" not in quiet.log_text()
    loud = make_server({"bind": ["127.0.0.1", addr], "protected-mode": "no"})
    assert "protected mode is off and no password is set" in loud.log_text()


def test_config_set_bind_keeps_the_port_without_reuseport(
        make_server: Callable[..., Server]) -> None:
    srv = make_server()
    c = srv.client(single_connection_client=True)
    assert c.config_set("bind", "127.0.0.1 -::1") is True
    assert srv.client().ping() is True
    assert c.config_set("bind", "127.0.0.1") is True
    assert c.config_set("port", str(srv.port)) is True  # unchanged: nothing to re-bind
    assert srv.client().ping() is True


def test_a_second_server_on_a_busy_port_fails_to_start(
        make_server: Callable[..., Server]) -> None:
    first = make_server()
    second = make_server(port=first.port, start=False)
    second.start(wait=False)
    assert second.wait() == 1
    assert "Address already in use" in second.log_text()
    first.client().set("owner", "first")
    for _ in range(20):  # every new connection reaches the first server
        fresh = redis.Redis(host="127.0.0.1", port=first.port, socket_timeout=10)
        assert fresh.get("owner") == b"first"
        fresh.close()


@ironcache_only
def test_reuseport_yes_lets_servers_share_a_port(make_server: Callable[..., Server]) -> None:
    """The control of the test above: the directive is what lets the second one start."""
    first = make_server({"reuseport": "yes"})
    # not waited for by PING: the first server answers on the shared port already
    second = make_server({"reuseport": "yes"}, port=first.port, start=False).start(wait=False)
    poll(lambda: "ready in" in second.log_text(), timeout=20)
    pids = set()
    for _ in range(200):  # the kernel spreads connections by hash: both answer
        fresh = redis.Redis(host="127.0.0.1", port=first.port, socket_timeout=10)
        pids.add(fresh.info("server")["process_id"])
        fresh.close()
        if len(pids) == 2:
            break
    assert pids == {first.pid, second.pid}
    assert first.client().config_get("reuseport") == {"reuseport": "yes"}
