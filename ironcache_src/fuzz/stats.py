"""Counters a fuzz target keeps (cases run, known findings by id), written to $FUZZ_STATS.

libFuzzer ends the process without Python's exit handlers, so the file is rewritten every
couple of seconds rather than at exit.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter

COUNTS: dict[str, Counter[str]] = {"cases": Counter(), "known": Counter(), "skipped": Counter()}
_PATH = os.environ.get("FUZZ_STATS", "")
_last = 0.0


def count(kind: str, key: str, n: int = 1) -> None:
    global _last
    COUNTS[kind][key] += n
    now = time.monotonic()
    if _PATH and now - _last > 2.0:
        _last = now
        dump()


def dump() -> None:
    if not _PATH:
        return
    tmp = _PATH + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({k: dict(v) for k, v in COUNTS.items()}, f)
    os.replace(tmp, _PATH)
