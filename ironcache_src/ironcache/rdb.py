"""Redis's serialization of one value (DUMP / RESTORE), as redis-server 7.0.15 writes and reads it.

A payload is `<type byte><object><RDB version, 2 bytes LE><CRC-64/Jones of what precedes, LE>`.
`dump()` writes RDB version 10 with Redis's encodings for each value (strings raw, as integers
or LZF-compressed; lists as QUICKLIST_2 of listpacks; sets as intset or plain; hashes as
listpack or plain; sorted sets as listpack or ZSET_2) chosen by Redis's thresholds.
`load()` reads every encoding 7.0.15 may send for these types.

Every length a payload claims is checked against the bytes that are really there before
anything is allocated for it, so a forged payload costs at most about its own size; any
inconsistency is an `RdbError`, never another exception.
"""

from __future__ import annotations

import math
import re
import struct
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

RDB_VERSION = 10

# Object types (rdb.h, 7.0)
T_STRING = 0
T_LIST = 1
T_SET = 2
T_ZSET = 3
T_HASH = 4
T_ZSET_2 = 5
T_HASH_ZIPMAP = 9
T_LIST_ZIPLIST = 10
T_SET_INTSET = 11
T_ZSET_ZIPLIST = 12
T_HASH_ZIPLIST = 13
T_LIST_QUICKLIST = 14
T_HASH_LISTPACK = 16
T_ZSET_LISTPACK = 17
T_LIST_QUICKLIST_2 = 18
ZSET_TYPES = frozenset((T_ZSET, T_ZSET_2, T_ZSET_ZIPLIST, T_ZSET_LISTPACK))

QUICKLIST_NODE_PLAIN = 1
QUICKLIST_NODE_PACKED = 2

# LZF: a back-reference of 3 bytes yields at most 264, a literal run of n+1 bytes n:
# no honest compressed string expands by more than this.
LZF_MAX_RATIO = 90

INT_RE = re.compile(rb"-?(?:0|[1-9][0-9]{0,18})\Z")
I64_MIN, I64_MAX = -(2**63), 2**63 - 1


class RdbError(Exception):
    """The payload cannot be read: `version` (RESTORE's checksum/version error) or format."""

    def __init__(self, message: str, version: bool = False) -> None:
        super().__init__(message)
        self.version = version


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The settings that choose compact encodings (redis.conf names, 7.0 defaults)."""

    hash_entries: int = 512
    hash_value: int = 64
    set_intset: int = 512
    zset_entries: int = 128
    zset_value: int = 64
    list_size: int = -2  # list-max-listpack-size: > 0 entries per node, -1..-5 4kb..64kb
    compression: bool = True  # rdbcompression


DEFAULTS = Thresholds()


# ------------------------------------------------------------------ CRC-64 (Jones), as crc64.c


def _crc_table() -> list[int]:
    poly = 0x95AC9329AC4BC9B5  # 0xad93d23594c935a9 reflected
    table = []
    for i in range(256):
        crc = i
        for _bit in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC = _crc_table()


def crc64(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    table = _CRC
    for b in bytes(data):
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


# ------------------------------------------------------------------ LZF (lzf_c.c / lzf_d.c)


def lzf_decompress(data: bytes, ulen: int) -> bytes:
    """Decompress exactly `ulen` bytes; anything else (overrun, short output) is an RdbError."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        ctrl = data[i]
        i += 1
        if ctrl < 32:  # literal run of ctrl + 1 bytes
            run = ctrl + 1
            if i + run > n or len(out) + run > ulen:
                raise RdbError("LZF literal run overruns")
            out += data[i : i + run]
            i += run
            continue
        length = ctrl >> 5
        if length == 7:
            if i >= n:
                raise RdbError("LZF truncated")
            length += data[i]
            i += 1
        if i >= n:
            raise RdbError("LZF truncated")
        ref = len(out) - ((ctrl & 0x1F) << 8) - data[i] - 1
        i += 1
        length += 2
        if ref < 0 or len(out) + length > ulen:
            raise RdbError("LZF back-reference out of range")
        dist = len(out) - ref
        if dist >= length:
            out += out[ref : ref + length]
        else:  # overlaps what it writes: the last `dist` bytes repeat
            out += (out[ref:] * (length // dist + 1))[:length]
    if len(out) != ulen:
        raise RdbError("LZF length mismatch")
    return bytes(out)


def lzf_compress(data: bytes) -> bytes | None:
    """LZF as lzf_c.c encodes it (a hash of the next 3 bytes finds the last match); None when
    the output would not be shorter, as Redis then stores the string as it is."""
    n = len(data)
    if n < 4:
        return None
    out = bytearray()
    table: dict[bytes, int] = {}
    lit_start = 0
    i = 0
    limit = n - 2

    def flush_literals(end: int) -> None:
        s = lit_start
        while s < end:
            run = min(32, end - s)
            out.append(run - 1)
            out.extend(data[s : s + run])
            s += run

    while i < limit:
        key = data[i : i + 3]
        ref = table.get(key)
        table[key] = i
        if ref is not None and 0 < i - ref <= 8192:
            off = i - ref - 1
            length = 3
            maxlen = min(n - i, 264)
            while length < maxlen and data[ref + length] == data[i + length]:
                length += 1
            flush_literals(i)
            ln = length - 2
            if ln < 7:
                out.append((ln << 5) | (off >> 8))
            else:
                out.append((7 << 5) | (off >> 8))
                out.append(ln - 7)
            out.append(off & 0xFF)
            i += length
            lit_start = i
            if len(out) >= n:
                return None
        else:
            i += 1
    flush_literals(n)
    return bytes(out) if len(out) < n else None


# ------------------------------------------------------------------ reading


class Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise RdbError("truncated payload")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise RdbError("truncated payload")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def left(self) -> int:
        return len(self.data) - self.pos

    def length(self) -> tuple[int, bool]:
        """(value, encoded): a length, or with `encoded` the special string encoding."""
        b = self.byte()
        kind = b >> 6
        if kind == 0:
            return b & 0x3F, False
        if kind == 1:
            return ((b & 0x3F) << 8) | self.byte(), False
        if kind == 3:
            return b & 0x3F, True
        if b == 0x80:
            return struct.unpack(">I", self.take(4))[0], False
        if b == 0x81:
            return struct.unpack(">Q", self.take(8))[0], False
        raise RdbError("bad length encoding")

    def count(self, per_item: int = 1) -> int:
        """A number of elements, each taking at least `per_item` bytes: bounded by the payload."""
        n, enc = self.length()
        if enc or n * per_item > self.left():
            raise RdbError("element count exceeds the payload")
        return n

    def string(self) -> bytes:
        n, enc = self.length()
        if not enc:
            return self.take(n)
        if n == 0:
            return b"%d" % struct.unpack("<b", self.take(1))[0]
        if n == 1:
            return b"%d" % struct.unpack("<h", self.take(2))[0]
        if n == 2:
            return b"%d" % struct.unpack("<i", self.take(4))[0]
        if n == 3:
            clen, e1 = self.length()
            ulen, e2 = self.length()
            if e1 or e2 or ulen == 0 or ulen > clen * LZF_MAX_RATIO + 64:
                raise RdbError("bad LZF lengths")
            return lzf_decompress(self.take(clen), ulen)
        raise RdbError("unknown string encoding")

    def double_text(self) -> float:
        """ZSET (type 3) scores: a length byte then ASCII; 253 nan, 254 +inf, 255 -inf."""
        n = self.byte()
        if n == 253:
            raise RdbError("NaN score")
        if n == 254:
            return math.inf
        if n == 255:
            return -math.inf
        return _score(self.take(n))

    def double_binary(self) -> float:
        x = struct.unpack("<d", self.take(8))[0]
        if math.isnan(x):
            raise RdbError("NaN score")
        return x


def _score(raw: bytes) -> float:
    try:
        x = float(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise RdbError("bad score") from None
    if math.isnan(x):
        raise RdbError("NaN score")
    return x


def _signed(v: int, bits: int) -> int:
    return v - (1 << bits) if v >= 1 << (bits - 1) else v


def _backlen_size(size: int) -> int:
    """Bytes of a listpack entry's back-length (lpEncodeBacklen's thresholds)."""
    for nbytes, bound in ((1, 128), (2, 16383), (3, 2097151), (4, 268435455)):
        if size < bound:
            return nbytes
    return 5


def listpack_items(blob: bytes) -> list[bytes]:
    """The elements of a listpack (listpack.c), integers as their decimal strings."""
    n = len(blob)
    if n < 7 or struct.unpack_from("<I", blob)[0] != n or blob[-1] != 0xFF:
        raise RdbError("bad listpack header")
    count = struct.unpack_from("<H", blob, 4)[0]
    out: list[bytes] = []
    i = 6
    while True:
        if i >= n:
            raise RdbError("listpack without terminator")
        b = blob[i]
        if b == 0xFF:
            break
        start = i
        if b < 0x80:
            out.append(b"%d" % b)
            i += 1
        elif b < 0xC0:
            ln = b & 0x3F
            i += 1
            out.append(blob[i : i + ln])
            i += ln
        elif b < 0xE0:
            if i + 2 > n:
                raise RdbError("truncated listpack")
            out.append(b"%d" % _signed(((b & 0x1F) << 8) | blob[i + 1], 13))
            i += 2
        elif b < 0xF0:
            if i + 2 > n:
                raise RdbError("truncated listpack")
            ln = ((b & 0x0F) << 8) | blob[i + 1]
            i += 2
            out.append(blob[i : i + ln])
            i += ln
        elif b == 0xF0:
            if i + 5 > n:
                raise RdbError("truncated listpack")
            ln = struct.unpack_from("<I", blob, i + 1)[0]
            i += 5
            out.append(blob[i : i + ln])
            i += ln
        elif 0xF1 <= b <= 0xF4:
            width = {0xF1: 2, 0xF2: 3, 0xF3: 4, 0xF4: 8}[b]
            if i + 1 + width > n:
                raise RdbError("truncated listpack")
            v = int.from_bytes(blob[i + 1 : i + 1 + width], "little")
            out.append(b"%d" % _signed(v, 8 * width))
            i += 1 + width
        else:
            raise RdbError("bad listpack entry encoding")
        if i > n - 1:
            raise RdbError("listpack entry overruns")
        # backlen: the entry's size, 1 to 5 bytes
        i += _backlen_size(i - start)
    if i != n - 1:
        raise RdbError("listpack trailing bytes")
    if count != 0xFFFF and count != len(out):
        raise RdbError("listpack count mismatch")
    return out


def ziplist_items(blob: bytes) -> list[bytes]:
    """The elements of a ziplist (ziplist.c, RDB versions before 10)."""
    n = len(blob)
    if n < 11 or struct.unpack_from("<I", blob)[0] != n or blob[-1] != 0xFF:
        raise RdbError("bad ziplist header")
    count = struct.unpack_from("<H", blob, 8)[0]
    out: list[bytes] = []
    i = 10
    while True:
        if i >= n:
            raise RdbError("ziplist without terminator")
        if blob[i] == 0xFF:
            break
        i += 5 if blob[i] == 0xFE else 1  # prevlen
        if i >= n:
            raise RdbError("truncated ziplist")
        b = blob[i]
        top = b >> 6
        if top == 0:
            ln = b & 0x3F
            i += 1
        elif top == 1:
            if i + 2 > n:
                raise RdbError("truncated ziplist")
            ln = ((b & 0x3F) << 8) | blob[i + 1]
            i += 2
        elif b == 0x80:
            if i + 5 > n:
                raise RdbError("truncated ziplist")
            ln = struct.unpack_from(">I", blob, i + 1)[0]
            i += 5
        elif top == 2:
            raise RdbError("bad ziplist string encoding")
        else:
            ints = {0xC0: ("<h", 2), 0xD0: ("<i", 4), 0xE0: ("<q", 8), 0xFE: ("<b", 1)}
            if b in ints:
                fmt, width = ints[b]
                if i + 1 + width > n:
                    raise RdbError("truncated ziplist")
                out.append(b"%d" % struct.unpack_from(fmt, blob, i + 1)[0])
                i += 1 + width
            elif b == 0xF0:
                if i + 4 > n:
                    raise RdbError("truncated ziplist")
                out.append(b"%d" % _signed(int.from_bytes(blob[i + 1 : i + 4], "little"), 24))
                i += 4
            elif 0xF1 <= b <= 0xFD:
                out.append(b"%d" % ((b & 0x0F) - 1))
                i += 1
            else:
                raise RdbError("bad ziplist entry encoding")
            continue
        if i + ln > n - 1:
            raise RdbError("ziplist entry overruns")
        out.append(blob[i : i + ln])
        i += ln
    if i != n - 1:
        raise RdbError("ziplist trailing bytes")
    if count != 0xFFFF and count != len(out):
        raise RdbError("ziplist count mismatch")
    return out


def intset_items(blob: bytes) -> list[bytes]:
    if len(blob) < 8:
        raise RdbError("bad intset header")
    width, count = struct.unpack_from("<II", blob)
    if width not in (2, 4, 8) or len(blob) != 8 + width * count:
        raise RdbError("bad intset header")
    fmt = {2: "h", 4: "i", 8: "q"}[width]
    return [b"%d" % v for v in struct.unpack_from(f"<{count}{fmt}", blob, 8)]


def _pairs(items: list[bytes]) -> list[tuple[bytes, bytes]]:
    if len(items) % 2:
        raise RdbError("odd number of elements")
    return list(zip(items[::2], items[1::2], strict=True))


def _hash(pairs: Iterable[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    for f, v in pairs:
        if f in out:
            raise RdbError("duplicate hash field")
        out[f] = v
    return out


def _zset(pairs: Iterable[tuple[bytes, float]]) -> list[tuple[bytes, float]]:
    out: dict[bytes, float] = {}
    for m, s in pairs:
        if m in out:
            raise RdbError("duplicate sorted set member")
        out[m] = s
    return list(out.items())


def _object(r: Reader, t: int) -> Any:
    if t == T_STRING:
        return r.string()
    if t == T_LIST:
        return deque(r.string() for _i in range(r.count()))
    if t == T_LIST_ZIPLIST:
        return deque(ziplist_items(r.string()))
    if t in (T_LIST_QUICKLIST, T_LIST_QUICKLIST_2):
        out: deque[bytes] = deque()
        for _i in range(r.count()):
            container = QUICKLIST_NODE_PACKED
            if t == T_LIST_QUICKLIST_2:
                container, enc = r.length()
                if enc or container not in (QUICKLIST_NODE_PLAIN, QUICKLIST_NODE_PACKED):
                    raise RdbError("bad quicklist container")
            blob = r.string()
            if container == QUICKLIST_NODE_PLAIN:
                out.append(blob)
                continue
            items = listpack_items(blob) if t == T_LIST_QUICKLIST_2 else ziplist_items(blob)
            if not items:
                raise RdbError("empty quicklist node")
            out.extend(items)
        return out
    if t == T_SET:
        n = r.count()
        members = {r.string() for _i in range(n)}
        if len(members) != n:
            raise RdbError("duplicate set member")
        return members
    if t == T_SET_INTSET:
        items = intset_items(r.string())
        members = set(items)
        if len(members) != len(items):
            raise RdbError("duplicate set member")
        return members
    if t == T_HASH:
        n = r.count(2)
        return _hash((r.string(), r.string()) for _i in range(n))
    if t == T_HASH_ZIPLIST:
        return _hash(_pairs(ziplist_items(r.string())))
    if t == T_HASH_LISTPACK:
        return _hash(_pairs(listpack_items(r.string())))
    if t == T_ZSET:
        n = r.count(2)
        return _zset((r.string(), r.double_text()) for _i in range(n))
    if t == T_ZSET_2:
        n = r.count(9)
        return _zset((r.string(), r.double_binary()) for _i in range(n))
    if t in (T_ZSET_ZIPLIST, T_ZSET_LISTPACK):
        blob = r.string()
        items = listpack_items(blob) if t == T_ZSET_LISTPACK else ziplist_items(blob)
        return _zset((m, _score(s)) for m, s in _pairs(items))
    raise RdbError(f"unsupported object type {t}")


def verify(payload: bytes) -> None:
    """RESTORE's first check (verifyDumpPayload): footer version, then the CRC."""
    if len(payload) < 10:
        raise RdbError("payload too short", version=True)
    footer = payload[-10:]
    if footer[0] | (footer[1] << 8) > RDB_VERSION:
        raise RdbError("RDB version too new", version=True)
    if crc64(payload[:-8]) != int.from_bytes(footer[2:], "little"):
        raise RdbError("checksum mismatch", version=True)


def load(payload: bytes) -> tuple[int, Any]:
    """(type byte, value): bytes, deque, set, dict, or a list of (member, score) for ZSET_TYPES.

    Raises RdbError: `version` set for RESTORE's version/checksum error, else a format error.
    Empty containers are refused, as Redis refuses them; so are duplicate members and fields
    (Redis refuses them only with sanitize-dump-payload: here a value is never inconsistent)."""
    verify(payload)
    r = Reader(payload[:-10])
    t = r.byte()
    try:
        value = _object(r, t)
    except (struct.error, ValueError, OverflowError, MemoryError, RecursionError):
        raise RdbError("malformed object") from None
    # Bytes after the object are ignored, as Redis ignores them.
    if t != T_STRING and not value:
        raise RdbError("empty container")
    return t, value


# ------------------------------------------------------------------ writing


def _len(n: int) -> bytes:
    if n < 64:
        return bytes((n,))
    if n < 16384:
        return bytes((0x40 | (n >> 8), n & 0xFF))
    if n <= 0xFFFFFFFF:
        return b"\x80" + struct.pack(">I", n)
    return b"\x81" + struct.pack(">Q", n)


def _int_value(s: bytes) -> int | None:
    """The integer a string spells canonically (string2ll), else None."""
    if len(s) > 20 or not INT_RE.match(s) or s == b"-0":
        return None
    v = int(s)
    return v if I64_MIN <= v <= I64_MAX else None


def string(s: bytes, compress: bool = True) -> bytes:
    """rdbSaveRawString: small integers as INT8/16/32, long strings LZF when that saves."""
    if len(s) <= 11:
        v = _int_value(s)
        if v is not None:
            if -(2**7) <= v < 2**7:
                return b"\xc0" + struct.pack("<b", v)
            if -(2**15) <= v < 2**15:
                return b"\xc1" + struct.pack("<h", v)
            if -(2**31) <= v < 2**31:
                return b"\xc2" + struct.pack("<i", v)
    if compress and len(s) > 20:
        c = lzf_compress(s)
        if c is not None:
            return b"\xc3" + _len(len(c)) + _len(len(s)) + c
    return _len(len(s)) + s


_ONE_BYTE = [bytes((i,)) for i in range(128)]


def _backlen(size: int) -> bytes:
    """lpEncodeBacklen: highest 7 bits first (unflagged), the rest with bit 7 set."""
    if size < 128:
        return _ONE_BYTE[size]
    nbytes = _backlen_size(size)
    out = [(size >> (7 * k)) & 127 for k in range(nbytes - 1, -1, -1)]
    return bytes([out[0]] + [b | 128 for b in out[1:]])


def _lp_entry(s: bytes) -> bytes:
    v = _int_value(s)
    if v is not None:
        if 0 <= v < 128:
            enc = bytes((v,))
        elif -4096 <= v < 4096:
            u = v & 0x1FFF
            enc = bytes((0xC0 | (u >> 8), u & 0xFF))
        elif -(2**15) <= v < 2**15:
            enc = b"\xf1" + struct.pack("<h", v)
        elif -(2**23) <= v < 2**23:
            enc = b"\xf2" + (v & 0xFFFFFF).to_bytes(3, "little")
        elif -(2**31) <= v < 2**31:
            enc = b"\xf3" + struct.pack("<i", v)
        else:
            enc = b"\xf4" + struct.pack("<q", v)
    else:
        n = len(s)
        if n < 64:
            enc = bytes((0x80 | n,)) + s
        elif n < 4096:
            enc = bytes((0xE0 | (n >> 8), n & 0xFF)) + s
        else:
            enc = b"\xf0" + struct.pack("<I", n) + s
    return enc + _backlen(len(enc))


def listpack(items: Iterable[bytes]) -> bytes:
    entries = [_lp_entry(s) for s in items]
    body = b"".join(entries)
    count = len(entries) if len(entries) < 0xFFFF else 0xFFFF
    return struct.pack("<IH", 6 + len(body) + 1, count) + body + b"\xff"


def _score_text(x: float) -> bytes:
    """d2string of Redis 7.0: integers as %lld, else %.17g; inf as inf/-inf."""
    if math.isinf(x):
        return b"inf" if x > 0 else b"-inf"
    if x == int(x) and abs(x) < 2**63 and not (x == 0 and math.copysign(1, x) < 0):
        return b"%d" % int(x)
    return b"%.17g" % x


def _list_nodes(items: deque[bytes] | list[bytes], size: int) -> list[list[bytes]]:
    """Split a list into quicklist nodes as list-max-listpack-size would (count or bytes)."""
    nodes: list[list[bytes]] = []
    cur: list[bytes] = []
    if size > 0:
        for s in items:
            cur.append(s)
            if len(cur) >= size:
                nodes.append(cur)
                cur = []
    else:
        limit = 4096 << (min(max(-size, 1), 5) - 1)
        used = 7
        for s in items:
            cost = len(s) + 11
            if cur and used + cost > limit:
                nodes.append(cur)
                cur, used = [], 7
            cur.append(s)
            used += cost
    if cur:
        nodes.append(cur)
    return nodes


def is_intset(members: Iterable[bytes], limit: int) -> bool:
    return all(n <= limit and _int_value(m) is not None for n, m in enumerate(members, 1))


def hash_is_listpack(h: dict[bytes, bytes], th: Thresholds) -> bool:
    return len(h) <= th.hash_entries and all(
        len(f) <= th.hash_value and len(v) <= th.hash_value for f, v in h.items()
    )


def zset_is_listpack(pairs: list[tuple[bytes, float]], th: Thresholds) -> bool:
    return len(pairs) <= th.zset_entries and all(len(m) <= th.zset_value for m, _s in pairs)


def encode_object(value: Any, th: Thresholds = DEFAULTS) -> bytes:
    """Type byte + object for a string, list, set or hash (sorted sets: encode_zset)."""
    c = th.compression
    t = type(value)
    if t is bytes or t is bytearray:  # a bytearray: a string the bit commands or PFADD edit
        return bytes((T_STRING,)) + string(bytes(value), c)
    if t is deque:
        nodes = _list_nodes(value, th.list_size)
        out = [bytes((T_LIST_QUICKLIST_2,)), _len(len(nodes))]
        for node in nodes:
            out.append(_len(QUICKLIST_NODE_PACKED))
            out.append(string(listpack(node), c))
        return b"".join(out)
    if t is set:
        if is_intset(value, th.set_intset):
            ints = sorted(int(m) for m in value)
            lo, hi = ints[0], ints[-1]
            width = 8
            if lo >= -(2**31) and hi < 2**31:
                width = 2 if lo >= -(2**15) and hi < 2**15 else 4
            fmt = {2: "h", 4: "i", 8: "q"}[width]
            blob = struct.pack("<II", width, len(ints)) + struct.pack(f"<{len(ints)}{fmt}", *ints)
            return bytes((T_SET_INTSET,)) + string(blob, c)
        return bytes((T_SET,)) + _len(len(value)) + b"".join(string(m, c) for m in value)
    if t is dict:
        if hash_is_listpack(value, th):
            flat = [x for kv in value.items() for x in kv]
            return bytes((T_HASH_LISTPACK,)) + string(listpack(flat), c)
        body = b"".join(string(f, c) + string(v, c) for f, v in value.items())
        return bytes((T_HASH,)) + _len(len(value)) + body
    raise TypeError(t)


def encode_zset(pairs: list[tuple[bytes, float]], th: Thresholds = DEFAULTS) -> bytes:
    """Type byte + object for a sorted set given as (member, score) pairs in rank order."""
    c = th.compression
    if zset_is_listpack(pairs, th):
        flat = [x for m, s in pairs for x in (m, _score_text(s))]
        return bytes((T_ZSET_LISTPACK,)) + string(listpack(flat), c)
    # Redis writes the skiplist from its tail, so loading inserts at the head cheaply.
    body = b"".join(string(m, c) + struct.pack("<d", s) for m, s in reversed(pairs))
    return bytes((T_ZSET_2,)) + _len(len(pairs)) + body


def seal(obj: bytes) -> bytes:
    """A DUMP payload: the object, the RDB version, the CRC-64 of both."""
    body = obj + struct.pack("<H", RDB_VERSION)
    return body + struct.pack("<Q", crc64(body))


def dump(value: Any, th: Thresholds = DEFAULTS) -> bytes:
    return seal(encode_object(value, th))
