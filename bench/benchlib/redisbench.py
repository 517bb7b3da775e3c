"""redis-benchmark: run it (bounded), read its --csv output, check that its commands did
what they should (it counts error replies as operations)."""

from __future__ import annotations

import contextlib
import csv
import io
import subprocess
from collections.abc import Iterable
from typing import Any

from benchlib.common import BenchError
from benchlib.resp import Resp, RespError
from benchlib.servers import KILL_TIMEOUT, Server

# Tests that are not redis-benchmark's own `-t` tests: the command it sends (with -r, so
# __rand_int__ picks members at random) and the sorted set loaded before it runs.
ZSET_KEY = "bench:zset"
ZSET_LOADED = 1000  # members of ZSET_KEY before ZRANGEBYSCORE runs (scores 0..999)
CUSTOM: dict[str, list[str]] = {
    "zadd": ["ZADD", ZSET_KEY, "__rand_int__", "member:__rand_int__"],
    "zrangebyscore": ["ZRANGEBYSCORE", ZSET_KEY, "100", "109"],  # 10 members each
    # two 100-member sets sharing 50, smallest first as in Redis
    "sinter": ["SINTER", "bench:s1", "bench:s2"],
}
RANDOM_RANGE = "100000"


def bench_args(test: str) -> list[str]:
    """redis-benchmark's arguments selecting `test` (they go last on its command line)."""
    if test in CUSTOM:
        return ["-r", RANDOM_RANGE, *CUSTOM[test]]
    return ["-t", test]


def prepare(srv: Server, test: str) -> None:
    """Data a test reads, loaded after the FLUSHALL that precedes every run."""
    if test == "sinter":
        c = Resp(srv.port, timeout=60)
        try:
            c.call("SADD", "bench:s1", *map(str, range(100)))
            c.call("SADD", "bench:s2", *map(str, range(50, 150)))
        finally:
            c.close()
        return
    if test != "zrangebyscore":
        return
    c = Resp(srv.port, timeout=60)
    try:
        args: list[bytes | str | int] = ["ZADD", ZSET_KEY]
        for i in range(ZSET_LOADED):
            args += [i, b"member:%06d" % i]
        got = c.call(*args)
        if got != ZSET_LOADED:
            raise BenchError(f"{srv.name}: ZADD of {ZSET_LOADED} members -> {got!r}")
    finally:
        c.close()


def run_redis_benchmark(
    bench_cmd: list[str], timeout: float, procs: list[subprocess.Popen[bytes]]
) -> dict[str, float]:
    """Runs redis-benchmark --csv; returns {TEST: rps}."""
    proc = subprocess.Popen(
        bench_cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    procs.append(proc)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        proc.kill()
        proc.communicate(timeout=KILL_TIMEOUT)
        raise BenchError(f"redis-benchmark exceeded {timeout:.0f}s: {' '.join(bench_cmd)}") from exc
    finally:
        if proc.poll() is None:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=KILL_TIMEOUT)
        procs.remove(proc)
    if proc.returncode != 0:
        raise BenchError(
            f"redis-benchmark exited {proc.returncode}: {err.decode(errors='replace')[-500:]}"
        )
    return parse_csv(out.decode(errors="replace"))


def parse_csv(text: str) -> dict[str, float]:
    rows: dict[str, float] = {}
    for row in csv.reader(io.StringIO(text)):
        if len(row) < 2 or row[0] == "test":
            continue
        try:
            rows[row[0].split()[0].upper()] = float(row[1])
        except ValueError:
            continue
    return rows


def verify_counts(srv: Server, tests: list[str], requests: int) -> list[str]:
    """After one redis-benchmark run on a flushed server: did every command take effect?

    Without -r redis-benchmark uses the literal keys key:__rand_int__, counter:__rand_int__,
    mylist and myhash, so INCR must have counted to the number of requests and LPUSH must
    have grown the list by as much.
    """
    problems: list[str] = []
    if "incr" in tests:
        v = srv.call("GET", "counter:__rand_int__")
        if v is None or int(v) < requests:
            problems.append(f"INCR counter is {v!r}, expected {requests}")
    if "lpush" in tests:
        n = srv.call("LLEN", "mylist")
        if n < requests:
            problems.append(f"LLEN mylist is {n}, expected {requests}")
    if "set" in tests and srv.call("EXISTS", "key:__rand_int__") != 1:
        problems.append("SET left no key:__rand_int__")
    if "hset" in tests and srv.call("HLEN", "myhash") != 1:
        problems.append("HSET left no myhash field")
    # random members of 100,000: a few picks repeat (about 1 in 400 of 500 requests)
    if "zadd" in tests and srv.call("ZCARD", ZSET_KEY) < min(requests, 1000) * 9 // 10:
        problems.append(f"ZADD left {srv.call('ZCARD', ZSET_KEY)} members in {ZSET_KEY}")
    if "zrangebyscore" in tests and srv.call("ZCARD", ZSET_KEY) != ZSET_LOADED:
        problems.append(f"{ZSET_KEY} lost members during ZRANGEBYSCORE")
    return problems


def smoke_check(srv: Server, tests: Iterable[str] | None = None) -> None:
    """The commands redis-benchmark sends must give Redis's replies (errors are counted as ops).

    The sorted-set commands are checked only when `tests` (None: all) uses them, so a baseline
    from before sorted sets can still be measured on the other tests."""
    zsets = tests is None or bool({"zadd", "zrangebyscore"} & set(tests))
    c = Resp(srv.port)
    try:
        checks: list[tuple[tuple[str, ...], Any]] = [
            (("FLUSHALL",), "OK"),
            (("SET", "bench:k", "xxx"), "OK"),
            (("GET", "bench:k"), b"xxx"),
            (("INCR", "bench:c"), 1),
            (("LPUSH", "bench:l", "xxx"), 1),
            (("HSET", "bench:h", "f", "xxx"), 1),
        ]
        if zsets:
            checks += [
                (("ZADD", "bench:z", "1", "a", "2.5", "b"), 2),
                (("ZRANGEBYSCORE", "bench:z", "1", "2"), [b"a"]),
            ]
        checks += [(("DBSIZE",), 5 if zsets else 4), (("FLUSHALL",), "OK")]
        for cmd, expected in checks:
            got = c.call(*cmd)
            if got != expected:
                raise BenchError(f"{srv.name}: {' '.join(cmd)} -> {got!r}, expected {expected!r}")
    except RespError as exc:
        raise BenchError(f"{srv.name}: error reply {exc}") from exc
    finally:
        c.close()
