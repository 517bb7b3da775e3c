"""Stopping cleanly: Ctrl-C, SIGTERM and SIGHUP unwind through the caller's `finally`, whose
cleanup then runs with those signals ignored (a second Ctrl-C cannot leave a server behind)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .common import BenchError, log

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
KILL_TIMEOUT = 5.0


def _raise(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def unwind_on_signals() -> None:
    """From now on these signals raise KeyboardInterrupt: the caller's `finally` runs."""
    for signum in SIGNALS:
        signal.signal(signum, _raise)


@contextlib.contextmanager
def cleanup_shielded() -> Iterator[None]:
    """The block runs with the signals ignored; their default handling is restored after."""
    for signum in SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)


def kill_all(procs: Iterable[Any], timeout: float = KILL_TIMEOUT) -> None:
    """SIGKILL the child processes (Popen) still running, and reap them (bounded waits)."""
    for p in procs:
        if p.poll() is None:
            p.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=timeout)


class Outcome:
    """A benchmark run's exit status: 0, 1 after a BenchError, 130 when interrupted."""

    status = 0


@contextlib.contextmanager
def reported(report: dict[str, Any], cleanup: Callable[[], None]) -> Iterator[Outcome]:
    """Run the body: a BenchError or an interruption ends it into report["error"] and the
    status, and `cleanup` (stopping what the body started) always runs with the signals ignored."""
    unwind_on_signals()
    outcome = Outcome()
    try:
        yield outcome
    except BenchError as exc:
        log(f"FAILED: {exc}")
        report["error"] = str(exc)
        outcome.status = 1
    except KeyboardInterrupt:
        log("interrupted: stopping the servers")
        report["error"] = "interrupted"
        outcome.status = 130
    finally:
        with cleanup_shielded():
            cleanup()
