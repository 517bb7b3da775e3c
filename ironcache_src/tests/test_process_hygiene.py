"""The suite's own hygiene: every process a test starts is marked, and the leak check finds it."""

from __future__ import annotations

import os
import subprocess
import sys

import conftest
from support import RUN_MARKER, ironcache_env, marked_processes


def _sleeper(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env,
                            stdin=subprocess.DEVNULL)


def test_a_process_left_running_is_found_and_killed() -> None:
    marked = _sleeper(ironcache_env())
    unmarked = _sleeper({k: v for k, v in os.environ.items() if k != RUN_MARKER})
    try:
        assert marked.pid in marked_processes()
        assert unmarked.pid not in marked_processes()
        found = conftest._leftovers()
        assert marked.pid in found and unmarked.pid not in found
        assert marked.wait(10) == -9  # the check killed it, so later tests start clean
        assert unmarked.poll() is None
    finally:
        for proc in (marked, unmarked):
            proc.kill()
            proc.wait(10)


def test_the_shared_server_is_allowed_to_outlive_a_test(server) -> None:
    assert server.proc is not None and server.proc.pid in marked_processes()
    assert server.proc.pid not in conftest._leftovers()
