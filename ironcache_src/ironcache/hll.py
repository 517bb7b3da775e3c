"""HyperLogLog in Redis's exact representation (hyperloglog.c of Redis 7.0).

A value is a string: a 16-byte header ("HYLL", encoding, 3 unused bytes, the cached
cardinality as 8 bytes little endian whose top bit marks it stale), then 16384 registers of
6 bits, either dense (12288 bytes, little-endian bit packing) or sparse (run-length opcodes:
ZERO 00xxxxxx, XZERO 01xxxxxx yyyyyyyy, VAL 1vvvvvxx). Elements are hashed with MurmurHash64A
and Redis's seed, sparse values are edited with Redis's split and merge steps, and a sparse
value turns dense at the same moment as in Redis (a register above 32, or hll-sparse-max-bytes
exceeded), so the bytes match redis-server's and either server reads the other's values.
"""

from __future__ import annotations

import math
import random
import struct
from bisect import bisect_right

P = 14
Q = 64 - P
REGISTERS = 1 << P
HDR = 16
DENSE_BYTES = REGISTERS * 6 // 8
DENSE_SIZE = HDR + DENSE_BYTES
DENSE, SPARSE = 0, 1
SEED = 0xADC83B19
ALPHA_INF = 0.721347520444481703680  # 0.5 / ln(2)
M64 = (1 << 64) - 1
MUL = 0xC6A4A7935BD1E995

ZERO, XZERO, VAL = 0, 1, 2
ZERO_MAX, XZERO_MAX, VAL_MAX_VALUE, VAL_MAX_LEN = 64, 16384, 32, 4

INVALID = "INVALIDOBJ Corrupted HLL object detected"
NOT_HLL = "WRONGTYPE Key is not a valid HyperLogLog string value."


def murmur64a(data: bytes, seed: int = SEED) -> int:
    """MurmurHash64A as Redis compiles it on a little-endian machine."""
    n = len(data)
    h = (seed ^ (n * MUL)) & M64
    tail = n & ~7
    for (k,) in _U64.iter_unpack(data[:tail]):
        k = (k * MUL) & M64
        # Masking once per step is enough: only the shifts need the exact 64-bit value.
        h = ((h ^ ((k ^ (k >> 47)) * MUL)) * MUL) & M64
    if n & 7:
        h ^= int.from_bytes(data[tail:], "little")
        h = (h * MUL) & M64
    h ^= h >> 47
    h = (h * MUL) & M64
    return h ^ (h >> 47)


def pat_len(element: bytes) -> tuple[int, int]:
    """hllPatLen(): (register index, length of the 000..1 pattern, 1..Q+1)."""
    h = murmur64a(element)
    rest = (h >> P) | (1 << Q)
    return h & (REGISTERS - 1), (rest & -rest).bit_length()


def is_hll(v: bytes | bytearray) -> bool:
    """isHLLObjectOrReply()'s checks: header, magic, encoding, the dense length."""
    if len(v) < HDR or v[:4] != b"HYLL" or v[4] > SPARSE:
        return False
    return v[4] == SPARSE or len(v) == DENSE_SIZE


def empty() -> bytearray:
    """createHLLObject(): sparse, one XZERO opcode for all registers, cached cardinality 0."""
    return bytearray(b"HYLL\x01" + bytes(11) + b"\x7f\xff")


def invalidate(v: bytearray) -> None:
    v[15] |= 0x80


# ------------------------------------------------------------------ dense registers

_AND63 = bytes(x & 63 for x in range(256))
_SHR2 = bytes(x >> 2 for x in range(256))
_SHR4 = bytes(x >> 4 for x in range(256))
_SHR6 = bytes(x >> 6 for x in range(256))
_SHL2 = bytes((x << 2) & 63 for x in range(256))
_SHL4 = bytes((x << 4) & 63 for x in range(256))
_SHL2B = bytes((x << 2) & 255 for x in range(256))
_SHL4B = bytes((x << 4) & 255 for x in range(256))
_SHL6B = bytes((x << 6) & 255 for x in range(256))
_U64 = struct.Struct("<Q")


def _or(a: bytes, b: bytes) -> bytes:
    """Byte-wise OR of two strings of the same length (no carries between lanes)."""
    return (int.from_bytes(a, "little") | int.from_bytes(b, "little")).to_bytes(len(a), "little")


def unpack(dense: bytes | bytearray) -> bytes:
    """The 16384 register values (one byte each) of dense registers: 3 bytes hold 4 registers."""
    b0, b1, b2 = bytes(dense[0::3]), bytes(dense[1::3]), bytes(dense[2::3])
    out = bytearray(REGISTERS)
    out[0::4] = b0.translate(_AND63)
    out[1::4] = _or(b0.translate(_SHR6), b1.translate(_SHL2))
    out[2::4] = _or(b1.translate(_SHR4), b2.translate(_SHL4))
    out[3::4] = b2.translate(_SHR2)
    return bytes(out)


def pack(regs: bytes) -> bytes:
    """unpack()'s inverse (register values must be < 64)."""
    r0, r1, r2, r3 = regs[0::4], regs[1::4], regs[2::4], regs[3::4]
    out = bytearray(DENSE_BYTES)
    out[0::3] = _or(r0, r1.translate(_SHL6B))
    out[1::3] = _or(r1.translate(_SHR2), r2.translate(_SHL4B))
    out[2::3] = _or(r2.translate(_SHR4), r3.translate(_SHL2B))
    return bytes(out)


_HIGH = int.from_bytes(b"\x80" * REGISTERS, "little")
_LOW = int.from_bytes(b"\x01" * REGISTERS, "little")
_ALL = (1 << (8 * REGISTERS)) - 1


def lane_max(a: bytes, b: bytes) -> bytes:
    """Byte-wise max of two register arrays (values < 128), with whole-integer operations."""
    x, y = int.from_bytes(a, "little"), int.from_bytes(b, "little")
    ge = (((x | _HIGH) - y) & _HIGH) >> 7  # 1 in each lane where a >= b
    mask = ge * 0xFF
    return ((x & mask) | (y & ~mask & _ALL)).to_bytes(REGISTERS, "little")


def dense_set(v: bytearray, index: int, count: int) -> int:
    """hllDenseSet() on a whole value (header included): 1 if the register grew."""
    pos = index * 6
    byte = HDR + (pos >> 3)
    fb = pos & 7
    b0 = v[byte]
    b1 = v[byte + 1] if fb > 2 else 0  # the last register ends its byte: C reads the NUL after
    if count <= ((b0 >> fb) | (b1 << (8 - fb))) & 63:
        return 0
    v[byte] = (b0 & ~(63 << fb) & 0xFF) | ((count << fb) & 0xFF)
    if fb > 2:
        v[byte + 1] = (b1 & ~(63 >> (8 - fb))) | (count >> (8 - fb))
    return 1


# ------------------------------------------------------------------ sparse opcodes


def decode_ops(
    v: bytes | bytearray, extra: int = 0
) -> tuple[list[tuple[int, int, int]], bool, int]:
    """The sparse opcodes as (kind, value, run length), whether the last one is an XZERO cut
    short (Redis then reads its second byte as the string's terminating zero), and the offset
    where decoding stopped: `extra` opcodes after the runs pass 16384 registers, so that a
    corrupt value of millions of opcodes costs no more than a valid one."""
    ops: list[tuple[int, int, int]] = []
    data = v
    i, n = HDR, len(v)
    idx = 0
    while i < n:
        b = data[i]
        if b & 0x80:
            length = (b & 3) + 1
            ops.append((VAL, ((b >> 2) & 31) + 1, length))
            i += 1
        elif b & 0x40:
            low = data[i + 1] if i + 1 < n else 0
            length = (((b & 63) << 8) | low) + 1
            ops.append((XZERO, 0, length))
            i += 2
        else:
            length = (b & 63) + 1
            ops.append((ZERO, 0, length))
            i += 1
        idx += length
        if idx > REGISTERS:
            if extra <= 0:
                break
            extra -= 1
    return ops, i > n, min(i, n)


def encode_ops(ops: list[tuple[int, int, int]]) -> bytes:
    out = bytearray()
    for kind, value, length in ops:
        if kind == VAL:
            out.append(0x80 | ((value - 1) << 2) | (length - 1))
        elif kind == XZERO:
            out += bytes((((length - 1) >> 8) | 0x40, (length - 1) & 0xFF))
        else:
            out.append(length - 1)
    return bytes(out)


def sparse_registers(ops: list[tuple[int, int, int]]) -> bytes | None:
    """hllSparseToDense()/hllMerge()'s walk: register values, or None when the runs do not
    add up to exactly 16384 registers (a run that would pass the end stops the walk)."""
    regs = bytearray(REGISTERS)
    idx = 0
    for kind, value, length in ops:
        if idx + length > REGISTERS:
            return None
        if kind == VAL:
            regs[idx : idx + length] = bytes((value,)) * length
        idx += length
    return bytes(regs) if idx == REGISTERS else None


class Sparse:
    """A sparse value being edited: its opcodes, where each starts, and its byte length
    (header included), kept as Redis's in-place edits would leave them."""

    __slots__ = ("ops", "starts", "nbytes", "truncated", "rest")

    PROMOTE = 2

    def __init__(self, v: bytes | bytearray) -> None:
        # Opcodes past the 16384th register are never located; a few are decoded (the merge
        # step may reach them), the rest of a corrupt value is kept as it is.
        self.ops, self.truncated, end = decode_ops(v, 8)
        self.rest = bytes(v[end:])
        self.starts: list[int] = []
        first = 0
        for op in self.ops:
            self.starts.append(first)
            first += op[2]
        self.nbytes = len(v)

    def set(self, index: int, count: int, max_bytes: int) -> int:
        """hllSparseSet(): 1 updated, 0 unchanged, -1 corrupt, PROMOTE: turn dense first."""
        if count > VAL_MAX_VALUE:
            return self.PROMOTE
        ops, starts = self.ops, self.starts
        k = bisect_right(starts, index) - 1
        if k < 0 or (self.truncated and k == len(ops) - 1):
            return -1
        kind, value, runlen = ops[k]
        first = starts[k]
        if index > first + runlen - 1:
            return -1  # past the last opcode: the runs do not cover the register
        done = False
        if kind == VAL:
            if value >= count:
                return 0
            if runlen == 1:
                ops[k] = (VAL, count, 1)
                done = True
        elif kind == ZERO and runlen == 1:
            ops[k] = (VAL, count, 1)
            done = True
        if not done:
            last = first + runlen - 1
            # The split: [run before] VAL(count) [run after], each run of the old kind.
            seq = [(VAL, count, 1)]
            seq_starts = [index]
            grown = 0  # bytes the new sequence adds to the old opcode's
            if kind == VAL:
                if index != first:
                    seq.insert(0, (VAL, value, index - first))
                    seq_starts.insert(0, first)
                    grown += 1
                if index != last:
                    seq.append((VAL, value, last - index))
                    seq_starts.append(index + 1)
                    grown += 1
            else:
                grown = -1 if kind == XZERO else 0
                if index != first:
                    n = index - first
                    seq.insert(0, (XZERO, 0, n) if n > ZERO_MAX else (ZERO, 0, n))
                    seq_starts.insert(0, first)
                    grown += 2 if n > ZERO_MAX else 1
                if index != last:
                    n = last - index
                    seq.append((XZERO, 0, n) if n > ZERO_MAX else (ZERO, 0, n))
                    seq_starts.append(index + 1)
                    grown += 2 if n > ZERO_MAX else 1
            if grown > 0 and self.nbytes + grown > max_bytes:
                return self.PROMOTE
            self.nbytes += grown
            ops[k : k + 1] = seq
            starts[k : k + 1] = seq_starts
        # Merge adjacent VAL opcodes of equal value, up to 5 opcodes from the one before.
        p = k - 1 if k > 0 else 0
        scan = 5
        while p < len(ops) and scan:
            scan -= 1
            if ops[p][0] != VAL:
                p += 1
                continue
            if p + 1 < len(ops) and ops[p + 1][0] == VAL:
                v1, v2 = ops[p][1], ops[p + 1][1]
                n = ops[p][2] + ops[p + 1][2]
                if v1 == v2 and n <= VAL_MAX_LEN:
                    ops[p + 1] = (VAL, v1, n)
                    del ops[p]
                    del starts[p + 1]
                    self.nbytes -= 1
                    continue
            p += 1
        return 1

    def tail(self) -> bytes:
        return encode_ops(self.ops) + self.rest


# ------------------------------------------------------------------ values


def registers(v: bytes | bytearray) -> bytes | None:
    """The register values of a valid HLL value (None: corrupt sparse runs)."""
    if v[4] == DENSE:
        return unpack(v[HDR:])
    return sparse_registers(decode_ops(v)[0])


def to_dense(v: bytearray) -> bool:
    """hllSparseToDense() in place (header kept, cached cardinality included)."""
    if v[4] == DENSE:
        return True
    regs = sparse_registers(decode_ops(v)[0])
    if regs is None:
        return False
    v[HDR:] = pack(regs)
    v[4] = DENSE
    return True


def add(v: bytearray, elements: list[bytes], max_bytes: int) -> tuple[int, bool]:
    """PFADD's loop: (registers changed, False if the value proved corrupt on the way).

    Edits `v` in place (a sparse value may turn dense); the cache is not touched here."""
    updated = 0
    sparse = Sparse(v) if v[4] == SPARSE else None
    ok = True
    mask = REGISTERS - 1
    for element in elements:
        h = murmur64a(element)  # pat_len(), inlined
        index = h & mask
        rest = (h >> P) | (1 << Q)
        count = (rest & -rest).bit_length()
        if sparse is None:
            updated += dense_set(v, index, count)
            continue
        r = sparse.set(index, count, max_bytes)
        if r == Sparse.PROMOTE:
            v[HDR:] = sparse.tail()
            sparse = None
            if not to_dense(v):
                return updated, False
            dense_set(v, index, count)
            updated += 1
        elif r < 0:
            ok = False
            break
        else:
            updated += r
    if sparse is not None:
        v[HDR:] = sparse.tail()
    return updated, ok


def set_registers(v: bytearray, regs: bytes, max_bytes: int) -> None:
    """PFMERGE's write: every non-zero register of `regs` into `v`, in register order."""
    if v[4] == DENSE:
        current = unpack(v[HDR:])
        v[HDR:] = pack(lane_max(current, regs))
        return
    sparse = Sparse(v)
    for index, count in enumerate(regs):
        if not count:
            continue
        if sparse is None:
            dense_set(v, index, count)
            continue
        if sparse.set(index, count, max_bytes) == Sparse.PROMOTE:
            v[HDR:] = sparse.tail()
            sparse = None
            to_dense(v)
            dense_set(v, index, count)
    if sparse is not None:
        v[HDR:] = sparse.tail()


def histogram(v: bytes | bytearray) -> list[int] | None:
    """Register histogram of a value, as hllCount() builds it (None: invalid sparse runs)."""
    if v[4] == DENSE:
        return raw_histogram(unpack(v[HDR:]))
    hist = [0] * 64
    idx = 0
    for kind, value, length in decode_ops(v)[0]:  # stops soon after passing 16384
        idx += length
        hist[value if kind == VAL else 0] += length
    return hist if idx == REGISTERS else None


def raw_histogram(regs: bytes) -> list[int]:
    return [regs.count(i) for i in range(64)]


def _sigma(x: float) -> float:
    if x == 1.0:
        return math.inf
    y, z = 1.0, x
    while True:
        x *= x
        prev = z
        z += x * y
        y += y
        if prev == z:
            return z


def _tau(x: float) -> float:
    if x == 0.0 or x == 1.0:
        return 0.0
    y, z = 1.0, 1 - x
    while True:
        x = math.sqrt(x)
        prev = z
        y *= 0.5
        z -= math.pow(1 - x, 2) * y
        if prev == z:
            return z / 3


def estimate(hist: list[int]) -> int:
    """hllCount(): Otmar Ertl's estimator (arXiv:1702.01284), as Redis computes it."""
    m = float(REGISTERS)
    z = m * _tau((m - hist[Q + 1]) / m)
    for j in range(Q, 0, -1):
        z += hist[j]
        z *= 0.5
    z += m * _sigma(hist[0] / m)
    e = ALPHA_INF * m * m / z
    f = math.floor(e)
    return int(f + 1 if e - f >= 0.5 else f)  # llroundl: halves away from zero


def cached(v: bytes | bytearray) -> int | None:
    """The cached cardinality, or None when it is stale."""
    if v[15] & 0x80:
        return None
    return int.from_bytes(v[8:16], "little")


def store_cached(v: bytearray, card: int) -> None:
    v[8:16] = card.to_bytes(8, "little")


def selftest() -> str:
    """PFSELFTEST, bounded: "" when it passes, else what failed."""
    rnd = random.Random(0)
    # 1) Dense registers: what is set reads back, neighbours untouched.
    v = bytearray(b"HYLL" + bytes(12)) + bytearray(DENSE_BYTES)
    expect = [0] * REGISTERS
    for _round in range(3):
        for i in range(REGISTERS):
            expect[i] = rnd.randrange(64)
        v[HDR:] = pack(bytes(expect))
        if list(unpack(v[HDR:])) != expect:
            return "TESTFAILED Register error"
    # 2) Sparse and dense agree, and the error stays within Redis's bound.
    sparse, dense = empty(), empty()
    dense[HDR:] = bytes(DENSE_BYTES)
    dense[4] = DENSE
    relerr = 1.04 / math.sqrt(REGISTERS)
    done = 0
    for j in (10, 100, 1000, 5000):  # added in batches: about 0.2 s in all
        batch = [b"%d" % i for i in range(done + 1, j + 1)]
        done = j
        add(sparse, batch, 3000)
        add(dense, batch, 3000)
        a, b = histogram(sparse), histogram(dense)
        if a is None or b is None or estimate(a) != estimate(b):
            return "TESTFAILED sparse and dense representations disagree"
        if abs(estimate(b) - j) > 5 * relerr * j + 1:
            return f"TESTFAILED Too big error. card:{estimate(b)} error:{estimate(b) - j}"
    return ""
