#!/usr/bin/env python3
"""Throughput and memory benchmark: IronCache against Debian's redis-server.

One run starts both servers, pins each server to one core and redis-benchmark to
another (``taskset -c``), runs redis-benchmark with identical parameters against
both (``-t set,get,incr,lpush,hset,sadd`` plus ``SINTER`` of two sets, ``-c 50 -P 16`` and
``-c 1 -P 1``, ``--csv``), then the ``--tls-tests`` over TLS (both servers' ``tls-port``,
``redis-benchmark --tls``, same parameters),
loads a fixed set of keys to compare memory, and prints a table of ops/s, the
ratio IronCache/Redis and whether the targets are met.

It measures and reports; it does not judge: the exit status is 0 whenever the
measurement ran (1 when a server could not be started or died, 2 for usage).

    python3 bench/throughput.py [--python /path/to/python] [--quick] [--json]
                                [--profile py-spy|cprofile] [--source DIR]

This file is the run itself (options, servers, rounds, results); the parts shared with
other benchmarks are in bench/benchlib/, the text report in bench/throughput_report.py.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchlib.common import REPO, BenchError, geomean, log, ratio
from benchlib.cpu import CpuMeter, loadavg, process_cpu_seconds, wait_for_quiet_machine
from benchlib.lifecycle import kill_all, reported, unwind_on_signals
from benchlib.memory import measure_memory, measure_zset_memory
from benchlib.profiling import PySpy, summarize_collapsed, summarize_cprofile
from benchlib.redisbench import (
    bench_args,
    prepare,
    run_redis_benchmark,
    smoke_check,
    verify_counts,
)
from benchlib.resp import parse_info
from benchlib.servers import (
    Server,
    deployed_python,
    drop_directive,
    free_port,
    importable,
    ironcache_env,
)
from benchlib.tlscerts import self_signed, server_args
from throughput_report import render_table

DEFAULT_TESTS = "set,get,incr,lpush,hset,sadd,sinter,zadd,zrangebyscore"
DEFAULT_TLS_TESTS = "set,get"
# (label, clients, pipeline, tls); the request count comes from the options.
CONFIGS = (
    ("pipelined", 50, 16, False),
    ("single", 1, 1, False),
    ("tls-pipelined", 50, 16, True),
    ("tls-single", 1, 1, True),
)
# configuration -> minimum IronCache/Redis ratio (issue 3); the TLS rows report a ratio only
TARGETS = {"pipelined": 0.5, "single": 0.85}
NAMES = ("IronCache", "Redis")

# samples[(config label, server)][TEST] -> ops/s of each round; the best round counts
# (other engineers share this machine: their load only ever lowers a figure).
Samples = dict[tuple[str, str], dict[str, list[float]]]
# per[(config label, server, TEST)] -> one figure per run (background cores, server CPU us/request)
PerRun = dict[tuple[str, str, str], list[float]]


# ---------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Compare IronCache with redis-server using redis-benchmark.",
    )
    p.add_argument(
        "--python",
        default=None,
        help="interpreter that runs IronCache (default: .venv-bench, the host's python3 with "
        "uvloop and hiredis as the role deploys it, made by tests/setup/bench-venv.sh; this "
        "one when that cannot be made)",
    )
    p.add_argument(
        "--source",
        default=str(REPO / "ironcache_src"),
        help="directory put on PYTHONPATH for IronCache (default: ironcache_src)",
    )
    p.add_argument("--redis-server", default="redis-server")
    p.add_argument("--redis-benchmark", default="redis-benchmark")
    p.add_argument("--tests", default=DEFAULT_TESTS, help=f"default: {DEFAULT_TESTS}")
    p.add_argument(
        "--tls-tests",
        default=DEFAULT_TLS_TESTS,
        help=f"tests run again over TLS, both servers' tls-port and redis-benchmark --tls "
        f"(default: {DEFAULT_TLS_TESTS}; empty: none)",
    )
    p.add_argument(
        "-n",
        "--requests",
        type=int,
        default=None,
        help="requests per test at -c 50 -P 16 (default 300000, --quick 100000)",
    )
    p.add_argument(
        "--requests-single",
        type=int,
        default=None,
        help="requests per test at -c 1 -P 1 (default 20000, --quick 5000)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="repeat every configuration, alternating which server goes first; "
        "the best round of each test counts (default 2, --quick 1)",
    )
    p.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run servers and redis-benchmark under nice -n N (e.g. -5 on a busy machine)",
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before measuring, wait up to SECONDS for other processes to use < 0.25 cores",
    )
    p.add_argument("--quick", action="store_true", help="small request counts (a smoke run)")
    p.add_argument(
        "--memory-keys",
        type=int,
        default=100_000,
        help="keys loaded for the memory comparison (0 skips it)",
    )
    p.add_argument("--value-size", type=int, default=32)
    p.add_argument(
        "--zset-members",
        type=int,
        default=100_000,
        help="members of the sorted set loaded for the memory comparison (0 skips it)",
    )
    p.add_argument("--server-cpu", default=None, help="cpu list for both servers (default: 1st)")
    p.add_argument("--client-cpu", default=None, help="cpu list for redis-benchmark (default: 2nd)")
    p.add_argument(
        "--timeout",
        type=float,
        default=180.0,
        help="limit for one redis-benchmark invocation, seconds",
    )
    p.add_argument(
        "--profile",
        choices=("py-spy", "cprofile"),
        default=None,
        help="profile IronCache (figures measured under a profiler are slower)",
    )
    p.add_argument("--py-spy", default=None, help="py-spy executable (default: from PATH)")
    p.add_argument(
        "--out-dir",
        default=None,
        help="logs, profiles and the JSON report (default: bench/out/throughput-<time>)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.add_argument(
        "--against-redis",
        action="store_true",
        help="harness check: a second redis-server stands in for IronCache",
    )
    p.add_argument(
        "--baseline-source",
        default=None,
        metavar="DIR",
        help="a second IronCache, from DIR (e.g. an export of main), stands in for Redis: "
        "the ratios compare --source with DIR in the same run",
    )
    p.add_argument(
        "--ironcache-directives",
        default="--save-on-shutdown no",
        help="directives added to 'ironcache serve' after --port/--bind (default: %(default)r)",
    )
    p.add_argument("--ironcache-port", type=int, default=0)
    p.add_argument("--redis-port", type=int, default=0)
    args = p.parse_args(argv)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 2
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    if args.baseline_source and args.against_redis:
        p.error("--baseline-source and --against-redis both replace a server: choose one")
    if args.requests is None:
        args.requests = 100_000 if args.quick else 300_000
    if args.requests_single is None:
        args.requests_single = 5_000 if args.quick else 20_000
    if args.quick and args.memory_keys == 100_000:
        args.memory_keys = 20_000
    return args


def choose_cpus(args: argparse.Namespace) -> tuple[str, str, int]:
    cpus = sorted(os.sched_getaffinity(0))
    server = args.server_cpu or str(cpus[0])
    client = args.client_cpu or str(cpus[1] if len(cpus) > 1 else cpus[0])
    return server, client, len(cpus)


# ---------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------


def redis_command(redis_server: str, port: int) -> list[str]:
    return [
        redis_server,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]


def ironcache_command(
    args: argparse.Namespace, python: str, port: int, out_dir: Path, source: str, profile: bool
) -> tuple[list[str], dict[str, str] | None]:
    """The command line and environment of IronCache (a redis-server with --against-redis)."""
    if args.against_redis:
        return redis_command(args.redis_server, port), None
    env = ironcache_env(source)
    prefix = [python]
    if profile and args.profile == "cprofile":
        prefix = [python, "-m", "cProfile", "-o", str(out_dir / "ironcache.cprofile")]
    cmd = [
        *prefix,
        "-m",
        "ironcache",
        "serve",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        *shlex.split(args.ironcache_directives),
    ]
    return cmd, env


def start_servers(servers: list[Server], ic: Server, warnings: list[str]) -> None:
    for s in servers:
        s.start()
    for s in servers:
        try:
            s.wait_ready()
        except BenchError:
            # A server from before `save-on-shutdown` existed refuses the directive:
            # measure it all the same, without it, and say so.
            if s is not ic or "unknown directive 'save-on-shutdown'" not in s.log_tail():
                raise
            s.cmd = drop_directive(s.cmd, "--save-on-shutdown")
            warnings.append("IronCache does not know save-on-shutdown: started without it")
            log(warnings[-1])
            s.start()
            s.wait_ready()
        s.info = parse_info(s.call("INFO", "server"))
        log(f"{s.name} pid {s.pid} answers PING on port {s.port}")


def describe_ironcache(
    report: dict[str, Any], ic: Server, python: str, against_redis: bool, warnings: list[str]
) -> None:
    """Version, interpreter and accelerators of the IronCache that runs, into the report."""
    if against_redis:
        report["ironcache"].update(
            version="(redis " + ic.info.get("redis_version", "?") + " stand-in)",
            python_version="-",
            uvloop=False,
            hiredis=False,
        )
        return
    report["ironcache"]["version"] = ic.info.get("ironcache_version", "?")
    report["ironcache"]["python_version"] = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    ).stdout.strip()
    report["ironcache"]["multiplexing_api"] = ic.info.get("multiplexing_api")
    loaded = ic.loaded_libraries()
    report["ironcache"]["loaded_accelerators"] = loaded
    for lib in ("uvloop", "hiredis"):
        if report["ironcache"][lib] and lib not in loaded:
            warnings.append(f"{lib} is importable in {python} but IronCache did not load it")
    if ic.info.get("process_id") not in (None, str(ic.pid)):
        warnings.append(f"INFO process_id {ic.info.get('process_id')} is not the pid {ic.pid}")


def stop_all(
    children: list[Any], servers: list[Server], report: dict[str, Any], warnings: list[str]
) -> None:
    kill_all(children)
    for s in servers:
        rc = s.stop()
        if s.proc is not None:
            report[s.name.lower()]["exit_status"] = rc
            if rc not in (0, None):
                warnings.append(f"{s.name} exited with status {rc} after SIGTERM")


# ---------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------


def configs(tests: list[str], tls_tests: list[str]) -> list[tuple[str, int, int, bool, list[str]]]:
    """The configurations to run, each with its tests (the TLS ones only with --tls-tests)."""
    return [(*c, tls_tests if c[3] else tests) for c in CONFIGS if not c[3] or tls_tests]


def measure(
    args: argparse.Namespace,
    tests: list[str],
    tls_tests: list[str],
    tls: dict[str, Any],
    ic: Server,
    rd: Server,
    client_cpu: str,
    nice: list[str],
    out_dir: Path,
    children: list[Any],
    warnings: list[str],
    profile_files: list[str],
) -> tuple[Samples, PerRun, PerRun]:
    """Every round of every configuration: ops/s, other processes' CPU, server CPU per request.

    One redis-benchmark invocation per test and server, the two servers back to back (so both
    see the same background load), the order swapped from test to test and from round to round.
    """
    samples: Samples = collections.defaultdict(lambda: collections.defaultdict(list))
    if args.wait_quiet > 0:
        wait_for_quiet_machine(args.wait_quiet, [ic.pid, rd.pid])
    # other processes' CPU (cores) during each run
    foreign: PerRun = collections.defaultdict(list)
    # server CPU microseconds per request, each run: what a request costs the server,
    # whatever else runs on the machine.
    server_us: PerRun = collections.defaultdict(list)
    for rnd in range(args.rounds):
        for label, clients, pipeline, over_tls, run_tests in configs(tests, tls_tests):
            n = args.requests if pipeline > 1 else args.requests_single
            log(
                f"round {rnd + 1}/{args.rounds}: -c {clients} -P {pipeline} -n {n}"
                f"{' over TLS' if over_tls else ''}  (load {loadavg()})"
            )
            spy = None
            if args.profile == "py-spy" and rnd == 0 and not args.against_redis:
                exe = args.py_spy or shutil.which("py-spy")
                if exe is None:
                    warnings.append("py-spy not found: no profile")
                else:
                    pf = out_dir / f"ironcache-{label}.pyspy.txt"
                    spy = PySpy(exe, ic.pid, pf, client_cpu, children)
                    profile_files.append(str(pf))
            try:
                for i, test in enumerate(run_tests):
                    order = [rd, ic] if (rnd + i) % 2 else [ic, rd]
                    for s in order:
                        s.call("FLUSHALL")
                        prepare(s, test)
                        where = ["-p", str(s.port)]
                        if over_tls:  # the same server, its TLS port; the certificate trusted
                            where = ["-p", str(tls["ports"][s.name]), "--tls",
                                     "--cacert", str(tls["cert"])]  # fmt: skip
                        cmd = [
                            *nice, "taskset", "-c", client_cpu, args.redis_benchmark,
                            "-h", "127.0.0.1", *where,
                            "-c", str(clients), "-P", str(pipeline), "-n", str(n), "--csv",
                            *bench_args(test),
                        ]  # fmt: skip
                        meter = CpuMeter([ic.pid, rd.pid])
                        cpu0 = process_cpu_seconds(s.pid)
                        got = run_redis_benchmark(cmd, args.timeout, children)
                        cpu1 = process_cpu_seconds(s.pid)
                        foreign[(label, s.name, test.upper())].append(meter.foreign_cores())
                        if cpu0 is not None and cpu1 is not None:
                            server_us[(label, s.name, test.upper())].append(
                                (cpu1 - cpu0) * 1e6 / n
                            )
                        if test.upper() not in got:
                            raise BenchError(f"{s.name}: no {test.upper()} row from {cmd}")
                        for t, value in got.items():
                            samples[(label, s.name)][t].append(value)
                        s.check_alive(f"after redis-benchmark -t {test} -P {pipeline}")
                        for pr in verify_counts(s, [test], n):
                            warnings.append(f"{s.name} -P {pipeline}: {pr}")
            finally:
                if spy is not None:
                    spy.stop()
    return samples, foreign, server_us


def summarise(
    args: argparse.Namespace,
    tests: list[str],
    tls_tests: list[str],
    samples: Samples,
    foreign: PerRun,
    server_us: PerRun,
    report: dict[str, Any],
) -> None:
    """The best round of each test, its ratio and CPU figures, and the targets, into the report."""
    for label, clients, pipeline, over_tls, run_tests in configs(tests, tls_tests):
        n = args.requests if pipeline > 1 else args.requests_single
        rps = {name: {t: max(v) for t, v in samples[(label, name)].items()} for name in NAMES}
        ratios = []
        for t in run_tests:
            key = t.upper()
            a = rps["IronCache"].get(key)
            b = rps["Redis"].get(key)
            r = ratio(a, b)
            if r is not None:
                ratios.append((r, key))
            us = {name: min(server_us.get((label, name, key), []) or [0.0]) for name in NAMES}
            ic_us, rd_us = us["IronCache"] or None, us["Redis"] or None
            # other processes' CPU during the two runs that count (the best of each)
            bg = []
            for name in NAMES:
                runs = samples[(label, name)].get(key, [])
                fg = foreign.get((label, name, key), [])
                if runs and len(fg) == len(runs):
                    bg.append(fg[runs.index(max(runs))])
            report["results"].append(
                {
                    "test": key,
                    "tls": over_tls,
                    "pipeline": pipeline,
                    "clients": clients,
                    "requests": n,
                    "ironcache_rps": a or 0.0,
                    "redis_rps": b or 0.0,
                    "ratio": r,
                    "target": TARGETS.get(label),
                    "ironcache_rounds": samples[(label, "IronCache")].get(key, []),
                    "redis_rounds": samples[(label, "Redis")].get(key, []),
                    "background_cores": max(bg) if bg else None,
                    "ironcache_cpu_us_per_request": ic_us,
                    "redis_cpu_us_per_request": rd_us,
                    "cpu_capacity_ratio": ratio(rd_us, ic_us),
                    "cpu_us_rounds": {
                        name: server_us.get((label, name, key), []) for name in NAMES
                    },
                    "background_cores_rounds": {
                        name: foreign.get((label, name, key), []) for name in NAMES
                    },
                }
            )
        if ratios and label in TARGETS:
            lo = min(ratios)
            report["targets"].append(
                {
                    "pipeline": pipeline,
                    "clients": clients,
                    "target": TARGETS[label],
                    "min_ratio": lo[0],
                    "min_test": lo[1],
                    "geomean_ratio": geomean([r for r, _ in ratios]),
                    "met": lo[0] >= TARGETS[label],
                }
            )


def write_profiles(
    args: argparse.Namespace, out_dir: Path, profile_files: list[str], report: dict[str, Any]
) -> None:
    if args.profile == "cprofile" and not args.against_redis:
        prof = out_dir / "ironcache.cprofile"
        summary = out_dir / "ironcache.cprofile.txt"
        summary.write_text(summarize_cprofile(prof))
        report["profile"] = {"kind": "cprofile", "files": [str(prof), str(summary)]}
    elif args.profile == "py-spy":
        summaries = []
        for pf in profile_files:
            summary = Path(pf.removesuffix(".txt") + "-summary.txt")
            summary.write_text(summarize_collapsed(Path(pf)))
            summaries.append(str(summary))
        report["profile"] = {"kind": "py-spy", "files": profile_files + summaries}


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tests = [t.strip().lower() for t in args.tests.split(",") if t.strip()]
    tls_tests = [t.strip().lower() for t in args.tls_tests.split(",") if t.strip()]
    for tool in (args.redis_server, args.redis_benchmark, "taskset"):
        if shutil.which(tool) is None:
            log(f"{tool} not found (apt-get install redis-server redis-tools util-linux)")
            return 2
    python = (shutil.which(args.python) or args.python) if args.python else deployed_python()
    server_cpu, client_cpu, ncpu = choose_cpus(args)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_dir = Path(args.out_dir or REPO / "bench" / "out" / f"throughput-{stamp}")
    out_dir.mkdir(parents=True, exist_ok=True)
    warnings: list[str] = []
    if server_cpu == client_cpu:
        warnings.append("servers and redis-benchmark share a cpu: figures are not comparable")

    unwind_on_signals()  # Ctrl-C / SIGTERM / SIGHUP: unwind through the finally below

    ic_port = args.ironcache_port or free_port()
    rd_port = args.redis_port or free_port()
    while rd_port == ic_port:
        rd_port = free_port()

    # TLS: each server gets a tls-port beside its plain one (setup and checks stay plain).
    tls: dict[str, Any] = {"ports": {}}
    if tls_tests:
        tls["cert"], tls["key"] = self_signed(out_dir)
        for name in NAMES:
            port = free_port()
            while port in (ic_port, rd_port, *tls["ports"].values()):
                port = free_port()
            tls["ports"][name] = port

    has_uvloop = importable(python, "uvloop")
    has_hiredis = importable(python, "hiredis")
    ic_cmd, ic_env = ironcache_command(args, python, ic_port, out_dir, args.source, True)
    rd_cmd, rd_env = redis_command(args.redis_server, rd_port), None
    if args.baseline_source:
        rd_cmd, rd_env = ironcache_command(
            args, python, rd_port, out_dir, args.baseline_source, False
        )
    if tls_tests:
        ic_cmd += server_args(tls["ports"]["IronCache"], tls["cert"], tls["key"])
        rd_cmd += server_args(tls["ports"]["Redis"], tls["cert"], tls["key"])
    nice = ["nice", "-n", str(args.nice)] if args.nice else []
    ic = Server(
        "IronCache",
        [*nice, "taskset", "-c", server_cpu, *ic_cmd],
        ic_port,
        out_dir / "ironcache.log",
        ic_env,
    )
    rd = Server(
        "Redis",
        [*nice, "taskset", "-c", server_cpu, *rd_cmd],
        rd_port,
        out_dir / "redis.log",
        rd_env,
    )
    servers = [ic, rd]
    children: list[Any] = []
    report: dict[str, Any] = {
        "machine": {
            "cpus": ncpu,
            "server_cpu": server_cpu,
            "client_cpu": client_cpu,
            "load_before": loadavg(),
            "kernel": platform.release(),
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
        "params": {
            "tests": tests,
            "requests_pipelined": args.requests,
            "requests_single": args.requests_single,
            "configs": [
                {"clients": c, "pipeline": p, "tls": t}
                for _, c, p, t, _ in configs(tests, tls_tests)
            ],
            "tls_tests": tls_tests,
            "quick": args.quick,
            "rounds": args.rounds,
            "nice": args.nice,
        },
        "ironcache": {"python": python, "uvloop": has_uvloop, "hiredis": has_hiredis},
        "redis": {},
        "results": [],
        "targets": [],
        "warnings": warnings,
        "out_dir": str(out_dir),
    }
    profile_files: list[str] = []

    def stop() -> None:
        stop_all(children, servers, report, warnings)

    with reported(report, stop) as outcome:
        start_servers(servers, ic, warnings)
        describe_ironcache(report, ic, python, args.against_redis, warnings)
        report["redis"]["version"] = rd.info.get("redis_version", "?")
        report["redis"]["label"] = "Redis"
        if args.baseline_source:
            report["redis"]["version"] = rd.info.get("ironcache_version", "?")
            report["redis"]["label"] = f"IronCache from {args.baseline_source} (the Redis columns)"
        for s in servers:
            smoke_check(s)

        if args.memory_keys > 0:
            log(f"memory: loading {args.memory_keys} keys into each server")
            report["memory"] = {
                "ironcache": measure_memory(ic, args.memory_keys, args.value_size),
                "redis": measure_memory(rd, args.memory_keys, args.value_size),
            }
            if args.zset_members > 0:
                log(f"memory: one sorted set of {args.zset_members} members in each server")
                report["memory"]["zset"] = {
                    "ironcache": measure_zset_memory(ic, args.zset_members),
                    "redis": measure_zset_memory(rd, args.zset_members),
                }
            for s in servers:
                s.check_alive("after the memory load")

        measured = measure(
            args, tests, tls_tests, tls, ic, rd, client_cpu, nice, out_dir, children, warnings,
            profile_files,
        )
        summarise(args, tests, tls_tests, *measured, report)
    report["machine"]["load_after"] = loadavg()
    write_profiles(args, out_dir, profile_files, report)

    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    if args.json:
        print(json.dumps(report, indent=2))
    elif report["results"]:
        print(render_table(report))
    if report.get("error"):
        print("benchmark did not complete (see above)", file=sys.stderr)
    return outcome.status


if __name__ == "__main__":
    sys.exit(main())
