"""Listeners: adopt systemd's sockets (sd_listen_fds semantics), bind the rest ourselves.

Every configured listener (each `bind` address on `port`, `tls-bind` on `tls-port`, and
`unixsocket`) is matched against the inherited fds by their name and then by family, address
and port (or path). An fd named `tls` (FileDescriptorName=tls: ironcache-tls.socket) can only
become a TLS listener, so a socket unit can never make a TLS address serve plain text. A match
is adopted; an inherited fd that matches nothing is closed with a warning, so a .socket unit
can never widen what the configuration allows; a listener with no inherited fd is bound here.
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
# FileDescriptorName= of the TLS socket unit: its fds are TLS listeners only.
TLS_FD_NAME = "tls"


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
    # (st_dev, st_ino) of a unix socket file we bound: only that file is removed at close.
    bound_file: tuple[int, int] | None = None
    tls: bool = False  # tls-port: connections are TLS (the server's current SSLContext)

    @property
    def group(self) -> str:
        """What CONFIG SET re-binds together: "tcp" (port), "tls" (tls-port) or "unix"."""
        return "tls" if self.tls else self.kind

    def describe(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.address}"
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


def configured(
    bind: list[str],
    port: int,
    unixsocket: str,
    tls_port: int = 0,
    tls_bind: list[str] | None = None,
) -> list[Listener]:
    """Every `bind` address on `port`, the `tls_bind` ones (default: `bind`'s) on `tls_port`
    (TLS), and `unixsocket`.

    Inherited sockets are matched by name (`tls` for TLS) and address (`adopt`).
    """
    out: list[Listener] = []
    for p, is_tls, addresses in ((port, False, bind), (tls_port, True, tls_bind or bind)):
        if not p:
            continue
        for raw in addresses:
            optional = raw.startswith("-")
            addr = raw[1:] if optional else raw
            addr = {"*": "0.0.0.0", "::*": "::"}.get(addr, addr)
            out.append(Listener("tcp", str(ipaddress.ip_address(addr)), p, optional, tls=is_tls))
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


def pass_name(lst: Listener) -> str:
    """The name a listener's fd gets when passed to the next process (reload, handover)."""
    return TLS_FD_NAME if lst.tls else (lst.fd_name or "listener")


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
    """Attach matching inherited sockets to `listeners`; close the rest with a warning.

    An fd named `tls` matches TLS listeners only. Any other name matches the plain ones,
    or a TLS listener at its address (units written before ironcache-tls.socket had the TLS
    ListenStream= in ironcache.socket): adopting that as TLS never exposes more.
    """
    wanted = {_listener_key(lst): lst for lst in listeners}
    for fd, name in fds:
        sock, why = _identify(fd)
        if not why and sock is not None:
            key = _sock_key(sock)
            lst = wanted.get(key)
            what = f"{key[1]}:{key[2]}" if key[0] == "tcp" else f"unix:{key[1]}"
            if lst is None:
                why = f"it listens on {what}, which the configuration does not allow"
            elif name == TLS_FD_NAME and not lst.tls:
                why = f"it is named '{TLS_FD_NAME}' but {what} is a plain (not TLS) listener"
            elif lst.sock is not None:
                why = f"{lst.describe()} is already adopted from another fd"
            else:
                if lst.tls and name != TLS_FD_NAME:
                    log.warning(
                        f"inherited fd {fd} (name '{name}') on {what} adopted as the TLS "
                        f"listener by its address: give it FileDescriptorName={TLS_FD_NAME}"
                    )
                sock.setblocking(False)  # inherited sockets are blocking unless NonBlocking=yes
                lst.sock, lst.inherited, lst.fd_name = sock, True, name
                continue
        log.warning(f"closing inherited fd {fd} (name '{name}'): {why}")
        if sock is not None:
            sock.close()
        else:
            with contextlib.suppress(OSError):
                os.close(fd)


def bind(lst: Listener, backlog: int, unixperm: int = 0, reuseport: bool = False) -> None:
    """Bind a listener ourselves: SO_REUSEADDR for TCP, SO_REUSEPORT only when configured.

    Without SO_REUSEPORT a second server on a busy port fails with "Address already in use"
    instead of silently sharing the port.
    """
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
        if reuseport:
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


def _live_unix_socket(path: str) -> bool:
    """True unless a connect() to `path` is refused: someone listens there (or we can't tell)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    probe.setblocking(False)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        return False
    except OSError:
        return True  # EAGAIN: a full backlog, still a listener; EACCES: not ours to judge
    finally:
        probe.close()
    return True


def _bind_unix(lst: Listener, backlog: int, unixperm: int) -> None:
    path = lst.address
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise ListenError(f"cannot listen on unix:{path}: {e.strerror}") from None
    else:
        # Only a stale socket file (nothing accepts on it, e.g. left by a crash) is replaced;
        # a live socket of another service, or any other file, is never removed.
        if not stat.S_ISSOCK(st.st_mode):
            raise ListenError(f"cannot listen on unix:{path}: the path exists and is not a socket")
        if _live_unix_socket(path):
            raise ListenError(
                f"cannot listen on unix:{path}: Address already in use (another process "
                "accepts connections on it)"
            )
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise ListenError(f"cannot remove the stale socket unix:{path}: {e.strerror}") from None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.bind(path)
        st = os.stat(path)
        lst.bound_file = (st.st_dev, st.st_ino)
        if unixperm:
            os.chmod(path, unixperm)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as e:
        sock.close()
        _remove_own_file(lst)
        raise ListenError(f"cannot listen on unix:{path}: {e.strerror}") from None
    lst.sock = sock


def _remove_own_file(lst: Listener) -> None:
    """Unlink the unix socket file we bound, if the path still names that very file."""
    if lst.bound_file is None:
        return
    try:
        st = os.lstat(lst.address)
        if (st.st_dev, st.st_ino) == lst.bound_file:
            os.unlink(lst.address)
    except OSError:
        pass
    lst.bound_file = None


def close(lst: Listener) -> None:
    """Close our copy; an inherited unix path belongs to systemd and is never unlinked."""
    if lst.sock is None:
        return
    lst.sock.close()
    lst.sock = None
    if lst.kind == "unix" and not lst.inherited:
        _remove_own_file(lst)


def open_all(
    listeners: list[Listener],
    backlog: int,
    unixperm: int,
    inherited: list[tuple[int, str]],
    reuseport: bool = False,
) -> list[Listener]:
    """Adopt what was inherited, bind the rest; returns the listeners that are open."""
    adopt(listeners, inherited)
    for lst in listeners:
        if lst.sock is None:
            bind(lst, backlog, unixperm, reuseport)
    return [lst for lst in listeners if lst.sock is not None]
