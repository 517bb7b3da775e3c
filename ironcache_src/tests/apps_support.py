"""What the real-application tests share (test_apps.py here, and molecule/handover under
systemd): the worker processes, and what they ran. Standard library only: the workers import
it too.

Each run of a job or task appends a line to the file APPS_LOG names (outside the server, so a
lost dataset cannot hide a lost or repeated run).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent
JOBS = 20  # ~50 ms each
SCHEDULED_IN_S = 4  # after the restart, which comes once a few jobs have run
WORK_TIMEOUT_S = 90.0  # a bound, never reached when all goes well
QUIET_S = 3.0  # the control: no run for this long after the restart means none will come


def ran(line: str) -> None:
    # One write of a short line with O_APPEND: whole lines even from several processes.
    fd = os.open(os.environ["APPS_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def runs(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def wait_quiet(log: Path) -> list[str]:
    """The runs once none has come for QUIET_S (bounded by WORK_TIMEOUT_S)."""
    deadline = time.monotonic() + WORK_TIMEOUT_S
    seen, since = runs(log), time.monotonic()
    while time.monotonic() - since < QUIET_S and time.monotonic() < deadline:
        time.sleep(0.1)
        now = runs(log)
        if now != seen:
            seen, since = now, time.monotonic()
    return seen


def exactly_once(lines: list[str]) -> dict[str, int]:
    """The lines that are not there exactly once."""
    return {k: n for k, n in Counter(lines).items() if n != 1}


def rq_worker(url: str) -> list[str]:
    return [str(Path(sys.executable).parent / "rq"), "worker", "--url", url, "--with-scheduler",
            "--path", str(TESTS_DIR), "apps"]


def celery_worker(name: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "apps_celery_tasks", "worker", "--pool=solo",
            "--loglevel=INFO", "--without-mingle", "--without-gossip", "-Q", "apps",
            "-n", f"{name}@%h"]


class App:
    """A worker process (its own process group: RQ forks a child per job and a scheduler)."""

    def __init__(self, argv: list[str], url: str, log: Path, out: Path) -> None:
        env = dict(os.environ)
        env.update(APPS_REDIS_URL=url, APPS_LOG=str(log), PYTHONUNBUFFERED="1",
                   PYTHONPATH=str(TESTS_DIR) + os.pathsep + env.get("PYTHONPATH", ""))
        self.out = out
        with open(out, "ab") as fh:
            self.proc = subprocess.Popen(argv, cwd=TESTS_DIR, env=env, stdout=fh,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)

    def output(self) -> str:
        return self.out.read_text(errors="replace")[-6000:]

    def stop(self) -> None:
        """A warm shutdown (SIGTERM), then whatever is left of the group is killed."""
        pgid = self.proc.pid
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)  # a job's child or the scheduler, if still there
