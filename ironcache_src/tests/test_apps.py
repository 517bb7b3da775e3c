"""Real applications run a short workload against a deployed IronCache that restarts in the
middle of it: an RQ worker (jobs, and jobs scheduled for after the restart), Celery (a
worker process, a group and a chain, results through the Redis result backend) and a redis-py
application (apps_lockpub: workers serialised by redis-py's Lock, a publisher and a subscriber).

"Deployed" as test_handover_restart.py deploys: the test plays systemd's part (it holds the
listening socket, keeps the fd store the server fills through sd_notify and starts each next
process with both, as ironcache.socket + FileDescriptorStoreMax= do), and a restart is the
unit's: SIGTERM, the handover, the next process. molecule/handover runs that same protocol
under real systemd; the applications are what is new here, and they see only the socket.

Each run of a job or task appends a line to a file (apps_support.ran), so the count of runs
does not depend on the dataset the restart is about. handover no (the control, no snapshot on disk
either): the restart loses the queued work, which never runs.
"""

from __future__ import annotations

import gc
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from apps_lockpub import LockPubApp
from apps_support import (
    JOBS,
    SCHEDULED_IN_S,
    WORK_TIMEOUT_S,
    App,
    celery_worker,
    exactly_once,
    rq_worker,
    runs,
    wait_quiet,
)
from support import IS_REDIS, Server, poll
from test_handover_restart import FdStore, start_process, systemd_listener

pytestmark = pytest.mark.skipif(IS_REDIS, reason="IronCache-specific: the fd store handover")

# The unit's restart and kill -9 with the handover; the control restarts without it.
RESTARTS = [("yes", "restart"), ("yes", "crash"), ("no", "restart")]


class Deployed:
    """One IronCache as the role deploys it: socket-activated, with the fd store."""

    def __init__(self, tmp_path: Path, handover: str) -> None:
        self.tmp = tmp_path
        self.listener, self.port = systemd_listener()
        self.store = FdStore(tmp_path / "notify.sock")
        self.directives = {"handover": handover, "save-on-shutdown": "no"}
        self.procs: list[Server] = []
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        n = len(self.procs)
        self.procs.append(start_process(self.tmp / f"p{n}", self.listener, self.port,
                                        self.store, self.directives))

    def restart(self, crash: bool = False) -> None:
        """The unit's restart (SIGTERM, the handover), or a crash (kill -9) and its restart."""
        old = self.procs[-1]
        old.send_signal(signal.SIGKILL if crash else signal.SIGTERM)
        code = old.wait()
        assert code == (-signal.SIGKILL if crash else 0), old.log_text()
        self.start()

    def close(self) -> None:
        for srv in self.procs:
            if srv.alive():
                srv.send_signal(signal.SIGTERM)
                srv.wait()
        self.store.close()
        self.listener.close()


# ------------------------------------------------------------------ RQ


@pytest.mark.parametrize(("handover", "how"), RESTARTS)
def test_rq_worker_and_scheduler_across_a_restart(
    tmp_path: Path, handover: str, how: str
) -> None:
    rq = pytest.importorskip("rq")
    server = Deployed(tmp_path, handover)
    log = tmp_path / "runs.log"
    worker: App | None = None
    try:
        server.start()
        r = redis.Redis.from_url(server.url, socket_timeout=30)
        try:
            r.xlen("apps-probe")
        except redis.ResponseError as e:  # an unknown command
            pytest.skip(f"RQ 3 keeps job results in a stream: this IronCache has none ({e})")
        queue = rq.Queue("apps", connection=r)
        from apps_rq_jobs import scheduled, square

        worker = App(rq_worker(server.url), server.url, log, tmp_path / "worker.out")
        jobs = [queue.enqueue(square, i) for i in range(JOBS)]
        later = [
            queue.enqueue_in(timedelta(seconds=SCHEDULED_IN_S), scheduled, "in"),
            queue.enqueue_at(datetime.now(UTC) + timedelta(seconds=SCHEDULED_IN_S), scheduled,
                             "at"),
        ]
        poll(lambda: len(runs(log)) >= 4, timeout=WORK_TIMEOUT_S, what="the first jobs")
        server.restart(crash=how == "crash")
        expected = [f"square {i}" for i in range(JOBS)] + ["scheduled in", "scheduled at"]
        if handover == "no":  # the control: the queue and the schedule went with the dataset
            done = wait_quiet(log)
            assert len(done) < JOBS // 2, done
            assert "scheduled in" not in done and "scheduled at" not in done
            return
        poll(lambda: len(runs(log)) >= len(expected), timeout=WORK_TIMEOUT_S,
             what=f"every job to run:\n{worker.output()}")
        for job in jobs + later:
            poll(lambda job=job: job.get_status(refresh=True) == "finished",
                 timeout=WORK_TIMEOUT_S, what=f"job {job.id} finished")
        assert [j.return_value() for j in jobs] == [i * i for i in range(JOBS)]
        assert [j.return_value() for j in later] == ["in", "at"]
        done = wait_quiet(log)
        assert sorted(done) == sorted(expected), exactly_once(done)
        assert "Traceback" not in worker.output()
    finally:
        if worker is not None:
            worker.stop()
        server.close()


# ------------------------------------------------------------------ Celery


@pytest.mark.parametrize(("handover", "how"), RESTARTS)
def test_celery_worker_group_and_chain_across_a_restart(
    tmp_path: Path, handover: str, how: str
) -> None:
    celery = pytest.importorskip("celery")
    from apps_celery_tasks import make_app

    server = Deployed(tmp_path, handover)
    log = tmp_path / "runs.log"
    worker: App | None = None
    app = None
    squares = chained = None  # dropped while the server runs: they unsubscribe then
    try:
        server.start()
        worker = App(celery_worker(f"apps{handover}{how}"), server.url, log,
                     tmp_path / "worker.out")
        app = make_app(server.url)
        square, add = app.tasks["apps.square"], app.tasks["apps.add"]
        squares = celery.group(square.s(i) for i in range(JOBS)).apply_async()
        chained = celery.chain(add.s(1, 2), add.s(10), add.s(100)).apply_async()
        poll(lambda: len(runs(log)) >= 4, timeout=WORK_TIMEOUT_S,
             what=f"the first tasks:\n{worker.output()}")
        server.restart(crash=how == "crash")
        expected = [f"square {i}" for i in range(JOBS)] + ["add 1 2", "add 3 10", "add 13 100"]
        if handover == "no":  # the control: the queued tasks went with the dataset
            done = wait_quiet(log)
            assert len(done) < JOBS // 2, done
            assert "add 13 100" not in done
            return
        assert squares.get(timeout=WORK_TIMEOUT_S) == [i * i for i in range(JOBS)]
        assert chained.get(timeout=WORK_TIMEOUT_S) == 113
        done = wait_quiet(log)
        assert sorted(done) == sorted(expected), exactly_once(done)
        assert "Traceback" not in worker.output()
    finally:
        squares = chained = None
        gc.collect()
        if app is not None:
            app.close()
        if worker is not None:
            worker.stop()
        server.close()


# ------------------------------------------------------------------ redis-py Lock and pub/sub


@pytest.mark.parametrize(("handover", "how"), RESTARTS)
def test_lock_and_pubsub_app_across_a_restart(tmp_path: Path, handover: str, how: str) -> None:
    server = Deployed(tmp_path, handover)
    app: LockPubApp | None = None
    try:
        server.start()
        app = LockPubApp(server.url)
        app.start()
        app.wait_progress(increments=30, messages=30)
        server.restart(crash=how == "crash")
        done, seen = app.progress()
        app.wait_progress(increments=done + 30, messages=seen + 30)
        outcome = app.finish()
        app = None
        if handover == "no":  # the control: the counter, the lock and the connections went
            lost = outcome.problems()
            assert any("counter" in p for p in lost), lost
            assert any("reconnected" in p or "replaced" in p for p in lost), lost
            return
        assert outcome.problems(repeats=1 if how == "crash" else 0) == []
        assert outcome.increments >= 60 and outcome.published >= 60, outcome
    finally:
        if app is not None:
            app.finish()
        server.close()
