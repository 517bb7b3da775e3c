"""`make fuzz`: each atheris target for a fixed number of inputs (fixed seed), then the
differential run; a summary; exit 1 on a new crash, stall or unknown difference.

Reproducible: libFuzzer runs `-runs=N -seed=S` from a fresh copy of the committed corpus, so a
run does the same inputs on every machine (`-max_total_time` only caps a very slow machine).
What a target finds is saved under OUT/<target>/artifacts/ (crash-*, timeout-* for a stall,
oom-*) for triage; OUT defaults to tests/output/fuzz/ (git-ignored). Replay one with
`python fuzz/fuzz_parser.py ARTIFACT`.

  python fuzz/run.py [--scale 1.0] [--seed 1] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent
ROOT = SRC.parent

# inputs per target at --scale 1: about 45 s each on one core of the CI machine
TARGETS = {
    "parser": {"script": "fuzz_parser.py", "runs": 150_000, "dict": "resp.dict"},
    "commands": {"script": "fuzz_commands.py", "runs": 25_000},
}
DIFF_CASES = 300
STALL_S = 10  # an input that takes longer is a stall (libFuzzer -timeout)
RSS_MB = 3072


def start_target(name: str, out: Path, seed: int, scale: float) -> tuple[subprocess.Popen[bytes],
                                                                          Path, Path, Path]:
    spec = TARGETS[name]
    work = out / name
    shutil.rmtree(work, ignore_errors=True)
    corpus, artifacts = work / "corpus", work / "artifacts"
    artifacts.mkdir(parents=True)
    shutil.copytree(HERE / "corpus" / name, corpus)
    runs = max(int(int(spec["runs"]) * scale), 1)
    cmd = [sys.executable, str(HERE / str(spec["script"])), f"-runs={runs}", f"-seed={seed}",
           f"-timeout={STALL_S}", f"-rss_limit_mb={RSS_MB}",
           f"-max_total_time={max(int(600 * scale), 60)}", "-print_final_stats=1",
           f"-artifact_prefix={artifacts}/", str(corpus)]
    if "dict" in spec:
        cmd.insert(2, f"-dict={HERE / str(spec['dict'])}")
    stats = work / "stats.json"
    log = work / "fuzz.log"
    env = dict(os.environ, FUZZ_STATS=str(stats))
    proc = subprocess.Popen(cmd, stdout=open(log, "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115
                            env=env, cwd=SRC)
    return proc, stats, log, artifacts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=float(os.environ.get("FUZZ_SCALE", "1")))
    ap.add_argument("--seed", type=int, default=int(os.environ.get("FUZZ_SEED", "1")))
    ap.add_argument("--out", default=os.environ.get("FUZZ_OUT", str(ROOT / "tests/output/fuzz")))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    # the two targets side by side (two cores), then the differential run
    started = {n: start_target(n, out, args.seed, args.scale) for n in TARGETS}
    failed = False
    lines = []
    known_total: Counter[str] = Counter()
    for name, (proc, stats_path, log, artifacts) in started.items():
        code = proc.wait()
        stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
        found = sorted(p.name for p in artifacts.iterdir())
        crashes = [f for f in found if f.startswith("crash-")]
        stalls = [f for f in found if f.startswith(("timeout-", "slow-unit-"))]
        ooms = [f for f in found if f.startswith("oom-")]
        done = [x for x in log.read_text(errors="replace").splitlines() if x.startswith("Done ")]
        # libFuzzer's own count of inputs run; after a crash, the target's last count
        cases = int(done[-1].split()[1]) if done else sum(stats.get("cases", {}).get(k, 0)
                                                          for k in ("parser", "commands"))
        known_total.update(stats.get("known", {}))
        lines.append(f"{name}: exit {code}, {cases} inputs, {len(crashes)} crashes, "
                     f"{len(stalls)} stalls, {len(ooms)} out of memory; known: "
                     f"{dict(stats.get('known', {})) or 'none'}")
        if code != 0 or found:
            failed = True
            tail = log.read_text(errors="replace").splitlines()[-40:]
            lines.append(f"  {name} FAILED: inputs saved in {artifacts}: {found}")
            lines.extend("  | " + x for x in tail)
    diff_json = out / "differential.json"
    code = subprocess.call([sys.executable, str(HERE / "differential.py"), "--cases",
                            str(max(int(DIFF_CASES * args.scale), 10)), "--seed",
                            str(args.seed), "--out", str(diff_json)], cwd=SRC)
    if code != 0:
        failed = True
    diff = json.loads(diff_json.read_text()) if diff_json.exists() else {}
    print(f"==== fuzz summary (seed {args.seed}, scale {args.scale:g}, "
          f"{time.monotonic() - t0:.0f} s)")
    for line in lines:
        print(line)
    print(f"differential: {diff.get('cases', 0)} sequences, {diff.get('commands', 0)} commands "
          f"vs redis-server; differences by id: {diff.get('differences') or 'none'}"
          f"{'; NEW: ' + str(len(diff.get('new', []))) if diff.get('new') else ''}")
    print(f"known defects met (excluded, fuzz/known.py): {dict(known_total) or 'none'}")
    print("fuzz: FAILED" if failed else "fuzz: ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
