"""Socket activation for real: systemd-socket-activate (systemd 252) and an fd launcher.

systemd-socket-activate listens, and on the first connection execs the program in its own
process (same pid) with LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES; it passes on only TERM, PATH,
USER, HOME and what `-E` sets, so PYTHONPATH goes through `-E`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from support import (
    IS_REDIS,
    RUN_MARKER,
    SERVER_PYTHON,
    SRC_DIR,
    TESTS_DIR,
    RespError,
    Server,
    free_port,
    listening_sockets,
    log_matches,
    poll,
    wait_port_closed,
)

pytestmark = [
    pytest.mark.skipif(IS_REDIS, reason="socket activation is IronCache-specific"),
]

SSA = shutil.which("systemd-socket-activate")
needs_ssa = pytest.mark.skipif(SSA is None, reason="systemd-socket-activate not installed")


def ssa_prefix(listen: list[str], fdnames: list[str] | None = None,
               env: dict[str, str] | None = None) -> list[str]:
    assert SSA is not None
    cmd = [SSA]
    for addr in listen:
        cmd += ["-l", addr]
    if fdnames:
        cmd.append("--fdname=" + ":".join(fdnames))
    # systemd-socket-activate passes no other variable: the leak check's marker goes through -E
    passed = {"PYTHONPATH": str(SRC_DIR), "PYTHONUNBUFFERED": "1",
              RUN_MARKER: os.environ[RUN_MARKER], **(env or {})}
    for k, v in passed.items():
        cmd += ["-E", f"{k}={v}"]
    return cmd


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    failures = []
    for srv in started:
        if srv.proc is None or srv.returncode is not None:
            continue
        if srv.proc.poll() is not None:
            failures.append(f"exited early with {srv.proc.returncode}:\n{srv.log_text()}")
            continue
        code = srv.stop()
        if code != 0:
            failures.append(f"exit code {code} after SIGTERM:\n{srv.log_text()}")
    assert not failures, "\n".join(failures)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short directory for unix socket paths (sun_path holds 108 bytes)."""
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="icsa-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def wait_listening(srv: Server, count: int) -> None:
    poll(lambda: srv.log_text().count("Listening on") >= count, 10, 0.02,
         "systemd-socket-activate to listen")


def info_server(srv: Server) -> dict[str, object]:
    return srv.client().info("server")


@needs_ssa
def test_tcp_activation(tmp_path: Path, servers: list[Server]) -> None:
    port = free_port()
    srv = Server(tmp_path, port=port,
                 prefix=ssa_prefix([f"127.0.0.1:{port}"], fdnames=["ironcache"]))
    servers.append(srv)
    srv.start(wait=False)
    wait_listening(srv, 1)
    backlog_before = listening_sockets(port)[0]["send_q"]
    srv.wait_ready()  # the first connection starts the server
    info = info_server(srv)
    assert info["socket_activated"] == 1
    assert info["listeners_inherited"] == 1
    assert info["listeners_bound"] == 0
    assert info["process_id"] == srv.pid  # systemd-socket-activate execs in place
    assert info["tcp_port"] == port
    c = srv.client()
    assert c.set("k", "v") is True and c.get("k") == "v"
    rows = listening_sockets(port)
    assert len(rows) == 1, rows  # the inherited socket, nothing bound besides it
    assert rows[0]["send_q"] == backlog_before  # the backlog was not shrunk
    assert log_matches(srv.log_text(), r"inherit")
    assert srv.stop() == 0
    wait_port_closed(port)


@needs_ssa
def test_activation_with_redis_cli_and_many_clients(tmp_path: Path,
                                                    servers: list[Server]) -> None:
    port = free_port()
    srv = Server(tmp_path, port=port, prefix=ssa_prefix([f"127.0.0.1:{port}"]))
    servers.append(srv)
    srv.start(wait=False)
    wait_listening(srv, 1)
    # Several clients connect before the server is even running: all queue in the backlog.
    early = [socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(5)]
    for s in early:
        s.sendall(b"PING\r\n")
    for s in early:
        assert s.recv(100) == b"+PONG\r\n"
        s.close()
    if shutil.which("redis-cli"):
        assert srv.cli("PING").stdout.strip() == "PONG"


@needs_ssa
def test_unix_activation_never_unlinks_path(short_dir: Path, tmp_path: Path,
                                            servers: list[Server]) -> None:
    path = str(short_dir / "ic.sock")
    srv = Server(tmp_path, tcp=False, unixsocket=path, prefix=ssa_prefix([path]))
    servers.append(srv)
    srv.start(wait=False)
    wait_listening(srv, 1)
    srv.wait_ready()
    info = info_server(srv)
    assert info["socket_activated"] == 1
    assert info["listeners_inherited"] == 1
    assert info["listeners_bound"] == 0
    c = srv.client()
    assert c.set("u", "1") is True and c.incr("u") == 2
    assert srv.stop() == 0
    assert os.path.exists(path)  # systemd owns an inherited unix socket's path


@needs_ssa
def test_two_listeners_tcp_and_unix(short_dir: Path, tmp_path: Path,
                                    servers: list[Server]) -> None:
    port = free_port()
    path = str(short_dir / "two.sock")
    srv = Server(tmp_path, port=port, unixsocket=path,
                 prefix=ssa_prefix([f"127.0.0.1:{port}", path], fdnames=["tcp", "unix"]))
    servers.append(srv)
    srv.start(wait=False)
    wait_listening(srv, 2)
    srv.wait_ready()
    info = info_server(srv)
    assert info["listeners_inherited"] == 2
    assert info["listeners_bound"] == 0
    tcp = srv.client()
    unix = redis.Redis(unix_socket_path=path, decode_responses=True, socket_timeout=10)
    tcp.set("shared", "yes")
    assert unix.get("shared") == "yes"
    unix.close()


@needs_ssa
def test_two_tcp_listeners(tmp_path: Path, servers: list[Server]) -> None:
    port = free_port()
    srv = Server(tmp_path, port=port,
                 directives={"bind": ["127.0.0.1", "::1"]},
                 prefix=ssa_prefix([f"127.0.0.1:{port}", f"[::1]:{port}"]))
    servers.append(srv)
    srv.start(wait=False)
    wait_listening(srv, 2)
    srv.wait_ready()
    info = info_server(srv)
    assert info["listeners_inherited"] == 2
    assert info["listeners_bound"] == 0
    v6 = redis.Redis(host="::1", port=port, socket_timeout=10)
    assert v6.ping() is True
    v6.close()


@needs_ssa
def test_partial_activation_binds_the_rest(short_dir: Path, tmp_path: Path,
                                           servers: list[Server]) -> None:
    port = free_port()
    path = str(short_dir / "self.sock")
    srv = Server(tmp_path, port=port, unixsocket=path,
                 prefix=ssa_prefix([f"127.0.0.1:{port}"]))
    servers.append(srv)
    srv.start(wait=False)
    wait_listening(srv, 1)
    srv.wait_ready()
    info = info_server(srv)
    assert info["listeners_inherited"] == 1
    assert info["listeners_bound"] == 1
    unix = redis.Redis(unix_socket_path=path, socket_timeout=10)
    assert unix.ping() is True
    unix.close()


@needs_ssa
def test_mismatched_address_is_closed_not_adopted(tmp_path: Path,
                                                  servers: list[Server]) -> None:
    configured, foreign = free_port(), free_port()
    srv = Server(tmp_path, port=configured, prefix=ssa_prefix([f"127.0.0.1:{foreign}"]))
    servers.append(srv)
    srv.start(wait=False)
    wait_listening(srv, 1)
    # The first connection (to the foreign port) starts the server ...
    trigger = socket.create_connection(("127.0.0.1", foreign), timeout=20)
    # ... which closes that fd with a warning and binds its configured port itself.
    srv.wait_ready()
    info = info_server(srv)
    assert info["listeners_inherited"] == 0
    assert info["listeners_bound"] == 1
    assert info["tcp_port"] == configured
    trigger.settimeout(10)
    with contextlib.suppress(ConnectionResetError):
        assert trigger.recv(100) == b""  # never served: dropped with the closed listener
    trigger.close()
    wait_port_closed(foreign)
    log = srv.log_text()
    assert log_matches(log, r"warn.*\bfd 3\b|\bfd 3\b.*warn|\bfd 3\b.*clos|clos.*\bfd 3\b"), log
    assert str(foreign) in log


def launch_with_fd(tmp_path: Path, sock: socket.socket, port: int, listen_pid: str,
                   fdnames: str = "ironcache", directives: dict[str, object] | None = None,
                   env: dict[str, str] | None = None) -> Server:
    fd = sock.fileno()
    prefix = [sys.executable, str(TESTS_DIR / "launcher.py"), str(fd), listen_pid, fdnames,
              "--"]
    return Server(tmp_path, port=port, directives=directives, prefix=prefix, pass_fds=[fd],
                  env=env)


def listening_socket(port: int, backlog: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(backlog)
    return s


def test_backlog_not_shrunk(tmp_path: Path, servers: list[Server]) -> None:
    assert SERVER_PYTHON  # the launcher execs the same interpreter
    port = free_port()
    sock = listening_socket(port, 1024)
    assert listening_sockets(port)[0]["send_q"] == "1024"
    srv = launch_with_fd(tmp_path, sock, port, "self", directives={"tcp-backlog": 511})
    servers.append(srv)
    srv.start()
    sock.close()  # the server holds its own copy
    info = info_server(srv)
    assert info["socket_activated"] == 1
    assert info["listeners_inherited"] == 1
    assert info["process_id"] == srv.pid
    rows = listening_sockets(port)
    assert [row["send_q"] for row in rows] == ["1024"], rows
    # Still 1024 after serving some clients.
    for _ in range(20):
        assert srv.client().ping() is True
    assert [row["send_q"] for row in listening_sockets(port)] == ["1024"]


def test_listen_pid_of_another_process_is_ignored(tmp_path: Path,
                                                  servers: list[Server]) -> None:
    configured, other = free_port(), free_port()
    sock = listening_socket(other, 16)
    srv = launch_with_fd(tmp_path, sock, configured, str(os.getppid() or 1))
    servers.append(srv)
    srv.start()
    sock.close()
    info = info_server(srv)
    assert info["socket_activated"] == 0
    assert info["listeners_inherited"] == 0
    assert info["listeners_bound"] == 1
    assert srv.client().set("k", "v") is True
    # Not adopted and not ours to close: no "closing inherited fd" warning about it.
    assert not log_matches(srv.log_text(), r"closing inherited fd 3")


def test_listen_pid_matching_port_mismatch_via_launcher(tmp_path: Path,
                                                        servers: list[Server]) -> None:
    configured, other = free_port(), free_port()
    sock = listening_socket(other, 16)
    srv = launch_with_fd(tmp_path, sock, configured, "self")
    servers.append(srv)
    srv.start()
    sock.close()
    info = info_server(srv)
    assert info["listeners_inherited"] == 0
    assert info["listeners_bound"] == 1
    assert log_matches(srv.log_text(), r"\bfd 3\b")
    wait_port_closed(other)


def test_self_bind_path(make_server: Callable[..., Server]) -> None:
    srv = make_server({"tcp-backlog": 511})
    info = srv.client().info("server")
    assert info["socket_activated"] == 0
    assert info["listeners_inherited"] == 0
    assert info["listeners_bound"] == 1
    rows = listening_sockets(srv.port)
    assert [row["send_q"] for row in rows] == ["511"], rows


def test_config_set_port_refused_on_inherited_listener(tmp_path: Path,
                                                       servers: list[Server]) -> None:
    port = free_port()
    sock = listening_socket(port, 128)
    srv = launch_with_fd(tmp_path, sock, port, "self")
    servers.append(srv)
    srv.start()
    sock.close()
    with srv.raw() as c:
        reply = c.call("CONFIG", "SET", "port", str(free_port()))
        assert isinstance(reply, RespError), reply
        assert ".socket" in reply
        reply = c.call("CONFIG", "SET", "bind", "127.0.0.2")
        assert isinstance(reply, RespError) and ".socket" in reply
        assert c.call("CONFIG", "GET", "port") == [b"port", str(port).encode()]
        assert c.call("PING") == "PONG"


@needs_ssa
def test_activation_notify_ready_after_listeners(tmp_path: Path, short_dir: Path,
                                                 servers: list[Server]) -> None:
    from test_systemd import NotifyListener

    port = free_port()
    with NotifyListener(short_dir / "notify.sock") as notify:
        srv = Server(tmp_path, port=port,
                     prefix=ssa_prefix([f"127.0.0.1:{port}"], env={"NOTIFY_SOCKET": notify.path}))
        servers.append(srv)
        srv.start(wait=False)
        wait_listening(srv, 1)
        trigger = socket.create_connection(("127.0.0.1", port), timeout=20)
        notify.wait_for("READY=1")
        trigger.sendall(b"PING\r\n")
        assert trigger.recv(100) == b"+PONG\r\n"
        trigger.close()
        assert srv.stop() == 0
        notify.wait_for("STOPPING=1")


def server_fds_for(pid: int, inode: int) -> list[int]:
    """The server's fds that refer to the socket with this inode."""
    out = []
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{name}") == f"socket:[{inode}]":
                out.append(int(name))
        except OSError:
            continue
    return out


def fd_flags(pid: int, fd: int) -> int:
    with open(f"/proc/{pid}/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("flags:"):
                return int(line.split()[1], 8)
    raise AssertionError("no flags in fdinfo")


def test_adopted_fd_is_cloexec_and_nonblocking(tmp_path: Path, servers: list[Server]) -> None:
    port = free_port()
    sock = listening_socket(port, 128)
    inode = os.fstat(sock.fileno()).st_ino
    srv = launch_with_fd(tmp_path, sock, port, "self")
    servers.append(srv)
    srv.start()
    fds = server_fds_for(srv.pid, inode)
    assert fds, "the server does not hold the inherited socket"
    for fd in fds:
        flags = fd_flags(srv.pid, fd)
        assert flags & os.O_CLOEXEC, f"fd {fd} lacks FD_CLOEXEC (flags {flags:o})"
        assert flags & os.O_NONBLOCK, f"fd {fd} is blocking (flags {flags:o})"
    sock.close()


def test_listener_outlives_the_server(tmp_path: Path, servers: list[Server]) -> None:
    """What `systemctl restart ironcache.service` relies on: the listening socket (held by
    systemd, here by the test) keeps queueing connections while no server runs, and the next
    server answers them. The stopping server must not shut the shared socket down."""
    port = free_port()
    sock = listening_socket(port, 1024)
    first = launch_with_fd(tmp_path / "first", sock, port, "self")
    servers.append(first)
    first.start()
    assert first.client().set("k", "v") is True
    assert first.stop() == 0
    waiting = [socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(3)]
    for w in waiting:
        w.sendall(b"PING\r\n")  # queued in the backlog: not refused, not reset
    second = launch_with_fd(tmp_path / "second", sock, port, "self")
    servers.append(second)
    second.start()
    for w in waiting:
        assert w.recv(100) == b"+PONG\r\n"
        w.close()
    assert second.client().info("server")["listeners_inherited"] == 1
    assert [row["send_q"] for row in listening_sockets(port)] == ["1024"]
    assert second.stop() == 0
    sock.close()


@pytest.mark.parametrize("kind", ["file", "udp", "not-listening"])
def test_inherited_fd_that_is_no_listening_stream_socket(tmp_path: Path, servers: list[Server],
                                                         kind: str) -> None:
    port = free_port()
    if kind == "file":
        holder: object = open(tmp_path / "not-a-socket", "w")  # noqa: SIM115
        fd = holder.fileno()  # type: ignore[attr-defined]
    elif kind == "udp":
        holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        holder.bind(("127.0.0.1", port))  # type: ignore[attr-defined]
        fd = holder.fileno()  # type: ignore[attr-defined]
    else:
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        holder.bind(("127.0.0.1", port))  # type: ignore[attr-defined]
        fd = holder.fileno()  # type: ignore[attr-defined]
    prefix = [sys.executable, str(TESTS_DIR / "launcher.py"), str(fd), "self", "x", "--"]
    srv = Server(tmp_path / "srv", port=port if kind != "not-listening" else free_port(),
                 prefix=prefix, pass_fds=[fd])
    servers.append(srv)
    srv.start()
    holder.close()  # type: ignore[attr-defined]
    info = srv.client().info("server")
    assert info["listeners_inherited"] == 0
    assert info["listeners_bound"] == 1
    assert log_matches(srv.log_text(), r"\bfd 3\b"), srv.log_text()


@needs_ssa
def test_unix_mismatch_closed_and_path_kept(short_dir: Path, tmp_path: Path,
                                            servers: list[Server]) -> None:
    configured = str(short_dir / "ic.sock")
    foreign = str(short_dir / "other.sock")
    srv = Server(tmp_path, tcp=False, unixsocket=configured, prefix=ssa_prefix([foreign]))
    servers.append(srv)
    srv.start(wait=False)
    wait_listening(srv, 1)
    trigger = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    trigger.connect(foreign)
    srv.wait_ready()
    info = srv.client().info("server")
    assert info["listeners_inherited"] == 0
    assert info["listeners_bound"] == 1
    trigger.close()
    assert os.path.exists(foreign)  # closed, but an inherited path is never unlinked
    assert log_matches(srv.log_text(), r"\bfd 3\b")


def test_restart_under_load_drops_no_connection(tmp_path: Path, servers: list[Server]) -> None:
    """Clients keep connecting while the server stops and the next one starts on the same
    inherited socket: each gets its PONG (answered by the old server, or queued in the backlog
    for the new one); none is accepted and then dropped."""
    import threading

    port = free_port()
    sock = listening_socket(port, 1024)
    first = launch_with_fd(tmp_path / "first", sock, port, "self")
    servers.append(first)
    first.start()
    conns: list[socket.socket] = []
    stop = threading.Event()

    def connect_loop() -> None:
        while not stop.is_set() and len(conns) < 400:
            c = socket.create_connection(("127.0.0.1", port), timeout=30)
            c.sendall(b"PING\r\n")
            conns.append(c)
            stop.wait(0.002)

    t = threading.Thread(target=connect_loop)
    t.start()
    poll(lambda: len(conns) >= 20, 10, 0.005, "clients before the stop")
    first.send_signal(15)
    assert first.wait() == 0
    stop.set()
    t.join(30)
    second = launch_with_fd(tmp_path / "second", sock, port, "self")
    servers.append(second)
    second.start()
    outcomes: dict[str, int] = {}
    for c in conns:
        try:
            data = c.recv(100)
            key = "pong" if data == b"+PONG\r\n" else f"other:{data[:40]!r}"
        except OSError as e:
            key = type(e).__name__
        outcomes[key] = outcomes.get(key, 0) + 1
        c.close()
    sock.close()
    assert outcomes == {"pong": len(conns)}, outcomes


# -- self-bound listeners: what a bind may and may not touch ---------------------------------

def test_self_bind_works_while_the_old_process_connections_live_on(
        make_server: Callable[..., Server]) -> None:
    """After a crash the fd store keeps the old process's connections on the port: the new
    process binds beside them (SO_REUSEADDR) without SO_REUSEPORT."""
    old = socket.socket()
    old.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    old.bind(("127.0.0.1", 0))
    old.listen(4)
    port = old.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port), timeout=10)
    kept, dummy = old.accept()
    old.close()  # the listener is gone, the connection stays (as in the fd store)
    try:
        srv = make_server(port=port)
        assert srv.client().ping() is True
    finally:
        kept.close()
        client.close()


def _other_service(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(4)
    return s


def _still_accepts(path: str, listener: socket.socket) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.settimeout(10)
        c.connect(path)
        conn, dummy = listener.accept()
        conn.close()
    return True


def test_a_live_unix_socket_of_another_service_is_never_taken(
        tmp_path: Path, make_server: Callable[..., Server]) -> None:
    path = str(tmp_path / "other.sock")
    other = _other_service(path)
    try:
        srv = make_server(unixsocket=path, tcp=False, start=False)
        srv.start(wait=False)
        assert srv.wait() == 1
        assert "another process accepts connections on it" in srv.log_text()
        assert _still_accepts(path, other)  # same file, same listener
    finally:
        other.close()
    # the control: a stale socket file (nobody listens) is replaced
    srv = make_server(unixsocket=path, tcp=False)
    assert srv.client().ping() is True


def test_a_file_that_is_not_a_socket_is_never_replaced(
        tmp_path: Path, make_server: Callable[..., Server]) -> None:
    path = tmp_path / "precious"
    path.write_text("data\n")
    srv = make_server(unixsocket=str(path), tcp=False, start=False)
    srv.start(wait=False)
    assert srv.wait() == 1
    assert "is not a socket" in srv.log_text()
    assert path.read_text() == "data\n"


def test_shutdown_removes_the_socket_file_only_while_it_is_ours(
        tmp_path: Path, make_server: Callable[..., Server]) -> None:
    path = str(tmp_path / "s.sock")
    srv = make_server(unixsocket=path, tcp=False)
    assert srv.stop() == 0
    assert not os.path.exists(path)  # the control: our own file goes
    srv = make_server(unixsocket=path, tcp=False)
    os.unlink(path)
    other = _other_service(path)  # another service took the path meanwhile
    try:
        assert srv.stop() == 0
        assert os.path.exists(path) and _still_accepts(path, other)
    finally:
        other.close()
