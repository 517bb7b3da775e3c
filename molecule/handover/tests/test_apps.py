"""Real applications against ironcache.service under systemd: a Celery worker (group, chain,
results through the Redis result backend), an RQ worker with its scheduler, and a redis-py
application (workers serialised by redis-py's Lock, a publisher and a subscriber on a channel and
a pattern) run on the controller, through the published port, while the unit restarts
(`systemctl restart`) in the middle of their work and, later, its main process is killed
(kill -9). Every task and job runs exactly once and every result is fetched; no locked
increment and no message is lost, and no connection is replaced.

The workload and the workers are ironcache_src/tests' (apps_support, apps_celery_tasks,
apps_rq_jobs, apps_lockpub); the control (handover off: the queued work, the counter and the
connections are lost) is test_apps.py there.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import ironcache_checks as ic
import pytest
import redis

sys.path.insert(0, str(ic.ROOT / "ironcache_src" / "tests"))
import apps_support as aps  # noqa: E402

PORT = int(os.environ.get("IRONCACHE_HANDOVER_PORT", "16390"))
URL = f"redis://127.0.0.1:{PORT}/3"  # a database of its own: the storm's keys are in others
# systemd refuses a sixth start within 10 s (StartLimitBurst=5): at most one every 2.6 s.
START_SPACING = 2.6
WAVE = 20  # tasks or jobs queued before each of the two events


class Unit:
    """Restarts and kills of ironcache.service, spaced as the start limit needs."""

    def __init__(self, host) -> None:
        self.host = host
        self.last = time.monotonic()
        self.events: list[str] = []

    def ready(self) -> None:
        """Until the next start is allowed (work queued after this is there when it comes)."""
        wait = self.last + START_SPACING - time.monotonic()
        if wait > 0:
            time.sleep(wait)

    def act(self, action: str) -> None:
        self.ready()
        old = ic.main_pid(self.host)
        if action == "restart":
            self.host.check_output(f"systemctl restart {ic.SERVICE}")
        else:
            self.host.check_output(f"kill -9 {old}")
        ic.wait_replaced(self.host, old)
        self.last = time.monotonic()
        info = ic.parse_info(redis.Redis.from_url(URL).execute_command("INFO", "handover"))
        self.events.append(f"{action}:{info.get('handover_source')}")


def _wait_runs(log: Path, count: int, worker: aps.App) -> None:
    deadline = time.monotonic() + aps.WORK_TIMEOUT_S
    while len(aps.runs(log)) < count:
        assert time.monotonic() < deadline, f"{count} runs never came:\n{worker.output()}"
        time.sleep(0.05)


@pytest.fixture
def unit(host):
    ic.wait_serving(host)
    assert host.run(f"systemctl reset-failed {ic.SERVICE}").rc in (0, 1)
    redis.Redis.from_url(URL).flushdb()
    yield Unit(host)
    redis.Redis.from_url(URL).flushdb()


def test_celery_across_a_restart_and_a_crash(unit: Unit, tmp_path: Path) -> None:
    import celery

    from apps_celery_tasks import make_app

    log = tmp_path / "runs.log"
    worker = aps.App(aps.celery_worker("mol-apps"), URL, log, tmp_path / "celery.out")
    app = make_app(URL)
    try:
        square, add = app.tasks["apps.square"], app.tasks["apps.add"]
        first = celery.group(square.s(i) for i in range(WAVE)).apply_async()
        chained = celery.chain(add.s(1, 2), add.s(10), add.s(100)).apply_async()
        _wait_runs(log, 4, worker)
        unit.act("restart")
        unit.ready()
        before = len(aps.runs(log))
        second = celery.group(square.s(i) for i in range(WAVE, 2 * WAVE)).apply_async()
        _wait_runs(log, before + 4, worker)
        unit.act("kill")
        assert first.get(timeout=aps.WORK_TIMEOUT_S) == [i * i for i in range(WAVE)]
        assert second.get(timeout=aps.WORK_TIMEOUT_S) == [i * i for i in range(WAVE, 2 * WAVE)]
        assert chained.get(timeout=aps.WORK_TIMEOUT_S) == 113
        done = aps.wait_quiet(log)
        expected = [f"square {i}" for i in range(2 * WAVE)] + ["add 1 2", "add 3 10",
                                                               "add 13 100"]
        assert sorted(done) == sorted(expected), aps.exactly_once(done)
        assert unit.events == ["restart:restart", "kill:crash"]
        assert "Traceback" not in worker.output()
    finally:
        first = second = chained = None
        app.close()
        worker.stop()


def test_rq_across_a_restart_and_a_crash(unit: Unit, tmp_path: Path) -> None:
    import rq

    from apps_rq_jobs import scheduled, square

    r = redis.Redis.from_url(URL, socket_timeout=30)
    try:
        r.xlen("apps-probe")
    except redis.ResponseError as e:  # an unknown command
        pytest.skip(f"RQ 3 keeps job results in a stream: this IronCache has none ({e})")
    log = tmp_path / "runs.log"
    worker = aps.App(aps.rq_worker(URL), URL, log, tmp_path / "rq.out")
    try:
        queue = rq.Queue("apps", connection=r)
        jobs = [queue.enqueue(square, i) for i in range(WAVE)]
        later = [queue.enqueue_in(timedelta(seconds=2 * START_SPACING), scheduled, "in"),
                 queue.enqueue_at(datetime.now(UTC) + timedelta(seconds=2 * START_SPACING),
                                  scheduled, "at")]
        _wait_runs(log, 4, worker)
        unit.act("restart")
        unit.ready()
        before = len(aps.runs(log))
        jobs += [queue.enqueue(square, i) for i in range(WAVE, 2 * WAVE)]
        _wait_runs(log, before + 4, worker)
        unit.act("kill")
        deadline = time.monotonic() + aps.WORK_TIMEOUT_S
        for job in jobs + later:
            while job.get_status(refresh=True) != "finished":
                assert time.monotonic() < deadline, f"job {job.id}:\n{worker.output()}"
                time.sleep(0.1)
        assert [j.return_value() for j in jobs] == [i * i for i in range(2 * WAVE)]
        assert [j.return_value() for j in later] == ["in", "at"]
        done = aps.wait_quiet(log)
        expected = [f"square {i}" for i in range(2 * WAVE)] + ["scheduled in", "scheduled at"]
        assert sorted(done) == sorted(expected), aps.exactly_once(done)
        assert unit.events == ["restart:restart", "kill:crash"]
        assert "Traceback" not in worker.output()
    finally:
        worker.stop()


def test_lock_and_pubsub_across_a_restart_and_a_crash(unit: Unit) -> None:
    from apps_lockpub import LockPubApp

    app = LockPubApp(URL)
    try:
        app.start()
        for event in ("restart", "kill"):
            app.wait_progress(increments=app.progress()[0] + 30,
                              messages=app.progress()[1] + 30)
            unit.act(event)
        done, seen = app.progress()
        app.wait_progress(increments=done + 30, messages=seen + 30)
        outcome, app = app.finish(), None
        print(f"lock+pubsub: {outcome.increments} locked increments, {outcome.published} "
              f"messages on a channel and a pattern, events {unit.events}")
        assert outcome.problems(repeats=1) == []  # one kill -9: see apps_lockpub
        assert outcome.increments >= 90 and outcome.published >= 90, outcome
        assert unit.events == ["restart:restart", "kill:crash"]
    finally:
        if app is not None:
            app.finish()
