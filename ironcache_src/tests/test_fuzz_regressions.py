"""Every input that once stalled, crashed or misled the server, replayed against a real server.

The inputs are `fuzz/regressions/<id>.bin` with their cases in `fuzz/regressions/cases.json`;
what redis-server 7.0.15 did with each is recorded next to it (`<id>.redis.json`, by
`fuzz/record.py`), and the server must do exactly the same: the same bytes back, the same close,
no stall of another connection, no GiB of address space reserved (fuzz/replay.py says how each is
checked without a clock). Each case gets a fresh server, killed afterwards (a stalled one ignores
SIGTERM).

A regression still open on this branch is a strict xfail, driven by `fuzz/known.py` UNFIXED:
delete its entry when the fix lands (a listed case that passes fails the suite).
IRONCACHE_TEST_TARGET=redis replays them against redis-server itself: every case passes there.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import support
from support import IS_REDIS, Server

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fuzz import known, replay  # noqa: E402


def _server_has_hiredis() -> bool:
    probe = subprocess.run([support.SERVER_PYTHON, "-c", "import hiredis"],
                           capture_output=True, check=False, timeout=30)
    return probe.returncode == 0


def _params() -> list[Any]:
    out = []
    hiredis = not IS_REDIS and _server_has_hiredis()
    for case_id in sorted(replay.cases()):
        marks = []
        if case_id in known.HIREDIS_ONLY and not hiredis:
            pass  # the pure-Python parser serves this server: nothing to expect to fail
        elif case_id in known.UNFIXED and not IS_REDIS:
            marks.append(pytest.mark.xfail(reason=known.UNFIXED[case_id], strict=True,
                                           raises=(AssertionError, OSError)))
        out.append(pytest.param(case_id, marks=marks, id=case_id))
    return out


@pytest.fixture
def fresh_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Server]:
    case = replay.cases()[request.node.callspec.params["case_id"]]
    prefix = ["prlimit", f"--as={case['as_mb'] << 20}", "--"] if "as_mb" in case else []
    srv = Server(tmp_path / "server", prefix=prefix)
    srv.start()
    yield srv
    srv.kill()  # a stalled server ignores SIGTERM; nothing to save


def test_known_table_names_regressions() -> None:
    """Every UNFIXED id has its input, and every input its record from Redis."""
    cases = replay.cases()
    assert set(known.UNFIXED) <= set(cases), set(known.UNFIXED) - set(cases)
    assert set(cases) >= known.HIREDIS_ONLY, known.HIREDIS_ONLY - set(cases)
    for case_id in cases:
        assert (replay.REGRESSIONS / f"{case_id}.bin").is_file(), case_id
        assert (replay.REGRESSIONS / f"{case_id}.redis.json").is_file(), case_id


@pytest.mark.parametrize("case_id", _params())
def test_regression(fresh_server: Server, case_id: str) -> None:
    need = replay.cases()[case_id].get("needs_vm_gb")
    if need and not replay.host_can_reserve(need):
        pytest.skip(f"this host cannot reserve {need} GiB at once: the defect is not observable "
                    "here (i12-1-array-100000000 checks it at a smaller count)")
    ours = replay.run_case(fresh_server.port, fresh_server.pid, case_id)
    assert fresh_server.alive(), f"the server exited:\n{fresh_server.log_text()[-2000:]}"
    assert ours == replay.expected(case_id)
