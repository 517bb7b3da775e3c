"""`ironcache --version`, `ironcache check-config`, config files with command-line overrides,
exit codes."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support import (
    IS_REDIS,
    SRC_DIR,
    Server,
    free_port,
    ironcache_cmd,
    ironcache_env,
    run_ironcache,
)

pytestmark = pytest.mark.skipif(IS_REDIS, reason="the ironcache CLI is IronCache-specific")

VERSION_FILE = SRC_DIR / "ironcache" / "_version.py"


def _version() -> str:
    text = VERSION_FILE.read_text()
    m = re.fullmatch(r'__version__ = "([^"]+)"\n?', text)
    assert m, f"_version.py must hold exactly one line, got {text!r}"
    return m.group(1)


def test_version() -> None:
    out = run_ironcache("--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"ironcache {_version()}\n"


def test_usage_error_exit_2() -> None:
    out = run_ironcache("no-such-subcommand")
    assert out.returncode == 2
    assert "usage" in (out.stderr + out.stdout).lower()
    assert run_ironcache().returncode == 2


GOOD = """\
# IronCache test configuration
bind 127.0.0.1 -::1
port {port}

maxmemory 100mb
maxmemory-policy allkeys-lru
maxmemory-samples 5
maxclients 100
requirepass "with space"
timeout 0
tcp-keepalive 300
tcp-backlog 511
databases 16
loglevel notice
logfile ""
dir {dir}
proto-max-bulk-len 512mb
client-query-buffer-limit 1gb
hz 10
daemonize no
"""


def write(tmp_path: Path, text: str, name: str = "ironcache.conf") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_check_config_good(tmp_path: Path) -> None:
    conf = write(tmp_path, GOOD.format(port=free_port(), dir=tmp_path))
    out = run_ironcache("check-config", str(conf))
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("no-such-directive yes", "no-such-directive"),
        ("maxmemory lots", "maxmemory"),
        ("maxmemory-policy sometimes", "maxmemory-policy"),
        ("port 70000", "port"),
        ("port", "port"),
        ("databases zero", "databases"),
        ("bind not-an-address", "bind"),
        ("daemonize yes", "daemonize"),
        ("unixsocketperm 999", "unixsocketperm"),
        ('requirepass "unterminated', ""),
    ],
)
def test_check_config_bad_names_file_and_line(tmp_path: Path, line: str, reason: str) -> None:
    lines = ["# header", "port 6390", "", line, "maxclients 10"]
    conf = write(tmp_path, "\n".join(lines) + "\n")
    out = run_ironcache("check-config", str(conf))
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert f"{conf}:4" in out.stderr, out.stderr
    assert out.stderr.startswith("ironcache: ")
    if reason:
        assert reason in out.stderr


def test_check_config_bad_override(tmp_path: Path) -> None:
    conf = write(tmp_path, "port 6390\n")
    out = run_ironcache("check-config", str(conf), "--maxclients", "many")
    assert out.returncode == 1
    assert "maxclients" in out.stderr
    out = run_ironcache("check-config", str(conf), "--no-such-thing", "1")
    assert out.returncode == 1
    assert run_ironcache("check-config", str(conf), "--maxclients", "50").returncode == 0


def test_check_config_missing_file(tmp_path: Path) -> None:
    out = run_ironcache("check-config", str(tmp_path / "absent.conf"))
    assert out.returncode != 0
    assert "absent.conf" in out.stderr


def test_serve_bad_config_exit_1(tmp_path: Path) -> None:
    conf = write(tmp_path, "port 6390\nmaxmemory-policy sometimes\n")
    out = subprocess.run(ironcache_cmd("serve", str(conf)), env=ironcache_env(),
                         capture_output=True, text=True, timeout=30, check=False, cwd=tmp_path)
    assert out.returncode == 1
    assert f"{conf}:2" in out.stderr


def test_serve_cannot_listen_exit_1(tmp_path: Path) -> None:
    """As redis-server: exit 1, "Address already in use" in the log."""
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        out = subprocess.run(
            ironcache_cmd("serve", "--port", str(port), "--bind", "127.0.0.1",
                          "--dir", str(tmp_path)),
            env=ironcache_env(), capture_output=True, text=True, timeout=30, check=False,
            cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert "Address already in use" in out.stderr


def test_config_file_with_overrides(tmp_path: Path, make_server: Callable[..., Server]) -> None:
    port = free_port()
    conf = write(tmp_path, "\n".join([
        "# comment line",
        f"port {port}",
        "bind 127.0.0.1",
        "maxmemory 10mb",
        "maxmemory-policy volatile-lru",
        "databases 4",
        'requirepass "p w"',
        "timeout 0",
    ]) + "\n")
    srv = make_server({"maxmemory": "20mb", "maxclients": 77}, port=port, config_file=conf,
                      password="p w")
    c = srv.client()
    assert c.config_get("maxmemory") == {"maxmemory": str(20 * 1024 * 1024)}  # override wins
    assert c.config_get("maxmemory-policy") == {"maxmemory-policy": "volatile-lru"}  # file
    assert c.config_get("databases") == {"databases": "4"}
    assert c.config_get("maxclients") == {"maxclients": "77"}
    info = c.info("server")
    assert info["config_file"] == str(conf)
    assert os.path.basename(str(info["executable"]))


def test_default_bind_is_loopback_v4_and_v6(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(ironcache_cmd("serve", "--port", str(port), "--dir", str(tmp_path)),
                            env=ironcache_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        srv = Server(tmp_path, port=port)
        srv.proc = proc
        srv.wait_ready()
        with socket.create_connection(("::1", port), timeout=5) as s6:
            s6.sendall(b"PING\r\n")
            assert s6.recv(100) == b"+PONG\r\n"
        c = srv.client()
        assert set(c.config_get("bind")["bind"].split()) >= {"127.0.0.1"}
    finally:
        proc.terminate()
        assert proc.wait(20) == 0


def test_optional_bind_address_skipped(tmp_path: Path,
                                       make_server: Callable[..., Server]) -> None:
    srv = make_server({"bind": ["127.0.0.1", "-192.0.2.123"]})
    assert srv.client().ping() is True


def test_unixsocket_self_bound_with_perm(tmp_path: Path, make_server: Callable[..., Server]
                                         ) -> None:
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="icperm-"))
    path = str(d / "ic.sock")
    srv = make_server({"unixsocketperm": "600"}, unixsocket=path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    import redis

    u = redis.Redis(unix_socket_path=path, socket_timeout=10)
    assert u.ping() is True
    u.close()
    assert srv.client().info("server")["listeners_bound"] == 2


def test_logfile_directive(tmp_path: Path, make_server: Callable[..., Server]) -> None:
    logfile = tmp_path / "ironcache.log"
    srv = make_server({"logfile": str(logfile), "loglevel": "notice"})
    assert srv.client().ping() is True
    assert logfile.exists() and logfile.read_text().strip()


# -- check-config: what serve would find at start, and hostile files -------------------------

@pytest.mark.parametrize(
    ("lines", "reason"),
    [
        (["bind 203.0.113.77"], "cannot listen on 203.0.113.77: it is not an address of this host"),
        (["port 0", "unixsocket /nonexistent-dir/s.sock"], "the directory of '/nonexistent-dir"),
        (["dir /nonexistent-dir"], "'dir': '/nonexistent-dir' is not a directory"),
        (["logfile /nonexistent-dir/ironcache.log"], "the directory of '/nonexistent-dir"),
    ],
)
def test_check_config_refuses_what_serve_cannot_start_with(tmp_path: Path, lines: list[str],
                                                           reason: str) -> None:
    conf = write(tmp_path, "\n".join(["port 6390", *lines]) + "\n")
    out = run_ironcache("check-config", str(conf))
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert reason in out.stderr, out.stderr
    # serve refuses the same file
    served = subprocess.run(ironcache_cmd("serve", str(conf)), env=ironcache_env(),
                            capture_output=True, text=True, timeout=30, check=False, cwd=tmp_path)
    assert served.returncode == 1, served.stderr


def test_check_config_accepts_an_optional_missing_address_and_a_busy_port(
        tmp_path: Path) -> None:
    """The control: '-' marks an address that may be missing; the port may be in use (the
    running server holds it while the next release's configuration is checked)."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        conf = write(tmp_path, f"port {port}\nbind 127.0.0.1 -203.0.113.77\n")
        out = run_ironcache("check-config", str(conf))
    assert out.returncode == 0, out.stderr


def _fifo(tmp_path: Path) -> Path:
    p = tmp_path / "fifo.conf"
    os.mkfifo(p)
    return p


HOSTILE: dict[str, tuple[Callable[[Path], Path], str]] = {
    "/dev/zero": (lambda d: Path("/dev/zero"), "not a regular file"),
    "a directory": (lambda d: d, "a directory"),
    "a FIFO": (_fifo, "not a regular file"),
    "over 1 MiB": (lambda d: write_bytes(d, b"# pad\n" * 200_000), "larger than 1048576 bytes"),
    "binary": (lambda d: write_bytes(d, bytes(range(256)) * 8), "NUL byte"),
    "NUL in a value": (lambda d: write_bytes(d, b"port 6390\nbind \"127.0.0.1\x00\"\n"), ":2: NUL"),
    "invalid UTF-8": (lambda d: write_bytes(d, b"port 6390\nbind \xff\xfe\n"), ":2: the config"),
    "one huge line": (lambda d: write_bytes(d, b"bind " + b"a" * 900_000), "is not an IP"),
    "a huge number": (lambda d: write_bytes(d, b"port " + b"9" * 900_000), "between 0 and"),
    "a huge size": (lambda d: write_bytes(d, b"maxmemory " + b"9" * 5000 + b"gb"), "invalid"),
    "unbalanced quotes": (lambda d: write_bytes(d, b'port 6390\nbind "127.0.0.1\n'), "quotes"),
    "only quotes": (lambda d: write_bytes(d, b'""\n\'\'\n'), "unknown directive"),
}


def write_bytes(d: Path, data: bytes) -> Path:
    p = d / "hostile.conf"
    p.write_bytes(data)
    return p


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_check_config_hostile_files_get_a_message_never_a_traceback(tmp_path: Path,
                                                                     kind: str) -> None:
    make, reason = HOSTILE[kind]
    path = make(tmp_path)
    out = run_ironcache("check-config", str(path), timeout=30)
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    assert out.stderr.startswith(f"ironcache: {path}") and reason in out.stderr, out.stderr
    assert len(out.stderr) < 1000  # a hostile value is not echoed whole


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2000) | st.text(max_size=500).map(str.encode))
def test_any_bytes_as_a_config_file_give_a_config_error(tmp_path: Path, data: bytes) -> None:
    from ironcache.config import Config, ConfigError, load_file

    path = tmp_path / "any.conf"
    path.write_bytes(data)
    with contextlib.suppress(ConfigError):
        load_file(Config(), str(path))


def test_a_password_on_the_command_line_is_warned_about_never_logged(
        make_server: Callable[..., Server], tmp_path: Path) -> None:
    srv = make_server({"requirepass": "hunter2-secret"}, password="hunter2-secret")
    log = srv.log_text()
    assert "requirepass was given on the command line" in log
    srv.client().config_set("requirepass", "another-secret")
    srv.password = "another-secret"
    assert "CONFIG SET requirepass" in srv.log_text()
    # the control: from the file, no warning; and no value is ever written to the log
    conf = write(tmp_path, 'requirepass "from-the-file"\n')
    quiet = make_server(config_file=conf, password="from-the-file")
    assert "command line" not in quiet.log_text()
    for text in (srv.log_text(), quiet.log_text()):
        for secret in ("hunter2", "another-secret", "from-the-file"):
            assert secret not in text


def test_check_config_accepts_a_unix_socket_in_a_directory_systemd_creates(
        tmp_path: Path) -> None:
    """RuntimeDirectory= (or the socket unit) creates it at start; RUNTIME_DIRECTORY names it.
    The control is the missing-directory case of the test above."""
    later = tmp_path / "run" / "ironcache"
    conf = write(tmp_path, f"port 0\nunixsocket {later}/s.sock\n")
    out = subprocess.run(ironcache_cmd("check-config", str(conf)),
                         env=ironcache_env({"RUNTIME_DIRECTORY": f"/run/other:{later}"}),
                         capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 0, out.stderr
    out = subprocess.run(ironcache_cmd("check-config", str(conf)),
                         env=ironcache_env({"RUNTIME_DIRECTORY": "/run/other"}),
                         capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 1 and "does not exist" in out.stderr
