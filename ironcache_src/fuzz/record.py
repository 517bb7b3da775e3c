"""Record what redis-server 7.0.15 does with every regression input (regressions/*.redis.json).

Each case runs on a fresh redis-server (under RLIMIT_AS when its case says so, as the tests
run IronCache). Run again after adding a regression; the files are committed.

  python fuzz/record.py [ID ...]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fuzz import replay  # noqa: E402
from fuzz.differential import free_port, stop, wait_ping  # noqa: E402


def record(case_id: str) -> None:
    case = replay.cases()[case_id]
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="ironcache-record-"))
    prefix = ["prlimit", f"--as={case['as_mb'] << 20}", "--"] if "as_mb" in case else []
    proc = subprocess.Popen(
        [*prefix, os.environ.get("REDIS_SERVER", "redis-server"), "--port", str(port),
         "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(work)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work)
    try:
        wait_ping(port, proc)
        result = replay.run_case(port, proc.pid, case_id)
    finally:
        stop([proc])
        shutil.rmtree(work, ignore_errors=True)
    out = replay.REGRESSIONS / f"{case_id}.redis.json"
    out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(f"{case_id}: {json.dumps(result)[:150]}")


def main() -> int:
    ids = sys.argv[1:] or sorted(replay.cases())
    for case_id in ids:
        record(case_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
