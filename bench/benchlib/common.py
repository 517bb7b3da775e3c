"""What every benchmark shares: where the repository is, the error that ends a run, logging."""

from __future__ import annotations

import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
# Log lines say which script wrote them: [throughput] ...
TAG = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else "bench"


class BenchError(Exception):
    """A condition that makes the measurement meaningless (server gone, bad reply)."""


def log(msg: str) -> None:
    print(f"[{TAG}] {msg}", file=sys.stderr, flush=True)


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def geomean(values: list[float]) -> float:
    vals = [v for v in values if v > 0]
    return math.exp(sum(math.log(v) for v in vals) / len(vals)) if vals else 0.0
