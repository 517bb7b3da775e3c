"""One client connection: its small, explicit state and its asyncio protocol.

The state that matters across a handover (database, name, protocol, auth, unparsed input,
queued transaction, watched keys) lives in plain attributes listed in `__slots__`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
import time
from typing import TYPE_CHECKING, Any

from ironcache.log import log
from ironcache.protocol import ProtocolError, error, make_parser
from ironcache.tracking import BCAST, BROKEN_REDIR

_monotonic = time.monotonic
QBUF_LIMIT_MIN = 1024 * 1024  # client-query-buffer-limit's lowest accepted value
QBUF_IOBUF_LEN = 16 * 1024  # Redis's PROTO_IOBUF_LEN: a read's room in the query buffer
QBUF_RESIZE_THRESHOLD = 32 * 1024  # Redis's PROTO_RESIZE_THRESHOLD

if TYPE_CHECKING:
    from ironcache.context import Host
    from ironcache.keyspace import Database
    from ironcache.listener import Listener

    Server = Host["Client"]  # the server as a connection sees it: see context.Host


PEEK_CHUNK = 256 * 1024
# The start of an incomplete command up to this size is journaled, so a crash loses nothing;
# a connection in the middle of a bigger one is closed by a crash instead.
HELD_JOURNAL_MAX = 16 * 1024
# Slot flags (see handover.Slots).
JOURNALED = 1  # the batch and its replies are in the journal
UNSAFE = 2  # an incomplete command's start is held here and not journaled
HELD = 4  # an incomplete command's start is held here (journaled unless UNSAFE)
_SCRATCH = bytearray(256 * 1024)
# Client.reply_off (CLIENT REPLY OFF / SKIP).
REPLY_OFF = 1
REPLY_SKIP_NEXT = 2  # set by CLIENT REPLY SKIP: its own reply and the next one are dropped
REPLY_SKIP = 3
# Redis's protected-mode reply, in IronCache's terms; the connection closes after it.
DENIED = (
    b"-DENIED IronCache is running in protected mode because protected mode is enabled and "
    b"no password is set. In this mode connections are only accepted from the loopback "
    b"interface and unix sockets. If you want to connect from other computers you may adopt "
    b"one of the following solutions: 1) Set a password (requirepass; ironcache_requirepass "
    b"in the Ansible role) and AUTH with it. 2) Disable protected mode by sending "
    b"'CONFIG SET protected-mode no' from the loopback interface, however MAKE SURE IronCache "
    b"is not publicly accessible from the internet if you do so; make it permanent in the "
    b"configuration file (protected-mode no; ironcache_protected_mode: false in the role). "
    b"3) If you started the server manually just for testing, restart it with the "
    b"'--protected-mode no' option. NOTE: You only need to do one of the above things in "
    b"order for the server to start accepting connections from the outside.\r\n"
)


class Client(asyncio.Protocol):
    __slots__ = (
        "server",
        "id",
        "listener",
        "transport",
        "parser",
        "db",
        "name",
        "lib_name",
        "lib_ver",
        "resp",
        "authenticated",
        "user",
        "multi",
        "multi_error",
        "watched",
        "dirty_cas",
        "created",
        "last_active",
        "addr",
        "laddr",
        "closing",
        "paused",
        "last_command",
        "rx",
        "tx",
        "slot",
        "peek_sock",
        "tls_proto",
        "deferred",
        "obuf_soft_since",
        "reply_off",
        "channels",
        "patterns",
        "schannels",
        "blocked",
        "block_deadline",
        "outbox",
        "qbuf_alloc",
        "qbuf_peak",
        "tracking",
        "tracking_redir",
        "tracking_prefixes",
    )

    def __init__(self, server: Server, listener: Listener, client_id: int | None = None) -> None:
        self.server = server
        self.listener = listener
        self.id = server.next_client_id() if client_id is None else client_id
        self.transport: asyncio.Transport | None = None
        cfg = server.config
        self.parser = make_parser(cfg["proto-max-bulk-len"], 2**31 - 1)
        self.db: Database = server.keyspace.dbs[0]
        self.name = b""
        self.lib_name = b""
        self.lib_ver = b""
        self.resp = 2
        # The ACL user (ironcache.acl.User): the default one until AUTH, as in Redis.
        self.user = server.acl.default
        self.authenticated = self.user.nopass and self.user.enabled
        self.parser.authenticated = self.authenticated
        self.multi: list[list[bytes]] | None = None  # queued commands inside MULTI
        self.multi_error = False
        self.watched: set[tuple[int, bytes]] = set()
        self.dirty_cas = False  # a watched key changed: EXEC will fail
        self.created = self.last_active = time.monotonic()
        self.addr = ""
        self.laddr = ""
        self.closing = False
        self.paused = False
        self.last_command = b"NULL"
        # Bytes read and written since the connection began, as the kernel counts them, and
        # where the handover records them (-1: not recorded); see handover.Slots.
        self.rx = 0
        self.tx = 0
        self.slot = -1
        # Crash-safe reading (handover on, TCP): a second fd on the socket that requests are
        # peeked through, and consumed only once answered.
        self.peek_sock: socket.socket | None = None
        # A TLS connection's asyncio SSLProtocol: busy_poll feeds it the raw bytes it reads.
        self.tls_proto: Any = None
        # Commands of a read wait in the parser until the replies before them are read.
        self.deferred = False
        # When the output buffer went over the soft limit (0: it is under).
        self.obuf_soft_since = 0.0
        # CLIENT REPLY: 0 on, else REPLY_OFF / REPLY_SKIP_NEXT / REPLY_SKIP (see muted()).
        self.reply_off = 0
        # Pub/sub subscriptions (pubsub.PubSub keeps the other side).
        self.channels: set[bytes] = set()
        self.patterns: set[bytes] = set()
        self.schannels: set[bytes] = set()
        # The blocking command this client waits in (blocking.Waiter), and the deadline a
        # handed-over wait keeps (wall clock s, 0 forever; the re-sent command takes it).
        self.blocked: Any = None
        self.block_deadline: float | None = None
        # Pushes to this client while its own command runs: they go before that reply.
        self.outbox: list[bytes] | None = None
        # The query buffer Redis would hold for this connection (CLIENT LIST qbuf-free): it
        # grows to the largest read or partial request (the peak) and the cron shrinks it
        # (resize_query_buffer), as Redis's clientsCronResizeQueryBuffer does.
        self.qbuf_alloc = 0
        self.qbuf_peak = 0
        # CLIENT TRACKING (tracking.py): its flags (0: off), the client id its invalidations
        # go to (0: itself) and its BCAST prefixes.
        self.tracking = 0
        self.tracking_redir = 0
        self.tracking_prefixes: list[bytes] = []

    # ------------------------------------------------------------- asyncio
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        self.addr = _fmt_addr(transport.get_extra_info("peername"), self.listener)
        self.laddr = _fmt_addr(transport.get_extra_info("sockname"), self.listener)
        srv = self.server
        if len(srv.clients) >= srv.config["maxclients"]:
            srv.rejected_connections += 1
            transport.write(b"-ERR max number of clients reached\r\n")
            transport.close()
            self.closing = True
            return
        cfg = srv.config.values
        if cfg["protected-mode"] and not cfg["requirepass"] and not self.is_local():
            srv.rejected_connections += 1
            transport.write(DENIED)
            transport.close()
            self.closing = True
            return
        srv.clients[self.id] = self
        srv.connections_received += 1
        if srv.handing_over and not self.listener.tls:  # (TLS: served until closed)
            # Connected after the handover began: the next process reads its requests.
            transport.pause_reading()  # type: ignore[attr-defined]
        else:
            srv.handover.client_connected(self)
        sock = transport.get_extra_info("socket")
        if sock is not None and self.listener.kind == "tcp":
            _tune_tcp(sock, srv.config["tcp-keepalive"])

    def is_local(self) -> bool:
        """A unix-socket or loopback client: protected mode and protected configs trust it."""
        if self.listener.kind == "unix":
            return True
        peer = self.transport.get_extra_info("peername") if self.transport else None
        if not isinstance(peer, tuple) or not peer:
            return False
        try:
            ip = ipaddress.ip_address(str(peer[0]).split("%", maxsplit=1)[0])
        except ValueError:
            return False
        mapped = getattr(ip, "ipv4_mapped", None)
        return ip.is_loopback or (mapped is not None and mapped.is_loopback)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self._send(len(data), self.process(data))

    def _send(self, nread: int, payload: bytes) -> None:
        """Count, journal and write the replies to `nread` bytes of input (transport reads)."""
        srv = self.server
        self.rx += nread
        n = len(payload)
        self.tx += n
        if srv.handover.ops:
            srv.handover.flush()  # journaled before the reply leaves
        transport = self.transport
        if n:
            srv.net_output_bytes += n
            transport.write(payload)  # type: ignore[union-attr]
            # Nothing left queued (the kernel took it all): under any limit, nothing to do.
            if self.obuf_soft_since or transport.get_write_buffer_size():  # type: ignore[union-attr]
                self.check_output()
        if self.closing:
            transport.close()  # type: ignore[union-attr]  # flushes what is queued
        elif self.deferred and self.blocked is None:
            self._defer_reading()

    def process(self, data: bytes) -> bytes:
        """Parse `data` and run every complete command in it; returns the replies.

        Once the replies built pass REPLY_BATCH_MAX, the remaining commands wait in the parser
        (`deferred`) and reading stops until the client has read what it was sent.
        """
        self.last_active = _monotonic()
        srv = self.server
        n = len(data)
        srv.net_input_bytes += n
        if n > self.qbuf_peak:
            self.qbuf_peak = n
        parser = self.parser
        if self.blocked is not None:  # runs once unblocked (see unblocked())
            parser.feed(data)
            self.deferred = True
            self._check_input()
            return b""
        if self.authenticated:
            cmds, err = parser.batch(data)  # _run() inlined: once per read
            out = srv.execute_batch(self, cmds) if cmds else []
            if not parser.at_boundary or len(out) < len(cmds):  # (at_boundary: no error)
                self._settle(cmds, out, err)
            return out[0] if len(out) == 1 else b"".join(out)
        out: list[bytes] = []
        run = srv.execute
        try:
            parser.feed(data)
            # One at a time: AUTH changes the limits the next request is parsed with.
            while not self.closing and (argv := parser.next_command()) is not None:
                out.append(run(self, argv))
        except ProtocolError as e:
            self._protocol_error(e, out)
        self._check_input()
        return b"".join(out)

    def _run(self, cmds: list[list[bytes]], err: ProtocolError | None) -> bytes:
        out = self.server.execute_batch(self, cmds) if cmds else []
        self._settle(cmds, out, err)
        return out[0] if len(out) == 1 else b"".join(out)

    def _settle(self, cmds: list[list[bytes]], out: list[bytes], err: ProtocolError | None) -> None:
        """After a batch: keep the commands not run yet, answer a protocol error, and check
        what the parser holds."""
        if self.blocked is not None and not self.closing:
            self.parser.defer(cmds[len(out) :], err)  # the rest, once unblocked
            self.deferred = True
        elif len(out) < len(cmds) and not self.closing:
            self.parser.defer(cmds[len(out) :], err)  # the rest, once these are read
            self.deferred = True
        elif err is not None and not self.closing:
            self._protocol_error(err, out)
        if not self.parser.idle():
            self._check_input()

    def _check_input(self) -> None:
        """Close a client whose unparsed input costs more than client-query-buffer-limit."""
        # The limit is at least QBUF_LIMIT_MIN: the configured value is read only past that.
        held = self.parser.memory()
        if held > self.qbuf_peak:
            self.qbuf_peak = held
        if (
            not self.closing
            and held > QBUF_LIMIT_MIN
            and held > self.server.config.values["client-query-buffer-limit"]
        ):
            log.warning(
                f"closing client id={self.id} addr={self.addr}: query buffer limit "
                f"({held} bytes held)"
            )
            self.closing = True

    def push(self, data: bytes) -> None:
        """Bytes outside a request's reply (a message, a late BLPOP reply): journaled writes
        first, and counted in `tx` as the kernel counts them, as MONITOR output is."""
        if self.outbox is not None:  # our own command runs: before its reply
            self.outbox.append(data)
            return
        if self.transport is None or self.closing:
            return
        srv = self.server
        if srv.handover.ops:
            srv.handover.flush()
        self.tx += len(data)
        if self.slot >= 0:
            srv.handover.pushed(self, self.tx - len(data))
        srv.net_output_bytes += len(data)
        self.transport.write(data)
        self.check_output()

    def unblocked(self) -> None:
        """Served, timed out or unblocked: the requests that arrived meanwhile run now."""
        if self.deferred and not self.closing and self.server.loop is not None:
            self.server.loop.call_soon(self._continue)

    def check_output(self) -> None:
        """client-output-buffer-limit (normal class, pubsub for subscribers): past the hard
        limit, or past the soft one for its seconds, the client is disconnected and its
        pending replies dropped."""
        srv = self.server
        hard, soft, secs = (
            srv.obuf_pubsub if self.channels or self.patterns or self.schannels else srv.obuf_normal
        )
        if not (hard or soft) or self.transport is None:
            if self.obuf_soft_since:
                self.obuf_soft_since = 0.0
                self.server.obuf_soft.discard(self)
            return
        size = self.transport.get_write_buffer_size()
        over = bool(hard) and size >= hard
        if soft and size >= soft:
            now = _monotonic()
            if not self.obuf_soft_since:
                self.obuf_soft_since = now
                self.server.obuf_soft.add(self)  # the cron looks again: no write may come
            elif now - self.obuf_soft_since >= secs:
                over = True
        elif self.obuf_soft_since:
            self.obuf_soft_since = 0.0
            self.server.obuf_soft.discard(self)
        if over and not self.closing:
            log.warning(
                f"closing client id={self.id} addr={self.addr}: output buffer limit "
                f"({size} bytes pending)"
            )
            self.closing = True
            self.server.obuf_soft.discard(self)
            self._stop_peeking()
            self.transport.abort()

    def _defer_reading(self) -> None:
        """Commands wait in the parser: read nothing more, run them once replies drained."""
        self._pause_reading()
        if not self.paused:  # the kernel took the replies already: go on after the others
            assert self.server.loop is not None
            self.server.loop.call_soon(self._continue)

    def _continue(self) -> None:
        """Run the commands deferred (resume_writing or call_soon brings us here)."""
        if not self.deferred or self.closing or self.server.handing_over or self.blocked:
            return
        self.deferred = False
        self.last_active = _monotonic()
        payload = self._run(*self.parser.next_batch())
        if self.peek_sock is not None:
            self._answer(0, payload)
        else:
            self._send(0, payload)
        if not self.deferred and not self.closing and not self.paused:
            self._resume_reading()

    def _pause_reading(self) -> None:
        if self.peek_sock is not None and self.server.loop is not None:
            self.server.loop.remove_reader(self.peek_sock.fileno())
        elif self.transport is not None:
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self.closing or self.server.handing_over:
            return
        if self.peek_sock is not None and self.server.loop is not None:
            self.server.loop.add_reader(self.peek_sock.fileno(), self._readable)
        elif self.transport is not None:
            self.transport.resume_reading()

    # ------------------------------------------------------------- crash-safe reading
    def start_peeking(self) -> bool:
        """Read through MSG_PEEK from now on (see handover.Slots for what it guarantees)."""
        assert self.transport is not None and self.server.loop is not None
        sock = self.transport.get_extra_info("socket")
        if sock is None or self.server.handing_over:
            return False
        try:
            self.peek_sock = socket.socket(fileno=os.dup(sock.fileno()))
        except OSError:
            return False
        self.peek_sock.setblocking(False)
        # The socket's own setting: a release before this one may have raised it.
        with contextlib.suppress(OSError):
            self.peek_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)
        self.transport.pause_reading()  # the transport only writes from now on
        if not self.paused:
            self.server.loop.add_reader(self.peek_sock.fileno(), self._readable)
        return True

    def stop_reading(self) -> None:
        """Read no more requests (a handover: the next process reads them)."""
        if self.peek_sock is not None and self.server.loop is not None:
            self.server.loop.remove_reader(self.peek_sock.fileno())
        elif self.transport is not None:
            self.transport.pause_reading()

    def _stop_peeking(self) -> None:
        sock = self.peek_sock
        if sock is not None:
            self.peek_sock = None
            if self.server.loop is not None:
                self.server.loop.remove_reader(sock.fileno())
            sock.close()

    def _readable(self) -> None:
        """Peek, answer, journal, record, write, and only then consume what was read.

        A crash at any point leaves the kernel's counters, the slot and the journal telling
        the next process exactly what was answered; see handover.reconcile(). Everything
        peeked is consumed (bytes left in the kernel could pin a whole socket buffer); the
        start of a command still incomplete is journaled with the batch instead.
        """
        sock = self.peek_sock
        if sock is None or self.closing:
            return
        try:
            data = sock.recv(PEEK_CHUNK, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._stop_peeking()
            self.transport.abort()  # type: ignore[union-attr]
            return
        if not data:  # the client closed its side
            self._stop_peeking()
            self.closing = True
            self.transport.close()  # type: ignore[union-attr]
            return
        payload = self.process(data)
        self._answer(len(data), payload)

    def _answer(self, nread: int, payload: bytes) -> None:
        """Journal, record, write, then consume `nread` peeked bytes (crash-safe reading)."""
        sock = self.peek_sock
        assert sock is not None
        held = self.parser.held()
        partial = b""
        flags = 0
        if held:
            flags = HELD
            if 0 < held <= HELD_JOURNAL_MAX:
                partial = self.parser.unparsed()
            if not partial:
                flags |= UNSAFE  # a crash before it completes closes this connection
        srv = self.server
        ho = srv.handover
        c0, w0 = self.rx, self.tx
        self.rx = c0 + nread
        self.tx = w0 + len(payload)
        if ho.ops or partial:
            flags |= JOURNALED
            ho.flush_batch(self, c0, w0, payload, partial)
        if self.slot >= 0:
            ho.slots.note_batch(self, c0, w0, flags)  # type: ignore[union-attr]
        if payload:
            srv.net_output_bytes += len(payload)
            self.transport.write(payload)  # type: ignore[union-attr]
            if self.obuf_soft_since or self.transport.get_write_buffer_size():  # type: ignore[union-attr]
                self.check_output()
        left = nread
        try:
            while left:
                left -= sock.recv_into(_SCRATCH, min(left, len(_SCRATCH)))
        except OSError:
            self.closing = True
        if self.closing:
            self._stop_peeking()
            self.transport.close()  # type: ignore[union-attr]
        elif self.deferred and self.blocked is None:
            self._defer_reading()

    def _protocol_error(self, e: ProtocolError, out: list[bytes]) -> None:
        log.verbose(f"protocol error from client id={self.id} addr={self.addr}: {e!r}")
        # latin-1: "expected '$', got '%c'" names the byte itself, as Redis does.
        out.append(error(f"ERR Protocol error: {e}", "latin-1"))
        self.closing = True

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.server.obuf_soft.discard(self)
        self._stop_peeking()
        self.unwatch()
        self.server.clients.pop(self.id, None)
        self.server.client_closed(self)

    def pause_writing(self) -> None:
        # The client reads slower than it asks: stop reading its requests until it catches up.
        self.paused = True
        self._pause_reading()

    def resume_writing(self) -> None:
        self.paused = False
        if self.closing or self.server.handing_over:
            return
        if self.obuf_soft_since:
            self.check_output()
        if self.deferred:
            assert self.server.loop is not None
            self.server.loop.call_soon(self._continue)
        else:
            self._resume_reading()

    # ------------------------------------------------------------- state helpers
    def authenticate(self, user: Any = None) -> None:
        if user is not None:
            self.user = user
        self.authenticated = True
        self.parser.authenticated = True

    def end_transaction(self) -> None:
        """Leave MULTI (if in it) and forget WATCHed keys: EXEC, DISCARD, RESET, an aborted EXEC."""
        self.multi = None
        self.multi_error = False
        self.unwatch()

    def unwatch(self) -> None:
        if not self.watched:
            self.dirty_cas = False
            return
        dbs = self.server.keyspace.dbs
        for index, key in self.watched:
            watchers = dbs[index].watchers.get(key)
            if watchers is not None:
                watchers.discard(self)
                if not watchers:
                    del dbs[index].watchers[key]
        self.watched.clear()
        self.dirty_cas = False

    def muted(self, reply: bytes) -> bytes:
        """The reply as CLIENT REPLY OFF/SKIP leaves it (none), stepping SKIP along."""
        if self.reply_off == REPLY_SKIP_NEXT:  # CLIENT REPLY SKIP itself: the next one goes
            self.reply_off = REPLY_SKIP
        elif self.reply_off == REPLY_SKIP:
            self.reply_off = 0
        return b""

    def query_buffer(self) -> int:
        """The query buffer's size: at least PROTO_IOBUF_LEN once something was read."""
        peak = self.qbuf_peak
        return max(self.qbuf_alloc, peak, QBUF_IOBUF_LEN if peak else 0)

    def resize_query_buffer(self, now: float) -> None:
        """Redis's clientsCronResizeQueryBuffer: free the room of a client idle for over
        2 s, trim one much larger than its recent peak; then a new peak period starts."""
        used = self.parser.pending()
        size = self.query_buffer()
        if size - used > 4096:
            if now - self.last_active > 2:
                size = used
            elif size > QBUF_RESIZE_THRESHOLD and size // 2 > self.qbuf_peak:
                size = max(used, self.qbuf_peak)
        self.qbuf_alloc = size
        self.qbuf_peak = used

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    def info_line(self, argv: list[bytes] | None = None) -> str:
        """CLIENT LIST's line; `argv`: the caller's own request, still in its buffer (as in
        Redis, whose query buffer holds the request while it runs)."""
        now = time.monotonic()
        flags = "O" if self in self.server.monitors else ""
        if self.blocked is not None:
            flags += "b"
        if self.channels or self.patterns or self.schannels:
            flags += "P"
        if self.multi is not None:
            flags += "x"
        if self.tracking:
            flags += "t"  # Redis's order: t, R (broken redirect), B (BCAST)
            if self.tracking & BROKEN_REDIR:
                flags += "R"
            if self.tracking & BCAST:
                flags += "B"
        if self.dirty_cas:
            flags += "d"
        if self.listener.kind == "unix":
            flags += "U"
        qbuf = self.parser.pending()
        qbuf_size = self.query_buffer()
        argv_mem = 0
        if argv is not None:
            argv_mem = sum(len(a) for a in argv)
            qbuf += len(b"*%d\r\n" % len(argv)) + sum(len(b"$%d\r\n\r\n" % len(a)) for a in argv)
            qbuf += argv_mem
        qbuf_free = max(0, qbuf_size - qbuf)
        multi_mem = sum(len(a) for q in self.multi for a in q) if self.multi else 0
        cmd = self.last_command.decode(errors="replace").lower()
        return (
            f"id={self.id} addr={self.addr} laddr={self.laddr} fd={self._fd()} "
            f"name={self.name.decode(errors='replace')} age={int(now - self.created)} "
            f"idle={int(now - self.last_active)} flags={flags or 'N'} db={self.db.index} "
            f"sub={len(self.channels)} psub={len(self.patterns)} ssub={len(self.schannels)} "
            f"multi={-1 if self.multi is None else len(self.multi)} qbuf={qbuf} "
            f"qbuf-free={qbuf_free} argv-mem={argv_mem} multi-mem={multi_mem} "
            "rbs=0 rbp=0 obl=0 oll=0 "
            f"omem=0 tot-mem=0 events=r cmd={cmd} user={self.user.name.decode('latin-1')} "
            f"redir={self.tracking_redir if self.tracking else -1} resp={self.resp} "
            f"lib-name={self.lib_name.decode(errors='replace')} "
            f"lib-ver={self.lib_ver.decode(errors='replace')}"
        )

    def _fd(self) -> int:
        sock = self.transport.get_extra_info("socket") if self.transport else None
        try:
            return sock.fileno() if sock is not None else -1
        except (OSError, ValueError):
            return -1


def _fmt_addr(addr: Any, listener: Listener) -> str:
    if listener.kind == "unix":
        return f"{listener.address}:0"
    if isinstance(addr, tuple) and len(addr) >= 2:
        host = addr[0]
        return f"[{host}]:{addr[1]}" if ":" in host else f"{host}:{addr[1]}"
    return "?:0"


def _tune_tcp(sock: Any, keepalive: int) -> None:
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if keepalive > 0:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, keepalive)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, max(keepalive // 3, 1))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
    except OSError:
        pass
