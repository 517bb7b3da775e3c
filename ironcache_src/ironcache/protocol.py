"""RESP request parsing and reply encoding.

Requests are arrays of bulk strings (what every client library sends) or inline commands
(telnet, redis-benchmark's PING_INLINE). `RespParser` is the pure-Python reference;
`make_parser()` returns the hiredis-backed one when hiredis is importable. Both enforce the
same limits and raise `ProtocolError` with Redis's wording.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

INLINE_MAX = 64 * 1024  # Redis's PROTO_INLINE_MAX_SIZE
UNAUTH_MULTIBULK_MAX = 10
UNAUTH_BULK_MAX = 16384


class ProtocolError(Exception):
    """A malformed request: the reply is `-ERR Protocol error: ...` and the connection closes."""


def split_inline(line: bytes) -> list[bytes]:
    """Split an inline command like Redis's sdssplitargs (quotes and escapes)."""
    if b'"' not in line and b"'" not in line:
        return line.split()
    args: list[bytes] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in b" \t\r\n\v\f":
            i += 1
        if i >= n:
            return args
        cur = bytearray()
        quote = 0
        while True:
            if i >= n:
                if quote:
                    raise ProtocolError("unbalanced quotes in request")
                break
            ch = line[i]
            if quote == 0x22:  # "
                if ch == 0x5C and i + 3 < n and line[i + 1] == 0x78 and _ishex(line, i + 2):
                    cur.append(int(line[i + 2 : i + 4], 16))
                    i += 3
                elif ch == 0x5C and i + 1 < n:
                    i += 1
                    esc = line[i]
                    cur.append({0x6E: 10, 0x72: 13, 0x74: 9, 0x62: 8, 0x61: 7}.get(esc, esc))
                elif ch == 0x22:
                    if i + 1 < n and line[i + 1] not in b" \t\r\n\v\f":
                        raise ProtocolError("unbalanced quotes in request")
                    quote = 0
                    i += 1
                    break
                else:
                    cur.append(ch)
            elif quote == 0x27:  # '
                if ch == 0x5C and i + 1 < n and line[i + 1] == 0x27:
                    i += 1
                    cur.append(0x27)
                elif ch == 0x27:
                    if i + 1 < n and line[i + 1] not in b" \t\r\n\v\f":
                        raise ProtocolError("unbalanced quotes in request")
                    quote = 0
                    i += 1
                    break
                else:
                    cur.append(ch)
            elif ch in b" \t\r\n\v\f":
                break
            elif ch in (0x22, 0x27):
                quote = ch
            else:
                cur.append(ch)
            i += 1
        args.append(bytes(cur))


def _ishex(line: bytes, i: int) -> bool:
    return all(c in b"0123456789abcdefABCDEF" for c in line[i : i + 2])


def _parse_len(raw: bytes) -> int | None:
    # Redis accepts only plain decimal digits here (no '+', spaces or underscores).
    if not raw or len(raw) > 20:
        return None
    body = raw[1:] if raw[:1] == b"-" else raw
    if not body.isdigit():
        return None
    return int(raw)


class RespParser:
    """Incremental request parser; keeps partial multibulk state so large frames stay O(n)."""

    # batch() ended on a frame boundary with (almost) nothing buffered: pending() is small.
    # The Python parser does not say so; the hiredis one does when it knows.
    at_boundary = False

    __slots__ = (
        "buf",
        "pos",
        "max_bulk_len",
        "max_multibulk_len",
        "authenticated",
        "_argv",
        "_left",
    )

    def __init__(
        self,
        max_bulk_len: int = 512 * 1024 * 1024,
        max_multibulk_len: int = 1024 * 1024,
    ) -> None:
        self.buf = bytearray()
        self.pos = 0
        self.max_bulk_len = max_bulk_len
        self.max_multibulk_len = max_multibulk_len
        # Unauthenticated clients may only send small frames (as in Redis).
        self.authenticated = True
        self._argv: list[bytes] | None = None
        self._left = 0

    def feed(self, data: bytes) -> None:
        if self.pos and self.pos == len(self.buf):
            self.buf.clear()
            self.pos = 0
        self.buf += data

    def pending(self) -> int:
        """Bytes received but not yet returned as a command (the query buffer)."""
        return len(self.buf) - self.pos

    def held(self) -> int:
        """Bytes of the incomplete command received so far, as the client sent them."""
        if self._argv is None:
            return len(self.buf) - self.pos
        return len(self.unparsed())  # arguments already parsed, encoded as clients encode them

    def unparsed(self) -> bytes:
        """The bytes received and not yet returned as a command, as the client sent them.

        A command cut in the middle has its parsed arguments re-encoded in front of the rest.
        """
        tail = bytes(self.buf[self.pos :])
        if self._argv is None:
            return tail
        head = [b"*%d\r\n" % (len(self._argv) + self._left)]
        head += [b"$%d\r\n%s\r\n" % (len(a), a) for a in self._argv]
        return b"".join(head) + tail

    def next_command(self) -> list[bytes] | None:
        while True:
            if self._argv is None:
                if self.pos >= len(self.buf):
                    self._compact()
                    return None
                if self.buf[self.pos] != 0x2A:  # '*'
                    cmd = self._inline()
                    if cmd is None:
                        return None
                    if cmd:
                        return cmd
                    continue  # empty inline line: ignored, as Redis does
                if not self._multibulk_header():
                    return None
                if self._argv is None:
                    continue  # '*0' or '*-1': nothing to run
            if not self._bulks():
                return None
            argv = self._argv
            self._argv = None
            if self.pos > 65536:
                self._compact()
            return argv

    def next_batch(self) -> tuple[list[list[bytes]], ProtocolError | None]:
        """Every complete command buffered, and the protocol error that ended them, if any."""
        cmds: list[list[bytes]] = []
        try:
            while (cmd := self.next_command()) is not None:
                cmds.append(cmd)
        except ProtocolError as e:
            return cmds, e
        return cmds, None

    def batch(self, data: bytes) -> tuple[list[list[bytes]], ProtocolError | None]:
        """`feed(data)`, then `next_batch()`: what one read from the client yields."""
        self.feed(data)
        return self.next_batch()

    def _compact(self) -> None:
        if self.pos:
            del self.buf[: self.pos]
            self.pos = 0

    def _inline(self) -> list[bytes] | None:
        buf = self.buf
        nl = buf.find(b"\n", self.pos)
        if nl < 0:
            if len(buf) - self.pos > INLINE_MAX:
                raise ProtocolError("too big inline request")
            return None
        if nl - self.pos > INLINE_MAX:
            raise ProtocolError("too big inline request")
        line = bytes(buf[self.pos : nl])
        self.pos = nl + 1
        return split_inline(line)

    def _multibulk_header(self) -> bool:
        buf = self.buf
        end = buf.find(b"\r\n", self.pos)
        if end < 0:
            if len(buf) - self.pos > INLINE_MAX:
                raise ProtocolError("too big mbulk count string")
            return False
        count = _parse_len(bytes(buf[self.pos + 1 : end]))
        if count is None or count > self.max_multibulk_len:
            raise ProtocolError("invalid multibulk length")
        if not self.authenticated and count > UNAUTH_MULTIBULK_MAX:
            raise ProtocolError("unauthenticated multibulk length")
        self.pos = end + 2
        if count > 0:
            self._argv = []
            self._left = count
        return True

    def _bulks(self) -> bool:
        buf = self.buf
        argv = self._argv
        assert argv is not None
        pos = self.pos
        size = len(buf)
        while self._left:
            if pos >= size:
                self.pos = pos
                return False
            if buf[pos] != 0x24:  # '$'
                raise ProtocolError(f"expected '$', got '{chr(buf[pos])}'")
            end = buf.find(b"\r\n", pos)
            if end < 0:
                if size - pos > INLINE_MAX:
                    raise ProtocolError("too big bulk count string")
                self.pos = pos
                return False
            n = _parse_len(bytes(buf[pos + 1 : end]))
            if n is None or n < 0 or n > self.max_bulk_len:
                raise ProtocolError("invalid bulk length")
            if not self.authenticated and n > UNAUTH_BULK_MAX:
                raise ProtocolError("unauthenticated bulk length")
            start = end + 2
            if start + n + 2 > size:
                self.pos = pos
                return False
            argv.append(bytes(buf[start : start + n]))
            pos = start + n + 2
            self._left -= 1
        self.pos = pos
        return True


_COMMAND, _SKIP, _OVER_LIMIT, _BAD_SHAPE = range(4)  # HiredisParser._kind()


class HiredisParser:
    """hiredis parses in C once a connection is known to speak multibulk RESP.

    Every connection starts on `RespParser`; at the first frame boundary where the client is
    authenticated and the next byte is '*', hiredis takes over for the rest of the connection
    (hiredis cannot hand a half-parsed stream back, so the switch goes one way only). Inline
    clients (telnet) stay on the Python parser.

    hiredis waits for a frame to complete before it says anything, while Redis refuses a bad
    header at once. So we keep the bytes not yet returned as commands (`buf`) and, when a read
    ends inside a frame, let `RespParser` judge that frame's beginning: a bad header (an
    over-limit bulk, a non-bulk element) is refused as soon as it arrives, as Redis does.
    """

    __slots__ = (
        "reader",
        "py",
        "limits",
        "authenticated",
        "hiredis",
        "buf",
        "returned",
        "skipped",
        "at_boundary",
    )

    VALIDATE_MAX = 64 * 1024

    def __init__(
        self,
        hiredis: Any,
        max_bulk_len: int = 512 * 1024 * 1024,
        max_multibulk_len: int = 2**31 - 1,
    ) -> None:
        self.hiredis = hiredis
        self.reader: Any = None
        self.py: RespParser | None = RespParser(max_bulk_len, max_multibulk_len)
        self.limits = [max_bulk_len, max_multibulk_len]
        self.authenticated = True
        self.buf: bytearray | None = bytearray()  # None: stopped tracking (odd encodings)
        self.returned: list[list[bytes]] = []  # commands taken out of `buf` since it was trimmed
        self.skipped = 0  # bytes of "*0" / "*-1" frames taken out of `buf` since then
        # batch() took whole frames only: hiredis keeps under 1 KiB of consumed bytes then
        # (it trims its buffer past 1 KiB on every gets()), so pending() is that small.
        self.at_boundary = False

    @property
    def max_bulk_len(self) -> int:
        return self.limits[0]

    @max_bulk_len.setter
    def max_bulk_len(self, value: int) -> None:
        self.limits[0] = value
        if self.py is not None:
            self.py.max_bulk_len = value

    def pending(self) -> int:
        return self.py.pending() if self.py is not None else self.reader.len()

    def held(self) -> int:
        """Bytes of the incomplete command received so far; -1 when they were not tracked."""
        if self.py is not None:
            return self.py.held()
        if not self.reader.len():
            return 0
        return -1 if self.buf is None else len(self.buf)

    def unparsed(self) -> bytes | None:
        """Bytes received and not yet returned as a command; None when they were not tracked."""
        if self.py is not None:
            return self.py.unparsed()
        if not self.reader.len():
            return b""
        return None if self.buf is None else bytes(self.buf)

    def feed(self, data: bytes) -> None:
        py = self.py
        if py is not None:
            if py.pending() or not self.authenticated or data[:1] != b"*":
                py.authenticated = self.authenticated
                py.feed(data)
                return
            self.py = None
            self.reader = self.hiredis.Reader()
        self.reader.feed(data)
        if self.buf is not None:
            self.buf += data

    def batch(self, data: bytes) -> tuple[list[list[bytes]], ProtocolError | None]:
        """`feed(data)`, then `next_batch()`: what one read from the client yields.

        The common case costs a few C calls: the previous read ended on a frame boundary
        (`buf` is empty), and hiredis took every byte of this one as commands (arrays of bulk
        strings). Then there is no incomplete frame to judge and no byte to keep. Anything
        else (a frame split across reads, odd frames, a hiredis error) goes the general way
        with the same verdicts.
        """
        reader = self.reader
        self.at_boundary = False
        if reader is None:
            self.feed(data)
            return self.next_batch()
        reader.feed(data)
        buf = self.buf
        if buf is None or buf:
            if buf is not None:
                buf += data
            return self.next_batch()
        gets = reader.gets
        try:
            cmd = gets()
            if cmd is False:
                cmds = []
            else:
                more = gets()
                cmds = [cmd] if more is False else [cmd, more, *iter(gets, False)]
        except Exception as e:  # hiredis.ProtocolError: the Python parser reads it all again
            self.buf = bytearray(data)
            return self._fall_back([], ProtocolError(_hiredis_message(e)))
        if reader.has_data():  # an incomplete frame follows: the general way judges it
            self.buf = bytearray(data)
            return self._judge(cmds)
        # Whole frames only, so no byte is left to keep. What remains to check, at C speed:
        # every command is an array (list.__len__ raises TypeError for a map, a null, a
        # number), none is empty ("*0"), every argument is a bulk string (joining raises
        # TypeError for a nested array, a number, a null) and none is over the bulk limit.
        try:
            counts = list(map(list.__len__, cmds))
            chained = chain.from_iterable(cmds)
            if len(data) <= JOIN_CHECK_MAX:
                payload = len(b"".join(chained))
            else:  # no copy of big arguments
                payload = sum(map(bytes.__len__, chained))
        except TypeError:
            payload = -1
        if payload < 0 or payload > self.limits[0] or 0 in counts:
            self.buf = bytearray(data)
            return self._judge(cmds)
        self.at_boundary = True
        return cmds, None

    def _judge(self, replies: list[Any]) -> tuple[list[list[bytes]], ProtocolError | None]:
        """`next_batch()` for replies already taken from the reader (it has no more)."""
        cmds: list[list[bytes]] = []
        for cmd in replies:
            kind = self._kind(cmd)
            if kind == _COMMAND:
                cmds.append(cmd)
            elif kind == _OVER_LIMIT:
                return cmds, ProtocolError("invalid bulk length")
            elif kind == _BAD_SHAPE:
                return self._fall_back(cmds, ProtocolError(_shape_error(cmd)))
        self.returned += cmds
        return cmds, self._check_tail()

    def _kind(self, cmd: Any) -> int:
        """A command (a list of bytes within the bulk limit), nothing to run, or a refusal."""
        try:
            # One C-speed check that this is a list of bytes within the bulk limit.
            # bytes.__len__ raises TypeError for a nested array, an integer or a null.
            longest = max(map(bytes.__len__, cmd))
        except (TypeError, ValueError):
            if cmd == [] or cmd is None:
                self.skipped += 4 if cmd == [] else 5  # "*0" / "*-1": nothing to run
                return _SKIP
            return _BAD_SHAPE
        if cmd.__class__ is not list:  # a RESP3 map: its keys are bytes
            return _BAD_SHAPE
        return _COMMAND if longest <= self.limits[0] else _OVER_LIMIT

    def next_command(self) -> list[bytes] | None:
        if self.py is not None:
            return self.py.next_command()
        cmds, err = self.next_batch(1)
        if err is not None:
            raise err
        return cmds[0] if cmds else None

    def next_batch(self, most: int = 1 << 30) -> tuple[list[list[bytes]], ProtocolError | None]:
        """Every complete command buffered (one C call each), and the error that ended them."""
        if self.py is not None:
            return self.py.next_batch()
        gets = self.reader.gets
        cmds: list[list[bytes]] = []
        while len(cmds) < most:
            try:
                cmd = gets()
            except Exception as e:  # hiredis.ProtocolError
                return self._fall_back(cmds, ProtocolError(_hiredis_message(e)))
            if cmd is False:
                self.returned += cmds
                return cmds, self._check_tail()
            kind = self._kind(cmd)
            if kind == _COMMAND:
                cmds.append(cmd)
            elif kind == _OVER_LIMIT:
                return cmds, ProtocolError("invalid bulk length")
            elif kind == _BAD_SHAPE:
                return self._fall_back(cmds, ProtocolError(_shape_error(cmd)))
        self.returned += cmds
        return cmds, None

    def _check_tail(self) -> ProtocolError | None:
        """Judge the start of an incomplete frame; also trims `buf` to that frame."""
        buf = self.buf
        if buf is None:
            return None
        used = encoded_size(self.returned) + self.skipped
        self.returned = []
        self.skipped = 0
        if used == len(buf):
            buf.clear()
            return None
        if used > len(buf) or buf[used] != 0x2A:  # non-canonical lengths: cannot follow
            self.buf = None
            return None
        del buf[:used]
        probe = RespParser(*self.limits)
        probe.feed(bytes(buf[: self.VALIDATE_MAX]))
        try:
            if probe.next_command() is not None:
                self.buf = None  # hiredis and we disagree on framing: stop judging
        except ProtocolError as e:
            return e
        return None

    def _fall_back(
        self, cmds: list[list[bytes]], err: ProtocolError
    ) -> tuple[list[list[bytes]], ProtocolError | None]:
        """hiredis refused the stream: let the Python parser take the bytes it did not return.

        The Python parser accepts what Redis accepts (an inline command after a multibulk one)
        and words the error as Redis does; when the bytes are not tracked, hiredis's word stands.
        """
        buf = self.buf
        used = encoded_size(self.returned + cmds) + self.skipped
        if buf is None or used > len(buf):
            return cmds, err
        py = RespParser(*self.limits)
        py.authenticated = self.authenticated
        py.feed(bytes(buf[used:]))
        self.py, self.reader = py, None
        self.buf, self.returned, self.skipped = bytearray(), [], 0
        more, err2 = py.next_batch()
        return cmds + more, err2


# Bytes of a frame header ("*N\r\n") and of a bulk ("$L\r\n" + L + "\r\n"), for small N and L.
_FRAME = [3 + len(str(n)) for n in range(4096)]
_BULK = [5 + len(str(n)) + n for n in range(4096)]
# HiredisParser.batch() checks a read up to this size by joining its arguments (one C call,
# and a copy); a bigger one argument by argument, without the copy.
JOIN_CHECK_MAX = 64 * 1024


def encoded_size(cmds: list[list[bytes]]) -> int:
    """Bytes these commands took as canonical multibulk frames (table lookups, no Python loop)."""
    try:
        return sum(map(_FRAME.__getitem__, map(len, cmds))) + sum(
            map(_BULK.__getitem__, map(len, chain.from_iterable(cmds)))
        )
    except IndexError:  # a long argument or a huge command
        lens = [len(a) for cmd in cmds for a in cmd]
        return (
            sum(3 + len(str(len(cmd))) for cmd in cmds)
            + sum(lens)
            + sum(5 + len(str(n)) for n in lens)
        )


def _hiredis_message(e: Exception) -> str:
    text = str(e)
    if text.startswith("Protocol error, "):
        text = text[len("Protocol error, ") :]
    return text.replace('"', "'")


def _shape_error(reply: Any) -> str:
    if isinstance(reply, list):
        bad = next((x for x in reply if not isinstance(x, bytes)), None)
        kind = {int: ":", list: "*", type(None): "$"}.get(type(bad), "?")
        return f"expected '$', got '{kind}'"
    return "expected '*' for a multibulk request"


try:  # optional accelerator
    import hiredis as _hiredis  # noqa: F401
except ImportError:  # pragma: no cover - depends on the host
    _hiredis = None


def make_parser(max_bulk_len: int, max_multibulk_len: int = 2**31 - 1) -> Any:
    if _hiredis is not None:
        return HiredisParser(_hiredis, max_bulk_len, max_multibulk_len)
    return RespParser(max_bulk_len, max_multibulk_len)


# ---------------------------------------------------------------- reply encoding
OK = b"+OK\r\n"
PONG = b"+PONG\r\n"
QUEUED = b"+QUEUED\r\n"
ZERO = b":0\r\n"
ONE = b":1\r\n"
NULL_BULK = b"$-1\r\n"
NULL_ARRAY = b"*-1\r\n"
NULL3 = b"_\r\n"
EMPTY_ARRAY = b"*0\r\n"
_INTS = [b":%d\r\n" % i for i in range(-1, 1024)]


def integer(n: int) -> bytes:
    if -1 <= n < 1023:
        return _INTS[n + 1]
    return b":%d\r\n" % n


def bulk(v: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(v), v)


def simple(s: str) -> bytes:
    return b"+" + s.encode() + b"\r\n"


def error(msg: str) -> bytes:
    # A reply is one line: never let a message break the framing.
    return b"-" + msg.replace("\r", " ").replace("\n", " ").encode() + b"\r\n"


def bulk_array(items: list[bytes | None] | list[bytes], resp: int = 2) -> bytes:
    null = NULL3 if resp == 3 else NULL_BULK
    parts = [b"*%d\r\n" % len(items)]
    for v in items:
        parts.append(null if v is None else b"$%d\r\n%s\r\n" % (len(v), v))
    return b"".join(parts)


def null(resp: int) -> bytes:
    return NULL3 if resp == 3 else NULL_BULK


def null_array(resp: int) -> bytes:
    return NULL3 if resp == 3 else NULL_ARRAY


def format_double(x: float) -> bytes:
    """Redis's human-friendly float formatting (%.17Lg, trailing zeros removed)."""
    if x == float("inf"):
        return b"inf"
    if x == float("-inf"):
        return b"-inf"
    if x == int(x) and abs(x) < 1e17:
        return b"%d" % int(x)
    # Shortest text that reads back as the same float; exponent form for huge or tiny ones.
    r = repr(x)
    return (r if "e" not in r else f"{x:.17g}").encode()


def encode(value: Any, resp: int = 2) -> bytes:
    """Generic encoder for structured replies (INFO, HELLO, COMMAND, CONFIG GET...)."""
    if value is None:
        return null(resp)
    if isinstance(value, bool):
        if resp == 3:
            return b"#t\r\n" if value else b"#f\r\n"
        return ONE if value else ZERO
    if isinstance(value, int):
        return integer(value)
    if isinstance(value, bytes):
        return bulk(value)
    if isinstance(value, str):
        return bulk(value.encode())
    if isinstance(value, float):
        if resp == 3:
            return b"," + format_double(value) + b"\r\n"
        return bulk(format_double(value))
    if isinstance(value, dict):
        n = len(value)
        parts = [b"%%%d\r\n" % n if resp == 3 else b"*%d\r\n" % (2 * n)]
        for k, v in value.items():
            parts.append(encode(k, resp))
            parts.append(encode(v, resp))
        return b"".join(parts)
    if isinstance(value, (set, frozenset)):
        head = b"~%d\r\n" if resp == 3 else b"*%d\r\n"
        return head % len(value) + b"".join(encode(v, resp) for v in value)
    if isinstance(value, (list, tuple)):
        return b"*%d\r\n" % len(value) + b"".join(encode(v, resp) for v in value)
    if isinstance(value, Status):
        return simple(value.text)
    raise TypeError(f"cannot encode {type(value).__name__}")


class Status:
    """A simple-string reply inside a structured value."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text
