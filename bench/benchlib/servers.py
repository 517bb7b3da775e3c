"""A server process under a benchmark: started in a session of its own, stopped with bounded
waits (SIGTERM, then SIGKILL), watched (alive, answers PING), measured (RSS, mapped libraries)."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlib.common import REPO, BenchError, log
from benchlib.resp import Resp, RespError

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
KILL_TIMEOUT = 5.0


@dataclass
class Server:
    name: str  # "IronCache" / "Redis"
    cmd: list[str]
    port: int
    log_path: Path
    env: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = None
    info: dict[str, str] = field(default_factory=dict)

    def start(self) -> None:
        log(f"starting {self.name}: {shlex.join(self.cmd)}")
        logf = open(self.log_path, "wb")  # noqa: SIM115 (closed by the child's exit)
        try:
            # A session of its own: Ctrl-C reaches this script only, which then stops
            # the servers itself (SIGTERM, bounded waits).
            self.proc = subprocess.Popen(
                self.cmd,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=str(REPO),
                start_new_session=True,
            )
        finally:
            logf.close()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ping(self, timeout: float = 5.0) -> bool:
        try:
            with Resp(self.port, timeout=timeout) as c:
                return c.call("PING") == "PONG"
        except (OSError, RespError, BenchError):
            return False

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise BenchError(
                    f"{self.name} exited with status {self.proc.returncode if self.proc else '?'}"
                    f" before answering PING; log: {self.log_path}\n{self.log_tail()}"
                )
            if self.ping(timeout=1.0):
                return
            time.sleep(0.05)
        raise BenchError(f"{self.name} did not answer PING within {timeout:.0f}s; {self.log_path}")

    def check_alive(self, when: str) -> None:
        if not self.alive():
            raise BenchError(
                f"{self.name} died {when} (status {self.proc.returncode if self.proc else '?'});"
                f" log: {self.log_path}\n{self.log_tail()}"
            )
        if not self.ping():
            raise BenchError(f"{self.name} no longer answers PING {when}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def call(self, *args: bytes | str | int) -> Any:
        with Resp(self.port) as c:
            return c.call(*args)

    def rss_bytes(self) -> int | None:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except (OSError, ValueError):
            return None
        return None

    def loaded_libraries(self) -> list[str]:
        """Shared objects of interest mapped into the process (uvloop, hiredis)."""
        found: set[str] = set()
        try:
            for line in Path(f"/proc/{self.pid}/maps").read_text().splitlines():
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                for lib in ("uvloop", "hiredis"):
                    if f"/{lib}/" in path and path.endswith(".so"):
                        found.add(lib)
        except OSError:
            pass
        return sorted(found)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, bounded wait, then SIGKILL. Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log(f"{self.name} ignored SIGTERM for {timeout:.0f}s: SIGKILL")
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=KILL_TIMEOUT)
        return self.proc.returncode


def ironcache_env(source: str | Path) -> dict[str, str]:
    """This environment with `source` (the directory holding the `ironcache` package) first on
    PYTHONPATH and without systemd's socket-activation and notify variables."""
    env = dict(os.environ)
    src = str(Path(source).resolve())
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    for name in ("LISTEN_PID", "LISTEN_FDS", "NOTIFY_SOCKET"):
        env.pop(name, None)
    return env


def drop_directive(cmd: list[str], name: str) -> list[str]:
    """`cmd` without `name` and its value (the next argument)."""
    if name not in cmd:
        return cmd
    i = cmd.index(name)
    return cmd[:i] + cmd[i + 2 :]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def deployed_python() -> str:
    """.venv-bench/bin/python, made (or brought up to date) first; else this interpreter."""
    setup = REPO / "tests" / "setup" / "bench-venv.sh"
    try:
        r = subprocess.run([str(setup)], capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        r = subprocess.CompletedProcess([str(setup)], 1, "", str(e))
    venv_python = REPO / ".venv-bench" / "bin" / "python"
    if r.returncode == 0 and venv_python.exists():
        return str(venv_python)
    log(f"{setup.name} failed ({r.stderr.strip()[-300:]}): IronCache runs on {sys.executable}")
    return sys.executable


def importable(python: str, module: str) -> bool:
    try:
        r = subprocess.run(
            [python, "-c", f"import {module}"],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0
