"""What a tight-loop client saw around one event (a restart, a kill), from its samples.

A sample is [start_s, latency_ms, outcome] (ironcache_probe.Prober with keep_samples): the
attempt started at start_s (seconds from the probe's start) and ended latency_ms later.
"""

from __future__ import annotations

Sample = list  # [start_s, latency_ms, outcome]


def ok_completions(samples: list[Sample]) -> list[float]:
    """Times (s) at which successful attempts completed, in order."""
    return sorted(t0 + lat / 1000.0 for t0, lat, outcome in samples if outcome == "ok")


def first_reply_after(samples: list[Sample], t: float) -> float | None:
    """Milliseconds from t to the first successful reply to an attempt started at or after t:
    for a kill, the time until the next process answered a new connection."""
    done = [t0 + lat / 1000.0 for t0, lat, outcome in samples if outcome == "ok" and t0 >= t]
    return round((min(done) - t) * 1000.0, 1) if done else None


def blackout(samples: list[Sample], start: float, end: float) -> float | None:
    """The longest stretch (ms) without a successful reply in [start, end): what clients of a
    restart issued at `start` waited at worst, counted from the last reply before it."""
    done = ok_completions(samples)
    before = [d for d in done if d < start]
    inside = [d for d in done if start <= d < end]
    if not inside:
        return None
    points = ([before[-1]] if before else [start]) + inside
    return round(max(b - a for a, b in zip(points, points[1:], strict=False)) * 1000.0, 1)
