"""Celery tasks for test_apps.py: a worker process imports this module (`celery -A`).
Each run is logged (apps_support.ran); results go through the Redis result backend."""

from __future__ import annotations

import os
import time

from celery import Celery

from apps_support import ran


def make_app(url: str) -> Celery:
    app = Celery("apps", broker=url, backend=url)
    app.conf.update(
        task_default_queue="apps",
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        # A connection the server closed (the control) is retried at once, never for long.
        broker_transport_options={"visibility_timeout": 3600, "max_retries": 3},
        result_expires=3600,
        # The control's results never come: give up reconnecting quickly when dropped.
        result_backend_transport_options={"retry_policy": {"max_retries": 2}},
        worker_hijack_root_logger=False,
    )

    @app.task(name="apps.square", shared=False)
    def square(i: int) -> int:
        ran(f"square {i}")
        time.sleep(0.05)
        return i * i

    @app.task(name="apps.add", shared=False)
    def add(x: int, y: int) -> int:
        ran(f"add {x} {y}")
        return x + y

    return app


# The worker's app (`celery -A apps_celery_tasks worker`); the test builds its own.
app = make_app(os.environ.get("APPS_REDIS_URL", "redis://127.0.0.1:6379/0"))
