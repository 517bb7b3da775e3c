"""HyperLogLog commands: PFADD, PFCOUNT, PFMERGE, PFSELFTEST (the structure: ironcache.hll).

An HLL is a string value; these commands keep it as a bytearray and edit it in place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ironcache import hll
from ironcache.commands import WRONGTYPE, CommandError, command
from ironcache.keyspace import NOTIFY_STRING, STR_OVERHEAD, Entry
from ironcache.protocol import OK, ONE, ZERO, bulk, integer

if TYPE_CHECKING:
    from ironcache.client import Client


def _checked(c: Client, key: bytes) -> Entry | None:
    """The key's entry if it holds a valid HLL (None when missing), else Redis's errors."""
    e = c.db.lookup(key)
    if e is None:
        return None
    v = e.value
    if v.__class__ is not bytes and v.__class__ is not bytearray:
        raise CommandError(WRONGTYPE)
    if not hll.is_hll(v):
        raise CommandError(hll.NOT_HLL)
    return e


def _mutable(e: Entry) -> bytearray:
    if e.value.__class__ is bytes:
        e.value = bytearray(e.value)
    return e.value  # type: ignore[no-any-return]


def _resized(c: Client, e: Entry, before: int) -> None:
    grown = len(e.value) - before
    if grown:
        e.size += grown
        c.db.keyspace.used += grown


def _max_bytes(c: Client) -> int:
    return int(c.server.config.values["hll-sparse-max-bytes"])


@command("pfadd", -2, "write denyoom fast", (1, 1, 1), "hyperloglog",
         "Adds elements to a HyperLogLog key. Creates the key if it doesn't exist.", "2.8.9")
def pfadd(c: Client, argv: list[bytes]) -> bytes:
    db, key = c.db, argv[1]
    e = _checked(c, key)
    created = e is None
    if e is None:
        v = hll.empty()
        db.set(key, v, STR_OVERHEAD + len(v))
        e = db.data[key]
    v = _mutable(e)
    before = len(v)
    updated, ok = hll.add(v, argv[2:], _max_bytes(c))
    _resized(c, e, before)
    if not ok:
        raise CommandError(hll.INVALID)
    if updated or created:
        hll.invalidate(v)
        if not created:
            db.touched(key)
        db.notify(NOTIFY_STRING, b"pfadd", key)
    return ONE if updated or created else ZERO


@command("pfcount", -2, "readonly may_replicate", (1, -1, 1), "hyperloglog",
         "Returns the approximated cardinality of the set(s) observed by the HyperLogLog "
         "key(s).", "2.8.9")
def pfcount(c: Client, argv: list[bytes]) -> bytes:
    if len(argv) > 2:
        # The union's cardinality, from the registers' maxima (nothing is cached).
        regs = bytes(hll.REGISTERS)
        for key in argv[1:]:
            e = _checked(c, key)
            if e is None:
                continue
            r = hll.registers(e.value)
            if r is None:
                raise CommandError(hll.INVALID)
            regs = hll.lane_max(regs, r)
        return integer(hll.estimate(hll.raw_histogram(regs)))
    e = _checked(c, argv[1])
    if e is None:
        return ZERO
    card = hll.cached(e.value)
    if card is None:
        hist = hll.histogram(e.value)
        if hist is None:
            raise CommandError(hll.INVALID)
        card = hll.estimate(hist)
        # The cache is part of the value, as in Redis: GET shows it, WATCHers see a change.
        hll.store_cached(_mutable(e), card)
        c.db.touched(argv[1])
    return integer(card)


@command("pfmerge", -2, "write denyoom", (1, -1, 1), "hyperloglog",
         "Merges one or more HyperLogLog values into a single key.", "2.8.9")
def pfmerge(c: Client, argv: list[bytes]) -> bytes:
    db, dst = c.db, argv[1]
    regs = bytes(hll.REGISTERS)
    dense = False
    for key in argv[1:]:  # the destination is one of the inputs
        e = _checked(c, key)
        if e is None:
            continue
        dense = dense or e.value[4] == hll.DENSE
        r = hll.registers(e.value)
        if r is None:
            raise CommandError(hll.INVALID)
        regs = hll.lane_max(regs, r)
    target = db.lookup(dst)
    if target is None:
        v = hll.empty()
        db.set(dst, v, STR_OVERHEAD + len(v))
        target = db.data[dst]
    v = _mutable(target)
    before = len(v)
    if dense and not hll.to_dense(v):
        _resized(c, target, before)
        raise CommandError(hll.INVALID)
    hll.set_registers(v, regs, _max_bytes(c))
    hll.invalidate(v)
    _resized(c, target, before)
    db.touched(dst)
    db.notify(NOTIFY_STRING, b"pfadd", dst)
    return OK


@command("pfselftest", 1, "admin", (0, 0, 0), "hyperloglog",
         "An internal command for testing HyperLogLog values.", "2.8.9")
def pfselftest(c: Client, argv: list[bytes]) -> bytes:
    failed = hll.selftest()
    if failed:
        raise CommandError(failed)
    return OK


@command("pfdebug", 3, "write denyoom admin", (2, 2, 1), "hyperloglog",
         "Internal commands for debugging HyperLogLog values.", "2.8.9")
def pfdebug(c: Client, argv: list[bytes]) -> bytes:
    sub = argv[1].lower()
    name = argv[1].decode(errors="replace")
    e = _checked(c, argv[2])
    if e is None:
        raise CommandError("ERR The specified key does not exist")
    if sub not in (b"getreg", b"decode", b"encoding", b"todense"):
        raise CommandError(f"ERR Unknown PFDEBUG subcommand '{name}'")
    v = _mutable(e)
    if sub in (b"getreg", b"todense"):
        converted = v[4] == hll.SPARSE
        if converted:
            before = len(v)
            if not hll.to_dense(v):
                raise CommandError(hll.INVALID)
            _resized(c, e, before)
            c.db.touched(argv[2])
        if sub == b"todense":
            return ONE if converted else ZERO
        return b"*%d\r\n" % hll.REGISTERS + b"".join(map(integer, hll.unpack(v[hll.HDR :])))
    if sub == b"encoding":
        return b"+dense\r\n" if v[4] == hll.DENSE else b"+sparse\r\n"
    if v[4] != hll.SPARSE:
        raise CommandError("ERR HLL encoding is not sparse")
    names = {hll.ZERO: "z:%d", hll.XZERO: "Z:%d"}
    words = [
        f"v:{value},{length}" if kind == hll.VAL else names[kind] % length
        for kind, value, length in hll.decode_ops(v, len(v))[0]
    ]
    return bulk(" ".join(words).encode())
