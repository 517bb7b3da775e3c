"""Listeners: adopt systemd's sockets (sd_listen_fds semantics), bind the rest ourselves.

Every configured listener (each `bind` address on `port`, and `unixsocket`) is matched
against the inherited fds by family, address and port (or path). A match is adopted; an
inherited fd that matches nothing is closed with a warning, so a .socket unit can never
widen what the configuration allows; a listener with no inherited fd is bound here.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import os
import socket
import stat
from dataclasses import dataclass, field

from ironcache.log import log

SD_LISTEN_FDS_START = 3


class ListenError(Exception):
    """A listener could not be bound."""


@dataclass
class Listener:
    kind: str  # "tcp" or "unix"
    address: str  # IP address or unix path
    port: int = 0
    optional: bool = False  # "-" prefix in bind: skip when the address is unavailable
    sock: socket.socket | None = None
    inherited: bool = False
    fd_name: str = ""
    accepted: int = field(default=0)

    def describe(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.address}"
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


def configured(bind: list[str], port: int, unixsocket: str) -> list[Listener]:
    out: list[Listener] = []
    if port:
        for raw in bind:
            optional = raw.startswith("-")
            addr = raw[1:] if optional else raw
            addr = {"*": "0.0.0.0", "::*": "::"}.get(addr, addr)
            out.append(Listener("tcp", str(ipaddress.ip_address(addr)), port, optional))
    if unixsocket:
        out.append(Listener("unix", os.path.abspath(unixsocket)))
    return out


def listen_fds() -> list[tuple[int, str]]:
    """The fds systemd passed us, with their names; the variables are unset after reading."""
    pid = os.environ.pop("LISTEN_PID", "")
    count = os.environ.pop("LISTEN_FDS", "")
    names = os.environ.pop("LISTEN_FDNAMES", "")
    if not pid or not count:
        return []
    if pid != str(os.getpid()):
        log.notice(f"LISTEN_PID={pid} is not this process ({os.getpid()}): ignoring LISTEN_FDS")
        return []
    try:
        n = int(count)
    except ValueError:
        log.warning(f"ignoring malformed LISTEN_FDS={count!r}")
        return []
    labels = names.split(":") if names else []
    fds = []
    for i in range(n):
        fd = SD_LISTEN_FDS_START + i
        try:
            flags = fcntl.fcntl(fd, fcntl.F_GETFD)
        except OSError:
            log.warning(f"LISTEN_FDS names fd {fd}, which is not open: skipped")
            continue
        # Ours alone: not inherited by anything we might exec.
        fcntl.fcntl(fd, fcntl.F_SETFD, flags | fcntl.FD_CLOEXEC)
        fds.append((fd, labels[i] if i < len(labels) else "unknown"))
    return fds


def _identify(fd: int) -> tuple[socket.socket | None, str]:
    """Wrap fd as a socket; return (sock, why-not) when it is not a listening stream socket."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError as e:
        return None, f"fstat failed: {e.strerror}"
    if not stat.S_ISSOCK(mode):
        return None, "not a socket"
    sock = socket.socket(fileno=fd)
    if sock.type != socket.SOCK_STREAM:
        return sock, "not a stream socket"
    if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        return sock, "not listening"
    if sock.family not in (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX):
        return sock, f"unsupported address family {sock.family}"
    return sock, ""


def _sock_key(sock: socket.socket) -> tuple[str, str, int]:
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        path = name.decode() if isinstance(name, bytes) else name
        return ("unix", os.path.abspath(path) if path else "", 0)
    return ("tcp", str(ipaddress.ip_address(name[0].split("%")[0])), name[1])


def _listener_key(lst: Listener) -> tuple[str, str, int]:
    return (lst.kind, lst.address, lst.port)


def adopt(listeners: list[Listener], fds: list[tuple[int, str]]) -> None:
    """Attach matching inherited sockets to `listeners`; close the rest with a warning."""
    wanted = {_listener_key(lst): lst for lst in listeners}
    for fd, name in fds:
        sock, why = _identify(fd)
        if not why and sock is not None:
            key = _sock_key(sock)
            lst = wanted.get(key)
            if lst is None:
                what = f"{key[1]}:{key[2]}" if key[0] == "tcp" else f"unix:{key[1]}"
                why = f"it listens on {what}, which the configuration does not allow"
            elif lst.sock is not None:
                why = f"{lst.describe()} is already adopted from another fd"
            else:
                sock.setblocking(False)  # inherited sockets are blocking unless NonBlocking=yes
                lst.sock, lst.inherited, lst.fd_name = sock, True, name
                continue
        log.warning(f"closing inherited fd {fd} (name '{name}'): {why}")
        if sock is not None:
            sock.close()
        else:
            with contextlib.suppress(OSError):
                os.close(fd)


def bind(lst: Listener, backlog: int, unixperm: int = 0) -> None:
    """Bind a listener ourselves: SO_REUSEADDR + SO_REUSEPORT for TCP."""
    if lst.kind == "unix":
        _bind_unix(lst, backlog, unixperm)
        return
    family = socket.AF_INET6 if ":" in lst.address else socket.AF_INET
    try:
        sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    except OSError as e:
        if lst.optional:
            log.notice(f"skipping optional {lst.describe()}: {e.strerror}")
            return
        raise ListenError(f"cannot create a socket for {lst.describe()}: {e.strerror}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((lst.address, lst.port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as e:
        sock.close()
        if lst.optional and e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            log.notice(f"skipping optional {lst.describe()}: {e.strerror}")
            return
        raise ListenError(f"cannot listen on {lst.describe()}: {e.strerror}") from None
    lst.sock = sock


def _bind_unix(lst: Listener, backlog: int, unixperm: int) -> None:
    path = lst.address
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        try:
            # A stale socket file from an earlier run of ours; never anything else.
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)
        except FileNotFoundError:
            pass
        sock.bind(path)
        if unixperm:
            os.chmod(path, unixperm)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as e:
        sock.close()
        raise ListenError(f"cannot listen on unix:{path}: {e.strerror}") from None
    lst.sock = sock


def close(lst: Listener) -> None:
    """Close our copy; an inherited unix path belongs to systemd and is never unlinked."""
    if lst.sock is None:
        return
    lst.sock.close()
    lst.sock = None
    if lst.kind == "unix" and not lst.inherited:
        with contextlib.suppress(OSError):
            os.unlink(lst.address)


def open_all(
    listeners: list[Listener], backlog: int, unixperm: int, inherited: list[tuple[int, str]]
) -> list[Listener]:
    """Adopt what was inherited, bind the rest; returns the listeners that are open."""
    adopt(listeners, inherited)
    for lst in listeners:
        if lst.sock is None:
            bind(lst, backlog, unixperm)
    return [lst for lst in listeners if lst.sock is not None]
