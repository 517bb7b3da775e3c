"""CPU accounting on a shared machine: what other processes use, what a server used."""

from __future__ import annotations

import os
import resource
import time

from benchlib.common import log


class CpuMeter:
    """CPU time used by other processes (other engineers' tests) during a measurement.

    busy(all cpus, from /proc/stat, steal included) - (the servers + this script + its
    reaped children, i.e. redis-benchmark), in cores: 0.0 = a quiet machine, 1.0 = one
    core's worth of foreign work competing with the benchmark.
    """

    HZ = os.sysconf("SC_CLK_TCK")

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.start = self._sample()

    @staticmethod
    def _busy() -> float:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal guest guest_nice
        return (sum(fields[:8]) - fields[3] - fields[4]) / CpuMeter.HZ

    def _own(self) -> float:
        total = 0.0
        for pid in self.pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    rest = f.read().rpartition(")")[2].split()
                total += (int(rest[11]) + int(rest[12])) / self.HZ  # utime stime
            except (OSError, ValueError, IndexError):
                pass
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            ru = resource.getrusage(who)
            total += ru.ru_utime + ru.ru_stime
        return total

    def _sample(self) -> tuple[float, float, float]:
        return time.monotonic(), self._busy(), self._own()

    def foreign_cores(self) -> float:
        t1, busy1, own1 = self._sample()
        t0, busy0, own0 = self.start
        wall = t1 - t0
        if wall <= 0:
            return 0.0
        return max(0.0, ((busy1 - busy0) - (own1 - own0)) / wall)


def process_cpu_seconds(pid: int) -> float | None:
    """CPU time of every thread of `pid` (schedstat: nanoseconds; /proc/PID/stat as fallback)."""
    try:
        total = 0
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        if total:
            return total / 1e9
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rpartition(")")[2].split()
        return (int(rest[11]) + int(rest[12])) / CpuMeter.HZ
    except (OSError, ValueError, IndexError):
        return None


def wait_for_quiet_machine(limit: float, pids: list[int], threshold: float = 0.25) -> None:
    """Waits (at most `limit` seconds) until other processes use < `threshold` cores."""
    deadline = time.monotonic() + limit
    while True:
        meter = CpuMeter(pids)
        time.sleep(1.0)
        busy = meter.foreign_cores()
        if busy < threshold:
            log(f"machine quiet enough: other processes use {busy:.2f} cores")
            return
        if time.monotonic() >= deadline:
            log(f"machine still busy after {limit:.0f}s ({busy:.2f} cores): measuring anyway")
            return
        log(f"waiting for a quieter machine: other processes use {busy:.2f} cores")
        time.sleep(2.0)


def loadavg() -> str:
    a, b, c = os.getloadavg()
    return f"{a:.2f} {b:.2f} {c:.2f}"
