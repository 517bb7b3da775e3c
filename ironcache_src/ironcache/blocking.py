"""Blocking commands (BLPOP, BZPOPMIN...): the clients waiting on keys, and serving them.

A waiting client is queued, per database and key, in arrival order (`Database.blocked`).
The keyspace notes a waited-for key as ready when a write creates it (`Database.set`,
SWAPDB); once the command that did it (or its whole MULTI/EXEC or script) has run, the
server calls `Blocking.handle_ready()`, which offers each ready key to its waiters in order.
A waiter's `serve` runs the non-blocking form of its command on that key, as the waiting
client; it answers None when the key does not suit it (wrong type, empty), and the client
keeps waiting. A client is `Waiter`-blocked from the command's reply until served, timed
out (a loop timer), unblocked (CLIENT UNBLOCK) or gone.

What a waiter needs from the connection: `push(data)` (bytes outside a request's reply,
counted as the handover counts them), `blocked` (the Waiter or None) and `unblocked()`
(runs the requests that arrived meanwhile).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

    from ironcache.keyspace import Database, Keyspace

# serve(client, key) -> (reply, the write to journal) or None when the key does not suit
Serve = Callable[[Any, bytes], "tuple[bytes, list[bytes]] | None"]
UNBLOCKED = b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n"


class Waiter:
    __slots__ = (
        "client", "db", "keys", "argv", "serve", "timeout_reply", "deadline", "timer", "on_gone"
    )

    def __init__(
        self,
        client: Any,
        db: Database,
        keys: list[bytes],
        argv: list[bytes],
        serve: Serve,
        timeout_reply: bytes,
        deadline: float,
        on_gone: bool = False,
    ) -> None:
        self.client = client
        self.db = db
        self.keys = list(dict.fromkeys(keys))  # a key named twice waits once
        self.argv = argv
        self.serve = serve
        self.timeout_reply = timeout_reply
        self.deadline = deadline  # wall clock, seconds; 0: forever
        self.timer: asyncio.TimerHandle | None = None
        # Served even when its key is gone or of another type (XREADGROUP answers an error).
        self.on_gone = on_gone


class Blocking:
    def __init__(self, keyspace: Keyspace) -> None:
        self.keyspace = keyspace
        self.loop: asyncio.AbstractEventLoop | None = None
        # A served pop is a write the journal must hold (the server points this at it).
        self.wrote: Callable[[int, list[bytes]], None] = lambda db, argv: None
        # A client began or stopped waiting: the crash journal records it (the server sets it).
        self.changed: Callable[[Any], None] = lambda c: None
        # CLIENT TRACKING (the server sets them): a served client's own invalidations wait
        # until its reply has gone (serve_begin), and serve_end gives them to send after it.
        self.serve_begin: Callable[[Any], None] = lambda c: None
        self.serve_end: Callable[[Any], bytes] = lambda c: b""
        self.count = 0  # clients blocked (INFO blocked_clients)

    def block(self, w: Waiter) -> None:
        for key in w.keys:
            w.db.blocked.setdefault(key, deque()).append(w)
        w.client.blocked = w
        self.count += 1
        self.changed(w.client)
        if w.deadline and self.loop is not None:
            delay = max(w.deadline - time.time(), 0.0)
            w.timer = self.loop.call_later(delay, self._timed_out, w)

    def _forget(self, w: Waiter) -> None:
        blocked = w.db.blocked
        for key in w.keys:
            q = blocked.get(key)
            if q is not None:
                with contextlib.suppress(ValueError):
                    q.remove(w)
                if not q:
                    del blocked[key]
        if w.timer is not None:
            w.timer.cancel()
            w.timer = None
        if w.client.blocked is w:
            w.client.blocked = None
            self.count -= 1

    def _finish(self, w: Waiter, reply: bytes) -> None:
        self._forget(w)
        c = w.client
        self.changed(c)  # journaled with the reply (push flushes the journal first)
        c.push(reply)
        c.unblocked()

    def _timed_out(self, w: Waiter) -> None:
        w.timer = None
        if w.client.blocked is w:
            self._finish(w, w.timeout_reply)

    def unblock(self, c: Any, error: bool) -> bool:
        """CLIENT UNBLOCK: as a timeout, or with -UNBLOCKED."""
        w = c.blocked
        if w is None:
            return False
        self._finish(w, UNBLOCKED if error else w.timeout_reply)
        return True

    def drop(self, c: Any) -> None:
        """The client is gone: it waits no more."""
        if c.blocked is not None:
            self._forget(c.blocked)

    def handle_ready(self) -> None:
        """Serve the waiters of every key made ready, in order (serving may ready more)."""
        ks = self.keyspace
        while ks.ready:
            ready, ks.ready = ks.ready, []
            ks.ready_set.clear()
            for db, key in ready:
                q = db.blocked.get(key)
                if not q:
                    continue
                for w in list(q):
                    if w.client.blocked is not w:
                        continue
                    if not w.on_gone and db.lookup(key) is None:
                        continue
                    self.serve_begin(w.client)
                    done = w.serve(w.client, key)
                    after = self.serve_end(w.client)
                    if done is None:
                        continue  # the wrong type: it keeps waiting, as in Redis
                    reply, write = done
                    if write is not None:
                        self.wrote(db.index, write)
                    self._finish(w, reply + after)


def parse_timeout(raw: bytes) -> float:
    """Seconds from a blocking command's timeout argument (0: forever), Redis's checks and
    wording; raises ValueError with the message."""
    text = raw.decode("latin-1")
    try:
        if not text or text != text.strip() or text.lower() in ("nan", "-nan", "+nan"):
            raise ValueError
        secs = float(text)
    except ValueError:
        raise ValueError("ERR timeout is not a float or out of range") from None
    if math.isnan(secs):
        raise ValueError("ERR timeout is not a float or out of range")
    if secs * 1000 > 2**63 - 1:  # Redis 7.0's cast to long long wraps negative
        raise ValueError("ERR timeout is negative")
    if secs < 0:
        raise ValueError("ERR timeout is negative")
    if secs > 0 and secs * 1000 > 2**63 - 1 - time.time() * 1000:
        raise ValueError("ERR timeout is out of range")
    return secs


def deadline(c: Any, secs: float) -> float:
    """The wall-clock deadline of a wait starting now (0: forever); a wait handed over by
    the previous process keeps its own (the re-sent command takes it once)."""
    kept = c.block_deadline
    if kept is not None:
        c.block_deadline = None
        return kept
    return time.time() + secs if secs else 0.0


def wait(
    c: Any,
    keys: list[bytes],
    argv: list[bytes],
    serve: Serve,
    timeout_reply: bytes,
    until: float,
    on_gone: bool = False,
) -> bytes:
    """Nothing to serve yet: block the client (no reply now), or answer `timeout_reply` at
    once where it may not block (in MULTI/EXEC, a script, journal replay), as Redis does."""
    srv = c.server
    if c.transport is None or srv.depth > 1 or c.closing:
        return timeout_reply
    if until and until <= time.time():
        return timeout_reply
    srv.blocking.block(Waiter(c, c.db, keys, argv, serve, timeout_reply, until, on_gone))
    return b""
