"""Shared by the fuzz targets: imports of the server, an in-process server, RESP reply checks."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[1]
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

from ironcache.client import Client  # noqa: E402
from ironcache.config import Config  # noqa: E402
from ironcache.listener import Listener  # noqa: E402
from ironcache.server import Server  # noqa: E402

# Commands the in-process harness never runs: they touch sockets (port/bind re-binding) or
# end the process. Everything else runs as the server runs it.
UNSAFE_CONFIG = {b"port", b"bind", b"unixsocket", b"dir", b"dbfilename", b"logfile"}


class Malformed(Exception):
    """A reply that is not well-formed RESP."""


class Incomplete(Malformed):
    """The reply continues past the end of the buffer."""


def _line(buf: bytes, pos: int) -> tuple[bytes, int]:
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise Incomplete(f"no CRLF after offset {pos}")
    line = buf[pos:end]
    if b"\n" in line or b"\r" in line:
        raise Malformed(f"bare CR or LF inside a line at {pos}: {line[:80]!r}")
    return line, end + 2


def _int(raw: bytes, pos: int) -> int:
    try:
        return int(raw)
    except ValueError:
        raise Malformed(f"bad length {raw[:40]!r} at {pos}") from None


def parse_reply(buf: bytes, pos: int = 0, depth: int = 0) -> tuple[Any, int]:
    """One RESP2/RESP3 reply from `buf` at `pos`; errors come back as RespError values."""
    if depth > 64:
        raise Malformed("nesting deeper than 64")
    if pos >= len(buf):
        raise Incomplete("truncated reply")
    kind = buf[pos : pos + 1]
    line, nxt = _line(buf, pos + 1)
    if kind == b"+":
        return line.decode(errors="replace"), nxt
    if kind == b"-":
        return RespError(line.decode(errors="replace")), nxt
    if kind in (b":", b"("):
        return _int(line, pos), nxt
    if kind in (b"$", b"=", b"!"):
        n = _int(line, pos)
        if n < 0:
            if n != -1 or kind != b"$":
                raise Malformed(f"negative length {n}")
            return None, nxt
        if len(buf) < nxt + n + 2:
            raise Incomplete(f"bulk of {n} bytes cut short at {pos}")
        if buf[nxt + n : nxt + n + 2] != b"\r\n":
            raise Malformed(f"bulk of {n} bytes not followed by CRLF at {pos}")
        return bytes(buf[nxt : nxt + n]), nxt + n + 2
    if kind in (b"*", b"~", b">", b"%", b"|"):
        n = _int(line, pos)
        if n < 0:
            if n != -1 or kind != b"*":
                raise Malformed(f"negative count {n}")
            return None, nxt
        items = []
        for _ in range(n * 2 if kind in (b"%", b"|") else n):
            item, nxt = parse_reply(buf, nxt, depth + 1)
            items.append(item)
        if kind == b"%":
            return {_hashable(k): v for k, v in zip(items[0::2], items[1::2], strict=True)}, nxt
        if kind == b"~":
            return sorted(items, key=repr), nxt
        return items, nxt
    if kind == b"_":
        if line:
            raise Malformed("null with a body")
        return None, nxt
    if kind == b",":
        return line.decode(errors="replace"), nxt
    if kind == b"#":
        if line not in (b"t", b"f"):
            raise Malformed(f"bad boolean {line!r}")
        return line == b"t", nxt
    raise Malformed(f"unknown reply type {kind!r} at {pos}")


def _hashable(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def parse_replies(buf: bytes) -> list[Any]:
    """Every reply in `buf`, which must hold whole replies only."""
    out = []
    pos = 0
    while pos < len(buf):
        item, pos = parse_reply(buf, pos)
        out.append(item)
    return out


class RespError(Exception):
    """An error reply, as a value."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RespError) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    def __repr__(self) -> str:
        return f"RespError({str(self)!r})"


class InProcess:
    """A real Server and one Client on it, without sockets: requests go through
    Client.process() exactly as data_received() hands them over."""

    def __init__(self) -> None:
        cfg = Config()
        # nothing is written there: the command target runs no SAVE and sets no path
        cfg.values["dir"] = tempfile.gettempdir()
        cfg.values["maxmemory"] = 64 * 1024 * 1024
        self.server = Server(cfg)
        self.clients: list[Client] = []
        self.client = self.new_client()

    def new_client(self) -> Client:
        c = Client(self.server, Listener("unix", "(fuzz)"))
        self.server.clients[c.id] = c
        self.clients.append(c)
        return c

    def reset(self) -> None:
        for c in self.clients:
            c.unwatch()
            self.server.clients.pop(c.id, None)
        self.server.monitors.clear()
        for db in self.server.keyspace.dbs:
            db.flush()
        self.clients = []
        self.client = self.new_client()
