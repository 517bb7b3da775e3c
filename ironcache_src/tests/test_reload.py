"""`ironcache reload` (issue 18) outside systemd: the test keeps the fd store and the listener.

The old process starts the new release beside itself; clients in tight SET/GET loops (one
connection each, for the whole run) and a tight connecting loop must see no error and lose
nothing. What tells a reload from a stop-start: requests are answered while the new process
loads (the load window it reports), which a stop-start cannot do (the fallback is the control:
none between the old process stopping and the new one's READY=1). A release that dies while
loading, or reports another version, leaves the old process serving.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from support import (
    IS_REDIS,
    SRC_DIR,
    RawConn,
    Server,
    encode_command,
    ironcache_cmd,
    ironcache_env,
    poll,
    required_packages_dir,
)
from test_handover_restart import FdStore, Loop, start_process, systemd_listener

pytestmark = pytest.mark.skipif(IS_REDIS, reason="IronCache-specific: reload")

KEYS = 300_000  # enough that loading takes a while (a stop-start client waits for all of it)
CLIENTS = 4
REPLY_TIMEOUT_S = 30.0


class SetGet:
    """One connection for the whole run: SET its key to a counter, GET it back, in a loop.
    Every reply's wall-clock time is kept; any other reply or a broken connection is an error."""

    def __init__(self, port: int, stop: threading.Event, key: str) -> None:
        self.port = port
        self.stop = stop
        self.key = key
        self.n = 0  # the last value SET and acknowledged
        self.times: list[float] = []
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        try:
            with RawConn.tcp("127.0.0.1", self.port, REPLY_TIMEOUT_S) as c:
                while not self.stop.is_set():
                    v = b"%d" % (self.n + 1)
                    c.send(encode_command("SET", self.key, v) + encode_command("GET", self.key))
                    ok, got = c.read_line(), c.read_line()
                    body = c.read_line() if got.startswith(b"$") else got
                    if ok != b"+OK" or body != v:
                        self.errors.append(f"{self.key}: {ok!r} {got!r} {body!r} for {v!r}")
                        return
                    self.n += 1
                    self.times.append(time.time())
        except OSError as e:
            self.errors.append(f"{self.key}: {type(e).__name__}: {e} after {self.n}")


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _stop_pid(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not poll(lambda: _gone(pid), timeout=20):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        poll(lambda: _gone(pid), timeout=10)


def run_reload(pid: int, *args: str, pythonpath: str | None = None) -> tuple[int, dict[str, Any]]:
    env = ironcache_env()
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    proc = subprocess.run(
        ironcache_cmd("reload", "--pid", str(pid), *args), env=env, capture_output=True,
        text=True, timeout=300, check=False, cwd=SRC_DIR,
    )
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    assert lines, f"no result from ironcache reload: {proc.stdout}{proc.stderr}"
    return proc.returncode, json.loads(lines[-1])


def load_keys(port: int, n: int) -> None:
    r = redis.Redis(port=port, socket_timeout=60)
    for start in range(0, n, 10_000):
        r.mset({f"key:{i}": f"value-{i:010d}" for i in range(start, min(start + 10_000, n))})
    r.close()


def check_keys(port: int, n: int) -> list[str]:
    """Loaded keys missing or wrong."""
    r = redis.Redis(port=port, socket_timeout=60)
    bad = []
    for start in range(0, n, 10_000):
        names = [f"key:{i}" for i in range(start, min(start + 10_000, n))]
        for name, value in zip(names, r.mget(names), strict=True):
            if value != f"value-{int(name[4:]):010d}".encode():
                bad.append(name)
    r.close()
    return bad


class Rig:
    """The service manager's part (listener + fd store), the old process, the clients."""

    def __init__(self, tmp: Path, directives: dict[str, object] | None = None) -> None:
        self.tmp = tmp
        self.listener, self.port = systemd_listener(1024)
        self.store = FdStore(tmp / "notify.sock")
        self.directives = {"handover": "yes", **(directives or {})}
        self.old: Server = start_process(tmp / "old", self.listener, self.port, self.store,
                                         self.directives)
        self.stop = threading.Event()
        self.clients = [SetGet(self.port, self.stop, f"client:{i}") for i in range(CLIENTS)]
        self.loop = Loop(self.port, self.stop)
        self.pids: set[int] = set()

    def start_clients(self) -> None:
        for c in [*self.clients, self.loop]:
            c.thread.start()
        poll(lambda: all(c.n > 50 for c in self.clients), timeout=30)

    def stop_clients(self) -> None:
        self.stop.set()
        for c in [*self.clients, self.loop]:
            c.thread.join(REPLY_TIMEOUT_S + 10)

    def answered(self, t0: float, t1: float) -> int:
        return sum(1 for c in self.clients for t in c.times if t0 <= t <= t1)

    def errors(self) -> list[str]:
        return [e for c in self.clients for e in c.errors] + self.loop.errors

    def close(self) -> None:
        self.stop.set()
        if self.old.alive():
            self.old.stop()
        for pid in self.pids:
            _stop_pid(pid)
        self.store.close()
        self.listener.close()


@pytest.fixture
def rig(tmp_path: Path) -> Any:
    made: list[Rig] = []

    def factory(**kw: Any) -> Rig:
        made.append(Rig(tmp_path, **kw))
        return made[-1]

    yield factory
    for r in made:
        r.close()


def test_reload_serves_while_the_new_process_loads(rig: Any) -> None:
    r = rig()
    load_keys(r.port, KEYS)
    r.start_clients()
    old_pid = r.old.pid
    code, result = run_reload(old_pid)
    if result.get("pid"):
        r.pids.add(result["pid"])
    time.sleep(0.3)
    r.stop_clients()
    log = r.old.log_text()
    assert code == 0, (result, log)
    assert result["path"] == "reload" and result["pid"] != old_pid
    assert r.old.wait() == 0, log
    assert r.store.mainpid == result["pid"]  # MAINPID= with READY=1 from the new process
    assert r.errors() == [], (r.errors(), log)
    # Behaviour no stop-start can show: replies while the new process was loading.
    during = r.answered(result["load_started_ms"] / 1000, result["loaded_ms"] / 1000)
    assert during > 0, (result, log)
    assert r.loop.ok > 0
    assert check_keys(r.port, KEYS) == []
    check = redis.Redis(port=r.port, socket_timeout=10)
    assert [int(check.get(c.key) or 0) for c in r.clients] == [c.n for c in r.clients]
    info = check.info("server")
    assert info["process_id"] == result["pid"]
    assert check.info("handover")["handover_source"] == "reload"
    # Its crash state is the forked snapshot + the reload journal, in the fd store.
    names = {n for n, _fd in r.store.stored()}
    assert any(n.startswith("state-") for n in names) and "slots" in names, names
    print(f"reload: {during} replies while loading; result {result}")


def test_a_release_that_dies_while_loading_changes_nothing(rig: Any, tmp_path: Path) -> None:
    release = tmp_path / "broken"
    shutil.copytree(SRC_DIR / "ironcache", release / "ironcache",
                    ignore=shutil.ignore_patterns("__pycache__"))
    state_py = release / "ironcache" / "state.py"
    text = state_py.read_text()
    marker = '    clock = keyspace.clock\n'
    assert marker in text
    state_py.write_text(text.replace(marker, "    os._exit(3)\n" + marker, 1)
                        .replace("import marshal\n", "import marshal\nimport os\n", 1))
    r = rig()
    load_keys(r.port, 10_000)
    r.start_clients()
    pythonpath = f"{release}{os.pathsep}{required_packages_dir()}"
    code, result = run_reload(r.old.pid, pythonpath=pythonpath)
    assert code == 1 and not result["ok"], result
    assert "exit code 3 while loading" in result["error"], result
    code2, result2 = run_reload(r.old.pid, "--expect-version", "0.0.1-other")
    assert code2 == 1 and "reports version" in result2["error"], result2
    time.sleep(0.2)
    r.stop_clients()
    assert r.old.alive()
    assert r.errors() == [], r.errors()
    assert check_keys(r.port, 10_000) == []
    check = redis.Redis(port=r.port, socket_timeout=10)
    assert check.info("server")["process_id"] == r.old.pid
    assert [int(check.get(c.key) or 0) for c in r.clients] == [c.n for c in r.clients]
    assert "reload failed, this process serves on" in r.old.log_text()


def test_short_memory_falls_back_to_the_stop_start_handover(rig: Any) -> None:
    """The control: the same clients, but the new process loads while nobody is served."""
    r = rig(directives={"reload-memory-available": "1mb"})
    load_keys(r.port, KEYS)
    r.start_clients()
    old_pid = r.old.pid
    code, result = run_reload(old_pid)
    if result.get("pid"):
        r.pids.add(result["pid"])
    time.sleep(0.3)
    r.stop_clients()
    log = r.old.log_text()
    assert code == 0, (result, log)
    assert result["path"] == "restart" and "reload-memory-available" in result["fallback_reason"]
    assert "falling back to the stop-start handover" in log
    assert r.old.wait() == 0, log
    assert r.store.mainpid == result["pid"]
    assert r.errors() == [], (r.errors(), log)
    # From the new process's first word (MAINPID=, before it loads) to its READY=1.
    assert r.store.mainpid_at < r.store.ready_at
    assert r.answered(r.store.mainpid_at, r.store.ready_at) == 0  # nobody served meanwhile
    assert check_keys(r.port, KEYS) == []
    check = redis.Redis(port=r.port, socket_timeout=10)
    assert [int(check.get(c.key) or 0) for c in r.clients] == [c.n for c in r.clients]
    assert check.info("handover")["handover_source"] == "restart"
    assert "reload-memory-available" in check.info("handover")["handover_reload_fallback"]
