"""MULTI / EXEC / DISCARD / WATCH / UNWATCH.

Commands are queued on the client; EXEC runs them back to back (nothing else runs in
between: the server is single-threaded). WATCH marks the client when a watched key changes
(`Database.touched`), and EXEC then returns a null array.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ironcache.commands import CommandError, command
from ironcache.protocol import OK, null_array

if TYPE_CHECKING:
    from ironcache.client import Client


@command(
    "multi", 1, "fast noscript loading stale", group="transactions", summary="Starts a transaction."
)
def multi(c: Client, argv: list[bytes]) -> bytes:
    if c.multi is not None:
        raise CommandError("ERR MULTI calls can not be nested")
    c.multi = []
    c.multi_error = False
    return OK


@command(
    "exec",
    1,
    "noscript loading stale skip_slowlog",
    group="transactions",
    summary="Executes all commands in a transaction.",
)
def exec_(c: Client, argv: list[bytes]) -> bytes:
    if c.multi is None:
        raise CommandError("ERR EXEC without MULTI")
    queued, failed, dirty = c.multi, c.multi_error, c.dirty_cas
    c.end_transaction()
    if failed:
        raise CommandError("EXECABORT Transaction discarded because of previous errors.")
    if dirty:
        return null_array(c.resp)
    # c.multi is None again, so execute() runs each command instead of queueing it.
    replies = [c.server.execute(c, argv) for argv in queued]
    return b"*%d\r\n" % len(replies) + b"".join(replies)


@command(
    "discard",
    1,
    "noscript loading stale fast",
    group="transactions",
    summary="Discards a transaction.",
)
def discard(c: Client, argv: list[bytes]) -> bytes:
    if c.multi is None:
        raise CommandError("ERR DISCARD without MULTI")
    c.end_transaction()
    return OK


@command(
    "watch",
    -2,
    "noscript loading stale fast",
    (1, -1, 1),
    "transactions",
    "Monitors keys for changes before a transaction.",
)
def watch(c: Client, argv: list[bytes]) -> bytes:
    if c.multi is not None:
        raise CommandError("ERR WATCH inside MULTI is not allowed")
    db = c.db
    for key in argv[1:]:
        if (db.index, key) in c.watched:
            continue
        c.watched.add((db.index, key))
        db.watchers.setdefault(key, set()).add(c)
    return OK


@command(
    "unwatch",
    1,
    "noscript loading stale fast",
    group="transactions",
    summary="Forgets all watched keys.",
)
def unwatch(c: Client, argv: list[bytes]) -> bytes:
    c.unwatch()
    return OK
