"""Live handover through systemd's fd store: connections and the dataset outlive the process.

What is in the store (names are short: LISTEN_FDNAMES must fit in one environment string):

    c<id>        every client socket (id in base 36), stored when accepted and removed when
                 it closes, so clients stay connected across a restart and across a crash
    state-<gen>  a memfd with a snapshot (`ironcache.state`): the dataset and client records
    journal-<gen> a memfd that every write command is appended to before its reply is sent;
                 state-<gen> + journal-<gen> is the dataset even after `kill -9`

On SIGTERM the server stops reading, flushes replies, writes state-<gen+1> with every client's
full state (database, name, protocol, auth, unparsed input, queued MULTI, WATCH as touched),
drops the older generation and confirms with BARRIER=1 before it exits. At start the newest
generation is read: without a journal it was a clean handover, with one a crash (the journal
is replayed on the snapshot, and clients keep their last recorded state). A state this release
cannot read is reported; the server then starts from the disk snapshot or empty and closes the
handed-over connections, which clients see as an ordinary close.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import re
import socket
import struct
import time
import zlib
from typing import TYPE_CHECKING, Any

from ironcache import keyspace as ks_mod
from ironcache import state
from ironcache.acl import AclError
from ironcache.log import log
from ironcache.protocol import encode_request

if TYPE_CHECKING:
    from ironcache.client import Client
    from ironcache.context import HandoverHost
    from ironcache.listener import Listener

    Server = HandoverHost[Client]  # the server as the handover sees it: see context.py

# Commands that change a connection's state: recorded so a crash restart keeps it (a new
# family marks its own: @command(..., client_state=True)).
CLIENT_STATE_COMMANDS = frozenset(
    ("select", "auth", "hello", "client", "reset", "multi", "exec", "discard", "watch", "unwatch")
)
# Write commands with a random outcome: the journal records the key's new value instead.
RANDOM_WRITES = frozenset(("spop",))
NAME = re.compile(r"^(?:c([0-9a-z]+)|(state|journal)-(\d+)|(slots))$")
DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def client_fd_name(client_id: int) -> str:
    """c + the id in base 36: short, because every name goes into LISTEN_FDNAMES."""
    out = ""
    while True:
        client_id, r = divmod(client_id, 36)
        out = DIGITS[r] + out
        if not client_id:
            return "c" + out


# Compact the journal into a new snapshot once it outgrows this and the snapshot itself.
JOURNAL_MIN_COMPACT = 64 * 1024 * 1024
DRAIN_TIMEOUT_S = 5.0

# Crash consistency per connection, in a memfd mapped shared (plain memory writes, no system
# call per request, and they outlive the process): client id, input bytes answered, output
# bytes written, both counted from the start of the connection as the kernel counts them.
SLOT = struct.Struct("<QQQQQI")  # id, before (read, written), after (read, written), flags
SLOT_CRC = struct.Struct("<I")
SLOT_SIZE = 48
JOURNALED = 1  # the batch, its replies and any incomplete command's start are in the journal
UNSAFE = 2  # an incomplete command's start is held and not journaled (too big)
HELD = 4  # an incomplete command's start is held
SLOT_COUNT = 16384
SIOCINQ = 0x541B
SIOCOUTQ = 0x5411
TCP_INFO_BYTES_ACKED = 120  # struct tcp_info: tcpi_bytes_acked (Linux 4.1+)
TCP_INFO_BYTES_RECEIVED = 128  # tcpi_bytes_received
# tcpi_state (the first byte) once the peer's FIN has arrived: the FIN takes a sequence number,
# so tcpi_bytes_received counts one more than the bytes the peer sent.
TCP_FIN_RECEIVED_STATES = frozenset((8, 9, 11))  # CLOSE_WAIT, LAST_ACK, CLOSING


def kernel_counters(sock: socket.socket) -> tuple[int, int] | None:
    """(input bytes the application has read, output bytes it has written) for a TCP socket.

    Read = received - still queued; written = acknowledged + still queued to send.
    """
    import fcntl

    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
        if len(info) < TCP_INFO_BYTES_RECEIVED + 8:
            return None
        acked, received = struct.unpack_from("<QQ", info, TCP_INFO_BYTES_ACKED)
        if info[0] in TCP_FIN_RECEIVED_STATES:
            received -= 1
        inq = struct.unpack("i", fcntl.ioctl(sock.fileno(), SIOCINQ, b"\0\0\0\0"))[0]
        outq = struct.unpack("i", fcntl.ioctl(sock.fileno(), SIOCOUTQ, b"\0\0\0\0"))[0]
    except OSError:
        return None
    return received - inq, acked + outq


class Slots:
    """Where each connection stands, so a process after a crash can tell what was answered.

    Requests are peeked, answered, and consumed from the socket only after their reply was
    written (Client._readable). Before each reply leaves, the connection's slot records the
    read and written byte counts before and after that batch; writes and their replies are in
    the journal before that. After a crash, the kernel's counts for the socket (TCP_INFO,
    SIOCINQ, SIOCOUTQ) are compared with the slot and the journal (reconcile()): a batch that
    ran but was not consumed is skipped (and its reply sent if it never left), a batch that
    did not run runs again, and anything else closes the connection rather than guess.
    """

    def __init__(self, fd: int) -> None:
        size = SLOT_COUNT * SLOT_SIZE
        if os.fstat(fd).st_size < size:
            os.ftruncate(fd, size)
        self.fd = fd
        self.map = mmap.mmap(fd, size)
        self.free = list(range(SLOT_COUNT - 1, -1, -1))

    def recorded(self) -> dict[int, tuple[int, int, int, int, int]]:
        out = {}
        for i in range(SLOT_COUNT):
            at = i * SLOT_SIZE
            cid, *rest = SLOT.unpack_from(self.map, at)
            if (
                cid
                and zlib.crc32(self.map[at : at + SLOT.size])
                == SLOT_CRC.unpack_from(self.map, at + SLOT.size)[0]
            ):
                out[cid] = tuple(rest)
        return out

    def reset(self) -> None:
        self.map[:] = bytes(len(self.map))
        self.free = list(range(SLOT_COUNT - 1, -1, -1))

    def attach(self, c: Client) -> None:
        if c.slot < 0 and self.free:
            c.slot = self.free.pop()
            self._put(c.slot, c.id, c.rx, c.tx, c.rx, c.tx, 0)

    def note_batch(self, c: Client, rx0: int, tx0: int, flags: int) -> None:
        self._put(c.slot, c.id, rx0, tx0, c.rx, c.tx, flags)

    def note_push(self, c: Client, tx0: int, flags: int) -> None:
        self._put(c.slot, c.id, c.rx, tx0, c.rx, c.tx, flags)

    def _put(self, slot: int, *fields: int) -> None:
        at = slot * SLOT_SIZE
        SLOT.pack_into(self.map, at, *fields)
        SLOT_CRC.pack_into(self.map, at + SLOT.size, zlib.crc32(self.map[at : at + SLOT.size]))

    def detach(self, c: Client) -> None:
        if c.slot >= 0:
            self.map[c.slot * SLOT_SIZE : (c.slot + 1) * SLOT_SIZE] = bytes(SLOT_SIZE)
            self.free.append(c.slot)
            c.slot = -1


# bytes to skip, reply bytes to send, (read, written), the start of an unfinished command
Resume = tuple[int, bytes, tuple[int, int], bytes]


def reconcile(
    kernel: tuple[int, int],
    slot: tuple[int, int, int, int, int] | None,
    batch: tuple[int, int, int, int, bytes, bytes] | None,
) -> Resume | None:
    """How to resume a connection after a crash, or None to close it.

    `kernel`: bytes the dead process had read and written, as the kernel counted them;
    `slot`: its last record (before/after of the last batch, flags); `batch`: the last batch
    of this connection in the journal (before/after, the replies, an unfinished command).
    """
    read, written = kernel
    if batch is not None:
        r0, w0, r1, w1, reply, held = batch
        tail = reply[len(reply) - (w1 - written) :] if written < w1 else b""
        if read == r0 and w0 <= written <= w1:
            return r1 - r0, tail, (r1, w1), held  # it ran and is journaled: skip its bytes
        if read == r1 and w0 <= written <= w1:
            return 0, tail, (r1, w1), held  # consumed; all or part of the reply left
    if slot is None:
        return (0, b"", (0, 0), b"") if kernel == (0, 0) else None  # accepted, never read
    r0, w0, r1, w1, flags = slot
    if flags & UNSAFE:
        return None
    if (read, written) == (r0, w0) and not flags & JOURNALED:
        return 0, b"", (r0, w0), b""  # it never ran for good: it runs again
    if flags & HELD:
        return None  # an unfinished command's start should be in the journal, and is not
    if (read, written) == (r1, w1):
        return 0, b"", (r1, w1), b""
    if (read, written) == (r0, w1):
        return r1 - r0, b"", (r1, w1), b""  # answered in full, not yet consumed
    return None


def is_handover_name(name: str) -> bool:
    return NAME.match(name) is not None


def split_fds(fds: list[tuple[int, str]]) -> tuple[list[tuple[int, str]], dict[str, int]]:
    """(listener fds, stored handover fds by name) from what systemd passed."""
    listeners: list[tuple[int, str]] = []
    stored: dict[str, int] = {}
    for fd, name in fds:
        if is_handover_name(name):
            if name in stored:  # a duplicate name: keep one, close the other
                with contextlib.suppress(OSError):
                    os.close(fd)
                continue
            stored[name] = fd
        else:
            listeners.append((fd, name))
    return listeners, stored


def read_memfd(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    if not size:
        return b""
    with mmap.mmap(fd, size, prot=mmap.PROT_READ) as m:
        return m[:]


def client_record(c: Client, full: bool) -> dict[str, Any]:
    """A connection's state; `full` adds what only a clean handover can carry."""
    rec: dict[str, Any] = {
        "id": c.id,
        "db": c.db.index,
        "name": c.name,
        "lib_name": c.lib_name,
        "lib_ver": c.lib_ver,
        "resp": c.resp,
        "auth": c.authenticated,
        "user": c.user.name,
        "listener": c.listener.describe(),
        "created_ms": int((time.time() - (time.monotonic() - c.created)) * 1000),
        # A crash loses a transaction in progress; such a client is closed, not misled.
        "in_multi": c.multi is not None,
        "watching": bool(c.watched),
    }
    if c.tracking:
        # CLIENT TRACKING's mode stays; the keys it read do not (see Tracking.handed_over).
        rec["tracking"] = c.tracking
        rec["tracking_redir"] = c.tracking_redir
        rec["tracking_prefixes"] = list(c.tracking_prefixes)
    if c.channels or c.patterns or c.schannels:
        rec["channels"] = list(c.channels)
        rec["patterns"] = list(c.patterns)
        rec["schannels"] = list(c.schannels)
    if full:
        rec["input"] = c.parser.unparsed() or b""
        w = c.blocked
        if w is not None:
            # The next process runs the blocking command again (its keys are still empty,
            # or it is served at once) with the deadline it had here.
            rec["input"] = encode_request(w.argv) + rec["input"]
            rec["block_deadline_ms"] = int(w.deadline * 1000)
        rec["multi"] = c.multi
        rec["multi_error"] = c.multi_error
        rec["watch_touched"] = bool(c.watched) or c.dirty_cas
    elif c.blocked is not None:
        # A crash restart runs the blocking command again, with this deadline (journaled
        # when the wait begins and again when it ends).
        rec["block_argv"] = [bytes(a) for a in c.blocked.argv]
        rec["block_deadline_ms"] = int(c.blocked.deadline * 1000)
    return rec


def _rebuild(db: Any, key: bytes) -> list[list[bytes]]:
    """Commands that recreate a set key as it is now (or delete it)."""
    out = [[b"DEL", key]]
    e = db.data.get(key)
    if e is not None and isinstance(e.value, set) and e.value:
        out.append([b"SADD", key, *e.value])
        when = db.expires.get(key)
        if when is not None:
            out.append([b"PEXPIREAT", key, b"%d" % when])
    return out


def _skip(sock: socket.socket, n: int) -> bool:
    """Consume `n` bytes the dead process had answered but not consumed."""
    while n > 0:
        try:
            got = len(sock.recv(min(n, 1 << 20)))
        except OSError:
            return False
        if not got:
            return False
        n -= got
    return True


def _strip_handover_fields(clients: dict[int, dict[str, Any] | None]) -> None:
    """A crash loses what only a clean handover carries: input, MULTI queue, WATCH."""
    for rec in clients.values():
        if rec is not None:
            for k in ("input", "multi", "multi_error", "watch_touched"):
                rec.pop(k, None)


def restore_acl(srv: Server, meta: dict[str, Any]) -> None:
    """The previous process's users (ACL SETUSER since its start included), unless the
    configured users changed: then the configuration wins, as a restart of Redis would."""
    lines = meta.get("acl")
    if meta.get("acl_source") != srv.acl_source:
        if lines is not None:
            log.notice("ACL users: the configured users changed, the previous ones are dropped")
        return
    if not isinstance(lines, list) or not all(isinstance(x, bytes) for x in lines):
        return
    try:
        users = srv.acl.load_lines(lines, "(handover)")
    except AclError as e:
        log.warning(f"ACL users of the previous process not taken over: {e.message}")
        return
    srv.acl.replace_users(users)


def apply_record(c: Client, rec: dict[str, Any]) -> None:
    """Give a rebuilt connection the state recorded for it (missing fields keep defaults)."""
    dbs = c.server.keyspace.dbs
    db = rec.get("db", 0)
    c.db = dbs[db] if 0 <= db < len(dbs) else dbs[0]
    c.name = rec.get("name", b"")
    c.lib_name = rec.get("lib_name", b"")
    c.lib_ver = rec.get("lib_ver", b"")
    c.resp = rec.get("resp", 2)
    user = c.server.acl.users.get(rec.get("user", b"default"))
    if user is None:  # deleted meanwhile, or not in the new configuration: as ACL DELUSER
        c.user = c.server.acl.default
    elif rec.get("auth") or (user.nopass and user.enabled):
        c.authenticate(user)
    if "created_ms" in rec:
        c.created -= max(time.time() - rec["created_ms"] / 1000, 0.0)
    c.multi = rec.get("multi")
    c.multi_error = bool(rec.get("multi_error", False))
    c.dirty_cas = bool(rec.get("watch_touched", False))
    c.last_command = b"handover"
    ps = c.server.pubsub
    for ch in rec.get("channels", ()):
        ps.subscribe(c, ch)
    for ch in rec.get("schannels", ()):
        ps.subscribe(c, ch, True)
    for p in rec.get("patterns", ()):
        ps.psubscribe(c, p)
    flags = rec.get("tracking", 0)
    if flags:
        c.server.tracking.enable(
            c, rec.get("tracking_redir", 0), flags, rec.get("tracking_prefixes", [])
        )
    if "block_deadline_ms" in rec:
        c.block_deadline = rec["block_deadline_ms"] / 1000


class Handover:
    """The fd-store side of the server: restore at start, journal while running, hand over."""

    def __init__(self, server: Server, stored: dict[str, int]) -> None:
        self.server = server
        self.notifier = server.notifier
        self.enabled = bool(server.config["handover"]) and self.notifier.enabled
        self.stored = stored  # name -> fd, until restore() has dealt with them
        self.gen = 0
        self.journal_fd = -1
        self.journal_size = 0
        self.base_size = 0
        self.ops: list[tuple[Any, ...]] = []
        # What the last start took over (INFO handover).
        self.source = "none"  # none | restart | crash | disk | reload
        self.reload_fallback = ""  # why a reload fell back to the stop-start handover
        self.restored_clients = 0
        self.restored_keys = 0
        self.restored_bytes = 0
        self.restore_ms = 0.0
        self.previous_dump_ms = 0
        self.previous_version = ""
        self.handovers_done = 0
        self.compactions = 0
        self.total_ms = 0
        self.handover_started_ms = 0  # wall clock when the previous process began handing over
        self.last_dump_ms = 0.0
        self.handed_blob = b""
        self.handed_fd = -1
        self.tap_fd = -1  # a reload in progress: every journal record also goes here (reload.py)
        self.tap_size = 0
        self.hooked = False
        self.slots: Slots | None = None
        self.batches: dict[int, Any] = {}  # client id -> its last journaled batch (crash replay)
        # Set once the handover is confirmed: what this process closes afterwards (on its way
        # out) stays in the store for the next one.
        self.sealed = False

    # ------------------------------------------------------------- start
    def restore(self) -> list[tuple[socket.socket, dict[str, Any] | None]]:
        """Load the newest stored generation into the keyspace.

        Returns the client sockets to rebuild, each with its record (None: state unknown).
        The caller connects them to the event loop.
        """
        t0 = time.perf_counter()
        srv = self.server
        gens = {int(m.group(3)) for n in self.stored if (m := NAME.match(n)) and m.group(2)}
        newest = max(gens, default=0)
        clients: dict[int, dict[str, Any] | None] = {}
        client_fds = {
            int(m.group(1), 36): fd
            for n, fd in self.stored.items()
            if (m := NAME.match(n)) and m.group(1)
        }
        loaded = False
        if gens:
            loaded = self._load_generation(newest, clients)
        # Older generations are superseded; a generation we could not read is dropped too.
        for name in list(self.stored):
            m = NAME.match(name)
            if m and m.group(2) and (int(m.group(3)) != newest or not loaded):
                self._drop(name)
        if loaded and not self.enabled:
            # Handover was turned off: keep the data we just read, leave nothing in the store
            # that a later start could mistake for current.
            self._drop_name(f"state-{newest}")
            self._drop_name(f"journal-{newest}")
            if self.journal_fd >= 0:
                os.close(self.journal_fd)
                self.journal_fd = -1
        self.gen = newest if loaded else newest + 1
        slots_fd = self.stored.pop("slots", None)
        recorded: dict[int, tuple[int, int]] = {}
        if slots_fd is not None:
            if self.enabled:
                self.slots = Slots(slots_fd)
                recorded = self.slots.recorded()
            else:
                os.close(slots_fd)
                self._drop_name("slots")
        unanswered = resumed = 0
        out: list[tuple[socket.socket, dict[str, Any] | None]] = []
        for cid, fd in sorted(client_fds.items()):
            rec = clients.get(cid) if loaded else None
            name = client_fd_name(cid)
            if (gens and not loaded) or not self.enabled or (cid in clients and rec is None):
                # Unreadable state (its clients' positions are unknown), handover turned off,
                # or a client recorded as closed: close them cleanly.
                self._drop(name)
                continue
            self.stored.pop(name, None)
            try:
                sock = socket.socket(fileno=fd)
            except OSError as e:
                log.warning(f"handed-over fd {fd} ({name}) is unusable: {e.strerror}")
                self._drop_name(name)
                continue
            if sock.type != socket.SOCK_STREAM:
                sock.close()
                self._drop_name(name)
                continue
            sock.setblocking(False)
            counters = kernel_counters(sock)
            rec = dict(rec) if rec is not None else {"id": cid}
            rec["counters"] = counters
            if self.source == "crash":
                resume = None
                if counters is not None and not rec.get("in_multi") and not rec.get("watching"):
                    resume = reconcile(counters, recorded.get(cid), self.batches.get(cid))
                if resume is None or not _skip(sock, resume[0]):
                    # We cannot tell which of its requests were answered: close, so the client
                    # reconnects and retries, rather than leave it waiting for a lost reply.
                    unanswered += 1
                    log.verbose(
                        f"client id={cid}: slot {recorded.get(cid)}, kernel {counters}: closing"
                    )
                    sock.close()
                    self._drop_name(name)
                    continue
                rec["resend"] = resume[1]
                rec["counters"] = resume[2]
                rec["input"] = resume[3]
                argv = rec.pop("block_argv", None)
                if argv:  # it was waiting: it waits again, before what it sent meanwhile
                    rec["input"] = encode_request(argv) + resume[3]
                else:
                    rec.pop("block_deadline_ms", None)
                resumed += resume[0] > 0 or bool(resume[1])
            out.append((sock, rec))
            srv.client_ids = max(srv.client_ids, cid)
        if unanswered:
            log.warning(
                f"closed {unanswered} connections whose state the crash left unclear "
                "(their clients reconnect and retry)"
            )
        if resumed:
            log.notice(f"{resumed} connections resumed in the middle of a request")
        if self.slots is not None:
            self.slots.reset()
        self.restored_clients = len(out)
        self.restore_ms = (time.perf_counter() - t0) * 1000
        return out

    def _load_generation(self, gen: int, clients: dict[int, dict[str, Any] | None]) -> bool:
        srv = self.server
        sname, jname = f"state-{gen}", f"journal-{gen}"
        sfd, jfd = self.stored.get(sname), self.stored.get(jname)
        try:
            blob = read_memfd(sfd) if sfd is not None else b""
            body, dummy = state.decode(blob, sname) if blob else ({"dbs": [], "clients": []}, 0)
            journal = read_memfd(jfd) if jfd is not None else b""
            if jfd is not None:
                state.decode_header(journal, jname)
        except (state.StateError, OSError) as e:
            log.warning(f"cannot take over the previous process's state: {e}")
            return False
        meta = body.get("meta", {})
        restore_acl(srv, meta)
        self.previous_version = str(meta.get("ironcache_version", ""))
        started = meta.get("handover_started_ms", 0)
        self.handover_started_ms = started if isinstance(started, int) else 0
        self.restored_bytes = len(blob) + len(journal)
        try:
            keys = state.load_dataset(srv.keyspace, body["dbs"])
            state.load_scripting(srv.keyspace, body)
        except state.StateError as e:
            log.warning(f"cannot take over the previous process's state: {sname}: {e}")
            return False
        count = len(srv.keyspace.dbs)
        dropped = sum(1 for i, x in enumerate(body["dbs"]) if x is not None and i >= count)
        if dropped:
            log.warning(f"{dropped} databases beyond 'databases {count}' were dropped")
        for rec in body.get("clients", []):
            clients[rec["id"]] = rec
        if jfd is None:
            # A handover snapshot alone: a clean restart. A checkpoint alone: a crash right
            # after the journal was folded into it (nothing was written since).
            self.source = "restart" if meta.get("kind") == "handover" else "crash"
            if self.source == "crash":
                _strip_handover_fields(clients)
        else:
            ops, end, why = state.records(journal, self._journal_start(journal))
            if why:
                log.notice(f"{jname}: replayed up to byte {end}: {why}")
            _strip_handover_fields(clients)
            self._replay(ops, clients)
            self.source = "crash"
            # Keep appending to this journal: it is still in the store.
            self.stored.pop(jname)
            self.journal_fd = jfd
            os.ftruncate(jfd, end)
            os.lseek(jfd, end, os.SEEK_SET)
            self.journal_size = end
        if sfd is not None:
            self.stored.pop(sname)
            self.base_size = len(blob)
            os.close(sfd)  # the store keeps its copy as the journal's base
        self.restored_keys = sum(len(db.data) for db in srv.keyspace.dbs)
        log.notice(
            f"took over from the previous process ({self.source}): {keys} keys from {sname}"
            + (f", journal {jname} replayed" if jfd is not None else "")
        )
        return True

    @staticmethod
    def _journal_start(journal: bytes) -> int:
        return state.HEADER.size + state.HEADER.unpack_from(journal)[4]

    def _replay(
        self, ops: list[tuple[Any, ...]], clients: dict[int, dict[str, Any] | None]
    ) -> None:
        """Run journaled writes again, each at the time it first ran (expiry stays exact)."""
        srv = self.server
        replayer = srv.replay_client()
        try:
            for op in ops:
                kind = op[0]
                if kind == state.OP_WRITE:
                    dummy, when, db, argv = op
                    if db >= len(srv.keyspace.dbs):  # fewer databases configured now
                        continue
                    ks_mod.FROZEN_MS = when
                    replayer.db = srv.keyspace.dbs[db]
                    srv.execute(replayer, argv)
                elif kind == state.OP_CLIENT:
                    clients[op[1]["id"]] = op[1]
                elif kind == state.OP_CLOSED:
                    clients[op[1]] = None
                    self.batches.pop(op[1], None)
                elif kind == state.OP_BATCH:
                    self.batches[op[1]] = op[2:]
        finally:
            ks_mod.FROZEN_MS = 0

    def start_journal(self) -> None:
        """After the dataset is loaded and before any client runs a command: journal from now."""
        if not self.enabled:
            return
        self._install_hooks()
        if self.slots is None:
            fd = os.memfd_create("ironcache-slots", os.MFD_CLOEXEC)
            self.slots = Slots(fd)
            self.notifier.store_fd(fd, "slots")
        if self.journal_fd < 0:
            if self.base_size == 0 and any(db.data for db in self.server.keyspace.dbs):
                # Loaded from disk: the journal needs a snapshot to build on.
                self._write_snapshot(self.gen, kind="checkpoint", clients=[])
            self.journal_fd = self._new_journal(self.gen)

    def record_clients(self, live: list[Client]) -> None:
        """The rebuilt connections' state goes into the (new) journal."""
        if self.journal_fd >= 0:
            self.ops.extend((state.OP_CLIENT, client_record(c, False)) for c in live)
            self.flush()

    def _new_journal(self, gen: int) -> int:
        fd = os.memfd_create(f"ironcache-journal-{gen}", os.MFD_CLOEXEC)
        os.write(fd, state.HEADER.pack(state.MAGIC, state.FORMAT, state.MINOR, 0, 0, 0))
        self.journal_size = state.HEADER.size
        self.notifier.store_fd(fd, f"journal-{gen}")
        return fd

    def _write_snapshot(
        self, gen: int, kind: str, clients: list[dict[str, Any]], meta: dict[str, Any] | None = None
    ) -> int:
        t0 = time.perf_counter()
        acl = {"acl": self.server.acl.list_lines(), "acl_source": self.server.acl_source}
        blob = state.encode({"kind": kind, **acl, **(meta or {})}, self.server.keyspace, clients)
        fd = os.memfd_create(f"ironcache-state-{gen}", os.MFD_CLOEXEC)
        view = memoryview(blob)
        while view:
            view = view[os.write(fd, view) :]
        self.notifier.store_fd(fd, f"state-{gen}")
        if kind == "handover":
            self.handed_blob = blob  # the disk snapshot on the way out reuses it
            self.handed_fd = os.dup(fd)  # a reload's fallback passes it on itself (reload.py)
        os.close(fd)
        self.base_size = len(blob)
        self.last_dump_ms = (time.perf_counter() - t0) * 1000
        return len(blob)

    def finish_restore(self, live: list[Client]) -> None:
        self.restored_clients = len(live)
        if self.handover_started_ms and self.source in ("restart", "reload"):
            self.total_ms = max(int(time.time() * 1000) - self.handover_started_ms, 0)
        if self.source != "none":
            log.notice(
                f"handover ({self.source}): {len(live)} connections, {self.restored_keys} keys, "
                f"{self.restored_bytes} bytes, loaded in {self.restore_ms:.0f} ms"
                + (
                    f", {self.total_ms} ms after the previous process began"
                    if self.total_ms
                    else ""
                )
            )

    def _install_hooks(self) -> None:
        """Journal every write command, and every change of a connection's state.

        Wrapping the handlers of those commands (once, at start) costs nothing when the
        handover is off and keeps the per-request dispatch path untouched.
        """
        if self.hooked:
            return
        self.hooked = True
        from ironcache.commands import TABLE

        for cmd in TABLE.values():
            if "write" in cmd.flags:
                cmd.handler = self._journaled(cmd.handler, cmd.name in RANDOM_WRITES)
            elif cmd.client_state or cmd.name in CLIENT_STATE_COMMANDS:
                cmd.handler = self._tracked(cmd.handler)

    def _journaled(self, handler: Any, random: bool) -> Any:
        ops = self.ops
        write = state.OP_WRITE

        def journaled(c: Client, argv: list[bytes]) -> bytes:
            reply = handler(c, argv)  # a refused command raises and is not journaled
            if c.id:  # id 0 is the replay client
                t = ks_mod.now_ms()
                if random:  # replaying it would choose differently: journal the outcome
                    ops.extend((write, t, c.db.index, a) for a in _rebuild(c.db, argv[1]))
                else:
                    ops.append((write, t, c.db.index, argv))
            return reply  # the reader writes the journal before any reply leaves

        return journaled

    def _tracked(self, handler: Any) -> Any:
        def tracked(c: Client, argv: list[bytes]) -> bytes:
            reply = handler(c, argv)
            if c.id:
                self.client_changed(c)
            return reply

        return tracked

    # ------------------------------------------------------------- running
    def client_accepted(self, client_id: int, sock: socket.socket) -> None:
        if self.enabled and not self.sealed:
            self.notifier.store_fd(sock.fileno(), client_fd_name(client_id))

    def client_changed(self, c: Client) -> None:
        if self.journal_fd >= 0:
            self.ops.append((state.OP_CLIENT, client_record(c, False)))

    def client_gone(self, client_id: int) -> None:
        """A connection closed before it became a client."""
        if self.enabled and not self.sealed:
            self.notifier.remove_fd(client_fd_name(client_id))

    def client_connected(self, c: Client) -> None:
        if (
            self.slots is not None
            and c.listener.kind == "tcp"
            and not c.listener.tls  # TLS records cannot be peeked: no crash-safe reading
            and self.server.loop is not None
        ):
            # After the transport has set itself up to read (asyncio registers its reader in
            # a callback queued after connection_made), so that pausing it sticks.
            self.server.loop.call_soon(self._begin_peeking, c)

    def _begin_peeking(self, c: Client) -> None:
        if not c.closing and self.slots is not None and c.start_peeking():
            self.slots.attach(c)

    def flush_batch(self, c: Client, rx0: int, tx0: int, replies: bytes, held: bytes) -> None:
        """The batch's writes, then where the connection stands, what it was answered and
        the start of a command it has not finished sending."""
        self.ops.append((state.OP_BATCH, c.id, rx0, tx0, c.rx, c.tx, replies, held))
        self.flush()

    def pushed(self, c: Client, tx0: int) -> None:
        """Bytes outside a reply (a message, a served BLPOP) are about to be written: the
        slot moves past them, flagged journaled, so after a crash the kernel's count of them
        tells the next process they left (all of them: resume; none or part: close)."""
        if c.slot >= 0 and self.slots is not None:
            flags = JOURNALED
            if c.parser.held():  # its start is journaled with the last batch only
                flags |= HELD
            self.slots.note_push(c, tx0, flags)

    def client_closed(self, c: Client) -> None:
        if c.listener.tls:  # never stored nor journaled
            return
        if self.slots is not None:
            self.slots.detach(c)
        if self.enabled and not self.sealed:
            self.notifier.remove_fd(client_fd_name(c.id))
            if self.journal_fd >= 0:
                self.ops.append((state.OP_CLOSED, c.id))

    def wrote(self, db: int, argv: list[bytes]) -> None:
        self.ops.append((state.OP_WRITE, ks_mod.now_ms(), db, argv))

    def flush(self) -> None:
        """Append pending operations to the journal: called before replies are sent."""
        if not self.ops or (self.journal_fd < 0 and self.tap_fd < 0):
            self.ops.clear()
            return
        data = state.record(self.ops)
        self.ops.clear()
        self._tap(data)
        if self.journal_fd < 0:
            return
        view = memoryview(data)
        while view:
            view = view[os.write(self.journal_fd, view) :]
        self.journal_size += len(data)
        # Not while a script is busy: the snapshot would hold half of its writes.
        if (
            self.journal_size > max(JOURNAL_MIN_COMPACT, 2 * self.base_size)
            and self.server.script_busy is None
        ):
            self.compact()

    def compact(self) -> None:
        """Fold the journal into a new snapshot (gen + 1) and start an empty journal."""
        self.flush_pending_only()
        old = self.gen
        self.gen += 1
        live = list(self.server.clients.values())
        self._write_snapshot(self.gen, "checkpoint", [client_record(c, False) for c in live])
        old_fd = self.journal_fd
        self.journal_fd = self._new_journal(self.gen)
        self.notifier.remove_fd(f"state-{old}")
        self.notifier.remove_fd(f"journal-{old}")
        if old_fd >= 0:
            os.close(old_fd)
        self.compactions += 1
        log.verbose(f"journal folded into state-{self.gen} ({self.base_size} bytes)")

    def flush_pending_only(self) -> None:
        if self.ops and (self.journal_fd >= 0 or self.tap_fd >= 0):
            data = state.record(self.ops)
            self._tap(data)
            if self.journal_fd >= 0:
                os.write(self.journal_fd, data)
        self.ops.clear()

    # ------------------------------------------------------------- reload (reload.py)
    def begin_tap(self, fd: int) -> None:
        """From now on every write is also appended to `fd` (a journal memfd, header written)."""
        self._install_hooks()
        self.flush_pending_only()  # what ran before belongs to the snapshot taken next
        self.tap_fd = fd
        self.tap_size = os.fstat(fd).st_size

    def end_tap(self) -> None:
        self.flush_pending_only()
        self.tap_fd = -1

    def _tap(self, data: bytes) -> None:
        if self.tap_fd < 0:
            return
        view = memoryview(data)
        while view:
            n = os.pwrite(self.tap_fd, view, self.tap_size)
            self.tap_size += n
            view = view[n:]

    def adopt_reload(self, gen: int, state_fd: int, journal_fd: int, end: int, base: int) -> None:
        """The new process after a reload: the snapshot the old one forked and the journal of
        every write since become this process's crash state, generation `gen`."""
        if not self.enabled:
            os.close(state_fd)
            os.close(journal_fd)
            return
        self.gen = gen
        self.notifier.store_fd(state_fd, f"state-{gen}")
        self.notifier.store_fd(journal_fd, f"journal-{gen}")
        os.close(state_fd)
        for name in (f"state-{gen - 1}", f"journal-{gen - 1}", "slots"):
            self.notifier.remove_fd(name)  # the old process's; start_journal() stores slots
        if os.fstat(journal_fd).st_size > end:
            os.ftruncate(journal_fd, end)
        self.journal_fd = journal_fd
        os.lseek(journal_fd, end, os.SEEK_SET)
        self.journal_size = end
        self.base_size = base

    def replay_tail(self, ops: list[tuple[Any, ...]]) -> None:
        """Run another process's journaled writes (reload catch-up): only the writes count."""
        self._replay(ops, {})
        self.batches.clear()

    # ------------------------------------------------------------- stop
    def hand_over(self, clients: list[Client]) -> tuple[int, float]:
        """Write the full state as the next generation and wait until systemd has it.

        Returns (bytes written, milliseconds taken). Clients must be quiet and flushed.
        """
        t0 = time.perf_counter()
        started = int(time.time() * 1000)
        self.flush_pending_only()
        old = self.gen
        self.gen += 1
        records = [client_record(c, True) for c in clients]
        size = self._write_snapshot(self.gen, "handover", records, {"handover_started_ms": started})
        # The new snapshot has no journal: that is what tells the next process it was clean.
        self.notifier.remove_fd(f"state-{old}")
        self.notifier.remove_fd(f"journal-{old}")
        if not self.notifier.barrier():
            log.warning("systemd did not confirm the fd store (BARRIER=1) in time")
        self.sealed = True
        self.handovers_done += 1
        return size, (time.perf_counter() - t0) * 1000

    def _drop(self, name: str) -> None:
        fd = self.stored.pop(name, None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._drop_name(name)

    def _drop_name(self, name: str) -> None:
        self.notifier.remove_fd(name)

    def listener_for(self, rec: dict[str, Any], sock: socket.socket) -> Listener:
        from ironcache.listener import Listener

        for lst in self.server.listeners:
            if lst.describe() == rec.get("listener"):
                return lst
        if sock.family == socket.AF_UNIX:
            return Listener("unix", str(rec.get("listener", "unix:?")).removeprefix("unix:"))
        return Listener("tcp", "?", 0)

    def info(self) -> dict[str, Any]:
        return {
            "handover_enabled": int(self.enabled),
            "handover_source": self.source,
            "handover_from_version": self.previous_version,
            "handover_connections": self.restored_clients,
            "handover_keys": self.restored_keys,
            "handover_bytes": self.restored_bytes,
            "handover_load_ms": round(self.restore_ms, 1),
            "handover_total_ms": self.total_ms,
            "handover_generation": self.gen,
            "handover_journal_bytes": max(self.journal_size, 0),
            "handover_compactions": self.compactions,
            "handover_reload_fallback": self.reload_fallback,
        }
