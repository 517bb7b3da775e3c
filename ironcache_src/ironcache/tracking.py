"""CLIENT TRACKING: server-assisted client-side caching, as Redis 7.0's tracking.c.

Default mode: the keys a tracking client reads are remembered (key -> client ids, the
tracking table, bounded by `tracking-table-max-keys`); the first change of such a key sends
each of those clients an invalidation and forgets the key. BCAST mode: every change of a key
under one of the client's prefixes is collected and sent once per event-loop turn, one
message per prefix. FLUSHALL/FLUSHDB send a null invalidation to every tracking client.

The keyspace calls `invalidate(key)` from its "key touched" path while anything is tracked
(`Keyspace.invalidate`, None otherwise: nobody tracking costs one test per write). A message
goes to the client itself as a RESP3 push, or to its REDIRECT client: a RESP3 push there, or a
`__redis__:invalidate` message to a RESP2 subscriber. An invalidation of the client whose
command is running waits until that command (its EXEC, its script) has replied.

What a tracking client needs: `id`, `resp`, `push(data)`, `tracking` (flags below),
`tracking_redir` (0 or a client id), `tracking_prefixes` (its BCAST prefixes), and
`channels`/`patterns`/`schannels` (a redirect target in RESP2 must be a subscriber).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import islice
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ironcache.keyspace import Keyspace

# Client.tracking flags (Redis's CLIENT_TRACKING_*).
ON = 1
BCAST = 2
OPTIN = 4
OPTOUT = 8
CACHING = 16  # CLIENT CACHING yes (OPTIN) / no (OPTOUT) for the next command
NOLOOP = 32
BROKEN_REDIR = 64
# Read-only scripts are remembered by the reads they run, not as commands of their own.
NOT_REMEMBERED = frozenset(("eval_ro", "evalsha_ro", "fcall_ro"))
_PUSH = b">2\r\n$10\r\ninvalidate\r\n"
_MESSAGE = b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n"
_NULLS = {2: b"$-1\r\n", 3: b"_\r\n"}


def _keys(keys: Iterable[bytes]) -> bytes:
    body = [b"$%d\r\n%s\r\n" % (len(k), k) for k in keys]
    return b"*%d\r\n" % len(body) + b"".join(body)


class Tracking:
    def __init__(self, keyspace: Keyspace, clients: dict[int, Any]) -> None:
        self.keyspace = keyspace
        self.clients = clients  # by id: the server's
        self.table: dict[bytes, set[int]] = {}  # key -> ids of clients that read it
        self.items = 0  # ids across the table (INFO tracking_total_items)
        self.prefixes: dict[bytes, dict[Any, None]] = {}  # BCAST prefix -> its clients
        self.bcast_keys: dict[bytes, dict[bytes, Any]] = {}  # prefix -> key -> last writer
        self.count = 0  # clients with tracking on (INFO tracking_clients)
        self.max_keys = 1_000_000  # tracking-table-max-keys (0: no limit)
        self.effort_runs = 0  # limit() calls in a row that stayed over the limit
        # The tracking client whose command runs (None between commands): its own
        # invalidations wait in `pending` (None: a flush) until its reply has gone out.
        self.current: Any = None
        self.pending: list[bytes | None] = []
        # The event loop's call_soon (the server sets it): BCAST messages go once per turn.
        self.call_soon: Callable[[Callable[[], None]], Any] | None = None
        self.bcast_scheduled = False

    # ------------------------------------------------------------- on / off
    def enable(self, c: Any, redirect: int, options: int, prefixes: list[bytes]) -> None:
        """enableTracking(): the caller checked the options (commands/connection.py)."""
        if not c.tracking & ON:
            self.count += 1
        c.tracking = (c.tracking & CACHING) | ON | options
        c.tracking_redir = redirect
        if options & BCAST:
            for p in prefixes or [b""]:
                clients = self.prefixes.setdefault(p, {})
                if c not in clients:
                    clients[c] = None
                    self.bcast_keys.setdefault(p, {})
                    c.tracking_prefixes.append(p)
        self._hook()

    def disable(self, c: Any) -> None:
        """disableTracking(): CLIENT TRACKING off, RESET, a closed connection. Keys it read
        stay in the table until changed, as in Redis."""
        for p in c.tracking_prefixes:
            clients = self.prefixes.get(p)
            if clients is not None:
                clients.pop(c, None)
                if not clients:
                    del self.prefixes[p]
                    self.bcast_keys.pop(p, None)
        c.tracking_prefixes = []
        if c.tracking & ON:
            self.count -= 1
        c.tracking = 0
        c.tracking_redir = 0
        if self.current is c:
            self.current = None
            self.pending.clear()
        self._hook()

    def _hook(self) -> None:
        """The keyspace calls invalidate() only while there is something to invalidate."""
        self.keyspace.invalidate = self.invalidate if (self.count or self.table) else None

    # ------------------------------------------------------------- reads
    def remember(self, c: Any, keys: list[bytes]) -> None:
        """trackingRememberKeys(): the keys a command of `c` read (default mode only)."""
        flags = c.tracking
        if flags & BCAST or not flags & ON:
            return
        caching = flags & CACHING
        if (flags & OPTIN and not caching) or (flags & OPTOUT and caching):
            return
        table = self.table
        cid = c.id
        for key in keys:
            ids = table.get(key)
            if ids is None:
                table[key] = {cid}
                self.items += 1
            elif cid not in ids:
                ids.add(cid)
                self.items += 1
        if self.max_keys and len(table) > self.max_keys:
            self.limit()
        self._hook()

    def limit(self) -> None:
        """trackingLimitUsedSlots(): over tracking-table-max-keys, invalidate up to 100 keys,
        100 more per call each time the last call could not get under the limit."""
        table = self.table
        if not self.max_keys or len(table) <= self.max_keys:
            self.effort_runs = 0
            return
        effort = 100 * (self.effort_runs + 1)
        # The oldest keys first (Redis walks its radix tree at random): O(effort).
        victims = list(islice(table, min(effort, len(table) - self.max_keys)))
        for key in victims:
            self._invalidate(key, None, bcast=False)
        if len(table) > self.max_keys:
            self.effort_runs += 1
        else:
            self.effort_runs = 0
        self._hook()

    # ------------------------------------------------------------- writes
    def invalidate(self, key: bytes) -> None:
        """A key changed (the keyspace's callback): its writer is the running tracking
        client, none for expiry and eviction."""
        writer = None if self.keyspace.server_delete else self.current
        self._invalidate(key, writer, bcast=True)
        if not self.count and not self.table:
            self.keyspace.invalidate = None

    def _invalidate(self, key: bytes, writer: Any, bcast: bool) -> None:
        if bcast and self.prefixes:
            for p, keys in self.bcast_keys.items():
                if key.startswith(p):
                    keys[key] = writer
            if not self.bcast_scheduled and self.call_soon is not None:
                self.bcast_scheduled = True
                self.call_soon(self.broadcast)
        ids = self.table.pop(key, None)
        if ids is None:
            return
        self.items -= len(ids)
        current = self.current
        for cid in ids:
            target = self.clients.get(cid)
            if target is None or not target.tracking & ON or target.tracking & BCAST:
                continue
            if target is current:
                if target.tracking & NOLOOP:
                    continue
                self.pending.append(key)  # after its reply
            else:
                self.send(target, _keys((key,)))

    def flushed(self) -> None:
        """FLUSHALL / FLUSHDB: a null invalidation to every tracking client; the table goes."""
        if self.count:
            for c in list(self.clients.values()):
                if c.tracking & ON:
                    if c is self.current:
                        self.pending.append(None)
                    else:
                        self.send(c, _NULLS[3 if c.resp == 3 else 2])
        self.table = {}
        self.items = 0
        self._hook()

    def handed_over(self, clients: list[Any]) -> None:
        """After a handover (or a crash restart): the connections and their tracking modes
        were carried over, the keys they read were not (the table changes with every read:
        too costly to journal). A null invalidation, as FLUSHALL sends, tells each tracking
        client to drop its whole cache, so none keeps a value the new process would not
        invalidate."""
        for c in clients:
            if c.tracking & ON:
                self.send(c, _NULLS[3 if c.resp == 3 else 2])

    def after_command(self, c: Any) -> bytes:
        """The invalidations of `c`'s own command, which go after its reply."""
        pending = self.pending
        self.current = None
        if not pending:
            return b""
        out: list[bytes] = []
        for key in pending:
            if key is None:
                data = self.message(c, _NULLS[3 if c.resp == 3 else 2])
            else:
                data = self.message(c, _keys((key,)))
            if data:
                out.append(data)
        pending.clear()
        return b"".join(out)

    def broadcast(self) -> None:
        """trackingBroadcastInvalidationMessages(): the keys changed under each prefix
        since the last turn, one message per prefix (NOLOOP clients: less their own)."""
        self.bcast_scheduled = False
        for p, keys in self.bcast_keys.items():
            if not keys:
                continue
            common = _keys(keys)
            for c in list(self.prefixes.get(p, ())):
                if c.tracking & NOLOOP:
                    mine = [k for k, w in keys.items() if w is not c]
                    if mine:
                        self.send(c, _keys(mine))
                else:
                    self.send(c, common)
            self.bcast_keys[p] = {}

    # ------------------------------------------------------------- messages
    def send(self, c: Any, payload: bytes) -> None:
        data = self.message(c, payload)
        if data:
            c.push(data)

    def message(self, c: Any, payload: bytes) -> bytes:
        """sendTrackingMessage(): the bytes to push for `c`'s invalidation `payload`, to the
        client it redirects to or to itself (b"" when there is nobody to send it to;
        `tracking-redir-broken` to a RESP3 client whose redirect client is gone)."""
        redir = c.tracking_redir
        if redir:
            target = self.clients.get(redir)
            if target is None or target.closing:
                c.tracking |= BROKEN_REDIR
                if c.resp == 3:
                    return b">2\r\n$21\r\ntracking-redir-broken\r\n:%d\r\n" % redir
                return b""
            if target is not c:
                if target.resp == 3:
                    target.push(_PUSH + payload)
                elif target.channels or target.patterns or target.schannels:
                    target.push(_MESSAGE + payload)
                return b""
        if c.resp == 3:
            return _PUSH + payload
        return b""  # RESP2 without a redirect: nowhere to say it

    # ------------------------------------------------------------- INFO
    def info(self) -> dict[str, int]:
        return {
            "tracking_total_keys": len(self.table),
            "tracking_total_items": self.items,
            "tracking_total_prefixes": len(self.prefixes),
        }
