"""The server: listeners, dispatch, periodic work, and the systemd lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import ipaddress
import itertools
import os
import signal
import socket
import time
from typing import TYPE_CHECKING, Any

from ironcache import blocking, diskstore, handover, reload, tracking
from ironcache import listener as listen
from ironcache._version import __version__
from ironcache.client import DENIED, Client
from ironcache.commands import (
    ALIASES,
    NOT_MONITORED,
    TABLE,
    Command,
    CommandError,
    reset_command_stats,
)
from ironcache.commands import acl as acl_commands
from ironcache.commands.families import load_all, rename_commands
from ironcache.config import Config
from ironcache.keyspace import Keyspace
from ironcache.log import log
from ironcache.protocol import QUEUED, error
from ironcache.pubsub import PubSub
from ironcache.sdnotify import Notifier

if TYPE_CHECKING:
    import ssl

SUBSCRIPTIONS = frozenset(
    (b"subscribe", b"psubscribe", b"ssubscribe", b"unsubscribe", b"punsubscribe", b"sunsubscribe")
)
OOM = "OOM command not allowed when used memory > 'maxmemory'."
NOAUTH = error("NOAUTH Authentication required.")
# Commands a client in MULTI runs at once instead of queueing.
IMMEDIATE_IN_MULTI = frozenset(("exec", "discard", "multi", "watch", "quit", "reset"))
# Run in MULTI even over maxmemory (EXEC unless it holds a command that may grow memory).
OOM_EXEMPT_IN_MULTI = frozenset(("exec", "discard", "quit", "reset"))
ERRORSTATS_MAX = 128
# What a RESP2 client may run once subscribed (Redis's subscribed-context rule).
SUBSCRIBED_CONTEXT = frozenset(
    ("subscribe", "psubscribe", "ssubscribe", "unsubscribe", "punsubscribe", "sunsubscribe")
    + ("ping", "quit", "reset")
)
_monotonic = time.monotonic
# Commands other clients may run while a script is busy (Redis's CMD_ALLOW_BUSY); SCRIPT and
# FUNCTION carry the flag "allow_busy" and refuse their other subcommands themselves.
ALLOW_BUSY = frozenset(
    ("auth", "hello", "quit", "reset", "shutdown", "discard", "multi", "unwatch", "watch")
)
SHUTDOWN_GRACE_S = 5.0
# Replies one batch may build before the rest of the read waits for the client to read them.
REPLY_BATCH_MAX = 4 * 1024 * 1024
# A batch also ends after BATCH_TIME_S (looked at every BATCH_CHECK_ARGS arguments run): the
# rest waits a loop turn, so a client's pipeline of heavy requests cannot starve the others.
BATCH_TIME_S = 0.01
BATCH_CHECK_ARGS = 512


def unknown_command(argv: list[bytes]) -> str:
    """Redis's wording, byte for byte (decode the result as latin-1): each name printed as C
    prints a string (up to a NUL byte), the name up to 128 bytes, arguments while under 128."""
    args = b""
    for a in argv[1:]:
        if len(args) >= 128:
            break
        args += b"'" + a.split(b"\0", 1)[0][: 128 - len(args)] + b"' "
    name = argv[0].split(b"\0", 1)[0][:128]
    return (b"ERR unknown command '" + name + b"', with args beginning with: " + args).decode(
        "latin-1"
    )


_REPR = {92: b"\\\\", 34: b'\\"', 10: b"\\n", 13: b"\\r", 9: b"\\t", 7: b"\\a", 8: b"\\b"}


def _repr(arg: bytes) -> bytes:
    """An argument quoted as Redis's sdscatrepr() quotes it."""
    if arg.isascii() and arg.isalnum():
        return b'"' + arg + b'"'
    out = bytearray(b'"')
    for ch in arg:
        esc = _REPR.get(ch)
        if esc is not None:
            out += esc
        elif 32 <= ch < 127:
            out.append(ch)
        else:
            out += b"\\x%02x" % ch
    out += b'"'
    return bytes(out)


# What the batch loop finds for an unknown command, or for every one when the client is not
# `plain`: no argument count fits, so the request goes to execute().
_UNKNOWN = Command("", lambda c, argv: b"", 0, frozenset(), 0, 0, 0, "", "", "")
_NOTHING: dict[bytes, Command] = {}


def _share(cmds: list[list[bytes]], start: int, end: int, secs: float) -> None:
    """Add `secs` in equal shares to the time of the commands cmds[start:end] ran in the
    batch loop (each found in ALIASES under argv[0])."""
    share = secs / (end - start)
    for argv in cmds[start:end]:
        ALIASES[argv[0]].secs += share


def _grows(c: Client) -> bool:
    """Whether a queued command may grow memory (EXEC is then refused over maxmemory)."""
    for argv in c.multi or ():
        cmd = ALIASES.get(argv[0]) or TABLE.get(argv[0].lower())
        if cmd is not None and cmd.denyoom:
            return True
    return False


def acl_source(config: Config) -> str:
    """A digest of where the users come from (`user` lines, the ACL file's content): a
    handover keeps the previous process's users (runtime changes included) only when it is
    the same, so a deployment that changes users gets them."""
    h = hashlib.sha256(repr(config["user"]).encode("utf-8", "surrogateescape"))
    path = acl_commands.aclfile_path(config)
    if path:
        h.update(path.encode("utf-8", "surrogateescape"))
        with contextlib.suppress(OSError), open(path, "rb") as f:
            h.update(f.read(16 * 1024 * 1024))
    return h.hexdigest()


def auto_maxmemory() -> int:
    """Half of the memory this process may use (cgroup limit, else RAM)."""
    limit = 0
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            raw = f.read().strip()
        if raw.isdigit():
            limit = int(raw)
    except OSError:
        pass
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        total = 0
    limit = min(x for x in (limit, total) if x) if (limit or total) else 1 << 30
    return limit // 2


class Server:
    def __init__(self, config: Config) -> None:
        load_all()
        rename_commands(config["rename-command"], apply=True)
        self.config = config
        self.acl = acl_commands.from_config(config)  # raises ConfigError for bad users
        self.acl_source = acl_source(config)
        self.keyspace = Keyspace(config["databases"])
        self.clients: dict[int, Client] = {}
        # Accepted sockets whose Client is still being set up (a handover waits for them).
        self.connecting: set[asyncio.Task[None]] = set()
        self.handing_over = False  # from then on no client reads: the next process does
        self.listeners: list[listen.Listener] = []
        self.reset_stats()
        self.obuf_soft: set[Client] = set()
        self._qbuf_cursor = 0  # where the next query buffer resize pass starts
        self._gc_ticks = 0  # cron ticks since the last gc.freeze()
        self.batches_cut = 0  # batches ended by BATCH_TIME_S (tests read it)
        # client-output-buffer-limit normal, read on every write: set by config_changed()
        self.obuf_normal: tuple[int, int, int] = (0, 0, 0)
        self.obuf_pubsub: tuple[int, int, int] = (0, 0, 0)
        self.config_changed()
        self.monitors: set[Client] = set()  # MONITOR: every command run is written to them
        self.pubsub = PubSub()
        self.keyspace.publish = self.pubsub.publish  # keyspace notifications go out here
        self.tracking = tracking.Tracking(self.keyspace, self.clients)  # CLIENT TRACKING
        self.tracking.max_keys = config["tracking-table-max-keys"]
        self.blocking = blocking.Blocking(self.keyspace)

        def wrote(db: int, argv: list[bytes]) -> None:  # late-bound: the handover is replaced
            self.handover.wrote(db, argv)

        def changed(c: Client) -> None:  # late-bound too
            self.handover.client_changed(c)

        self.blocking.wrote = wrote
        self.blocking.changed = changed

        def serve_begin(c: Client) -> None:
            if c.tracking:
                self.tracking.current = c

        def serve_end(c: Client) -> bytes:
            return self.tracking.after_command(c) if self.tracking.current is c else b""

        self.blocking.serve_begin = serve_begin
        self.blocking.serve_end = serve_end
        self.depth = 0  # execute() calls in progress (EXEC runs its commands through it)
        # Started by a reload (reload.py): what the old process passed; before the Notifier
        # and the listeners read the environment, as the Reloader's copy of it.
        self.reload_target = reload.Target.from_env()
        self.reloader = reload.Reloader(self)
        self.reloaded_to = 0  # the pid a reload handed over to: exit without more ado
        self.notifier = Notifier()
        self.run_id = os.urandom(20).hex()
        self.started = time.time()
        self.started_mono = time.monotonic()
        self.exec_to_ready_ms = 0.0
        self.client_ids = 0
        self.peak_memory = 0
        self.maxmemory = 0
        self.update_maxmemory()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping: asyncio.Event | None = None
        self.shutdown_reason = ""
        self.shutdown_save: bool | None = None  # SHUTDOWN SAVE / NOSAVE override the config
        self.event_loop_name = "asyncio"
        self.handover = handover.Handover(self, {})
        self.last_save = int(self.started)
        self.last_save_status = "ok"
        self.lua: Any = None  # the scripting engine (commands/scripting.py), made on first use
        # While a script runs past busy-reply-threshold: the -BUSY reply the others get.
        self.script_busy: str | None = None
        self.busy_conns: dict[int, tuple[socket.socket, Client]] = {}  # accepted meanwhile
        # tls-port's context: new connections take the current one (reload_tls replaces it).
        self.tls_ctx: ssl.SSLContext | None = None

    # ------------------------------------------------------------- bookkeeping
    def next_client_id(self) -> int:
        self.client_ids += 1
        return self.client_ids

    def reset_stats(self) -> None:
        # Plain attributes: they are bumped on every request.
        self.connections_received = 0
        self.commands_processed = 0
        self.rejected_connections = 0
        self.net_input_bytes = 0
        self.net_output_bytes = 0
        self.error_replies = 0
        self.errorstats: dict[str, int] = {}
        reset_command_stats()
        if hasattr(self, "keyspace"):
            self.keyspace.reset_stats()

    @property
    def stats(self) -> dict[str, int]:
        return {
            "total_connections_received": self.connections_received,
            "total_commands_processed": self.commands_processed,
            "rejected_connections": self.rejected_connections,
            "total_net_input_bytes": self.net_input_bytes,
            "total_net_output_bytes": self.net_output_bytes,
            "total_error_replies": self.error_replies,
        }

    def config_changed(self) -> None:
        """Refresh what the hot paths read of the configuration (CONFIG SET calls it)."""
        hard, soft, seconds = self.config["client-output-buffer-limit"]["normal"]
        self.obuf_normal = (hard, soft, seconds)
        hard, soft, seconds = self.config["client-output-buffer-limit"]["pubsub"]
        self.obuf_pubsub = (hard, soft, seconds)
        self.keyspace.set_events(self.config["notify-keyspace-events"])
        if hasattr(self, "acl"):
            self.acl.log_max = self.config["acllog-max-len"]
            del self.acl.log[self.acl.log_max :]
            self.acl.pubsub_default_all = self.config["acl-pubsub-default"] == "allchannels"
        if hasattr(self, "tracking"):
            self.tracking.max_keys = self.config["tracking-table-max-keys"]  # cron applies it

    def update_maxmemory(self) -> None:
        configured = self.config["maxmemory"]
        self.maxmemory = configured or auto_maxmemory()
        cfg = self.config
        self.keyspace.set_policy(
            cfg["maxmemory-policy"], cfg["lfu-log-factor"], cfg["lfu-decay-time"]
        )

    def client_closed(self, client: Client) -> None:
        self.monitors.discard(client)
        if client.tracking:
            self.tracking.disable(client)
        self.pubsub.drop(client)
        self.blocking.drop(client)
        self.handover.client_closed(client)
        if self.stopping is not None and self.stopping.is_set() and not self.clients:
            self._all_closed.set()

    # ------------------------------------------------------------- dispatch
    def execute(self, c: Client, argv: list[bytes]) -> bytes:
        """Run one request from a client: lookup, checks, MULTI queueing, the handler."""
        cmd = ALIASES.get(argv[0])
        if cmd is None:
            cmd = TABLE.get(argv[0].lower())
            if cmd is None:
                return self._reject(c, unknown_command(argv), encoding="latin-1")
        arity = cmd.arity
        if len(argv) != arity if arity > 0 else len(argv) < -arity:
            return self._reject(
                c,
                f"ERR wrong number of arguments for '{cmd.name}' command",
                cmd.name,
                cmd,
                argv=argv,
            )
        st = cmd  # what the stats and CLIENT LIST name: the subcommand of a container
        if cmd.subcommands is not None and len(argv) > 1:
            sub = cmd.subcommands.get(argv[1].lower())
            if sub is None:  # refused before queueing too, as Redis's lookup does
                name = argv[1][:128].decode(errors="replace")
                return self._reject(
                    c, f"ERR unknown subcommand '{name}'. Try {cmd.name.upper()} HELP.", cmd.name
                )
            if len(argv) != sub.arity if sub.arity > 0 else len(argv) < -sub.arity:
                return self._reject(
                    c, f"ERR wrong number of arguments for '{sub.name}' command", cmd.name, sub
                )
            st = sub
        if (
            c.resp == 2
            and (c.channels or c.patterns or c.schannels)
            and cmd.name not in SUBSCRIBED_CONTEXT
        ):
            return self._reject(
                c,
                f"ERR Can't execute '{st.name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING "
                "/ QUIT / RESET are allowed in this context",
                cmd.name,
                st,
            )
        if (
            c.multi is not None
            or not c.authenticated
            or self.script_busy is not None
            or not c.user.unrestricted
        ):
            if not c.authenticated and not cmd.noauth:
                return self._reject(c, "NOAUTH Authentication required.", cmd.name, st, argv=argv)
            if not c.user.unrestricted:
                denied = self._acl_denied(c, st, argv)
                if denied:
                    return self._reject(c, denied, cmd.name, st, argv=argv)
            if self.script_busy is not None and (
                (cmd.name not in ALLOW_BUSY and "allow_busy" not in cmd.flags)
                or (cmd.name == "shutdown" and b"nosave" not in map(bytes.lower, argv[1:]))
            ):
                return self._reject(c, self.script_busy, cmd.name, st, argv=argv)
            if c.multi is not None:
                if "no_multi" in cmd.flags:  # SAVE, SHUTDOWN: refused, the EXEC aborts
                    return self._reject(c, "ERR Command not allowed inside a transaction", "", st)
                # As Redis: over maxmemory nothing is queued, and an EXEC with a queued
                # command that may grow memory is refused (then discarded).
                if (
                    self.keyspace.used > self.maxmemory
                    and (cmd.name not in OOM_EXEMPT_IN_MULTI or (cmd.name == "exec" and _grows(c)))
                    and not self._make_room()
                ):
                    return self._reject(c, OOM, cmd.name, st, argv=argv)
                if cmd.name not in IMMEDIATE_IN_MULTI:
                    c.multi.append(argv)
                    return QUEUED
        c.last_command = argv[0] if st is cmd else st.name.encode()
        if cmd.denyoom and self.keyspace.used > self.maxmemory and not self._make_room():
            return self._reject(c, OOM, cmd.name, st)
        t0 = _monotonic()
        outer = c.outbox
        if outer is None:
            c.outbox = []
        if c.tracking and not self.depth:  # its own invalidations go after this reply
            self.tracking.current = c
        self.depth += 1
        try:
            reply = cmd.handler(c, argv)
        except CommandError as e:
            self.count_error(e.message)
            st.failed_calls += 1
            reply = error(e.message)
        except Exception as e:  # a bug must cost one reply, never the server
            st.failed_calls += 1
            reply = self._internal_error(cmd, e)
        self.depth -= 1
        if outer is None:
            if c.outbox:  # messages to itself (a RESP3 subscriber publishing) go first
                reply = b"".join(c.outbox) + reply
            c.outbox = None
        if c.tracking or self.tracking.current is c:
            reply = self._tracked(c, st, argv, reply)
        if self.keyspace.ready and not self.depth:
            self.blocking.handle_ready()  # after the command, EXEC or script that did it
        st.secs += _monotonic() - t0
        st.calls += 1
        # Counted once run, as in Redis: INFO does not count itself, CONFIG RESETSTAT does.
        self.commands_processed += 1
        if self.monitors and not st.flags & NOT_MONITORED:
            self.feed_monitors(c, argv)
        return reply

    def _tracked(self, c: Client, st: Command, argv: list[bytes], reply: bytes) -> bytes:
        """After a command of a tracking client (Redis's call() and afterCommand()): remember
        the keys a read-only command read, end CLIENT CACHING's one-command scope, and
        append the invalidations its own command caused."""
        trk = self.tracking
        name = (st.parent or st).name
        if "readonly" in st.flags and c.tracking and name not in tracking.NOT_REMEMBERED:
            trk.remember(c, st.keys(argv))
        if self.depth:
            return reply
        if c.tracking & tracking.CACHING and c.multi is None and name != "client":
            c.tracking &= ~tracking.CACHING  # CLIENT CACHING covers the next command only
        if trk.current is c:
            reply += trk.after_command(c)
        return reply

    def _acl_denied(self, c: Client, cmd: Command, argv: list[bytes]) -> str:
        """The NOPERM reply for a request its user may not run, or "" (see commands/acl.py).
        Inside EXEC (a command queued before the rules changed) Redis words it otherwise."""
        in_exec = self.depth > 0  # only EXEC runs commands through execute() from a command
        context = "multi" if c.multi is not None or in_exec else "toplevel"
        result, name = acl_commands.check(c, cmd, argv, context)
        if not result:
            return ""
        if in_exec:
            return (
                "NOPERM ACLs rules changed between the moment the transaction was accumulated "
                "and the EXEC call. This command is no longer allowed for the following "
                f"reason: {acl_commands.EXEC_REASON[result]}"
            )
        return acl_commands.denied_reply(result, name)

    def acl_script_denied(self, caller: Client, cmd: Command, argv: list[bytes]) -> str:
        """redis.call() as a user that may not run it: the script's error, or ""."""
        if cmd.subcommands is not None and len(argv) > 1:
            cmd = cmd.subcommands.get(argv[1].lower(), cmd)
        result, dummy = acl_commands.check(caller, cmd, argv, "lua")
        if not result:
            return ""
        return f"NOPERM The user executing the script {acl_commands.DENIED_REASON[result]}"

    def feed_monitors(self, c: Client, argv: list[bytes], script: bool = False) -> None:
        """MONITOR: one status line per command run, as Redis's replicationFeedMonitors();
        a command a script runs is shown as from "lua"."""
        name = argv[0].lower()
        if name == b"auth":
            argv = argv[:1] + [b"(redacted)"] * (len(argv) - 1)
        elif name == b"hello":
            argv = list(argv)
            for i in range(2, len(argv) - 2):
                if argv[i].lower() == b"auth":
                    argv[i + 1] = argv[i + 2] = b"(redacted)"
        t = time.time_ns() // 1000
        if script:
            where = "lua"
        elif c.listener.kind == "unix":
            where = f"unix:{c.listener.address}"
        else:
            where = c.addr
        line = b"+%d.%06d [%d %s] %s\r\n" % (
            t // 1_000_000,
            t % 1_000_000,
            c.db.index,
            where.encode(),
            b" ".join(_repr(a) for a in argv),
        )
        for m in list(self.monitors):
            if m.transport is not None and not m.closing:
                m.tx += len(line)
                self.net_output_bytes += len(line)
                m.transport.write(line)
                m.check_output()

    def execute_batch(self, c: Client, cmds: list[list[bytes]]) -> list[bytes]:
        """Run the requests of one read, in order, until one closes the connection, the
        replies built pass REPLY_BATCH_MAX bytes or the batch has run for BATCH_TIME_S: the
        caller keeps the rest (one reply each in the list returned) and runs them once the
        client has read these, after a turn of the event loop (other clients, timers).

        `execute()` inlined for the common case (a known, batched command with the right arity,
        outside MULTI, authenticated, memory under the limit); anything else goes through
        `execute()`. Only commands outside `batched` change the connection's MULTI and auth
        state, close it or change maxmemory, so the loop reads those once and again after such
        a command; the counters it keeps are added up once, before anything reads them.
        Stats: a command run here adds one to its calls, once per run of one command (a
        pipeline of SETs adds them up at once); its time is the batch's, from when the read
        arrived (`Client.last_active`), taken once the batch is done (or before a command goes
        to `execute()`, which counts its own, as INFO does): all of it when the commands run
        here since were one kind of command, else shared equally by them. One clock read a
        batch.
        """
        out: list[bytes] = []
        append = out.append
        lookup = ALIASES.get
        ks = self.keyspace
        maxmemory = self.maxmemory
        reply_max = REPLY_BATCH_MAX
        plain = self._plain(c)
        if plain and len(cmds) == 1:  # one request a read (no pipelining): the loop's work only
            argv = cmds[0]
            cmd = lookup(argv[0], _UNKNOWN)
            started = c.last_active
            if cmd.min_argc <= len(argv) <= cmd.max_argc and not (
                cmd.denyoom and ks.used > maxmemory
            ):
                try:
                    reply = cmd.handler(c, argv)
                except CommandError as e:
                    self.count_error(e.message)
                    cmd.failed_calls += 1
                    reply = error(e.message)
                except Exception as e:  # a bug must cost one reply, never the server
                    cmd.failed_calls += 1
                    reply = self._internal_error(cmd, e)
                cmd.calls += 1
                if ks.ready:
                    self.blocking.handle_ready()
                self.commands_processed += 1
                c.last_command = argv[0]
                now = _monotonic()
                if len(argv) > BATCH_CHECK_ARGS and now - started > BATCH_TIME_S:
                    self.batches_cut += 1  # as the loop counts it
                cmd.secs += now - c.last_active
                return [reply]
        if not plain:  # every request goes to execute(): the loop finds no command
            lookup = _NOTHING.get
        counted = 0  # replies in `out` already counted (execute() counts what it runs)
        size = 0
        # Under BATCH_CHECK_ARGS arguments in all, the clock need not be looked at.
        timed = sum(map(len, cmds)) > BATCH_CHECK_ARGS
        args = 0  # arguments run since the clock was last read
        started = c.last_active  # the read's arrival: its caller just set it (no clock read)
        start = 0  # cmds[start:len(out)] ran here since the last time taken
        prev = None  # the command of the run of equal commands at the end of those (or None)
        run = 0  # where its run started
        mixed = False  # cmds[start:run] ran here too: more than one kind of command
        for argv in cmds:
            cmd = lookup(argv[0], _UNKNOWN)
            if (
                cmd.min_argc <= len(argv) <= cmd.max_argc  # (and batched, and plain: see lookup)
                and not (cmd.denyoom and ks.used > maxmemory)
            ):
                if cmd is not prev:
                    if prev is not None:
                        n = len(out)
                        prev.calls += n - run
                        run = n
                        mixed = True
                    prev = cmd
                try:
                    reply = cmd.handler(c, argv)
                except CommandError as e:
                    self.count_error(e.message)
                    cmd.failed_calls += 1
                    reply = error(e.message)
                except Exception as e:  # a bug must cost one reply, never the server
                    cmd.failed_calls += 1
                    reply = self._internal_error(cmd, e)
                append(reply)
                if ks.ready:
                    self.blocking.handle_ready()
            else:
                n = len(out)
                self.commands_processed += n - counted  # INFO counts what ran before it
                counted = n + 1
                if prev is not None:
                    prev.calls += n - run
                    if mixed:
                        _share(cmds, start, n, _monotonic() - c.last_active)
                        mixed = False
                    else:
                        prev.secs += _monotonic() - c.last_active
                    prev = None
                reply = self.execute(c, argv)
                if c.reply_off:
                    muted = c.muted(reply)
                    # RESP3 pushes, and (un)subscribe confirmations in RESP2 too, are sent
                    # whatever CLIENT REPLY says (Redis's CLIENT_PUSHING)
                    if reply[:1] != b">" and argv[0].lower() not in SUBSCRIPTIONS:
                        reply = muted
                append(reply)
                start = run = n + 1
                c.last_active = _monotonic()  # what follows is timed from here
                if c.closing or c.blocked is not None:
                    break
                plain = self._plain(c)
                lookup = ALIASES.get if plain else _NOTHING.get
                maxmemory = self.maxmemory
            size += len(reply)
            if size > reply_max:
                break
            if timed:
                args += len(argv)
                if args > BATCH_CHECK_ARGS:
                    args = 0
                    if _monotonic() - started > BATCH_TIME_S:
                        self.batches_cut += 1
                        break
        n = len(out)
        self.commands_processed += n - counted
        if prev is not None:  # the last request ran here: its run is still to count
            c.last_command = cmds[n - 1][0]
            prev.calls += n - run
            if mixed:
                _share(cmds, start, n, _monotonic() - c.last_active)
            else:
                prev.secs += _monotonic() - c.last_active
        return out

    def _plain(self, c: Client) -> bool:
        """Whether execute_batch may run c's batched commands itself: nothing that execute()
        checks per request (MULTI, auth, ACL, CLIENT REPLY, MONITOR, a busy script, the
        subscribed context, tracking) applies."""
        return (
            c.multi is None
            and c.authenticated
            and c.user.unrestricted
            and not c.reply_off
            and not self.monitors
            and self.script_busy is None
            and not (c.channels or c.patterns or c.schannels)
            and not c.tracking
        )

    def count_error(self, message: str) -> None:
        """total_error_replies and INFO errorstats (by the error's first word, as Redis)."""
        self.error_replies += 1
        code = message.split(" ", 1)[0]
        stats = self.errorstats
        if code in stats:
            stats[code] += 1
        elif len(stats) < ERRORSTATS_MAX:  # Redis stops adding kinds past 128
            stats[code] = 1

    def _reject(
        self,
        c: Client,
        message: str,
        name: str = "",
        cmd: Command | None = None,
        encoding: str = "utf-8",
        argv: list[bytes] | None = None,
    ) -> bytes:
        if cmd is not None:
            cmd.rejected_calls += 1
        if name == "exec":  # EXEC itself refused: any transaction ends, as in Redis
            c.end_transaction()
            if self.monitors:  # the MULTI was shown: show that it ended
                self.feed_monitors(c, argv or [b"exec"])
            reason = message.removeprefix("ERR ")
            self.count_error("EXECABORT")
            return error(f"EXECABORT Transaction discarded because of: {reason}")
        self.count_error(message)
        if c.multi is not None:
            c.multi_error = True  # EXEC will answer EXECABORT
        return error(message, encoding)

    def _internal_error(self, cmd: Command, e: Exception) -> bytes:
        log.warning(f"internal error in {cmd.name.upper()}: {type(e).__name__}: {e}")
        self.count_error("ERR")
        return error(f"ERR internal error in '{cmd.name}' command")

    def busy_poll(self, running: Client) -> None:
        """Serve the other clients while a script is busy (see commands/scripting.py).

        Called from the script's Lua hook, inside a command: the event loop is not running,
        so this reads ready sockets itself and hands the bytes to each client as the loop
        would; execute() answers -BUSY to all but the commands Redis allows meanwhile (SCRIPT
        KILL, FUNCTION KILL, SHUTDOWN, AUTH...). Replies leave through the transports, which
        write at once when nothing is queued. Connections accepted meanwhile are served
        through their socket directly, and join the loop once the script ends (busy_end).
        """
        import select

        socks: dict[int, Client | None] = {}
        for c in self.clients.values():
            if c is running or c.closing or c.paused or c.deferred or c.transport is None:
                continue
            if c.listener.tls and c.tls_proto is None:  # still in its handshake
                continue
            sock = c.peek_sock if c.peek_sock is not None else c.transport.get_extra_info("socket")
            if sock is None:
                continue
            try:
                socks[sock.fileno()] = c
            except (OSError, ValueError):
                continue
        listeners = {
            x.sock.fileno(): x for x in self.listeners if x.sock is not None and not x.tls
        }
        poller = select.poll()  # not select(): it stops at fd 1024
        for fd in (*socks, *self.busy_conns, *listeners):
            poller.register(fd, select.POLLIN)
        try:
            ready = [fd for fd, _events in poller.poll(0)]
        except OSError:
            return
        if not ready:
            return
        # The script's writes so far stay out of the journal the others' replies flush: they
        # are journaled together once it ends, so a crash never replays half a script.
        ops = self.handover.ops
        held = list(ops)
        ops.clear()
        try:
            self._busy_serve_ready(ready, socks, listeners)
        finally:
            ops[:0] = held

    def _busy_serve_ready(
        self,
        ready: list[int],
        socks: dict[int, Client | None],
        listeners: dict[int, listen.Listener],
    ) -> None:
        for fd in ready:
            if fd in listeners:
                self._busy_accept(listeners[fd])
                continue
            if fd in self.busy_conns:
                self._busy_serve(fd)
                continue
            c = socks[fd]
            if c is None or c.closing:
                continue
            if c.peek_sock is not None:
                c._readable()
                continue
            try:
                data = os.read(fd, 256 * 1024)
            except OSError:
                continue
            if not data:  # end of file: the loop sees it again once the script ends
                continue
            if c.tls_proto is not None:
                _feed_tls(c.tls_proto, data)
            else:
                c.data_received(data)

    def _busy_accept(self, lst: listen.Listener) -> None:
        assert lst.sock is not None
        for _n in range(16):
            try:
                conn, addr = lst.sock.accept()
            except OSError:
                return
            conn.setblocking(False)
            cfg = self.config
            if (
                cfg["protected-mode"]
                and not cfg["requirepass"]
                and lst.kind == "tcp"
                and not ipaddress.ip_address(str(addr[0]).split("%", 1)[0]).is_loopback
            ):
                self.rejected_connections += 1
                with contextlib.suppress(OSError):
                    conn.send(DENIED)
                conn.close()
                continue
            lst.accepted += 1
            client_id = self.next_client_id()
            self.handover.client_accepted(client_id, conn)
            self.busy_conns[conn.fileno()] = (conn, Client(self, lst, client_id))

    def _busy_serve(self, fd: int) -> None:
        conn, c = self.busy_conns[fd]
        try:
            data = conn.recv(64 * 1024)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            del self.busy_conns[fd]
            self.handover.client_gone(c.id)
            conn.close()
            return
        payload = c.process(data)
        with contextlib.suppress(OSError):
            conn.send(payload)  # short replies (-BUSY, +OK): the socket buffer takes them
        if c.closing:
            del self.busy_conns[fd]
            self.handover.client_gone(c.id)
            conn.close()

    def busy_end(self) -> None:
        """The busy script ended: connections accepted meanwhile join the event loop."""
        conns, self.busy_conns = self.busy_conns, {}
        if self.loop is None:
            return
        for conn, c in conns.values():
            task = self.loop.create_task(self._join(conn, c))
            self.connecting.add(task)
            task.add_done_callback(self.connecting.discard)

    async def _join(self, conn: socket.socket, c: Client) -> None:
        assert self.loop is not None
        try:
            await self.loop.connect_accepted_socket(lambda: c, sock=conn)
        except OSError:
            conn.close()
            self.handover.client_gone(c.id)

    def _make_room(self) -> bool:
        cfg = self.config
        return self.keyspace.evict(
            self.maxmemory, cfg["maxmemory-policy"], cfg["maxmemory-samples"]
        )

    # ------------------------------------------------------------- listeners
    def open_listeners(self) -> None:
        cfg = self.config
        wanted = listen.configured(
            cfg["bind"], cfg["port"], cfg["unixsocket"], cfg["tls-port"], cfg["tls-bind"]
        )
        if cfg["tls-port"]:
            from ironcache import tls  # ssl only when TLS is configured (start-up time)

            try:
                self.tls_ctx = tls.make_context(cfg.values)
            except tls.TLSError as e:
                raise listen.ListenError(f"TLS: {e}") from None
            log.notice(f"TLS certificate: {tls.certificate_summary(cfg.values)}")
        inherited, stored = handover.split_fds(listen.listen_fds())
        self.handover = handover.Handover(self, stored)
        try:
            self.listeners = listen.open_all(
                wanted, cfg["tcp-backlog"], cfg["unixsocketperm"], inherited, cfg["reuseport"]
            )
        except listen.ListenError:
            for lst in wanted:  # what was bound before the failure (a unix socket file)
                listen.close(lst)
            raise
        if not self.listeners:
            raise listen.ListenError("no listener could be opened")
        self._warn_exposure()
        adopted = [_label(x) for x in self.listeners if x.inherited]
        bound = [_label(x) for x in self.listeners if not x.inherited]
        log.notice(
            "listeners: inherited from systemd: "
            f"{', '.join(adopted) or 'none'}; bound by IronCache: {', '.join(bound) or 'none'}"
        )

    @property
    def socket_activated(self) -> bool:
        return any(x.inherited for x in self.listeners)

    def start_accepting(self, lst: listen.Listener) -> None:
        # Accept through add_reader rather than create_server(sock=...): the latter calls
        # listen() again, which would shrink the backlog systemd configured (Backlog=).
        assert self.loop is not None and lst.sock is not None
        self.loop.add_reader(lst.sock.fileno(), self._accept, lst)

    def stop_accepting(self, lst: listen.Listener) -> None:
        if self.loop is not None and lst.sock is not None:
            self.loop.remove_reader(lst.sock.fileno())

    def _accept(self, lst: listen.Listener) -> None:
        assert self.loop is not None and lst.sock is not None
        for dummy in range(256):  # bounded: let established clients run between bursts
            try:
                conn, _addr = lst.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                log.warning(f"accept on {lst.describe()} failed: {e.strerror}")
                return
            client_id = self.next_client_id()
            if not lst.tls:
                # In the fd store at once: a crash from now on keeps the connection. Until
                # then only the kernel holds it, and a SIGKILL in between resets it.
                self.handover.client_accepted(client_id, conn)
            conn.setblocking(False)
            lst.accepted += 1
            if lst.tls:  # a TLS session cannot move to another process: never stored
                task = self.loop.create_task(self._connect_tls(conn, lst, client_id))
                self.connecting.add(task)
                task.add_done_callback(self.connecting.discard)
                continue
            task = self.loop.create_task(self._connect(conn, lst, client_id))
            self.connecting.add(task)
            task.add_done_callback(self.connecting.discard)

    async def _connect(self, conn: socket.socket, lst: listen.Listener, client_id: int) -> None:
        assert self.loop is not None
        try:
            await self.loop.connect_accepted_socket(lambda: Client(self, lst, client_id), sock=conn)
        except OSError as e:
            log.verbose(f"dropping a connection on {lst.describe()}: {e}")
            conn.close()
            self.handover.client_gone(client_id)

    async def _connect_tls(self, conn: socket.socket, lst: listen.Listener, client_id: int) -> None:
        assert self.loop is not None
        ctx = self.tls_ctx
        if ctx is None:
            conn.close()
            return
        # asyncio's SSLProtocol made here (as connect_accepted_socket(ssl=) would) so that the
        # client keeps it: during a busy script busy_poll reads the raw socket and feeds it the
        # records, and the replies (-BUSY) leave encrypted through it. Works under uvloop too.
        from asyncio import sslproto

        waiter = self.loop.create_future()
        client = Client(self, lst, client_id)
        proto = sslproto.SSLProtocol(
            self.loop, client, ctx, waiter, server_side=True,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_S,
        )
        transport = None
        try:
            made = await self.loop.connect_accepted_socket(lambda: proto, sock=conn)
            transport = made[0]
            await waiter
        except (OSError, TimeoutError, ConnectionError) as e:  # ssl.SSLError is an OSError
            log.verbose(f"TLS handshake failed on {lst.describe()}: {type(e).__name__}: {e}")
            if transport is not None:
                transport.close()
            else:
                conn.close()
            return
        client.tls_proto = proto

    def reload_tls(self) -> None:
        """Build the TLS context from the current settings (files read again); new
        connections get it, established ones keep theirs. TLSError: nothing changed."""
        if not self.config["tls-port"]:
            self.tls_ctx = None
            return
        from ironcache import tls

        self.tls_ctx = tls.make_context(self.config.values)
        log.notice(f"TLS configuration loaded: {tls.certificate_summary(self.config.values)}")

    def _sighup(self) -> None:
        """SIGHUP (systemctl reload): read the certificate, key and CA files again."""
        from ironcache.tls import TLSError

        try:
            self.reload_tls()
        except TLSError as e:
            log.warning(f"SIGHUP: TLS configuration not reloaded, the previous one stays: {e}")

    async def _adopt(self, conn: socket.socket, rec: dict[str, Any]) -> Client | None:
        """Rebuild a connection the previous process handed over, with its state and input."""
        assert self.loop is not None
        c = Client(self, self.handover.listener_for(rec, conn), rec["id"])
        handover.apply_record(c, rec)
        pending = rec.get("input") or b""
        counters = rec.get("counters")
        if counters is not None:  # the input handed over was read from the socket already
            c.rx, c.tx = counters[0] - len(pending), counters[1] - len(rec.get("resend", b""))
        try:
            await self.loop.connect_accepted_socket(lambda: c, sock=conn)
        except OSError as e:
            log.verbose(f"dropping handed-over connection id={c.id}: {e}")
            conn.close()
            self.handover.client_gone(c.id)
            return None
        resend = rec.get("resend")
        if resend and c.transport is not None:  # a reply the crash kept from leaving
            c.transport.write(resend)
            c.tx += len(resend)
        if pending and not c.closing:
            c.data_received(pending)
        return c

    def replay_client(self) -> Client:
        """A connection-less client that journal replay runs writes as."""
        c = Client(self, listen.Listener("unix", "(journal)"), 0)
        c.authenticate(self.acl.superuser)
        return c

    def rebind(self, kind: str, bind: list[str], port: int, unixsocket: str) -> None:
        """CONFIG SET port/bind: replace self-bound listeners of that kind.

        Listeners inherited from systemd are never re-bound: systemd owns them. As in Redis,
        the listeners that go away are closed first (a new wildcard address may need their
        port), and re-opened when a new one cannot be bound.
        """
        old = [x for x in self.listeners if x.group == kind]
        if any(x.inherited for x in old):
            raise CommandError(
                "ERR the listener is socket-activated (inherited from systemd): change "
                "ListenStream= in the .socket unit and restart the socket unit instead"
            )
        cfg = self.config
        args = (cfg["tcp-backlog"], cfg["unixsocketperm"], cfg["reuseport"])
        every = listen.configured(bind, port, unixsocket, cfg["tls-port"], cfg["tls-bind"])
        wanted = [x for x in every if x.group == kind]
        wanted_keys = {x.describe() for x in wanted}
        old_keys = {x.describe() for x in old}
        going = [x for x in old if x.describe() not in wanted_keys]
        coming = [x for x in wanted if x.describe() not in old_keys]
        for lst in going:
            self.stop_accepting(lst)
            listen.close(lst)
        opened: list[listen.Listener] = []
        try:
            for lst in coming:
                listen.bind(lst, *args)
                if lst.sock is not None:
                    opened.append(lst)
        except listen.ListenError as e:
            for lst in opened:
                listen.close(lst)
            for lst in going:
                try:
                    listen.bind(lst, *args)
                    self.start_accepting(lst)
                except listen.ListenError as again:
                    log.warning(f"could not re-open {lst.describe()}: {again}")
                    self.listeners.remove(lst)
            raise CommandError(f"ERR {e}") from None
        for lst in going:
            self.listeners.remove(lst)
        for lst in opened:
            self.listeners.append(lst)
            self.start_accepting(lst)
        log.notice(f"listeners now: {', '.join(_label(x) for x in self.listeners)}")

    def _warn_exposure(self) -> None:
        """Say at start when a listener serves other hosts without a password."""
        cfg = self.config
        if cfg["requirepass"]:
            return
        exposed = [
            x.describe()
            for x in self.listeners
            if x.kind == "tcp" and not ipaddress.ip_address(x.address).is_loopback
        ]
        if not exposed:
            return
        if cfg["protected-mode"]:
            log.warning(
                f"protected mode: no password is set, so clients from other hosts on "
                f"{', '.join(exposed)} get -DENIED; only loopback and unix-socket clients are "
                "served. Set requirepass, or protected-mode no on a trusted network."
            )
        else:
            log.warning(
                f"protected mode is off and no password is set: anyone who reaches "
                f"{', '.join(exposed)} can read and change every key"
            )

    # ------------------------------------------------------------- periodic work
    def _cron(self) -> None:
        ks = self.keyspace
        ks.tick()
        hz = self.config["hz"]
        budget = 0.25 / hz  # at most a quarter of each period on expiry, as Redis does
        for db in ks.dbs:
            if db.expires:
                db.active_expire(budget / len(ks.dbs) if len(ks.dbs) > 1 else budget)
        if ks.used > self.maxmemory:
            ks.evict(
                self.maxmemory, self.config["maxmemory-policy"], self.config["maxmemory-samples"]
            )
        self.peak_memory = max(self.peak_memory, ks.used)
        self._gc_ticks += 1
        if self._gc_ticks >= hz:
            # The cyclic GC's full passes walk every object: 300 ms per million keys, found
            # nothing (the dataset forms no cycles). Once a second, what survived the young
            # collections is frozen, so a full pass only walks what is newer than that.
            self._gc_ticks = 0
            gc.collect(1)
            gc.freeze()
        for c in list(self.obuf_soft):  # over the soft output limit, maybe reading nothing
            c.check_output()
        self._resize_query_buffers(hz)
        if self.tracking.table:
            self.tracking.limit()
        timeout = self.config["timeout"]
        if timeout:
            cutoff = time.monotonic() - timeout
            for c in list(self.clients.values()):
                if c.last_active < cutoff and c.multi is None:
                    c.close()
        assert self.loop is not None
        self.loop.call_later(1 / hz, self._cron)

    def _resize_query_buffers(self, hz: int) -> None:
        """As Redis's clientsCron: every client once a second, at least 5 per tick."""
        clients = self.clients
        n = len(clients)
        if not n:
            return
        count = min(n, max(5, n // hz))
        if count == n:
            batch = list(clients.values())
        else:
            start = self._qbuf_cursor % n
            batch = list(itertools.islice(itertools.cycle(clients.values()), start, start + count))
            self._qbuf_cursor = start + count
        now = time.monotonic()
        for c in batch:
            c.resize_query_buffer(now)

    def _watchdog(self) -> None:
        self.notifier.watchdog()
        assert self.loop is not None
        self.loop.call_later(self.notifier.watchdog_s, self._watchdog)

    # ------------------------------------------------------------- lifecycle
    async def serve(self, exec_time: float) -> int:
        self.loop = asyncio.get_running_loop()
        self.loop.set_exception_handler(_log_loop_error)
        self.keyspace.call_soon = self.loop.call_soon  # lazy free: a slice per loop turn
        self.tracking.call_soon = self.loop.call_soon  # BCAST invalidations: once per turn
        self.blocking.loop = self.loop
        self.keyspace.schedule_free()
        self.stopping = asyncio.Event()
        self._all_closed = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, self.request_stop, signal.Signals(sig).name)
        self.loop.add_signal_handler(signal.SIGHUP, self._sighup)
        try:
            await self._take_over()
        except diskstore.SnapshotError as e:
            log.warning(f"cannot start: {e}")
            for lst in self.listeners:
                listen.close(lst)
            return diskstore.EXIT_SNAPSHOT
        except reload.ReloadError as e:
            # The old process serves on: leave its listeners and clients alone.
            log.warning(f"cannot take over from the old process: {e}")
            assert self.reload_target is not None
            self.reload_target.fail(str(e))
            return 1
        for lst in self.listeners:
            self.start_accepting(lst)
        self.loop.call_later(1 / self.config["hz"], self._cron)
        self.reloader.listen()
        if self.notifier.watchdog_s:
            self._watchdog()
        self.exec_to_ready_ms = (time.time() - exec_time) * 1000
        status = (
            f"Serving on {', '.join(_label(x) for x in self.listeners)} "
            f"({'socket-activated' if self.socket_activated else 'self-bound'})"
        )
        self.notifier.ready(status)
        if self.reload_target is not None and self.reload_target.mode == "reload":
            self.reload_target.serving(self)
        log.notice(
            f"IronCache {__version__} ready in {self.exec_to_ready_ms:.0f} ms since exec "
            f"(pid {os.getpid()}, {self.event_loop_name}); {status.lower()}"
        )
        await self.stopping.wait()
        await self._shutdown()
        return 0

    async def _take_over(self) -> None:
        """Load what the previous process left: the fd store first, else the disk snapshot."""
        ho = self.handover
        # Millions of objects arrive at once: a collection pass per allocation burst would
        # triple the load time. None of them form cycles; freezing keeps later passes short.
        gc.disable()
        target = self.reload_target
        try:
            if target is not None and target.mode == "reload":
                # Beside the old process: it serves while this one loads and catches up.
                target.hello(self)
                adopted: list[tuple[socket.socket, dict[str, Any] | None]] = list(
                    target.load(self)
                )
                target.fix_listeners(self)
                target.adopt_state(self)
            else:
                if target is not None:  # the stop-start fallback: main process first
                    target.hello(self)
                    target.fix_listeners(self)
                adopted = ho.restore()
            loaded = ho.source == "none" and self.config["save-on-shutdown"]
            if loaded and diskstore.load(self.config, self.keyspace) is not None:
                ho.source = "disk"
                ho.restored_keys = sum(len(db.data) for db in self.keyspace.dbs)
        finally:
            gc.enable()
        if ho.restored_keys:
            gc.freeze()
        # Adopted clients run commands as soon as they are connected: journal them from the start.
        ho.start_journal()
        live = [c for c in await asyncio.gather(*(self._adopt(s, r) for s, r in adopted)) if c]
        ho.record_clients(live)
        self.tracking.handed_over(live)
        ho.finish_restore(live)
        self.peak_memory = max(self.peak_memory, self.keyspace.used)

    def save(self, blob: bytes | None = None) -> int:
        """SAVE and save-on-shutdown: the disk snapshot, written atomically."""
        try:
            size = diskstore.save(self.config, self.keyspace, blob)
        except OSError as e:
            self.last_save_status = "err"
            raise OSError(f"writing {diskstore.path(self.config)}: {e.strerror}") from None
        self.last_save = int(time.time())
        self.last_save_status = "ok"
        self.keyspace.dirty = 0
        return size

    def request_stop(self, reason: str) -> None:
        if self.stopping is None or self.stopping.is_set():
            return
        self.shutdown_reason = reason
        self.stopping.set()

    async def _shutdown(self) -> None:
        """Stop accepting, answer every request already received, flush, close, exit."""
        if self.reloaded_to:
            # Everything is the new process's: say nothing to systemd (NotifyAccess=all
            # would take STOPPING=1 from us for the service's).
            log.notice(f"handed over to pid {self.reloaded_to} (reload): exiting")
            return
        self.reloader.close()
        log.notice(f"shutting down ({self.shutdown_reason}): no new connections")
        self.notifier.stopping("Stopping: finishing requests already received")
        for lst in self.listeners:
            self.stop_accepting(lst)
        if self.handover.enabled and self.shutdown_reason != "SHUTDOWN command":
            await self._hand_over()
            return
        deadline = time.monotonic() + SHUTDOWN_GRACE_S
        # Requests still in kernel buffers were sent before the stop: read and answer them.
        # A client accepted just before the stop has usually not sent its first request yet:
        # closing now would answer that request with a reset, so it gets a moment to send it.
        while time.monotonic() < deadline and any(
            _unread(c) or _just_connected(c) for c in self.clients.values()
        ):
            await asyncio.sleep(0.005)
        await self._close_tls_clients()
        for c in list(self.clients.values()):
            c.close()  # the transport flushes queued replies before it closes
        if self.clients:
            try:
                await asyncio.wait_for(
                    self._all_closed.wait(), max(deadline - time.monotonic(), 0.1)
                )
            except TimeoutError:
                log.warning(f"{len(self.clients)} clients did not drain in time")
                for c in list(self.clients.values()):
                    if c.transport is not None:
                        c.transport.abort()
        for lst in self.listeners:
            listen.close(lst)
        self._save_on_shutdown()
        log.notice("IronCache is now ready to exit, bye bye...")

    def _save_on_shutdown(self) -> None:
        want = self.shutdown_save
        if want if want is not None else self.config["save-on-shutdown"]:
            try:
                # After a handover the same bytes go to disk: encoded once.
                size = self.save(self.handover.handed_blob or None)
                log.notice(f"dataset saved to {diskstore.path(self.config)} ({size} bytes)")
            except OSError as e:
                log.warning(f"could not save the dataset on shutdown: {e}")

    async def _hand_over(self) -> None:
        """Leave every connection and the dataset to the next process (systemd restarts us)."""
        gc.disable()  # the encoding allocates in bulk and nothing here is garbage
        keep = await self._quiesce()
        size, ms = self.handover.hand_over(keep)  # seals the store: no message after this
        keys = sum(len(db.data) for db in self.keyspace.dbs)
        log.notice(
            f"handed over {len(keep)} connections and {keys} keys ({size} bytes) in {ms:.0f} ms"
        )
        self._save_on_shutdown()
        log.notice("IronCache is now ready to exit, bye bye...")

    async def _quiesce(self) -> list[Client]:
        """Read no more, flush every reply: the clients that can be handed over exactly (a
        handover on stop, a reload's cutover); the others are closed."""
        self.handing_over = True  # a client connected from now on starts paused
        if self.connecting:
            # Accepted just before the stop: they are in the fd store already, and handed
            # over as clients once connected (left half set up, a later close of ours could
            # drop them from the store and reset them).
            await asyncio.wait(set(self.connecting), timeout=handover.DRAIN_TIMEOUT_S)
        # TLS connections cannot be handed over (their session lives in this process's
        # OpenSSL): served a moment more like a plain shutdown, then closed; their clients
        # reconnect into the listener.
        await self._close_tls_clients()
        clients = list(self.clients.values())
        for c in clients:  # commands already received have run; read no more
            if c.transport is not None and not c.closing:
                c.stop_reading()
        deadline = time.monotonic() + handover.DRAIN_TIMEOUT_S
        while time.monotonic() < deadline and any(_unflushed(c) for c in clients):
            await asyncio.sleep(0.002)
        keep = []
        for c in list(self.clients.values()):
            if c.closing or _unflushed(c) or c.parser.unparsed() is None:
                # Cannot be handed over exactly: an ordinary close instead, out of the fd
                # store before the snapshot is confirmed.
                self.handover.client_closed(c)
                c.close()
            else:
                keep.append(c)
        return keep

    async def _close_tls_clients(self) -> None:
        """Close every TLS connection, as a plain shutdown closes every connection: requests
        already sent (bytes in the kernel, a client that just connected) are read and answered
        first, for at most TLS_CLOSE_WAIT_S; then close() writes the replies still queued and
        close_notify after them. Peers that answer it are gone at once; the others are cut
        after a moment (an idle client reads nothing until its next request, which then meets
        the closed connection and reconnects)."""
        tls_clients = [c for c in self.clients.values() if c.listener.tls]
        if not tls_clients:
            return
        deadline = time.monotonic() + TLS_CLOSE_WAIT_S
        while time.monotonic() < deadline and any(
            _unread(c) or _just_connected(c) for c in tls_clients
        ):
            await asyncio.sleep(0.005)
        for c in tls_clients:
            c.close()
        deadline = time.monotonic() + TLS_CLOSE_WAIT_S
        while time.monotonic() < deadline and any(c.id in self.clients for c in tls_clients):
            await asyncio.sleep(0.005)
        for c in tls_clients:
            if c.id in self.clients and c.transport is not None:
                c.transport.abort()
        log.notice(f"closed {len(tls_clients)} TLS connections (their clients reconnect)")


def _label(lst: listen.Listener) -> str:
    return f"{lst.describe()} (TLS)" if lst.tls else lst.describe()


def _feed_tls(proto: Any, data: bytes) -> None:
    """Hand raw TLS records to an SSLProtocol as its transport would (BufferedProtocol)."""
    view = memoryview(data)
    try:
        while view:
            buf = proto.get_buffer(len(view))
            n = min(len(buf), len(view))
            buf[:n] = view[:n]
            proto.buffer_updated(n)
            view = view[n:]
    except Exception as e:  # noqa: BLE001 - a broken session must not fail the script
        log.verbose(f"TLS read during a busy script failed: {type(e).__name__}: {e}")


TLS_HANDSHAKE_TIMEOUT_S = 10.0
TLS_CLOSE_WAIT_S = 0.5


def _log_loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """An unexpected error in a callback: one log line, never a traceback on stderr."""
    exc = context.get("exception")
    where = context.get("message", "event loop error")
    log.warning(f"{where}: {type(exc).__name__}: {exc}" if exc else where)


FIRST_REQUEST_GRACE_S = 0.5


def _unflushed(c: Client) -> bool:
    return c.transport is not None and not c.closing and c.transport.get_write_buffer_size() > 0


def _just_connected(c: Client) -> bool:
    """Accepted moments ago and silent since: its first request is probably on the way."""
    return (
        not c.closing
        and c.last_command == b"NULL"
        and time.monotonic() - c.created < FIRST_REQUEST_GRACE_S
    )


def _unread(c: Client) -> bool:
    """True when the client's socket holds bytes we have not read yet."""
    import fcntl
    import struct
    import termios

    if c.closing or c.paused or c.transport is None:
        return False
    sock = c.transport.get_extra_info("socket")
    if sock is None:
        return False
    try:
        buf = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except (OSError, ValueError):
        return False
    return struct.unpack("i", buf)[0] > 0
