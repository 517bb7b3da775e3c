"""Replay one regression input against a running server and record what happened.

A regression is `regressions/<id>.bin` (the hostile bytes, sent on connection A) plus its entry
in `regressions/cases.json` (how to send them and what else to check). What is recorded, and
compared with what redis-server 7.0.15 did (`regressions/<id>.redis.json`, written by
record.py):

- every byte A received for the input, and whether the server closed A; in mode "reply" a
  sentinel command follows the input, so "everything before the sentinel's reply" is exact
  (no waiting for silence); in mode "pending" the input leaves a frame open on purpose, and
  after the sync below everything the server wrote for it is already in A's socket;
- the replies of the `after` commands, sent on a second connection B.

Every wait is a bounded poll on a fact, never a sleep: after each chunk, B polls INFO stats
until `total_net_input_bytes` shows the server has read it (so a frame split across reads is
split for the server too). Stalls are checked without a clock: B's PING must be answered while
A's request is still pending; the inputs that stall make the stall last hours (patterns that
backtrack), so the bound (STALL_TIMEOUT) is met or missed by orders of magnitude, never by
chance. Memory is checked as the kernel counts it (/proc/PID/status VmPeak, VmHWM).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import select
import socket
import time
from pathlib import Path
from typing import Any

REGRESSIONS = Path(__file__).resolve().parent / "regressions"
SENTINEL = b"*2\r\n$4\r\nECHO\r\n$15\r\n__fuzz_sentinel\r\n"
SENTINEL_REPLY = b"$15\r\n__fuzz_sentinel\r\n"
STALL_TIMEOUT = 15.0  # a stalled server misses it by hours (see above)
VM_GROWTH_MAX = 1 << 30  # no input may reserve a GiB: hiredis's 2^31-entry array takes 16


class ReplayError(AssertionError):
    pass


def cases() -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = json.loads((REGRESSIONS / "cases.json").read_text())
    return data


def expected(case_id: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(
        (REGRESSIONS / f"{case_id}.redis.json").read_text())
    return result


def host_can_reserve(gib: int) -> bool:
    """Whether the kernel lets one process reserve `gib` GiB of address space at once: with
    heuristic overcommit a single allocation over RAM + swap fails, so a server that tries
    one (hiredis's array for a 2^31 count) cannot be told from one that does not."""
    policy = Path("/proc/sys/vm/overcommit_memory").read_text().strip()
    info = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, value = line.partition(":")
        info[key] = int(value.split()[0]) * 1024
    need = gib << 30
    if policy == "1":
        return True
    if policy == "2":
        return info["CommitLimit"] - info["Committed_AS"] >= need
    return info["MemTotal"] + info["SwapTotal"] >= need


def vm_status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmPeak", "VmHWM", "VmRSS"):
            out[key] = int(value.split()[0]) * 1024
    return out


class Observer:
    """Connection B: INFO polls, PING, the `after` commands."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=STALL_TIMEOUT)
        self.sent = 0

    def call(self, *args: bytes) -> bytes:
        """One command; its raw reply (a simple line, or a bulk: what these checks need)."""
        req = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
        self.sock.sendall(req)
        self.sent += len(req)
        buf = b""
        try:
            while True:
                chunk = self.sock.recv(1 << 20)
                if not chunk:
                    raise ReplayError(f"server closed the observer connection after {args!r}")
                buf += chunk
                if _complete(buf):
                    return buf
        except TimeoutError:
            raise ReplayError(
                f"stall: no reply to {args!r} on a second connection within {STALL_TIMEOUT}s"
            ) from None

    def net_input(self) -> int:
        info = self.call(b"INFO", b"stats").decode(errors="replace")
        for line in info.splitlines():
            if line.startswith("total_net_input_bytes:"):
                return int(line.split(":")[1])
        raise ReplayError("INFO stats has no total_net_input_bytes")

    def close(self) -> None:
        self.sock.close()


def _complete(buf: bytes) -> bool:
    """A whole reply of the kinds the observer asks for (line, bulk, flat array)."""
    if buf[:1] == b"$":
        head, _, rest = buf.partition(b"\r\n")
        n = int(head[1:])
        return n < 0 or len(rest) >= n + 2
    if buf[:1] == b"*":
        head, _, rest = buf.partition(b"\r\n")
        n = int(head[1:])
        return n <= 0 or rest.count(b"\r\n") >= 2 * n
    return buf.endswith(b"\r\n")


def _sync(obs: Observer, base: tuple[int, int], sent_by_a: int) -> None:
    """Until the server has read every byte A sent (bounded). base: (the server's input
    count, the observer's own bytes sent) when A connected; the observer's INFO requests are
    counted by the server too, so they are taken off."""
    deadline = time.monotonic() + STALL_TIMEOUT
    while True:
        total = obs.net_input()
        from_a = total - base[0] - (obs.sent - base[1])
        if from_a >= sent_by_a:
            return
        if time.monotonic() > deadline:
            raise ReplayError(f"the server read {from_a} of {sent_by_a} bytes")
        time.sleep(0.01)


def _read_until(sock: socket.socket, stop: bytes | None, timeout: float) -> tuple[bytes, bool]:
    """Bytes until `stop` appears (excluded) or the server closes; (data, closed)."""
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        if stop is not None and stop in data:
            return data[: data.index(stop)], False
        left = deadline - time.monotonic()
        if left <= 0:
            raise ReplayError(f"no end of the reply within {timeout}s; got {data[:200]!r}")
        sock.settimeout(left)
        try:
            chunk = sock.recv(1 << 20)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk


def _drain(sock: socket.socket) -> tuple[bytes, bool]:
    """What A's socket holds right now, and whether the server closed it."""
    data = b""
    sock.setblocking(False)
    try:
        while True:
            try:
                chunk = sock.recv(1 << 20)
            except BlockingIOError:
                return data, False
            except ConnectionResetError:
                return data, True
            if not chunk:
                return data, True
            data += chunk
    finally:
        sock.setblocking(True)


def summarize(data: bytes) -> dict[str, Any]:
    if len(data) <= 4096:
        return {"reply": data.decode("latin-1")}
    return {"reply_len": len(data), "reply_sha256": hashlib.sha256(data).hexdigest(),
            "reply_head": data[:64].decode("latin-1")}


def run_case(port: int, pid: int, case_id: str) -> dict[str, Any]:
    """Replay one regression; returns what to compare with Redis's record. Raises
    ReplayError for a stall, a dead server or memory beyond the bounds."""
    case = cases()[case_id]
    data = (REGRESSIONS / f"{case_id}.bin").read_bytes()
    mode = case.get("mode", "reply")
    timeout = float(case.get("timeout", STALL_TIMEOUT))
    obs = Observer(port)
    a: socket.socket | None = None
    try:
        for cmd in case.get("setup", []):
            obs.call(*[x.encode("latin-1") for x in cmd])
        vm0 = vm_status(pid)
        base = (obs.net_input(), obs.sent)
        a = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        a.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        result: dict[str, Any] = {}
        if mode == "flood":
            got, closed = _flood(a, data, case, obs, base)
        else:
            cuts = case.get("cuts", [])
            bounds = [0, *cuts, len(data)]
            sent = 0
            for lo, hi in zip(bounds, bounds[1:], strict=False):
                a.sendall(data[lo:hi])
                sent += hi - lo
                if hi < len(data) or mode == "pending":
                    _sync(obs, base, sent)
            if mode == "pending":
                if obs.call(b"PING") != b"+PONG\r\n":
                    raise ReplayError("PING on a second connection was not answered with PONG")
                got, closed = _drain(a)
            else:
                # closed after a protocol error, as Redis does: nothing more to send
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    a.sendall(SENTINEL)
                got, closed = _read_until(a, SENTINEL_REPLY, timeout)
        result.update(summarize(got))
        result["closed"] = closed
        vm1 = vm_status(pid)
        growth = vm1["VmPeak"] - vm0["VmPeak"]
        if growth > (case["vm_mb"] << 20 if "vm_mb" in case else VM_GROWTH_MAX):
            raise ReplayError(f"the input reserved {growth >> 20} MiB of address space")
        rss_mb = case.get("rss_mb")
        if rss_mb is not None and vm1["VmHWM"] - vm0["VmHWM"] > rss_mb << 20:
            raise ReplayError(
                f"peak RSS grew by {(vm1['VmHWM'] - vm0['VmHWM']) >> 20} MiB (bound {rss_mb})")
        a.close()
        a = None
        # the server is alive and serves others once A is gone (a stall at close shows here)
        if obs.call(b"PING") != b"+PONG\r\n":
            raise ReplayError("no PONG after the input")
        result["after"] = [obs.call(*[x.encode("latin-1") for x in cmd]).decode("latin-1")
                           for cmd in case.get("after", [])]
        return result
    finally:
        if a is not None:
            a.close()
        obs.close()


def _flood(a: socket.socket, data: bytes, case: dict[str, Any], obs: Observer,
           base: tuple[int, int]) -> tuple[bytes, bool]:
    """Send `data` then filler bytes, up to flood_bytes, while the server takes them; stop
    at the first byte of a reply. Redis refuses within 64 KiB; a server that buffers takes
    all 4 MiB and closes nothing: that verdict depends on counts, not time."""
    filler = case.get("filler", "1").encode("latin-1") * 16384
    limit = int(case.get("flood_bytes", 4 << 20))
    sent = 0
    try:
        a.sendall(data)
        sent = len(data)
        while sent < limit:
            readable, _, _ = select.select([a], [], [], 0)
            if readable:
                break
            a.sendall(filler)
            sent += len(filler)
    except (BrokenPipeError, ConnectionResetError):
        return _read_until(a, None, STALL_TIMEOUT)
    except TimeoutError:  # the server stopped reading without a word
        return _drain(a)
    if sent < limit:  # the server answered: read until it closes
        return _read_until(a, None, STALL_TIMEOUT)
    _sync(obs, base, sent)  # took it all: whatever it says about it is in A's socket now
    return _drain(a)
