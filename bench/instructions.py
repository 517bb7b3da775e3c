#!/usr/bin/env python3
"""Instructions per request: IronCache from this tree against a baseline tree, under callgrind.

Wall-clock ratios on a shared machine vary by tens of percent; the number of instructions a
request costs does not. This script starts IronCache from --source and from a baseline tree
(--baseline-source DIR, or --baseline-rev REV exported with `git archive`) under
`valgrind --tool=callgrind`, on the same interpreter, with PYTHONHASHSEED=0 and `--hz 1`, and
drives each with redis-benchmark (`-c 1`, the tests and pipeline depths of throughput.py).

For every test it runs a warm-up, then N and 2N requests, each on a flushed keyspace and between
`callgrind_control -z` and `-d`; instructions per request = (I(2N) - I(N)) / N, so connecting,
redis-benchmark's CONFIG GET and closing cancel out. The ratio baseline / current reads like
throughput.py's ratios: below 1.0 means more instructions per request after the change.

    python3 bench/instructions.py --baseline-rev main
    python3 bench/instructions.py --baseline-source /tmp/base/ironcache_src [--rounds 2] [--json]
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchlib.common import REPO, BenchError, log, ratio
from benchlib.lifecycle import kill_all, reported
from benchlib.redisbench import (
    bench_args,
    prepare,
    run_redis_benchmark,
    smoke_check,
    verify_counts,
)
from benchlib.servers import Server, deployed_python, free_port, importable, ironcache_env

DEFAULT_TESTS = "set,get,incr,lpush,hset"
PIPELINES = (16, 1)  # throughput.py's two configurations, here with one client
NAMES = ("baseline", "current")
START_TIMEOUT = 180.0  # Python starts ~50x slower under valgrind; more on a busy machine
STOP_TIMEOUT = 60.0
FLAG_BELOW = 0.97  # issue 19: no ratio lower by more than 3%


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Instructions per request, baseline vs current.")
    base = p.add_mutually_exclusive_group(required=True)
    base.add_argument(
        "--baseline-source",
        metavar="DIR",
        help="the baseline's directory holding the ironcache package (or a tree containing "
        "ironcache_src/)",
    )
    base.add_argument(
        "--baseline-rev",
        metavar="REV",
        help="export `git archive REV ironcache_src` into a temporary directory as the baseline",
    )
    p.add_argument(
        "--source",
        default=str(REPO / "ironcache_src"),
        help="the current tree (default: ironcache_src)",
    )
    p.add_argument(
        "--python",
        default=None,
        help="interpreter for both (default: .venv-bench, as throughput.py chooses it)",
    )
    p.add_argument("--tests", default=DEFAULT_TESTS, help=f"default: {DEFAULT_TESTS}")
    p.add_argument(
        "-n",
        "--requests",
        type=int,
        default=16_000,
        help="N at -P 16 (a multiple of 16; default %(default)s)",
    )
    p.add_argument(
        "--requests-single", type=int, default=2_000, help="N at -P 1 (default %(default)s)"
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every test this many times in the same servers and show the spread",
    )
    p.add_argument(
        "--ironcache-directives",
        default="--save-on-shutdown no --hz 1",
        help="directives added to 'ironcache serve' (default: %(default)r; hz 1 keeps the "
        "periodic work, which depends on wall-clock time, out of the counts)",
    )
    p.add_argument(
        "--functions",
        type=int,
        default=10,
        metavar="K",
        help="under a flagged test, the K C functions whose own instructions per request "
        "changed most (default %(default)s; 0: none)",
    )
    p.add_argument(
        "--functions-for",
        choices=("flagged", "all"),
        default="flagged",
        help="which tests get that list (default: those with a ratio under 0.97)",
    )
    p.add_argument(
        "--port",
        type=int,
        default=0,
        help="baseline's port; the current tree's is the next one (default: two free ports)",
    )
    p.add_argument("--valgrind", default="valgrind")
    p.add_argument("--redis-benchmark", default="redis-benchmark")
    p.add_argument("--timeout", type=float, default=300.0, help="limit per redis-benchmark run")
    p.add_argument("--out-dir", default=None, help="default: bench/out/instructions-<time>")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    args = p.parse_args(argv)
    if args.requests < 16 or args.requests % 16:
        p.error("--requests must be a positive multiple of 16")
    if args.requests_single < 1 or args.rounds < 1:
        p.error("--requests-single and --rounds must be at least 1")
    return args


def export_rev(rev: str, dest: Path) -> Path:
    """`git archive REV ironcache_src` unpacked under dest; returns dest/ironcache_src."""
    tar = dest / "src.tar"
    for cmd in (
        ["git", "-C", str(REPO), "archive", "-o", str(tar), rev, "ironcache_src"],
        ["tar", "-x", "-f", str(tar), "-C", str(dest)],
    ):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if r.returncode != 0:
            raise BenchError(f"{shlex.join(cmd)}: {r.stderr.strip()}")
    tar.unlink()
    return dest / "ironcache_src"


def package_dir(path: str) -> Path:
    """The directory to put on PYTHONPATH: `path`, or `path`/ironcache_src (an export's root)."""
    p = Path(path).resolve()
    for cand in (p, p / "ironcache_src"):
        if (cand / "ironcache" / "__main__.py").exists():
            return cand
    raise BenchError(f"no ironcache package in {p} or {p / 'ironcache_src'}")


@dataclass
class CallgrindServer(Server):
    """IronCache under callgrind; zero() and dump() bracket a workload via callgrind_control."""

    out_file: str = ""  # valgrind's --callgrind-out-file: dump k is written to out_file.k
    dumps: int = 0

    def zero(self) -> None:
        self._control("-z")

    def dump(self, keep_as: Path) -> int:
        """Instructions since the last zero or dump (`summary:`); the file is kept as keep_as."""
        self._control("-d")
        self.dumps += 1
        path = Path(f"{self.out_file}.{self.dumps}")
        deadline = time.monotonic() + 30
        while "\ntotals:" not in (text := path.read_text() if path.exists() else ""):
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name}: no complete callgrind dump at {path}")
            time.sleep(0.1)
        path.rename(keep_as)
        for line in text.splitlines():
            if line.startswith("summary:"):
                return int(line.split()[1])
        raise BenchError(f"{self.name}: no summary line in {keep_as}")

    def _control(self, flag: str) -> None:
        cmd = ["callgrind_control", flag, str(self.pid)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        if r.returncode != 0 or "OK" not in r.stdout:
            raise BenchError(f"{shlex.join(cmd)} failed: {(r.stdout + r.stderr).strip()}")


def run_bench(
    args: argparse.Namespace, srv: Server, test: str, pipeline: int, n: int, procs: list[Any]
) -> None:
    prepare(srv, test)  # what a test reads (throughput.py's custom tests: ZRANGEBYSCORE...)
    cmd = [
        args.redis_benchmark, "-h", "127.0.0.1", "-p", str(srv.port),
        "-c", "1", "-P", str(pipeline), "-n", str(n), "--csv", *bench_args(test),
    ]  # fmt: skip
    run_redis_benchmark(cmd, args.timeout, procs)
    srv.check_alive(f"after redis-benchmark {test} -P {pipeline} -n {n}")
    if problems := verify_counts(srv, [test], n):
        raise BenchError(f"{srv.name} -P {pipeline}: {'; '.join(problems)}")


def measure(
    args: argparse.Namespace,
    srv: CallgrindServer,
    test: str,
    pipeline: int,
    rnd: int,
    out_dir: Path,
    procs: list[Any],
) -> dict[str, float]:
    """Warm-up, then N and 2N requests counted apart: instructions per request and fixed cost."""
    n = args.requests if pipeline > 1 else args.requests_single
    warm = max(pipeline, (n // 4) // pipeline * pipeline)
    srv.call("FLUSHALL")
    run_bench(args, srv, test, pipeline, warm, procs)  # specialise the bytecode, fill caches
    counts = []
    for k in (n, 2 * n):
        srv.call("FLUSHALL")
        srv.zero()
        run_bench(args, srv, test, pipeline, k, procs)
        counts.append(srv.dump(dump_path(out_dir, srv.name, test, pipeline, k, rnd)))
    per_request = (counts[1] - counts[0]) / n
    return {"per_request": per_request, "fixed": counts[0] - per_request * n}


def dump_path(out_dir: Path, name: str, test: str, pipeline: int, n: int, rnd: int) -> Path:
    return out_dir / f"{name}-{test}-P{pipeline}-n{n}-r{rnd + 1}.callgrind"


def self_costs(path: Path) -> collections.Counter[str]:
    """Instructions per function, its own (callees excluded), in one callgrind dump.

    callgrind_annotate 3.19 puts all the cost of these mid-run dumps on the outermost frames,
    so this reads the format itself: `fn=` names the function the cost lines below it belong
    to, `(id)` stands for a name given once (fn= and cfn= share the table), and the line after
    `calls=` is a callee's inclusive cost. Recursion levels (`name'2`) are merged.
    """
    names: dict[str, str] = {}
    cost: collections.Counter[str] = collections.Counter()
    fn = ""
    after_calls = False
    for line in path.read_text(errors="replace").splitlines():
        if after_calls:
            after_calls = False
        elif line.startswith(("fn=", "cfn=")):
            ref = line.split("=", 1)[1]
            if m := re.match(r"\((\d+)\)(?: (.*))?$", ref):
                ref = names.setdefault(m.group(1), m.group(2) or m.group(1))
            if line.startswith("fn="):
                fn = re.sub(r"'\d+$", "", ref)
        elif line.startswith("calls="):
            after_calls = True
        elif line[:1].isdigit() or line[:1] in "+-*":
            fields = line.split()
            if len(fields) > 1 and fn:
                cost[fn] += int(fields[1])
    return cost


def function_changes(
    out_dir: Path, test: str, pipeline: int, n: int, rnd: int, top: int
) -> list[dict[str, Any]]:
    """The `top` functions whose own instructions per request changed most, from the dumps."""
    per: dict[str, dict[str, float]] = {}
    for name in NAMES:
        one = self_costs(dump_path(out_dir, name, test, pipeline, n, rnd))
        two = self_costs(dump_path(out_dir, name, test, pipeline, 2 * n, rnd))
        per[name] = {f: (two[f] - one[f]) / n for f in one.keys() | two.keys()}
    b, c = per["baseline"], per["current"]
    rows = [
        {"function": f, "baseline": b.get(f, 0.0), "current": c.get(f, 0.0)}
        for f in b.keys() | c.keys()
    ]
    rows.sort(key=lambda r: -abs(r["current"] - r["baseline"]))
    return rows[:top]


def start(
    args: argparse.Namespace, name: str, python: str, source: Path, out: Path
) -> CallgrindServer:
    port = args.port + NAMES.index(name) if args.port else free_port()
    out_file = f"{out / name}.callgrind"
    cmd = [
        args.valgrind, "--tool=callgrind", f"--callgrind-out-file={out_file}",
        python, "-m", "ironcache", "serve", "--port", str(port), "--bind", "127.0.0.1",
        *shlex.split(args.ironcache_directives),
    ]  # fmt: skip
    env = ironcache_env(source)
    env["PYTHONHASHSEED"] = "0"
    srv = CallgrindServer(name, cmd, port, out / f"{name}.log", env, out_file=out_file)
    srv.start()
    return srv


def render(report: dict[str, Any]) -> str:
    b, c = report["baseline"], report["current"]
    out = [
        f"instructions per request (callgrind), python {report['python_version']} "
        f"({report['python']}), uvloop {report['uvloop']}, hiredis {report['hiredis']}",
        f"baseline: {b['source']}" + (f" (git {b['rev']})" if b.get("rev") else ""),
        f"current:  {c['source']}",
        f"redis-benchmark -c 1; N and 2N requests after a warm-up; rounds: {report['rounds']}",
        "",
        f"{'test':<7}{'pipeline':>9}{'N':>7}{'baseline':>12}{'current':>12}{'ratio':>8}"
        f"{'change':>9}{'spread':>8}",
    ]
    for r in report["results"]:
        flag = "  MORE" if r["ratio"] < FLAG_BELOW else ""
        out.append(
            f"{r['test']:<7}{r['pipeline']:>9}{r['requests']:>7}"
            f"{r['baseline']:>12,.0f}{r['current']:>12,.0f}{r['ratio']:>8.3f}"
            f"{r['change'] * 100:>+8.2f}%{r['spread'] * 100:>7.2f}%{flag}"
        )
    worst = min(report["results"], key=lambda r: r["ratio"])
    out += [
        "ratio = baseline / current instructions per request (below 1: the change costs more);",
        "change = current vs baseline; spread = (max - min) / min over rounds, either tree;",
        f"MORE: ratio under {FLAG_BELOW} (lower by more than {(1 - FLAG_BELOW) * 100:.0f}%). "
        f"Lowest ratio: {worst['ratio']:.3f} ({worst['test']} -P {worst['pipeline']}).",
        f"callgrind dumps and report.json: {report['out_dir']}",
    ]
    for r in report["results"]:
        if r.get("functions"):
            out += [
                "",
                f"{r['test']} -P {r['pipeline']}: C functions whose own instructions per request"
                " changed most (last round; Python code is all _PyEval_EvalFrameDefault):",
                f"{'baseline':>12}{'current':>12}{'change':>10}  function",
            ]
            out += [
                f"{f['baseline']:>12,.1f}{f['current']:>12,.1f}"
                f"{f['current'] - f['baseline']:>+10,.1f}  {f['function']}"
                for f in r["functions"]
            ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tests = [t.strip().lower() for t in args.tests.split(",") if t.strip()]
    for tool in (args.valgrind, "callgrind_control", args.redis_benchmark):
        if shutil.which(tool) is None:
            log(f"{tool} not found (apt-get install valgrind redis-tools)")
            return 2
    python = (shutil.which(args.python) or args.python) if args.python else deployed_python()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_dir = Path(args.out_dir or REPO / "bench" / "out" / f"instructions-{stamp}")
    out_dir.mkdir(parents=True, exist_ok=True)

    servers: list[CallgrindServer] = []
    procs: list[Any] = []
    tmp = Path(tempfile.mkdtemp(prefix="ironcache-instructions-"))
    report: dict[str, Any] = {"python": python, "rounds": args.rounds, "out_dir": str(out_dir)}

    def stop() -> None:
        kill_all(procs)
        for s in servers:
            s.stop(timeout=STOP_TIMEOUT)
        shutil.rmtree(tmp, ignore_errors=True)

    with reported(report, stop) as outcome:
        base = export_rev(args.baseline_rev, tmp) if args.baseline_rev else args.baseline_source
        sources = {"baseline": package_dir(str(base)), "current": package_dir(args.source)}
        for name in NAMES:
            report[name] = {"source": str(sources[name]), "rev": args.baseline_rev}
        report["current"].pop("rev")
        report["python_version"] = subprocess.run(
            [python, "-c", "import platform; print(platform.python_version())"],
            capture_output=True, text=True, timeout=30, check=False,
        ).stdout.strip()  # fmt: skip
        for lib in ("uvloop", "hiredis"):
            report[lib] = "yes" if importable(python, lib) else "no"
        servers = [start(args, name, python, sources[name], out_dir) for name in NAMES]
        for s in servers:
            s.wait_ready(timeout=START_TIMEOUT)
            smoke_check(s, tests)
            for lib in ("uvloop", "hiredis"):
                if report[lib] == "yes" and lib not in s.loaded_libraries():
                    raise BenchError(f"{s.name}: {lib} is importable but not loaded")
            log(f"{s.name} (pid {s.pid}) answers on port {s.port}")
        per: dict[tuple[str, int, str], list[float]] = {}
        for rnd in range(args.rounds):
            for pipeline in PIPELINES:
                for test in tests:
                    for s in servers:
                        got = measure(args, s, test, pipeline, rnd, out_dir, procs)
                        per.setdefault((test, pipeline, s.name), []).append(got["per_request"])
                        log(
                            f"round {rnd + 1}: {s.name:<8} {test:<5} -P {pipeline:<2}"
                            f" {got['per_request']:,.0f} instructions/request"
                            f" (+{got['fixed']:,.0f} per run)"
                        )
        report["results"] = []
        for pipeline in PIPELINES:
            for test in tests:
                b, c = per[(test, pipeline, "baseline")], per[(test, pipeline, "current")]
                bm, cm = sum(b) / len(b), sum(c) / len(c)
                report["results"].append(
                    {
                        "test": test.upper(),
                        "pipeline": pipeline,
                        "requests": args.requests if pipeline > 1 else args.requests_single,
                        "baseline": bm,
                        "current": cm,
                        "ratio": ratio(bm, cm),
                        "change": cm / bm - 1,
                        "spread": max(max(v) / min(v) - 1 for v in (b, c)),
                        "rounds": {"baseline": b, "current": c},
                    }
                )
                row = report["results"][-1]
                if args.functions and (args.functions_for == "all" or row["ratio"] < FLAG_BELOW):
                    row["functions"] = function_changes(
                        out_dir, test, pipeline, row["requests"], args.rounds - 1, args.functions
                    )
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    if args.json:
        print(json.dumps(report, indent=2))
    elif report.get("results"):
        print(render(report))
    return outcome.status


if __name__ == "__main__":
    sys.exit(main())
