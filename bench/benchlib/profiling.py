"""Profiles of a server under load: py-spy sampling (raw stacks) and cProfile, summarised."""

from __future__ import annotations

import collections
import contextlib
import io
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from benchlib.servers import KILL_TIMEOUT


class PySpy:
    """Samples the IronCache process with py-spy while one configuration runs."""

    def __init__(self, exe: str, pid: int, out: Path, cpu: str, procs: list[Any]) -> None:
        self.out = out
        self.procs = procs
        cmd = [
            exe,
            "record",
            "-p",
            str(pid),
            "-r",
            "200",
            "-f",
            "raw",
            "-o",
            str(out),
        ]
        if shutil.which("taskset"):
            cmd = ["taskset", "-c", cpu, *cmd]
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(out.with_suffix(".log"), "wb"),  # noqa: SIM115
            start_new_session=True,
        )
        procs.append(self.proc)
        time.sleep(1.0)  # let it attach before the load starts

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=KILL_TIMEOUT)
        self.procs.remove(self.proc)


def summarize_collapsed(path: Path, top: int = 25) -> str:
    """Sample shares from py-spy's raw (collapsed) output.

    Frames look like ``func (file.py:LINE)``. Self time is counted per line and per
    function, inclusive time per function (a frame repeated in one stack counts once).
    Self time of ``Runner.run``/``run`` (event loop) is time spent in C: uvloop,
    syscalls and waiting for input.
    """
    self_line: collections.Counter[str] = collections.Counter()
    self_func: collections.Counter[str] = collections.Counter()
    incl_func: collections.Counter[str] = collections.Counter()
    total = 0
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no profile at {path})"
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += n
        funcs = [function_of(f) for f in frames]
        self_line[frames[-1]] += n
        self_func[funcs[-1]] += n
        for f in set(funcs):
            incl_func[f] += n
    if not total:
        return "(no samples)"

    def block(title: str, counter: collections.Counter[str]) -> list[str]:
        rows = [f"  {100 * n / total:5.1f}%  {f}" for f, n in counter.most_common(top)]
        return ["", f"top {top} by {title}:", *rows]

    return "\n".join(
        [f"samples: {total}"]
        + block("self time, per function", self_func)
        + block("self time, per line", self_line)
        + block("inclusive time, per function", incl_func)
    )


def function_of(frame: str) -> str:
    """``func (pkg/mod.py:123)`` -> ``func (pkg/mod.py)``."""
    name, sep, where = frame.rpartition(" (")
    if not sep:
        return frame
    file, _, _line = where.rstrip(")").rpartition(":")
    return f"{name} ({file or where.rstrip(')')})"


def summarize_cprofile(path: Path, top: int = 30) -> str:
    import pstats

    buf = io.StringIO()
    try:
        st = pstats.Stats(str(path), stream=buf)
    except (OSError, TypeError, EOFError) as exc:
        return f"(no cProfile data at {path}: {exc})"
    st.strip_dirs().sort_stats("tottime").print_stats(top)
    st.sort_stats("cumulative").print_stats(top)
    return buf.getvalue()
