"""Bit operations on strings: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD, BITFIELD_RO.

A string these commands edit is kept as a bytearray, so SETBIT and BITFIELD change it in
place (O(1) as in Redis) instead of copying the whole value per write. Every string command
reads both kinds; the snapshot and the handover write a bytearray as bytes (marshal).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ironcache.commands import SYNTAX, WRONGTYPE, CommandError, command
from ironcache.keyspace import NOTIFY_GENERIC, NOTIFY_STRING, STR_OVERHEAD, Entry
from ironcache.protocol import ONE, ZERO, integer, null

if TYPE_CHECKING:
    from ironcache.client import Client

K1 = (1, 1, 1)
OFFSET_ERR = "ERR bit offset is not an integer or out of range"
BIT_ERR = "ERR bit is not an integer or out of range"
NOT_INT = "ERR value is not an integer or out of range"
TYPE_ERR = (
    "ERR Invalid bitfield type. Use something like i16 u8. "
    "Note that u64 is not supported but i64 is."
)
LLONG_MIN, LLONG_MAX = -(2**63), 2**63 - 1


def string2ll(v: bytes) -> int | None:
    """Redis's string2ll(): a canonical 64-bit integer (no '+', spaces or leading zeros)."""
    digits = v[1:] if v[:1] == b"-" else v
    if not digits.isdigit() or (digits[0] == 0x30 and len(digits) > 1) or v == b"-0":
        return None
    n = int(v)
    return n if LLONG_MIN <= n <= LLONG_MAX else None


def _int(v: bytes, message: str = NOT_INT) -> int:
    n = string2ll(v)
    if n is None:
        raise CommandError(message)
    return n


def bit_offset(c: Client, raw: bytes, bits: int = 0) -> int:
    """getBitOffsetFromArgument(): `#N` means N * bits when `bits` is given (BITFIELD)."""
    use_hash = bits > 0 and raw[:1] == b"#"
    n = string2ll(raw[1:] if use_hash else raw)
    if n is None:
        raise CommandError(OFFSET_ERR)
    if use_hash:
        n *= bits
    limit = c.server.config.values["proto-max-bulk-len"]
    if n < 0 or (n >> 3) >= limit:
        raise CommandError(OFFSET_ERR)
    return n


def read_str(c: Client, key: bytes) -> bytes | bytearray | None:
    e = c.db.lookup(key)
    if e is None:
        return None
    v = e.value
    if v.__class__ is not bytes and v.__class__ is not bytearray:
        raise CommandError(WRONGTYPE)
    return v  # type: ignore[no-any-return]


def writable(c: Client, key: bytes, max_bit: int) -> tuple[Entry, bytearray, bool]:
    """lookupStringForBitCommand(): the value as a bytearray of at least max_bit/8 + 1 bytes
    (created, or grown with zeros) and whether that changed it (then WATCHers were told)."""
    db = c.db
    need = (max_bit >> 3) + 1
    e = db.lookup(key)
    if e is None:
        buf = bytearray(need)
        db.set(key, buf, STR_OVERHEAD + need)
        e = db.data[key]
        return e, buf, True
    v = e.value
    if v.__class__ is bytes:
        v = e.value = bytearray(v)  # once: later edits are in place
    elif v.__class__ is not bytearray:
        raise CommandError(WRONGTYPE)
    grown = need - len(v)
    if grown > 0:
        v.extend(bytes(grown))
        e.size += grown
        db.keyspace.used += grown
        db.touched(key)
    return e, v, grown > 0


@command("setbit", 4, "write denyoom", K1, "bitmap", "Sets or clears the bit at offset.", "2.2.0")
def setbit(c: Client, argv: list[bytes]) -> bytes:
    offset = bit_offset(c, argv[2])
    on = _int(argv[3], BIT_ERR)
    if on & ~1:
        raise CommandError(BIT_ERR)
    unused_entry, buf, dirty = writable(c, argv[1], offset)
    byte, mask = offset >> 3, 0x80 >> (offset & 7)
    old = buf[byte] & mask
    if bool(old) != on:
        buf[byte] ^= mask
        if not dirty:
            c.db.touched(argv[1])
    if dirty or bool(old) != on:
        c.db.notify(NOTIFY_STRING, b"setbit", argv[1])
    return ONE if old else ZERO


@command("getbit", 3, "readonly fast", K1, "bitmap", "Returns a bit value by offset.", "2.2.0")
def getbit(c: Client, argv: list[bytes]) -> bytes:
    offset = bit_offset(c, argv[2])
    v = read_str(c, argv[1])
    byte = offset >> 3
    if v is None or byte >= len(v):
        return ZERO
    return ONE if v[byte] & (0x80 >> (offset & 7)) else ZERO


def _range(
    argv: list[bytes], i: int, n: int, bitpos: bool = False
) -> tuple[int, int, bool, bool] | None:
    """BITCOUNT/BITPOS start [end [BYTE|BIT]] as Redis clamps them, in bits: (first bit,
    last bit, whether an end was given, whether the range is in bits). None: empty range."""
    start = _int(argv[i])
    end_given = len(argv) > i + 1
    end = 0
    if end_given and not bitpos:  # BITCOUNT reads the end before the unit, BITPOS after
        end = _int(argv[i + 1])
        if start < 0 and end < 0 and start > end:  # before the unit is checked, as in Redis
            return None
    is_bit = False
    if len(argv) > i + 2:
        unit = argv[i + 2].lower()
        if unit == b"bit":
            is_bit = True
        elif unit != b"byte":
            raise CommandError(SYNTAX)
    if end_given and bitpos:
        end = _int(argv[i + 1])
    elif not end_given:
        end = (n << 3) + 7 if is_bit else n - 1
    total = n << 3 if is_bit else n
    if start < 0:
        start += total
    if end < 0:
        end += total
    start, end = max(start, 0), max(end, 0)
    end = min(end, total - 1)
    if start > end:
        return None
    if not is_bit:
        start, end = start << 3, (end << 3) + 7
    return start, end, end_given, is_bit


# Big values are scanned a chunk at a time, so a 512 MB string costs a 1 MB temporary, not
# a copy of itself (and an integer as large) per operation.
CHUNK = 1 << 20


def _chunks(v: bytes | bytearray, first: int, last: int) -> Iterator[tuple[int, int, int]]:
    """The bits first..last (inclusive, MSB first) as (integer, width, position of its first
    bit), one chunk of at most CHUNK bytes at a time."""
    view = memoryview(v)
    byte, end_byte = first >> 3, last >> 3
    while byte <= end_byte:
        stop = min(end_byte + 1, byte + CHUNK)
        x = int.from_bytes(view[byte:stop], "big")
        lo = max(first - (byte << 3), 0)  # bits of the first byte before the range
        hi = max((stop << 3) - 1 - last, 0)  # bits of the last byte after it
        width = ((stop - byte) << 3) - lo - hi
        yield (x >> hi) & ((1 << width) - 1), width, (byte << 3) + lo
        byte = stop


def _popcount(v: bytes | bytearray, first: int, last: int) -> int:
    return sum(x.bit_count() for x, unused_width, unused_pos in _chunks(v, first, last))


def _find(v: bytes | bytearray, first: int, last: int, bit: int) -> int | None:
    """The position of the first bit equal to `bit` in first..last, or None."""
    for x, width, pos in _chunks(v, first, last):
        if bit == 0:
            x = ~x & ((1 << width) - 1)
        if x:
            return pos + width - x.bit_length()
    return None


@command("bitcount", -2, "readonly", K1, "bitmap", "Counts the set bits in a string.", "2.6.0")
def bitcount(c: Client, argv: list[bytes]) -> bytes:
    v = read_str(c, argv[1])
    if v is None:
        return ZERO
    if len(argv) == 2:
        return integer(_popcount(v, 0, (len(v) << 3) - 1) if v else 0)
    if len(argv) not in (4, 5):
        raise CommandError(SYNTAX)
    span = _range(argv, 2, len(v))
    if span is None:
        return ZERO
    return integer(_popcount(v, span[0], span[1]))


@command("bitpos", -3, "readonly", K1, "bitmap", "Finds the first set or clear bit.", "2.8.7")
def bitpos(c: Client, argv: list[bytes]) -> bytes:
    bit = _int(argv[2])
    if bit not in (0, 1):
        raise CommandError("ERR The bit argument must be 1 or 0.")
    v = read_str(c, argv[1])
    if v is None:
        return integer(-1 if bit else 0)
    if len(argv) > 6:
        raise CommandError(SYNTAX)
    n = len(v)
    if len(argv) == 3:
        span = (0, (n << 3) - 1, False, False) if n else None
    else:
        span = _range(argv, 3, n, bitpos=True)
    if span is None:
        return integer(-1)
    first, last, end_given = span[0], span[1], span[2]
    found = _find(v, first, last, bit)
    if found is None:  # clear bits continue past the string, unless an end was given
        return integer(last + 1 if bit == 0 and not end_given else -1)
    return integer(found)


@command("bitop", -4, "write denyoom", (2, -1, 1), "bitmap", "Bitwise operations on strings.",
         "2.6.0")
def bitop(c: Client, argv: list[bytes]) -> bytes:
    op = argv[1].lower()
    if op not in (b"and", b"or", b"xor", b"not"):
        raise CommandError(SYNTAX)
    if op == b"not" and len(argv) != 4:
        raise CommandError("ERR BITOP NOT must be called with a single source key.")
    values = [read_str(c, k) for k in argv[3:]]
    srcs = [memoryview(b"" if v is None else v) for v in values]
    size = max(map(len, srcs))
    db, dst = c.db, argv[2]
    if not size:
        if db.delete(dst):
            db.notify(NOTIFY_GENERIC, b"del", dst)
        return ZERO
    out: bytes | bytearray
    if op == b"not":
        src = values[0]
        assert src is not None
        out = src.translate(_NOT)  # a new object of the source's kind: nothing is shared
    else:
        parts = []
        for at in range(0, size, CHUNK):  # shorter strings read as zero-padded
            n = min(CHUNK, size - at)
            ints = [int.from_bytes(bytes(s[at : at + n]).ljust(n, b"\0"), "big") for s in srcs]
            acc = ints[0]
            for x in ints[1:]:
                if op == b"and":
                    acc &= x
                elif op == b"or":
                    acc |= x
                else:
                    acc ^= x
            parts.append(acc.to_bytes(n, "big"))
        out = b"".join(parts)
    db.set(dst, out, STR_OVERHEAD + size)
    db.notify(NOTIFY_STRING, b"set", dst)
    return integer(size)


_NOT = bytes(255 - i for i in range(256))


# ------------------------------------------------------------------ BITFIELD

WRAP, SAT, FAIL = 0, 1, 2


def _field_type(raw: bytes) -> tuple[bool, int]:
    """getBitfieldTypeFromArgument(): (signed, bits); i1..i64, u1..u63."""
    sign = raw[:1]
    if sign not in (b"i", b"u"):
        raise CommandError(TYPE_ERR)
    bits = string2ll(raw[1:].split(b"\0", 1)[0])  # C reads up to a NUL
    signed = sign == b"i"
    if bits is None or bits < 1 or bits > (64 if signed else 63):
        raise CommandError(TYPE_ERR)
    return signed, bits


def _get_field(buf: bytes | bytearray, offset: int, bits: int, signed: bool) -> int:
    """The field at `offset` (bits past the end read as 0)."""
    b0 = offset >> 3
    b1 = (offset + bits - 1) >> 3
    chunk = buf[b0 : b1 + 1]
    x = int.from_bytes(chunk, "big") << ((b1 + 1 - b0 - len(chunk)) << 3)
    x = (x >> (7 - ((offset + bits - 1) & 7))) & ((1 << bits) - 1)
    if signed and x >> (bits - 1):
        x -= 1 << bits
    return x


def _set_field(buf: bytearray, offset: int, bits: int, value: int) -> None:
    b0 = offset >> 3
    b1 = (offset + bits - 1) >> 3
    shift = 7 - ((offset + bits - 1) & 7)
    mask = ((1 << bits) - 1) << shift
    width = b1 + 1 - b0
    x = int.from_bytes(buf[b0 : b1 + 1], "big")
    x = (x & ~mask) | ((value << shift) & mask)
    buf[b0 : b1 + 1] = x.to_bytes(width, "big")


def _overflow(value: int, bits: int, signed: bool, kind: int) -> tuple[bool, int]:
    """checkSignedBitfieldOverflow / checkUnsignedBitfieldOverflow: (overflowed, result)."""
    if signed:
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        lo, hi = 0, (1 << bits) - 1
    if lo <= value <= hi:
        return False, value
    if kind == SAT:
        return True, hi if value > hi else lo
    wrapped = value & ((1 << bits) - 1)
    if signed and wrapped >> (bits - 1):
        wrapped -= 1 << bits
    return True, wrapped


def _bitfield(c: Client, argv: list[bytes], read_only: bool) -> bytes:
    ops: list[tuple[bytes, bool, int, int, int, int]] = []
    kind = WRAP
    writes = False
    highest = 0
    j, n = 2, len(argv)
    while j < n:
        sub = argv[j].lower()
        left = n - j - 1
        if sub == b"overflow" and left >= 1:
            how = argv[j + 1].lower()
            if how not in (b"wrap", b"sat", b"fail"):
                raise CommandError("ERR Invalid OVERFLOW type specified")
            kind = (b"wrap", b"sat", b"fail").index(how)
            j += 2
            continue
        if not ((sub == b"get" and left >= 2) or (sub in (b"set", b"incrby") and left >= 3)):
            raise CommandError(SYNTAX)
        signed, bits = _field_type(argv[j + 1])
        offset = bit_offset(c, argv[j + 2], bits)
        arg = 0
        if sub != b"get":
            writes = True
            highest = max(highest, offset + bits - 1)
            arg = _int(argv[j + 3])
        ops.append((sub, signed, bits, offset, arg, kind))
        j += 3 if sub == b"get" else 4
    if not writes:
        v = read_str(c, argv[1])
        src: bytes | bytearray = b"" if v is None else v
        return b"*%d\r\n" % len(ops) + b"".join(
            integer(_get_field(src, op[3], op[2], op[1])) for op in ops
        )
    if read_only:
        raise CommandError("ERR BITFIELD_RO only supports the GET subcommand")
    unused_entry, buf, dirty = writable(c, argv[1], highest)
    changes = 0
    nul = null(c.resp)
    out = [b"*%d\r\n" % len(ops)]
    for sub, signed, bits, offset, arg, how in ops:
        old = _get_field(buf, offset, bits, signed)
        if sub == b"get":
            out.append(integer(old))
            continue
        if sub == b"incrby":
            over, new = _overflow(old + arg, bits, signed, how)
            reply = new
        else:
            # SET converts the value to the field's C type first: an unsigned field sees a
            # negative value as its 64-bit two's complement (so SAT saturates it to the max).
            over, new = _overflow(arg if signed else arg % 2**64, bits, signed, how)
            reply = old
        if over and how == FAIL:
            out.append(nul)
            continue
        out.append(integer(reply))
        _set_field(buf, offset, bits, new)
        if dirty or old != new:
            changes += 1
    if changes and not dirty:
        c.db.touched(argv[1])
    if changes:
        c.db.notify(NOTIFY_STRING, b"setbit", argv[1])
    return b"".join(out)


@command("bitfield", -2, "write denyoom", K1, "bitmap", "Performs arbitrary bitfield integer "
         "operations on strings.", "3.2.0")
def bitfield(c: Client, argv: list[bytes]) -> bytes:
    return _bitfield(c, argv, False)


@command("bitfield_ro", -2, "readonly fast", K1, "bitmap", "Performs arbitrary read-only "
         "bitfield integer operations on strings.", "6.0.0")
def bitfield_ro(c: Client, argv: list[bytes]) -> bytes:
    return _bitfield(c, argv, True)
