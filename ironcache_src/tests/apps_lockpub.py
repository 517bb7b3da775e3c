"""A redis-py application: workers that serialise a read-modify-write with `redis.lock.Lock`
(SET NX PX to take it, Lua scripts to extend and release it), a publisher and a subscriber
(`PubSub`, one channel and one pattern). test_apps.py runs it across a restart of a deployed
IronCache (and its control), molecule/handover under systemd across a restart and a kill -9.

What it proves when the server restarts in the middle of its work:
- the lock held: the counter equals the increments the workers saw acknowledged, none lost to
  a second holder or to the restart, and no lock is left behind;
- every message reached the subscriber once per subscription (channel and pattern), in order,
  and every PUBLISH counted both subscriptions. After a kill -9 one message may come twice, back
  to back: a PUBLISH the dead process had delivered but not yet answered runs again in the next
  process (the crash journal records writes, and a PUBLISH changes no key). `problems()` allows
  that many such repeats, and nothing else;
- nobody reconnected: each worker's connection keeps its CLIENT ID and the subscriber keeps its
  socket. redis-py retries a command on a new connection after a connection error (3 retries by
  default), which would hide a broken connection from the counts above; these checks do not.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import redis
from redis.exceptions import LockError, RedisError

LOCK = "apps:lock"
COUNTER = "apps:counter"
CHANNEL = "apps:events"
PATTERN = "apps:ev*"
WORKERS = 3
PUBLISH_EVERY_S = 0.002
WAIT_S = 60.0  # a bound, never reached when all goes well


@dataclass
class Outcome:
    increments: int
    counter: int
    lock_left: bool
    published: int
    publish_replies: set[int]
    messages: list[int]
    pmessages: list[int]
    same_clients: bool
    same_subscriber_socket: bool
    errors: list[str] = field(default_factory=list)

    def problems(self, repeats: int = 0) -> list[str]:
        """What the application lost or saw go wrong; empty when nothing did. `repeats`: how
        many messages may come twice in a row (one per kill -9, see the module's docstring)."""
        out = list(self.errors[:5])
        if self.counter != self.increments:
            out.append(f"counter {self.counter} != {self.increments} acknowledged increments")
        if self.lock_left:
            out.append("a lock was left behind")
        expected = list(range(self.published))
        for kind, got in (("channel", self.messages), ("pattern", self.pmessages)):
            once = [m for i, m in enumerate(got) if i == 0 or m != got[i - 1]]
            if once != expected or len(got) - len(once) > repeats:
                out.append(f"{kind} messages: {len(got)} for {self.published} published, "
                           f"{len(got) - len(once)} repeated back to back (at most {repeats}), "
                           f"the rest once each and in order: {once == expected}; missing: "
                           f"{sorted(set(expected) - set(got))[:10]}")
        if self.publish_replies - {2}:
            out.append(f"PUBLISH counted {sorted(self.publish_replies)} subscriptions, not 2")
        if not self.same_clients:
            out.append("a worker's connection was replaced (CLIENT ID changed)")
        if not self.same_subscriber_socket:
            out.append("the subscriber reconnected")
        return out


class LockPubApp:
    """The application's threads; start(), then restarts happen, then finish()."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.increments = 0
        self.published = 0
        self.replies: set[int] = set()
        self.messages: list[int] = []
        self.pmessages: list[int] = []
        self.errors: list[str] = []
        self.client_ids: list[tuple[int, int]] = []  # (before, after) per worker
        self.admin = redis.Redis.from_url(url, socket_timeout=30)
        self.admin.delete(COUNTER, LOCK)
        self.pubsub = redis.Redis.from_url(url, socket_timeout=30).pubsub()
        self.pubsub.subscribe(CHANNEL)
        self.pubsub.psubscribe(PATTERN)
        self.sub_socket = None
        self.threads = [threading.Thread(target=self._subscriber, daemon=True),
                        threading.Thread(target=self._publisher, daemon=True)]
        self.threads += [threading.Thread(target=self._worker, daemon=True)
                         for _dummy in range(WORKERS)]

    def start(self) -> None:
        confirmations = 0
        deadline = time.monotonic() + WAIT_S
        while confirmations < 2 and time.monotonic() < deadline:
            msg = self.pubsub.get_message(timeout=1.0)
            if msg and msg["type"] in ("subscribe", "psubscribe"):
                confirmations += 1
        assert confirmations == 2, "the subscriptions were never confirmed"
        self.sub_socket = self.pubsub.connection._sock  # noqa: SLF001 (reconnects replace it)
        for t in self.threads:
            t.start()

    def _error(self, where: str, e: Exception) -> None:
        with self.lock:
            self.errors.append(f"{where}: {type(e).__name__}: {e}")

    def _worker(self) -> None:
        r = redis.Redis.from_url(self.url, socket_timeout=30, single_connection_client=True)
        try:
            before = r.client_id()
            while not self.stop.is_set():
                lock = r.lock(LOCK, timeout=10, sleep=0.002, blocking_timeout=WAIT_S)
                if not lock.acquire():
                    raise LockError("not acquired within the bound")
                try:
                    value = int(r.get(COUNTER) or 0)
                    lock.extend(1)  # a Lua script while the lock is held
                    r.set(COUNTER, value + 1)
                finally:
                    lock.release()  # a Lua script: LockNotOwnedError if another took it
                with self.lock:
                    self.increments += 1
            self.client_ids.append((before, r.client_id()))
        except (RedisError, OSError) as e:
            self._error("worker", e)
        finally:
            r.close()

    def _publisher(self) -> None:
        r = redis.Redis.from_url(self.url, socket_timeout=30, single_connection_client=True)
        try:
            while not self.stop.is_set():
                self.replies.add(r.publish(CHANNEL, str(self.published)))
                self.published += 1
                time.sleep(PUBLISH_EVERY_S)
        except (RedisError, OSError) as e:
            self._error("publisher", e)
        finally:
            r.close()

    def _subscriber(self) -> None:
        publisher = self.threads[1]
        try:
            while True:
                # `published` is final only once the publisher has stopped: read it after
                done = self.stop.is_set() and not publisher.is_alive()
                if done and min(len(self.messages), len(self.pmessages)) >= self.published:
                    return
                msg = self.pubsub.get_message(timeout=0.5)
                if msg is None:
                    if not done:
                        continue
                    # the publisher is done: what has not come by now will not
                    msg = self.pubsub.get_message(timeout=2.0)
                    if msg is None:
                        return
                if msg["type"] == "message":
                    self.messages.append(int(msg["data"]))
                elif msg["type"] == "pmessage":
                    self.pmessages.append(int(msg["data"]))
        except (RedisError, OSError, ValueError) as e:
            self._error("subscriber", e)

    def progress(self) -> tuple[int, int]:
        """(increments, messages received) so far."""
        return self.increments, len(self.messages)

    def wait_progress(self, increments: int, messages: int) -> None:
        """Until the workers and the subscriber got this far (bounded)."""
        deadline = time.monotonic() + WAIT_S
        while self.increments < increments or len(self.messages) < messages:
            if time.monotonic() > deadline or self.errors:
                return
            time.sleep(0.02)

    def finish(self) -> Outcome:
        self.stop.set()
        for t in self.threads:
            t.join(WAIT_S)
        sock = self.pubsub.connection._sock if self.pubsub.connection else None  # noqa: SLF001
        self.pubsub.close()
        counter = int(self.admin.get(COUNTER) or 0)
        lock_left = bool(self.admin.exists(LOCK))
        self.admin.delete(COUNTER)
        self.admin.close()
        return Outcome(
            increments=self.increments, counter=counter, lock_left=lock_left,
            published=self.published, publish_replies=self.replies,
            messages=self.messages, pmessages=self.pmessages,
            same_clients=len(self.client_ids) == WORKERS
            and all(a == b for a, b in self.client_ids),
            same_subscriber_socket=sock is not None and sock is self.sub_socket,
            errors=self.errors,
        )
