"""Helpers shared by the test modules: start/stop a server, raw RESP sockets, bounded polls.

The suite runs against IronCache (default) or a real redis-server
(`IRONCACHE_TEST_TARGET=redis`), so every expectation about Redis behaviour can be checked
against Redis itself. `IRONCACHE_TEST_PYTHON` picks the interpreter that runs IronCache
(default: the one running pytest; use /usr/bin/python3 to test without uvloop/hiredis).
`IRONCACHE_TEST_SRC` points at another directory holding the `ironcache` package.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

TARGET = os.environ.get("IRONCACHE_TEST_TARGET", "ironcache").strip().lower() or "ironcache"
if TARGET not in ("ironcache", "redis"):
    raise RuntimeError(f"IRONCACHE_TEST_TARGET must be 'ironcache' or 'redis', not {TARGET!r}")
IS_REDIS = TARGET == "redis"

# The server's source: ironcache_src/ of this checkout, or IRONCACHE_TEST_SRC (another
# directory holding the `ironcache` package, e.g. an exported commit or an installed release).
SRC_DIR = Path(os.environ.get("IRONCACHE_TEST_SRC") or Path(__file__).resolve().parents[1])
if os.environ.get("IRONCACHE_TEST_SRC"):
    sys.path.insert(0, str(SRC_DIR))
TESTS_DIR = Path(__file__).resolve().parent
SERVER_PYTHON = os.environ.get("IRONCACHE_TEST_PYTHON", sys.executable)
REDIS_SERVER = os.environ.get("IRONCACHE_TEST_REDIS_SERVER", "redis-server")

ironcache_only = pytest.mark.skipif(IS_REDIS, reason="IronCache-specific behaviour")

# Every process the suite starts carries this marker in its environment (ironcache_env(); `-E`
# for systemd-socket-activate): conftest fails a test that leaves one running, and the session.
RUN_MARKER = "IRONCACHE_TEST_RUN"
os.environ[RUN_MARKER] = f"{os.getpid()}-{time.time_ns():x}"


def marked_processes() -> dict[int, str]:
    """Live processes started by this test session: pid -> command line."""
    needle = f"{RUN_MARKER}={os.environ[RUN_MARKER]}".encode()
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                if needle not in fh.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/stat", "rb") as fh:
                if fh.read().rsplit(b")", 1)[-1].split()[0] == b"Z":
                    continue  # exited, not yet reaped by its parent
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                found[int(entry)] = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return found


START_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0

T = TypeVar("T")


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def poll(fn: Callable[[], T], timeout: float = 10.0, interval: float = 0.02,
         what: str = "condition") -> T:
    """Call fn until it returns a truthy value; bounded in time. Returns that value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what} (last value: {last!r})")
        time.sleep(interval)


def required_packages_dir() -> str:
    """A directory holding only the server's required package (sortedcontainers, pure
    Python), linked from this interpreter's: on PYTHONPATH, it lets a server run on the host's
    bare python3 (the "stdlib" servers) without also seeing this venv's uvloop and hiredis."""
    import sortedcontainers

    d = Path(os.environ.get("TMPDIR", "/tmp")) / f"ironcache-tests-required-{os.getuid()}"
    link = d / "sortedcontainers"
    if not link.exists():
        d.mkdir(exist_ok=True)
        tmp = d / f".link-{os.getpid()}"
        tmp.symlink_to(Path(sortedcontainers.__file__).parent)
        os.replace(tmp, link)  # atomic: parallel sessions may race here
    return str(d)


def ironcache_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LISTEN_", "NOTIFY_SOCKET", "WATCHDOG_"))}
    env["PYTHONPATH"] = str(SRC_DIR) + os.pathsep + required_packages_dir() + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update(extra)
    return env


def ironcache_cmd(*args: str) -> list[str]:
    return [SERVER_PYTHON, "-m", "ironcache", *args]


def run_ironcache(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run a short-lived `ironcache ...` command (check-config, --version, ...)."""
    # cwd: `python -m` puts the working directory first on sys.path, before PYTHONPATH
    return subprocess.run(ironcache_cmd(*args), env=ironcache_env(), capture_output=True,
                          text=True, timeout=timeout, check=False, cwd=SRC_DIR)


def flatten(directives: dict[str, Any] | Sequence[tuple[str, Any]] | None) -> list[str]:
    out: list[str] = []
    items = directives.items() if isinstance(directives, dict) else (directives or [])
    for name, value in items:
        out.append(f"--{name}")
        if isinstance(value, (list, tuple)):
            out.extend(str(v) for v in value)
        else:
            out.append(str(value))
    return out


class Server:
    """One server process (IronCache or redis-server) on 127.0.0.1:port."""

    def __init__(self, workdir: Path, directives: dict[str, Any] | None = None,
                 port: int | None = None, config_file: Path | None = None,
                 env: dict[str, str] | None = None, password: str | None = None,
                 unixsocket: str | None = None, tcp: bool = True,
                 prefix: Sequence[str] = (), pass_fds: Sequence[int] = ()) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = (port or free_port()) if tcp else 0
        self.directives = dict(directives or {})
        self.config_file = config_file
        self.extra_env = env or {}
        self.password = password
        self.unixsocket = unixsocket
        self.log_path = workdir / "server.log"
        self.prefix = list(prefix)  # e.g. systemd-socket-activate ... or the fd launcher
        self.pass_fds = tuple(pass_fds)
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None

    # -- process -------------------------------------------------------------------------
    def command(self) -> list[str]:
        base: dict[str, Any] = {"port": self.port}
        if self.port:
            base["bind"] = "127.0.0.1"
        if self.unixsocket:
            base["unixsocket"] = self.unixsocket
        if IS_REDIS:
            cmd = [REDIS_SERVER]
            if self.config_file:
                cmd.append(str(self.config_file))
            base.update({"save": "", "appendonly": "no", "dir": str(self.workdir)})
            base.update(self.directives)
            return cmd + flatten(base)
        cmd = ironcache_cmd("serve")
        if self.config_file:
            cmd.append(str(self.config_file))
        base.update({"dir": str(self.workdir)})
        base.update(self.directives)
        return cmd + flatten(base)

    def start(self, wait: bool = True) -> Server:
        # A restart is a new process: teardown must stop it (and see its exit code) again.
        self.returncode = None
        env = ironcache_env(self.extra_env)
        self.returncode = None  # started again: the teardown must stop this process too
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.prefix + self.command(), stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env, cwd=self.workdir, pass_fds=self.pass_fds)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"server exited with {self.proc.returncode} before answering PING:\n"
                    f"{self.log_text()}")
            try:
                if self.client(socket_timeout=2).ping():
                    return
            except (redis.ConnectionError, redis.TimeoutError, OSError) as e:
                last = e
            except redis.AuthenticationError:
                return  # answering; the password is the test's business
            except redis.ResponseError as e:
                if "NOAUTH" in str(e) or "LOADING" not in str(e):
                    return
                last = e
            time.sleep(0.02)
        raise AssertionError(f"server did not answer PING within {timeout}s ({last!r}):\n"
                             f"{self.log_text()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = STOP_TIMEOUT) -> int:
        assert self.proc is not None
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"server did not exit within {timeout}s:\n{self.log_text()}"
                                 ) from None
        return self.returncode

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Stop the server (SIGTERM by default) and return its exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.send_signal(sig)
        return self.wait()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    # -- clients -------------------------------------------------------------------------
    def client(self, **kw: Any) -> redis.Redis:
        kw.setdefault("socket_timeout", 10)
        kw.setdefault("socket_connect_timeout", 5)
        kw.setdefault("decode_responses", True)
        kw.setdefault("retry", Retry(NoBackoff(), 0))  # a failure shows up, not a retry
        if self.password is not None:
            kw.setdefault("password", self.password)
        if self.port:
            return redis.Redis(host="127.0.0.1", port=self.port, **kw)
        return redis.Redis(unix_socket_path=self.unixsocket, **kw)

    def async_client(self, **kw: Any) -> Any:
        import redis.asyncio as aioredis

        kw.setdefault("socket_timeout", 10)
        kw.setdefault("decode_responses", True)
        if self.password is not None:
            kw.setdefault("password", self.password)
        return aioredis.Redis(host="127.0.0.1", port=self.port, **kw)

    def raw(self, timeout: float = 10.0) -> RawConn:
        if self.port:
            return RawConn.tcp("127.0.0.1", self.port, timeout)
        assert self.unixsocket
        return RawConn.unix(self.unixsocket, timeout)

    def cli(self, *args: str, stdin: str | None = None, timeout: float = 30.0
            ) -> subprocess.CompletedProcess[str]:
        cmd = ["redis-cli"]
        cmd += ["-p", str(self.port)] if self.port else ["-s", str(self.unixsocket)]
        if self.password is not None:
            cmd += ["-a", self.password, "--no-auth-warning"]
        return subprocess.run(cmd + list(args), input=stdin, capture_output=True, text=True,
                              timeout=timeout, check=False)


# ------------------------------------------------------------------------------------------
# Raw RESP over a socket: exact wire bytes, for error wording and protocol-level tests.
# ------------------------------------------------------------------------------------------

class RedisReference(Server):
    """A redis-server to compare replies with, whatever the suite's target is."""

    def command(self) -> list[str]:
        return [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.workdir)]



def encode_command(*args: str | bytes | int) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class RawConn:
    """A plain socket speaking RESP, with a small reply reader (RESP2 and RESP3 types)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.types: list[bytes] = []  # the type byte of every reply element read

    @classmethod
    def tcp(cls, host: str, port: int, timeout: float = 10.0) -> RawConn:
        s = socket.create_connection((host, port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(s)

    @classmethod
    def unix(cls, path: str, timeout: float = 10.0) -> RawConn:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(path)
        return cls(s)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawConn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_command(self, *args: str | bytes | int) -> None:
        self.send(encode_command(*args))

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("server closed the connection")
        self.buf += chunk

    def read_line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_reply(self) -> Any:
        """Decode one reply; errors come back as RespError values, not exceptions."""
        line = self.read_line()
        kind, rest = line[:1], line[1:]
        self.types.append(kind)
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind in (b"$", b"="):
            n = int(rest)
            if n < 0:
                return None
            data = self.read_exact(n + 2)[:-2]
            return data
        if kind in (b"*", b"~", b">"):
            n = int(rest)
            if n < 0:
                return None
            return [self.read_reply() for _ in range(n)]
        if kind == b"%":
            n = int(rest)
            return {_hashable(self.read_reply()): self.read_reply() for _ in range(n)}
        if kind == b"_":
            return None
        if kind == b",":
            return float(rest)
        if kind == b"#":
            return rest == b"t"
        if kind == b"(":
            return int(rest)
        raise AssertionError(f"unexpected reply line {line!r}")

    def call(self, *args: str | bytes | int) -> Any:
        self.send_command(*args)
        return self.read_reply()

    def read_until_closed(self, timeout: float = 10.0) -> bytes:
        """Everything the server sends until it closes the connection (bounded in time)."""
        deadline = time.monotonic() + timeout
        data = self.buf
        self.buf = b""
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                break
            except (ConnectionResetError, BrokenPipeError):
                return data
            if not chunk:
                return data
            data += chunk
        raise AssertionError(f"connection still open after {timeout}s; got {data[:300]!r}")

    def is_closed(self, timeout: float = 10.0) -> bool:
        try:
            self.read_until_closed(timeout)
            return True
        except AssertionError:
            return False


def _hashable(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


class RespError(str):
    """An error reply, as the exact text after '-'."""


def wire_error(server: Server, *args: str | bytes | int) -> str:
    """Send one command on a fresh connection; return the exact error text (asserting one)."""
    with server.raw() as c:
        reply = c.call(*args)
    assert isinstance(reply, RespError), f"expected an error reply, got {reply!r}"
    return str(reply)


def info_fields(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        k, v = line.split(":", 1)
        out[k] = v
    return out


def listening_sockets(port: int) -> list[dict[str, str]]:
    """`ss -ltn` rows for a local port: [{'recv_q':..., 'send_q':..., 'local':...}]."""
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True,
                         check=True, timeout=10).stdout
    rows = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4:
            rows.append({"state": parts[0], "recv_q": parts[1], "send_q": parts[2],
                         "local": parts[3]})
    return rows


def which(name: str) -> str | None:
    return shutil.which(name)


def log_matches(text: str, pattern: str) -> bool:
    return re.search(pattern, text, re.IGNORECASE | re.MULTILINE) is not None


def wait_port_closed(port: int, timeout: float = 10.0) -> None:
    def refused() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return False
        except ConnectionRefusedError:
            return True
        except OSError:
            return False

    poll(refused, timeout, 0.05, f"port {port} to refuse connections")


def all_keys(client: redis.Redis, **scan_kw: Any) -> list[str]:
    return list(client.scan_iter(**scan_kw))


def chunks(items: Sequence[T], n: int) -> Iterable[Sequence[T]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def kill_quietly(proc: subprocess.Popen[Any] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)


def host_address() -> str | None:
    """A non-loopback IPv4 address of this host (a client from it is not local), or None."""
    try:
        out = subprocess.run(["ip", "-o", "-4", "addr", "show", "scope", "global"],
                             capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.splitlines():
        m = re.search(r"\binet (\d+\.\d+\.\d+\.\d+)/", line)
        if m:
            return m.group(1)
    return None
