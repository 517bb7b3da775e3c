"""Reload: the release `current` points at starts beside this process and takes over, so a
client waits milliseconds whatever the dataset size (`ironcache reload`, ExecReload=).

The old process (Reloader), on a request on its control socket:

1. checks the memory headroom for a second copy of the dataset (headroom()); when short it
   falls back to the stop-start handover (below);
2. forks a child that encodes the dataset into a memfd (`state.encode`, the crash and handover
   format). The child sees the dataset as it was at the fork, copy-on-write, while the parent
   serves on: Redis's BGSAVE. Chosen over replaying the crash journal on its last snapshot
   (up to twice the dataset's size of commands to run again) and over encoding in slices
   between requests (each slice must be consistent with the writes in between: every write
   path would need to know). The price is the pages the parent changes meanwhile, copied;
3. from the fork on, appends every journal record (handover.Handover.begin_tap) to a second
   memfd, the reload journal, and starts the new release with the listeners, both memfds and
   a control socket;
4. the new process (Target) imports, loads the snapshot and replays the journal as it grows;
   once less than CATCH_UP_BYTES remain it says so. The old process then does what a handover
   does (Server._quiesce: stop accepting and reading, flush replies), sends the journal's end,
   every client's full record (handover.client_record) and its socket; the new one replays
   the tail, adopts the clients (Server._adopt), makes the snapshot + reload journal its crash
   state in systemd's fd store, sends MAINPID= and READY=1 (NotifyAccess=all) and says it
   serves; the old process answers the request and exits.

Any failure before that (the new release cannot start, dies while loading, reports another
version than expected, times out) kills the new process: the old one serves on, and the
request fails with the reason. A failure after the old one stopped reading resumes it.

Fallback (memory short): the old process hands over as on SIGTERM (the dataset into a state
memfd, clients in the fd store), starts the new release with those fds as systemd would, and
exits once the new process has announced itself as MAINPID: the new one loads as after
`systemctl restart`. Peak memory: the old dataset + its encoding, not two datasets.

Peak memory of the reload path: the old process, the new process's copy of the dataset, the
encoded snapshot (the memfd, about the size of the data), the journal of writes made during
the reload, and the pages the old process changes while the child encodes (at most the old
process's size, in practice far less): about 2.5x the dataset.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import gc
import json
import marshal
import os
import resource
import select
import signal
import socket
import struct
import sys
import time
from typing import TYPE_CHECKING, Any

from ironcache import handover, state
from ironcache import listener as listen
from ironcache._version import __version__
from ironcache.log import log

if TYPE_CHECKING:
    from ironcache.client import Client

# The server (server.py, a layer above, imports this module): its attributes used here are
# keyspace, config, loop, listeners, clients, handover, notifier, _quiesce, start/stop_accepting.
Server = Any

ENV = "IRONCACHE_RELOAD"  # set by the old process for the new one (see Target.from_env)
# Journal left to replay when the old process stops reading: its replay is the cutover's
# main cost (about 25 ms per 256 KB of SETs). The new process replays what came meanwhile
# until this little is left, or until a pass no longer shrinks it (writes outpace the replay).
CATCH_UP_BYTES = 16 * 1024
CATCH_UP_PASSES = 50
LOW_PRIORITY = 19  # nice of the snapshot child and of the new process while it loads
LOAD_TIMEOUT_S = 600.0  # the new process's start, load and catch-up
CUTOVER_TIMEOUT_S = 30.0
REQUEST_MAX = 64 * 1024
FRAME = struct.Struct("<II")  # control messages: payload length, fds attached
MAX_FDS = 250  # per message (the kernel's SCM_MAX_FD is 253)


class ReloadError(Exception):
    """Why a reload failed; the old process serves on."""


def control_address(pid: int) -> str:
    """The abstract unix socket a server listens on for `ironcache reload` (network namespace
    of the service; the peer's uid is checked)."""
    return f"\0ironcache-control-{pid}"


# ----------------------------------------------------------------- control channel
def send_msg(sock: socket.socket, obj: Any, fds: list[int] | tuple[int, ...] = ()) -> None:
    payload = marshal.dumps(obj, state.MARSHAL_VERSION)
    data = FRAME.pack(len(payload), len(fds)) + payload
    if fds:
        sent = sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
        data = data[sent:]
    if data:
        sock.sendall(data)


class Channel:
    """Messages (marshal) with fds between the two processes, over a unix stream socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.fds: list[int] = []
        self.eof = False

    def _fill(self) -> None:
        try:
            data, anc, _flags, _addr = self.sock.recvmsg(
                1 << 20, socket.CMSG_SPACE(MAX_FDS * 4 + 16), socket.MSG_CMSG_CLOEXEC
            )
        except (BlockingIOError, InterruptedError, TimeoutError):
            return
        except OSError:
            data, anc = b"", []
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(payload[: len(payload) - len(payload) % 4])
                self.fds.extend(fds)
        if not data:
            self.eof = True
        self.buf += data

    def next(self) -> tuple[Any, list[int]] | None:
        if len(self.buf) < FRAME.size:
            return None
        n, k = FRAME.unpack_from(self.buf)
        if len(self.buf) < FRAME.size + n or len(self.fds) < k:
            return None
        obj = marshal.loads(bytes(self.buf[FRAME.size : FRAME.size + n]))
        del self.buf[: FRAME.size + n]
        fds, self.fds = self.fds[:k], self.fds[k:]
        return obj, fds

    def recv(self, timeout: float, what: str) -> tuple[Any, list[int]]:
        """Blocking (the new process, before it serves)."""
        deadline = time.monotonic() + timeout
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        while True:
            got = self.next()
            if got is not None:
                return got
            if self.eof:
                raise ReloadError(f"the old process went away while {what}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise ReloadError(f"no answer from the old process while {what}")
            if poller.poll(int(left * 1000) + 1):
                self._fill()

    async def arecv(self, loop: asyncio.AbstractEventLoop) -> tuple[Any, list[int]]:
        """In the event loop (the old process, serving meanwhile)."""
        got = self.next()
        if got is not None:
            return got
        fut: asyncio.Future[tuple[Any, list[int]] | None] = loop.create_future()

        def readable() -> None:
            self._fill()
            msg = self.next()
            if not fut.done() and (msg is not None or self.eof):
                fut.set_result(msg)

        loop.add_reader(self.sock.fileno(), readable)
        try:
            msg = await fut
        finally:
            loop.remove_reader(self.sock.fileno())
        if msg is None:
            raise EOFError
        return msg

    def close(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds = []
        self.sock.close()


# ----------------------------------------------------------------- memory
def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            raw = f.read().strip()
    except OSError:
        return None
    return int(raw) if raw.isdigit() else None


def cgroup_room() -> tuple[int | None, str]:
    """Memory the cgroup (MemoryMax=, and every parent's memory.max) leaves: (bytes, where)."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None, ""
    best: tuple[int | None, str] = (None, "")
    for line in lines:
        hid, _ctrl, path = line.split(":", 2)
        if hid != "0":
            continue
        parts = [p for p in path.split("/") if p]
        for depth in range(len(parts), -1, -1):
            d = os.path.join("/sys/fs/cgroup", *parts[:depth])
            limit, used = _read_int(f"{d}/memory.max"), _read_int(f"{d}/memory.current")
            if limit is not None and used is not None:
                room = max(limit - used, 0)
                if best[0] is None or room < best[0]:
                    best = (room, f"cgroup /{'/'.join(parts[:depth])} memory.max {limit}")
    return best


def host_room() -> int | None:
    """MemAvailable (ProcSubset=pid hides /proc/meminfo: then free pages, from sysinfo())."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None


def rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def headroom(srv: Server) -> tuple[bool, str]:
    """Whether a second copy fits: (fits, explanation). The new process grows to about this
    one's size; the snapshot memfd and the pages copied meanwhile take about the dataset's."""
    need = rss() + srv.keyspace.used
    rooms: list[tuple[int, str]] = []
    configured = srv.config["reload-memory-available"]
    if configured:
        rooms.append((configured, "reload-memory-available"))
    else:
        room, where = cgroup_room()
        if room is not None:
            rooms.append((room, where))
        host = host_room()
        if host is not None:
            rooms.append((host, "the host's available memory"))
    if not rooms:
        return True, f"needs about {need} bytes; no limit known"
    room, where = min(rooms)
    fits = need <= room
    return fits, f"needs about {need} bytes, {room} available ({where})"


# ----------------------------------------------------------------- the old process
def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(sig).name}"
        return f"signal {sig}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


class Process:
    """A child of ours (the snapshot writer, the new server): its exit, seen through a pidfd."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pid: int) -> None:
        self.pid = pid
        self.loop = loop
        self.status: int | None = None
        self.exited: asyncio.Future[int] = loop.create_future()
        self.pidfd = os.pidfd_open(pid)
        loop.add_reader(self.pidfd, self._reap)

    def _reap(self) -> None:
        with contextlib.suppress(ChildProcessError):
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == 0:
                return
            self.status = status
        self._close()
        if not self.exited.done():
            self.exited.set_result(self.status if self.status is not None else 0)

    def _close(self) -> None:
        if self.pidfd >= 0:
            self.loop.remove_reader(self.pidfd)
            os.close(self.pidfd)
            self.pidfd = -1

    def kill(self) -> None:
        """SIGKILL and reap (a failed reload leaves nothing behind)."""
        if self.exited.done():
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        self._close()
        self.exited.set_result(-1)

    def release(self) -> None:
        """It outlives us (the new server): stop watching it."""
        self._close()


def lower_priority() -> bool:
    """Yield the CPU to the serving process: SCHED_IDLE where allowed, else nice 19. On 2
    busy cores a loader at the same priority stalled the server's requests for 70-90 ms.
    (The unit's SystemCallFilter= must allow setpriority and sched_setscheduler.)"""
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        return True
    try:
        os.setpriority(os.PRIO_PROCESS, 0, LOW_PRIORITY)
    except OSError:
        return False
    return True


def fork_snapshot(srv: Server, fd: int) -> int:
    """Fork a child that writes the dataset, as it is now, to the memfd `fd`."""
    # Objects the collector must not visit in the parent meanwhile: a full pass would write
    # to every object's header, and each page it writes is copied (copy-on-write).
    gc.freeze()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:  # the child: no event loop, no handler, nothing but the encoding
        gc.disable()
        lower_priority()
        blob = state.encode({"kind": "checkpoint", "reload": True}, srv.keyspace, [])
        view = memoryview(blob)
        while view:
            view = view[os.write(fd, view) :]
        code = 0
    except BaseException as e:  # noqa: BLE001 - whatever it is, the parent hears the code
        with contextlib.suppress(Exception):
            os.write(2, f"ironcache: reload snapshot failed: {e}\n".encode())
    finally:
        os._exit(code)


def spawn(argv: list[str], env: dict[str, str], fds: list[int]) -> int:
    """Start argv with `fds` at 3, 4, ... (as systemd passes them); returns the pid."""
    base = max([*fds, 2 + len(fds), 9]) + 1
    parked = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, base) for fd in fds]
    try:
        actions = [(os.POSIX_SPAWN_DUP2, fd, 3 + i) for i, fd in enumerate(parked)]
        return os.posix_spawn(argv[0], argv, env, file_actions=actions)
    finally:
        for fd in parked:
            os.close(fd)


class Reloader:
    """The running process's side: the control socket and the reload itself."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.sock: socket.socket | None = None
        self.busy = False
        self.serve_args: list[str] = []
        # What systemd gave this process, for the next one (Notifier and listen_fds pop them).
        self.environ = {
            k: v for k, v in os.environ.items() if not k.startswith(("LISTEN_", "WATCHDOG_PID"))
        }
        self.successor = 0  # the pid that took over: the server exits without more ado
        self.last: dict[str, Any] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.timeout = LOAD_TIMEOUT_S

    def listen(self) -> None:
        srv = self.server
        assert srv.loop is not None
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            sock.bind(control_address(os.getpid()))
            sock.listen(8)
        except OSError as e:
            log.warning(f"no control socket (ironcache reload will not reach this process): {e}")
            return
        sock.setblocking(False)
        self.sock = sock
        srv.loop.add_reader(sock.fileno(), self._accept)

    def close(self) -> None:
        if self.sock is not None and self.server.loop is not None:
            self.server.loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None

    def _accept(self) -> None:
        assert self.sock is not None and self.server.loop is not None
        try:
            conn, _addr = self.sock.accept()
        except OSError:
            return
        task = self.server.loop.create_task(self._handle(conn))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _handle(self, conn: socket.socket) -> None:
        loop = self.server.loop
        assert loop is not None
        conn.setblocking(False)
        try:
            _pid, uid, _gid = struct.unpack(
                "3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
            )
            if uid not in (0, os.getuid()):
                await loop.sock_sendall(conn, b'{"ok": false, "error": "permission denied"}\n')
                return
            data = b""
            while b"\n" not in data and len(data) < REQUEST_MAX:
                chunk = await asyncio.wait_for(loop.sock_recv(conn, 4096), 10)
                if not chunk:
                    return
                data += chunk
            try:
                req = json.loads(data.split(b"\n", 1)[0])
            except ValueError:
                req = None
            if not isinstance(req, dict):
                result: dict[str, Any] = {"ok": False, "error": "malformed request"}
            elif req.get("cmd") == "status":
                result = {"ok": True, "pid": os.getpid(), "version": __version__, "serving": True}
            elif req.get("cmd") == "reload":
                result = await self.reload(req)
            else:
                result = {"ok": False, "error": f"unknown command {req.get('cmd')!r}"}
            conn.setblocking(True)
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps(result).encode() + b"\n")
        except (OSError, TimeoutError) as e:
            log.verbose(f"control connection: {e}")
        finally:
            conn.close()
            if self.successor:
                self.server.request_stop("reload")

    # ------------------------------------------------------------- the request
    def command(self, req: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        """The new release's command line: the interpreter of `ironcache reload` (the release
        `current` points at), this process's serve arguments."""
        python = str(req.get("python") or sys.executable)
        argv = [python, *(["-I"] if req.get("isolated") else []), "-m", "ironcache", "serve"]
        env = dict(self.environ)
        if req.get("pythonpath"):
            env["PYTHONPATH"] = str(req["pythonpath"])
        else:
            env.pop("PYTHONPATH", None)
        return argv + self.serve_args, env

    async def reload(self, req: dict[str, Any]) -> dict[str, Any]:
        srv = self.server
        if self.busy or srv.handing_over:
            return {"ok": False, "error": "a reload or handover is already in progress"}
        if srv.script_busy is not None:
            return {"ok": False, "error": "a script is running (BUSY): try again"}
        self.busy = True
        # The caller's patience (the unit's timeout): past it the new process is killed and
        # this one serves on, rather than finish a reload nobody waits for.
        self.timeout = min(float(req.get("timeout") or LOAD_TIMEOUT_S), LOAD_TIMEOUT_S)
        t0 = time.monotonic()
        expect = str(req.get("version") or __version__)
        argv, env = self.command(req)
        fits, why = headroom(srv)
        try:
            if not fits or req.get("path") == "restart":
                reason = why if not fits else "asked for"
                log.warning(
                    f"reload: not enough memory for a second copy of the dataset ({why}): "
                    "falling back to the stop-start handover"
                    if not fits
                    else "reload: the stop-start handover, as asked"
                )
                # one INFO value: no commas (clients split them into lists)
                env[ENV + "_FALLBACK"] = (
                    f"not enough memory for a reload ({why})".replace(", ", "; ")
                    if not fits
                    else "the stop-start handover was asked for"
                )
                result = await self._fallback(argv, env, expect)
                result["fallback_reason"] = reason
            else:
                log.notice(f"reload: starting {' '.join(argv[:4])} beside this process ({why})")
                result = await self._reload(argv, env, expect)
        except ReloadError as e:
            log.warning(f"reload failed, this process serves on: {e}")
            result = {"ok": False, "error": str(e), "pid": os.getpid()}
        finally:
            self.busy = False
        result["total_ms"] = round((time.monotonic() - t0) * 1000, 1)
        result["memory"] = why
        self.last = result
        return result

    async def _until(self, aw: Any, proc: Process, timeout: float, what: str) -> Any:
        """`aw`'s result, unless the new process exits or time runs out first."""
        task = asyncio.ensure_future(aw)
        done, _pending = await asyncio.wait(
            {task, proc.exited}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if task in done:
            try:
                return task.result()
            except EOFError:
                await asyncio.wait({proc.exited}, timeout=2)
        task.cancel()
        await asyncio.wait({task})  # its reader goes while the channel's fd is still ours
        if proc.exited.done():
            raise ReloadError(
                f"the new process (pid {proc.pid}) exited with "
                f"{_describe_status(proc.exited.result())} while {what}"
            )
        raise ReloadError(
            f"the new process (pid {proc.pid}) did not finish {what} in {timeout:.0f} s"
        )

    async def _reload(self, argv: list[str], env: dict[str, str], expect: str) -> dict[str, Any]:
        srv = self.server
        ho = srv.handover
        loop = srv.loop
        assert loop is not None
        snap = os.memfd_create("ironcache-reload-state", os.MFD_CLOEXEC)
        journal = os.memfd_create("ironcache-reload-journal", os.MFD_CLOEXEC)
        os.write(journal, state.HEADER.pack(state.MAGIC, state.FORMAT, state.MINOR, 0, 0, 0))
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        chan = Channel(mine)
        child: Process | None = None
        proc: Process | None = None
        resumed = False
        try:
            t_fork = time.monotonic()
            fork_wall_ms = int(time.time() * 1000)
            ho.begin_tap(journal)
            child = Process(loop, fork_snapshot(srv, snap))
            fork_ms = (time.monotonic() - t_fork) * 1000
            listeners = [x for x in srv.listeners if x.sock is not None]
            fds = [x.sock.fileno() for x in listeners if x.sock is not None]
            names = [listen.pass_name(x) for x in listeners]
            n = len(fds)
            env[ENV] = json.dumps(
                {
                    "mode": "reload",
                    "ctrl": 3 + n,
                    "state": 4 + n,
                    "journal": 5 + n,
                    "self_bound": [x.describe() for x in listeners if not x.inherited],
                }
            )
            env["LISTEN_FDS"] = str(n)
            env["LISTEN_FDNAMES"] = ":".join(names)
            try:
                pid = spawn(argv, env, [*fds, theirs.fileno(), snap, journal])
            except OSError as e:
                raise ReloadError(f"cannot start {argv[0]}: {e.strerror}") from None
            theirs.close()
            proc = Process(loop, pid)
            mine.settimeout(CUTOVER_TIMEOUT_S)
            hello, dummy = await self._until(chan.arecv(loop), proc, self.timeout, "starting")
            if hello.get("version") != expect:
                raise ReloadError(
                    f"the new process reports version {hello.get('version')}, expected {expect}"
                )
            status = await self._until(child.exited, proc, self.timeout, "waiting for the snapshot")
            if status != 0:
                raise ReloadError(f"the snapshot child failed ({_describe_status(status)})")
            snap_size = os.fstat(snap).st_size
            snap_ms = (time.monotonic() - t_fork) * 1000
            send_msg(mine, {"kind": "snapshot"})
            loaded, dummy = await self._until(chan.arecv(loop), proc, self.timeout, "loading")
            if loaded.get("kind") != "caught_up":
                raise ReloadError(f"unexpected message from the new process: {loaded!r}")
            # Cut over: from here on no request runs here.
            t_stop = time.monotonic()
            for lst in srv.listeners:
                srv.stop_accepting(lst)
            keep = await srv._quiesce()
            ho.flush_pending_only()
            end = ho.tap_size
            ho.end_tap()
            ho.sealed = True  # the fd store is the new process's from now on
            resumed = True  # a failure from now on must resume this process
            records = [handover.client_record(c, True) for c in keep]
            socks = [_client_fd(c) for c in keep]
            final = {
                "kind": "final",
                "end": end,
                "gen": ho.gen,
                "client_ids": srv.client_ids,
                "stored": ho.enabled,
                "count": len(keep),
                "stopped_ms": int(time.time() * 1000),
            }
            send_msg(mine, final)
            for i in range(0, len(keep), MAX_FDS):
                send_msg(
                    mine,
                    {"kind": "clients", "records": records[i : i + MAX_FDS]},
                    socks[i : i + MAX_FDS],
                )
            done, dummy = await self._until(
                chan.arecv(loop), proc, CUTOVER_TIMEOUT_S, "taking over"
            )
            if done.get("kind") != "serving":
                raise ReloadError(f"unexpected message from the new process: {done!r}")
            blackout_ms = (time.monotonic() - t_stop) * 1000
            proc.release()
            self.successor = proc.pid
            srv.reloaded_to = proc.pid
            log.notice(
                f"reload: pid {proc.pid} (IronCache {hello.get('version')}) serves "
                f"{len(keep)} connections and {loaded.get('keys')} keys; it loaded while this "
                f"process served ({loaded.get('load_ms')} ms, snapshot {snap_size} bytes, "
                f"journal {end} bytes); requests waited {blackout_ms:.1f} ms at the cutover; "
                f"fork at {fork_wall_ms} ms (wall clock) took {fork_ms:.1f} ms, snapshot written "
                f"+{snap_ms:.0f} ms, cutover +{(t_stop - t_fork) * 1000:.0f} ms"
            )
            return {
                "ok": True,
                "path": "reload",
                "pid": proc.pid,
                "old_pid": os.getpid(),
                "version": hello.get("version"),
                "blackout_ms": round(blackout_ms, 1),
                "load_ms": loaded.get("load_ms"),
                "load_started_ms": loaded.get("load_started_ms"),
                "loaded_ms": loaded.get("loaded_ms"),
                "fork_ms": round(fork_ms, 1),
                "fork_wall_ms": fork_wall_ms,
                "snapshot_written_ms": round(snap_ms),
                "cutover_after_ms": round((t_stop - t_fork) * 1000),
                "snapshot_bytes": snap_size,
                "journal_bytes": end,
                "connections": len(keep),
                "keys": loaded.get("keys"),
            }
        except BaseException:
            if proc is not None:
                proc.kill()
            if child is not None:
                child.kill()
            if ho.tap_fd >= 0:
                ho.end_tap()
            if resumed:
                self._resume()
            raise
        finally:
            chan.close()
            theirs.close()
            os.close(snap)
            os.close(journal)

    def _resume(self) -> None:
        """The new process failed after this one stopped: serve again, crash state repaired."""
        srv = self.server
        ho = srv.handover
        srv.handing_over = False
        if ho.enabled:
            # The new process may have swapped the fd store's crash state already: put ours
            # back (a fresh generation) before anything runs.
            for name in (f"state-{ho.gen + 1}", f"journal-{ho.gen + 1}", "slots"):
                ho.notifier.remove_fd(name)
            ho.sealed = False
            if ho.slots is not None:
                ho.notifier.store_fd(ho.slots.fd, "slots")
            ho.compact()
        ho.sealed = False
        for c in list(srv.clients.values()):
            if c.transport is not None and not c.closing and not c.paused:
                c._resume_reading()
        for lst in srv.listeners:
            srv.start_accepting(lst)
        log.notice("reload: this process reads and accepts again")

    async def _fallback(self, argv: list[str], env: dict[str, str], expect: str) -> dict[str, Any]:
        """Today's stop-start handover, with this process starting the next one itself."""
        srv = self.server
        ho = srv.handover
        loop = srv.loop
        assert loop is not None
        if not ho.enabled:
            raise ReloadError(
                "not enough memory for a reload, and the stop-start fallback needs the "
                "handover (handover yes, under systemd): restart the service instead"
            )
        t_stop = time.monotonic()
        stopped_at_ms = int(time.time() * 1000)
        for lst in srv.listeners:
            srv.stop_accepting(lst)
        keep = await srv._quiesce()
        size, _ms = ho.hand_over(keep)  # the state memfd + the clients: as on SIGTERM
        try:
            return await self._fallback_spawn(argv, env, expect, keep, size, t_stop, stopped_at_ms)
        except BaseException:
            if not self.successor:
                self._resume()
            raise

    async def _fallback_spawn(
        self,
        argv: list[str],
        env: dict[str, str],
        expect: str,
        keep: list[Client],
        size: int,
        t_stop: float,
        stopped_at_ms: int,
    ) -> dict[str, Any]:
        srv = self.server
        ho = srv.handover
        loop = srv.loop
        assert loop is not None
        listeners = [x for x in srv.listeners if x.sock is not None]
        fds = [x.sock.fileno() for x in listeners if x.sock is not None]
        names = [listen.pass_name(x) for x in listeners]
        for c in keep:
            fds.append(_client_fd(c))
            names.append(handover.client_fd_name(c.id))
        fds.append(ho.handed_fd)
        names.append(f"state-{ho.gen}")
        if ho.slots is not None:
            fds.append(ho.slots.fd)
            names.append("slots")
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env[ENV] = json.dumps(
            {
                "mode": "restart",
                "fallback": env.pop(ENV + "_FALLBACK", ""),
                "ctrl": 3 + len(fds),
                "self_bound": [x.describe() for x in listeners if not x.inherited],
            }
        )
        env["LISTEN_FDS"] = str(len(fds))
        env["LISTEN_FDNAMES"] = ":".join(names)
        chan = Channel(mine)
        try:
            try:
                pid = spawn(argv, env, [*fds, theirs.fileno()])
            except OSError as e:
                raise ReloadError(f"cannot start {argv[0]}: {e.strerror}") from None
            theirs.close()
            proc = Process(loop, pid)
            mine.settimeout(CUTOVER_TIMEOUT_S)
            try:
                hello, dummy = await self._until(chan.arecv(loop), proc, self.timeout, "starting")
            except ReloadError as e:
                proc.kill()
                raise ReloadError(f"{e} (stop-start fallback; this process serves on)") from None
            if hello.get("version") != expect:
                log.warning(
                    f"reload: the new process reports version {hello.get('version')}, "
                    f"expected {expect}"
                )
            proc.release()
            self.successor = proc.pid
            srv.reloaded_to = proc.pid
            log.notice(
                f"reload: stop-start handover to pid {proc.pid}: {len(keep)} connections, "
                f"{size} bytes; it loads now"
            )
            return {
                "ok": True,
                "path": "restart",
                "pid": proc.pid,
                "old_pid": os.getpid(),
                "version": hello.get("version"),
                "connections": len(keep),
                "snapshot_bytes": size,
                "stopped_ms": round((time.monotonic() - t_stop) * 1000, 1),
                "stopped_at_ms": stopped_at_ms,
            }
        finally:
            chan.close()
            theirs.close()


def _client_fd(c: Client) -> int:
    assert c.transport is not None
    sock = c.transport.get_extra_info("socket")
    return int(sock.fileno())


# ----------------------------------------------------------------- the new process
class Target:
    """The new process's side: started by a Reloader, it loads, catches up and takes over."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.mode = str(spec.get("mode", "reload"))
        self.fallback = str(spec.get("fallback", ""))  # why a reload became a stop-start
        self.self_bound = set(spec.get("self_bound", []))
        self.state_fd = int(spec.get("state", -1))
        self.journal_fd = int(spec.get("journal", -1))
        ctrl = int(spec["ctrl"])
        for fd in (ctrl, self.state_fd, self.journal_fd):
            if fd >= 0:
                os.set_inheritable(fd, False)
        self.chan = Channel(socket.socket(fileno=ctrl))
        self.end = 0
        self.base = 0
        self.gen = 0
        self.load_ms = 0.0
        self.stored = False
        self.lowered: tuple[int, int] | None = None  # (policy, nice) to restore after the load

    @classmethod
    def from_env(cls) -> Target | None:
        raw = os.environ.pop(ENV, "")
        if not raw:
            return None
        if "LISTEN_FDS" in os.environ:
            os.environ["LISTEN_PID"] = str(os.getpid())  # spawned, not exec'd by systemd
        return cls(json.loads(raw))

    def fix_listeners(self, srv: Server) -> None:
        """Listeners the old process bound itself stay ours to remove at exit."""
        for lst in srv.listeners:
            if lst.describe() in self.self_bound and lst.inherited:
                lst.inherited = False
                if lst.kind == "unix":
                    with contextlib.suppress(OSError):
                        st = os.stat(lst.address)
                        lst.bound_file = (st.st_dev, st.st_ino)

    def lower_priority(self) -> None:
        """Load at low priority, so the old process keeps the CPU it serves with, but only when
        this process may climb back afterwards (RLIMIT_NICE, the unit's LimitNICE=)."""
        if self.mode != "reload":
            return
        try:
            policy, nice = os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0)
        except OSError:
            return
        soft, _hard = resource.getrlimit(resource.RLIMIT_NICE)
        if soft != resource.RLIM_INFINITY and soft < 20 - nice:
            log.verbose("reload: loading at normal priority (LimitNICE= does not allow back)")
            return
        if lower_priority():
            self.lowered = (policy, nice)

    def restore_priority(self) -> None:
        if self.lowered is None:
            return
        policy, nice = self.lowered
        self.lowered = None
        try:
            os.sched_setscheduler(0, policy, os.sched_param(0))
            os.setpriority(os.PRIO_PROCESS, 0, nice)
        except OSError as e:
            raise ReloadError(f"cannot return to normal priority after loading: {e}") from None

    def hello(self, srv: Server) -> None:
        if self.mode == "restart":
            srv.handover.reload_fallback = self.fallback  # INFO handover tells the module
            # The old process exits once told: be the service's main process first, or
            # systemd would stop the unit with it.
            srv.notifier.send(f"MAINPID={os.getpid()}")
            srv.notifier.barrier()
        send_msg(self.chan.sock, {"kind": "hello", "version": __version__, "pid": os.getpid()})
        if self.mode == "restart":
            self.chan.close()

    def load(self, srv: Server) -> list[tuple[socket.socket, dict[str, Any]]]:
        """Snapshot, journal, then the old process's clients (blocking: we serve nobody yet)."""
        ho = srv.handover
        self.lower_priority()
        msg, dummy = self.chan.recv(LOAD_TIMEOUT_S, "waiting for the snapshot")
        started_ms = int(time.time() * 1000)
        t0 = time.perf_counter()
        blob = handover.read_memfd(self.state_fd)
        try:
            body, _dummy = state.decode(blob, "reload snapshot")
            state.load_dataset(srv.keyspace, body["dbs"])
            state.load_scripting(srv.keyspace, body)
        except state.StateError as e:
            raise ReloadError(str(e)) from None
        self.base = len(blob)
        del blob, body
        offset = state.HEADER.size
        left = -1
        for _pass in range(CATCH_UP_PASSES):
            offset = self._replay(ho, offset, None)
            before, left = left, os.fstat(self.journal_fd).st_size - offset
            if left < CATCH_UP_BYTES or (before >= 0 and left >= before):
                break
        # Back to the server's priority before the cutover (and replay the rest at it).
        self.restore_priority()
        offset = self._replay(ho, offset, None)
        self.load_ms = (time.perf_counter() - t0) * 1000
        keys = sum(len(db.data) for db in srv.keyspace.dbs)
        send_msg(
            self.chan.sock,
            {
                "kind": "caught_up",
                "offset": offset,
                "keys": keys,
                "load_ms": round(self.load_ms),
                "load_started_ms": started_ms,  # wall clock: the window the old one served in
                "loaded_ms": int(time.time() * 1000),
            },
        )
        final, dummy = self.chan.recv(CUTOVER_TIMEOUT_S, "waiting for the cutover")
        adopted: list[tuple[socket.socket, dict[str, Any]]] = []
        while len(adopted) < final["count"]:
            msg, fds = self.chan.recv(CUTOVER_TIMEOUT_S, "receiving the connections")
            for rec, fd in zip(msg["records"], fds, strict=True):
                sock = socket.socket(fileno=fd)
                sock.setblocking(False)
                rec["counters"] = handover.kernel_counters(sock)
                adopted.append((sock, rec))
        self.end = int(final["end"])
        if self._replay(ho, offset, self.end) != self.end:
            raise ReloadError(f"the reload journal ends before byte {self.end}")
        srv.client_ids = max(srv.client_ids, int(final["client_ids"]))
        self.gen = int(final["gen"]) + 1
        self.stored = bool(final["stored"])
        ho.source = "reload"
        ho.restored_keys = sum(len(db.data) for db in srv.keyspace.dbs)
        ho.restore_ms = self.load_ms
        ho.handover_started_ms = int(final["stopped_ms"])
        return adopted

    def _replay(self, ho: handover.Handover, offset: int, end: int | None) -> int:
        size = os.fstat(self.journal_fd).st_size if end is None else end
        if size <= offset:
            return offset
        data = os.pread(self.journal_fd, size - offset, offset)
        ops, used, _why = state.records(data, 0)  # a record being written: next time
        ho.replay_tail(ops)
        return offset + used

    def adopt_state(self, srv: Server) -> None:
        """The snapshot and the journal become this process's crash state (fd store)."""
        srv.handover.adopt_reload(self.gen, self.state_fd, self.journal_fd, self.end, self.base)
        self.state_fd = self.journal_fd = -1

    def serving(self, srv: Server) -> None:
        """After READY=1 and MAINPID=: the old process may go once systemd has processed them
        (BARRIER=1). Waited for in the event loop: the adopted clients are served meanwhile."""
        loop = srv.loop
        assert loop is not None
        r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        sent = srv.notifier.send("BARRIER=1", fds=[w])
        os.close(w)
        done = False

        def tell() -> None:
            nonlocal done
            if done:
                return
            done = True
            loop.remove_reader(r)
            os.close(r)
            with contextlib.suppress(OSError):
                send_msg(self.chan.sock, {"kind": "serving", "pid": os.getpid()})
            self.chan.close()

        # systemd closes its copy of the pipe's write end once it gets to the message
        loop.add_reader(r, tell)
        if not sent:
            tell()
        else:
            loop.call_later(5.0, tell)  # as Notifier.barrier's timeout

    def fail(self, why: str) -> None:
        with contextlib.suppress(OSError):
            send_msg(self.chan.sock, {"kind": "failed", "error": why})


# ----------------------------------------------------------------- `ironcache reload`
def request(pid: int, req: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Send one request to the server `pid` and wait for its answer."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(timeout)
    try:
        sock.connect(control_address(pid))
        sock.sendall(json.dumps(req).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    if not data:
        raise ReloadError(f"process {pid} closed the control connection without an answer")
    out = json.loads(data)
    if not isinstance(out, dict):
        raise ReloadError(f"malformed answer from process {pid}")
    return out


def wait_serving(pid: int, timeout: float) -> dict[str, Any]:
    """Poll `pid`'s control socket until it answers (it does once it serves)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            return request(pid, {"cmd": "status"}, 5)
        except (OSError, ValueError, ReloadError) as e:
            last = str(e)
        if not os.path.exists(f"/proc/{pid}"):
            raise ReloadError(f"the new process {pid} exited before it served")
        time.sleep(0.02)
    raise ReloadError(f"the new process {pid} did not serve within {timeout:.0f} s ({last})")
