"""sd_notify(3): READY=1, STATUS=, STOPPING=1, WATCHDOG=1, and the fd store (FDSTORE=1,
FDSTOREREMOVE=1, BARRIER=1). Silent without NOTIFY_SOCKET."""

from __future__ import annotations

import array
import os
import select
import socket
from collections.abc import Sequence


class Notifier:
    def __init__(self) -> None:
        addr = os.environ.pop("NOTIFY_SOCKET", "")
        self.sock: socket.socket | None = None
        self.addr = ""
        if addr and addr[0] in "/@":
            # '@' names an abstract socket: the leading byte is NUL on the wire.
            self.addr = "\0" + addr[1:] if addr[0] == "@" else addr
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.watchdog_s = self._watchdog_interval()

    @staticmethod
    def _watchdog_interval() -> float:
        usec = os.environ.pop("WATCHDOG_USEC", "")
        pid = os.environ.pop("WATCHDOG_PID", "")
        if not usec.isdigit() or (pid and pid != str(os.getpid())):
            return 0.0
        return int(usec) / 2_000_000  # ping at half the timeout, as sd_watchdog_enabled advises

    @property
    def enabled(self) -> bool:
        return self.sock is not None

    def send(self, *fields: str, fds: Sequence[int] = ()) -> bool:
        if self.sock is None:
            return False
        try:
            if fds:
                # Not socket.send_fds: it ignores its address argument.
                rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
                self.sock.sendmsg(["\n".join(fields).encode()], rights, 0, self.addr)
            else:
                self.sock.sendto("\n".join(fields).encode(), self.addr)
            return True
        except OSError:
            return False

    def store_fd(self, fd: int, name: str) -> bool:
        """Put a duplicate of `fd` in the service's fd store under `name`."""
        return self.send("FDSTORE=1", f"FDNAME={name}", fds=[fd])

    def remove_fd(self, name: str) -> bool:
        """Drop every stored fd called `name`."""
        return self.send("FDSTOREREMOVE=1", f"FDNAME={name}")

    def barrier(self, timeout_s: float = 5.0) -> bool:
        """Wait until systemd has processed every message sent before (sd_notify_barrier(3)).

        systemd closes the write end of a pipe we pass once it gets to the message.
        """
        if self.sock is None:
            return False
        r, w = os.pipe2(os.O_CLOEXEC)
        try:
            sent = self.send("BARRIER=1", fds=[w])
            os.close(w)
            w = -1
            if not sent:
                return False
            poller = select.poll()
            poller.register(r, select.POLLHUP)
            return bool(poller.poll(int(timeout_s * 1000)))
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def stopping(self, status: str) -> None:
        self.send("STOPPING=1", f"STATUS={status}")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")
