#!/usr/bin/env python3
"""How long one big request makes another client wait: IronCache against redis-server.

Each case loads a big value (or many keys) into a server pinned to one core, then runs one
operation on it while a bystander process on another core sends PING in a loop; the longest
PING round trip from just before the operation until the server has finished with it (its
lazy free drained) is the stall that operation causes. Cases:

    flushall-async  FLUSHALL ASYNC of N keys
    unlink          UNLINK of an N-field hash
    evict           allkeys-lru eviction of an N-field hash (the next write over maxmemory)
    evict-keys      allkeys-random eviction of three quarters of N keys (CONFIG SET maxmemory)
    expire          active expiry of an N-field hash (PEXPIRE, then nothing touches it)
    hscan           a full HSCAN of an N-field hash, COUNT 100
    sscan           a full SSCAN of an N-member set, COUNT 100
    load            the loading of N keys itself (MSET of 1000 keys at a time): what writes
                    that grow a big dataset cost the others (IronCache: the cyclic GC's passes)
    idle            nothing for a second: the machine's noise floor (another process taking
                    the core shows up here too; on a busy machine read the cases against it)

redis-server runs with lazyfree-lazy-eviction and lazyfree-lazy-expire set to yes, what
IronCache always does; Redis's defaults (no) free an evicted or expired value in one go.
The servers run one after the other, never side by side, so each has the core to itself.

    python3 bench/stalls.py                 # N = 1,000,000, about 2 minutes
    python3 bench/stalls.py --quick         # N = 100,000
    python3 bench/stalls.py --cases unlink,hscan --size 300000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from benchlib.common import REPO, BenchError, log
from benchlib.lifecycle import reported
from benchlib.resp import Resp, encode_command, parse_info
from benchlib.servers import Server, free_port, ironcache_env

CASES = (
    "idle", "load", "flushall-async", "unlink", "evict", "evict-keys", "expire", "hscan", "sscan",
)
BATCH = 1000  # elements per loading command
SETTLE_TIMEOUT = 120.0  # seconds a case may take to finish its background work
QUIET_AFTER = 0.2  # seconds the bystander goes on after the server settled


def bystander(port: int, cpu: int | None, nice: int, conn: Connection) -> None:
    """PING in a loop until told to stop; sends back (longest round trip in s, PINGs)."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    if nice:
        os.nice(nice)
    longest, count = 0.0, 0
    with Resp(port, timeout=SETTLE_TIMEOUT) as c:
        conn.send("ready")
        while not conn.poll():
            t = time.perf_counter()
            c.call("PING")
            longest = max(longest, time.perf_counter() - t)
            count += 1
    conn.send((longest, count))


class Bystander:
    def __init__(self, port: int, cpu: int | None, nice: int) -> None:
        self.conn, child = mp.Pipe()
        self.proc = mp.Process(target=bystander, args=(port, cpu, nice, child), daemon=True)
        self.stopped = False

    def __enter__(self) -> Bystander:
        self.proc.start()
        if not self.conn.poll(10) or self.conn.recv() != "ready":
            raise BenchError("the bystander could not connect")
        time.sleep(0.05)
        return self

    def result(self) -> tuple[float, int]:
        self.conn.send("stop")
        self.stopped = True
        if not self.conn.poll(30):
            raise BenchError("the bystander did not answer")
        longest, count = self.conn.recv()
        return float(longest), int(count)

    def __exit__(self, *exc: object) -> None:
        if not self.stopped:  # an error or an interrupt: stop it too
            with contextlib.suppress(OSError):
                self.conn.send("stop")
        self.proc.join(timeout=10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(timeout=5)


def load(c: Resp, commands: list[bytes]) -> None:
    for i in range(0, len(commands), 100):
        for reply in c.pipeline(commands[i : i + 100]):
            if isinstance(reply, Exception):
                raise BenchError(f"loading: {reply}")


def load_keys(c: Resp, n: int) -> None:
    cmds = []
    for i in range(0, n, BATCH):
        args: list[bytes | str | int] = ["MSET"]
        for j in range(i, min(i + BATCH, n)):
            args += [b"k%d" % j, b"v"]
        cmds.append(encode_command(*args))
    load(c, cmds)


def load_hash(c: Resp, n: int, key: str = "big") -> None:
    cmds = []
    for i in range(0, n, BATCH):
        args: list[bytes | str | int] = ["HSET", key]
        for j in range(i, min(i + BATCH, n)):
            args += [b"f%d" % j, b"v"]
        cmds.append(encode_command(*args))
    load(c, cmds)


def load_set(c: Resp, n: int, key: str = "bigset") -> None:
    cmds = []
    for i in range(0, n, BATCH):
        cmds.append(encode_command("SADD", key, *[b"m%d" % j for j in range(i, min(i + BATCH, n))]))
    load(c, cmds)


def pending(c: Resp) -> int:
    """Values still being freed (INFO memory lazyfree_pending_objects, both servers)."""
    return int(parse_info(c.call("INFO", "memory")).get("lazyfree_pending_objects", "0"))


def settle(c: Resp, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while not (done() and pending(c) == 0):
        if time.monotonic() > deadline:
            raise BenchError("the server did not finish within the time allowed")
        time.sleep(0.01)


def full_scan(c: Resp, cmd: str, key: str, count: int) -> int:
    """Iterate to the end; returns the elements seen (pairs count once)."""
    seen, cursor = 0, b"0"
    while True:
        cursor, items = c.call(cmd, key, cursor, "COUNT", count)
        seen += len(items) // (2 if cmd == "HSCAN" else 1)
        if cursor == b"0":
            return seen


def run_case(case: str, srv: Server, n: int, cpu: int | None, nice: int) -> dict[str, Any]:
    with Resp(srv.port, timeout=SETTLE_TIMEOUT) as c:
        c.call("FLUSHALL")
        settle(c, lambda: True)
        c.call("CONFIG", "SET", "maxmemory", "0")
        c.call("CONFIG", "SET", "maxmemory-policy", "noeviction")
        detail = ""
        if case in ("flushall-async", "evict-keys"):
            load_keys(c, n)
        elif case in ("idle", "load"):
            pass
        elif case == "sscan":
            load_set(c, n)
        else:
            load_hash(c, n)
        with Bystander(srv.port, cpu, nice) as b:
            t = time.perf_counter()
            if case == "idle":
                time.sleep(1.0)
            elif case == "load":
                load_keys(c, n)
            elif case == "flushall-async":
                c.call("FLUSHALL", "ASYNC")
                settle(c, lambda: c.call("DBSIZE") == 0)
            elif case == "unlink":
                c.call("UNLINK", "big")
                settle(c, lambda: c.call("DBSIZE") == 0)
            elif case == "evict":
                used = int(parse_info(c.call("INFO", "memory"))["used_memory"])
                c.call("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")
                c.call("CONFIG", "SET", "maxmemory", str(used - used // 4))
                # A write over the limit evicts the hash. Redis may refuse this write itself
                # (-OOM) while its lazy free is still running: the eviction happened all the same.
                c.sock.sendall(encode_command("SET", "small", "x"))
                c.read()
                settle(c, lambda: c.call("EXISTS", "big") == 0)
            elif case == "evict-keys":
                # maxmemory lowered under N small keys: three quarters of them must go.
                used = int(parse_info(c.call("INFO", "memory"))["used_memory"])
                c.call("CONFIG", "SET", "maxmemory-policy", "allkeys-random")
                c.call("CONFIG", "SET", "maxmemory", str(used // 4))
                settle(c, lambda: c.call("DBSIZE") <= n // 4 + n // 10)
                detail = f"{c.call('DBSIZE')} keys left"
            elif case == "expire":
                c.call("PEXPIRE", "big", "20")
                # DBSIZE does not expire anything: the server's own cycle must.
                settle(c, lambda: c.call("DBSIZE") == 0)
            else:
                cmd, key = ("HSCAN", "big") if case == "hscan" else ("SSCAN", "bigset")
                seen = full_scan(c, cmd, key, 100)
                if seen < n:
                    raise BenchError(f"{srv.name}: {cmd} returned {seen} of {n} elements")
                detail = f"{seen} returned"
            elapsed = time.perf_counter() - t
            time.sleep(QUIET_AFTER)
            longest, pings = b.result()
        c.call("CONFIG", "SET", "maxmemory", "0")
        c.call("CONFIG", "SET", "maxmemory-policy", "noeviction")
    srv.check_alive(f"after {case}")
    return {"longest_ms": longest * 1000, "pings": pings, "seconds": elapsed, "detail": detail}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", type=int, default=1_000_000, help="keys, fields or members (N)")
    p.add_argument("--quick", action="store_true", help="N = 100,000")
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--python", default=sys.executable, help="interpreter that runs IronCache")
    p.add_argument("--source", default=str(REPO / "ironcache_src"), help="IronCache's source")
    p.add_argument("--redis-server", default="redis-server")
    p.add_argument("--no-redis", action="store_true", help="IronCache only")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument("--nice", type=int, default=0,
                   help="run the servers and the bystander under nice -n N (root may give a"
                   " negative N: other processes then disturb the figures less)")
    p.add_argument("--json", action="store_true", help="the report as JSON on stdout")
    return p.parse_args(argv)


def make_servers(args: argparse.Namespace, tmp: Path) -> list[Server]:
    pin = ["taskset", "-c", str(args.server_cpu)]
    if args.nice:
        pin = ["nice", "-n", str(args.nice), *pin]
    port = free_port()
    servers = [
        Server(
            "IronCache",
            [*pin, args.python, "-m", "ironcache", "serve", "--port", str(port), "--bind",
             "127.0.0.1", "--save-on-shutdown", "no", "--dir", str(tmp)],
            port,
            tmp / "ironcache.log",
            ironcache_env(args.source),
        )
    ]  # fmt: skip
    if not args.no_redis:
        port = free_port()
        servers.append(
            Server(
                "Redis",
                [*pin, args.redis_server, "--port", str(port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", str(tmp),
                 "--lazyfree-lazy-eviction", "yes", "--lazyfree-lazy-expire", "yes"],
                port,
                tmp / "redis.log",
            )
        )  # fmt: skip
    return servers


def render(report: dict[str, Any]) -> str:
    names = report["servers"]
    head = f"{'case':<16}" + "".join(f"{n + ' longest PING':>24}" for n in names)
    lines = [
        f"N = {report['size']:,}; server on cpu {report['server_cpu']}, nice {report['nice']}",
        head,
    ]
    for case in report["cases"]:
        row = f"{case:<16}"
        for n in names:
            r = report["results"].get(n, {}).get(case)
            cell = "-" if r is None else f"{r['longest_ms']:.1f} ms ({r['pings']} pings)"
            row += f"{cell:>24}"
        lines.append(row)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    n = 100_000 if args.quick else args.size
    cases = [x.strip() for x in args.cases.split(",") if x.strip()]
    unknown = set(cases) - set(CASES)
    if unknown:
        log(f"unknown cases: {', '.join(sorted(unknown))} (known: {', '.join(CASES)})")
        return 2
    for tool in ("taskset", *(() if args.no_redis else (args.redis_server,))):
        if shutil.which(tool) is None:
            log(f"{tool} not found")
            return 2
    cpus = os.sched_getaffinity(0)
    client_cpu = args.client_cpu if args.client_cpu in cpus and len(cpus) > 1 else None
    tmp = Path(tempfile.mkdtemp(prefix="ironcache-stalls-"))
    servers = make_servers(args, tmp)
    report: dict[str, Any] = {
        "size": n, "server_cpu": args.server_cpu, "nice": args.nice, "cases": cases,
        "servers": [s.name for s in servers], "results": {},
    }  # fmt: skip

    def stop() -> None:
        for srv in servers:
            srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    with reported(report, stop) as outcome:
        for srv in servers:  # one at a time: each has the core to itself
            srv.start()
            try:
                srv.wait_ready()
                for case in cases:
                    got = run_case(case, srv, n, client_cpu, args.nice)
                    report["results"].setdefault(srv.name, {})[case] = got
                    log(f"{srv.name:<9} {case:<15} longest PING {got['longest_ms']:7.1f} ms"
                        f" ({got['pings']} PINGs over {got['seconds']:.2f} s) {got['detail']}")
            finally:
                srv.stop()
    print(json.dumps(report, indent=2) if args.json else render(report))
    return outcome.status


if __name__ == "__main__":
    sys.exit(main())
