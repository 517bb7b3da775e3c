"""RQ jobs for test_apps.py: the `rq worker` process imports them by name; each run is
logged (apps_support.ran)."""

from __future__ import annotations

import time

from apps_support import ran


def square(i: int) -> int:
    ran(f"square {i}")
    time.sleep(0.05)
    return i * i


def scheduled(tag: str) -> str:
    ran(f"scheduled {tag}")
    return tag
