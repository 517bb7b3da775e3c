"""What the layers below the server need from it, written down as narrow interfaces.

A connection (`client`), the command families (`commands/`) and the handover get the running
server as a `Host`: the `Server` satisfies these protocols structurally, without any of them
importing `ironcache.server`. Each can be read with this page instead of the whole server,
and whatever a lower layer starts to need from above shows up here first.

`C` is the connection type (`ironcache.client.Client`), a parameter because this module sits
below the client. Only type checkers read this module: nothing imports it at run time.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from ironcache.acl import Acl
    from ironcache.blocking import Blocking
    from ironcache.config import Config
    from ironcache.keyspace import Keyspace
    from ironcache.listener import Listener
    from ironcache.pubsub import PubSub
    from ironcache.sdnotify import Notifier
    from ironcache.tracking import Tracking

C = TypeVar("C")


class CrashSlots(Protocol[C]):
    """Where each connection stands, for a restart after a crash (handover.Slots)."""

    def note_batch(self, c: C, rx0: int, tx0: int, flags: int) -> None: ...


class Journal(Protocol[C]):
    """The handover as a connection sees it: the journal written before replies leave."""

    ops: list[tuple[Any, ...]]  # operations waiting for flush()
    slots: CrashSlots[C] | None

    def client_connected(self, c: C) -> None: ...
    def flush(self) -> None: ...
    def flush_batch(self, c: C, rx0: int, tx0: int, replies: bytes, held: bytes) -> None: ...
    def info(self) -> dict[str, Any]: ...  # INFO handover
    def wrote(self, db: int, argv: list[bytes]) -> None: ...  # a write outside the handlers
    def pushed(self, c: C, tx0: int) -> None: ...  # bytes outside a reply about to leave


class Host(Protocol[C]):
    """The running server as a connection and the commands it runs see it (`Client.server`)."""

    config: Config
    keyspace: Keyspace
    clients: dict[int, C]  # by client id
    loop: asyncio.AbstractEventLoop | None
    listeners: list[Listener]
    handover: Journal[C]
    handing_over: bool  # no connection reads from now on: the next process does
    obuf_soft: set[C]  # connections over the soft output limit: the cron looks at them
    obuf_normal: tuple[int, int, int]  # client-output-buffer-limit normal (config_changed())
    obuf_pubsub: tuple[int, int, int]  # ... and pubsub, for subscribers
    pubsub: PubSub  # channels and patterns -> subscribers
    blocking: Blocking  # keys -> clients waiting in BLPOP & co.
    tracking: Tracking  # CLIENT TRACKING: keys read -> clients to invalidate
    depth: int  # commands running (EXEC's run inside it): blocking ones do not block then
    monitors: set[C]  # MONITOR clients
    # Counters a connection bumps (INFO stats).
    connections_received: int
    rejected_connections: int
    net_input_bytes: int
    net_output_bytes: int
    errorstats: dict[str, int]  # INFO errorstats: replies by error code
    commands_processed: int
    error_replies: int
    # Scripting (commands/scripting.py): its engine, and the -BUSY reply while one runs long.
    lua: Any
    acl: Acl  # users and the ACL log (commands/acl.py)
    script_busy: str | None
    stopping: asyncio.Event | None

    def busy_poll(self, running: C) -> None: ...
    def busy_end(self) -> None: ...
    def acl_script_denied(self, caller: C, cmd: Any, argv: list[bytes]) -> str: ...
    def next_client_id(self) -> int: ...
    def client_closed(self, c: C) -> None: ...
    def execute(self, c: C, argv: list[bytes]) -> bytes: ...
    def execute_batch(self, c: C, cmds: list[list[bytes]]) -> list[bytes]: ...
    def feed_monitors(self, c: C, argv: list[bytes], script: bool = False) -> None: ...

    # What the server commands (INFO, CONFIG, SAVE, SHUTDOWN...) read and control.
    run_id: str
    started: float
    exec_to_ready_ms: float
    event_loop_name: str
    peak_memory: int
    maxmemory: int
    last_save: int
    last_save_status: str
    shutdown_save: bool | None

    @property
    def stats(self) -> dict[str, int]: ...
    @property
    def socket_activated(self) -> bool: ...
    def reset_stats(self) -> None: ...
    def update_maxmemory(self) -> None: ...
    def config_changed(self) -> None: ...
    def rebind(self, kind: str, bind: list[str], port: int, unixsocket: str) -> None: ...
    def reload_tls(self) -> None: ...  # tls.TLSError: the settings cannot make a context
    def save(self, blob: bytes | None = None) -> int: ...
    def request_stop(self, reason: str) -> None: ...


class HandoverHost(Host[C], Protocol[C]):
    """What the handover needs besides: the fd store, client ids, and a client to replay as."""

    notifier: Notifier
    client_ids: int  # the highest id given out: restored connections keep theirs
    acl_source: str  # digest of the configured users (server.acl_source)

    def replay_client(self) -> C: ...
