"""Known defects and kept differences: the one table the fuzz run and the regression tests read.

UNFIXED: regression id -> why it still fails. Each id names a file in regressions/; the
regression test marks it a strict xfail while it is listed here. When the fix lands, delete
the entry: the test then must pass (a strict xfail that passes is a failure, so a stale entry
shows up too).

KEPT: differences from redis-server 7.0.15 that the differential run tolerates: id -> (one-line
description, reason, predicate on (command, ours, redis)). A difference matched by no entry fails
`make fuzz`.

CRASH_KNOWN: in-process findings (an exception caught by the dispatcher's safety net, i.e. an
`ERR internal error` reply) that are known and unfixed: id -> (reason, predicate on argv).
Like every other exclusion here (parser_skip, parser_disagreement, command_skip, diff_unfixed)
it applies only while its id is in UNFIXED, so deleting the UNFIXED entry re-arms the fuzzers
too. `make fuzz` reports what it excluded by id and does not fail on it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

# --------------------------------------------------------------------------- regressions
# ids: issue 12 items (i12-N-...) and earlier findings. Owners of the fixes: the parser work
# (framing, limits, inline splitting) and the commands work (argument checks, glob, floats).
UNFIXED: dict[str, str] = {}

# Defects of the hiredis path only: a server without hiredis (the standard library's Python,
# IRONCACHE_TEST_PYTHON=/usr/bin/python3) passes these already.
HIREDIS_ONLY = frozenset(
    {
        "hiredis-split-frame-lost",
        "i12-1-array-100000000",
        "hiredis-type-byte-inline",
        "i12-1-array-2147483647",
        "i12-1-array-2147483648",
        "i12-1-array-3000000000-after-command",
        "i12-7-bulk-count-flood",
        "i12-7-mbulk-count-flood",
        "i12-9-null-bulk-top-level",
        "i12-9-null-top-level",
        "i12-9-resp3-set-frame",
        "i12-9-simple-string-args",
    }
)

# --------------------------------------------------------------------------- kept differences
Pred = Callable[[list[bytes], Any, Any], bool]


def _err_prefix(prefix: bytes) -> Pred:
    def pred(cmd: list[bytes], ours: Any, redis: Any) -> bool:
        return (
            isinstance(ours, Exception)
            and isinstance(redis, Exception)
            and str(ours).encode().startswith(prefix)
            and str(redis).encode().startswith(prefix)
        )

    return pred


def _name(*names: bytes) -> Callable[[list[bytes]], bool]:
    wanted = {n.lower() for n in names}
    return lambda cmd: bool(cmd) and cmd[0].lower() in wanted


def _config_set_wording(cmd: list[bytes], ours: Any, redis: Any) -> bool:
    return _name(b"config")(cmd) and _err_prefix(b"ERR CONFIG SET failed")(cmd, ours, redis)


def _srandmember_sample(cmd: list[bytes], ours: Any, redis: Any) -> bool:
    # which members a random sample holds differs; the count and type are compared instead
    if not _name(b"srandmember", b"spop", b"randomkey", b"zrandmember", b"hrandfield")(
        cmd
    ) or isinstance(ours, Exception):
        return False
    if isinstance(ours, list) and isinstance(redis, list):
        return len(ours) == len(redis)
    return type(ours) is type(redis)


def _foreign_cursor(cmd: list[bytes], ours: Any, redis: Any) -> bool:
    if not _name(b"scan", b"hscan", b"sscan", b"zscan")(cmd):
        return False
    cursor = cmd[1] if cmd[0].lower() == b"scan" else (cmd[2] if len(cmd) > 2 else b"0")
    return cursor.strip(b" +0") != b"" and isinstance(ours, list) and isinstance(redis, list)


def _encoding_history(cmd: list[bytes], ours: Any, redis: Any) -> bool:
    # Redis never converts a value back to its compact encoding; IronCache derives it
    return (
        _name(b"object")(cmd)
        and len(cmd) > 1
        and cmd[1].lower() == b"encoding"
        and (ours, redis)
        in {
            (b"embstr", b"raw"),
            (b"int", b"raw"),
            (b"intset", b"hashtable"),
            (b"listpack", b"hashtable"),
        }
    )


KEPT: dict[str, tuple[str, str, Pred]] = {
    "object-encoding-history": (
        "OBJECT ENCODING names the compact encoding where Redis kept the bigger one",
        "Redis's encoding depends on the value's history (APPEND makes a raw string, a set "
        "stays a hashtable after its last non-integer is removed); IronCache stores plain "
        "Python values and names the encoding Redis would give their current content",
        _encoding_history,
    ),
    "scan-foreign-cursor": (
        "SCAN/HSCAN with a non-zero cursor the server never returned walk different keys",
        "IronCache cursors name a slot of the database's key order, Redis's a hash-table "
        "position; "
        "Redis documents an invented cursor as giving no guarantee (neither server crashes)",
        _foreign_cursor,
    ),
    "config-set-wording": (
        "CONFIG SET failures name IronCache's own accepted values after the same prefix",
        "IronCache supports other policies and settings than Redis; the prefix that clients "
        "match on ('ERR CONFIG SET failed (possibly related to argument ...)') is the same",
        _config_set_wording,
    ),
    "random-sample": (
        "SRANDMEMBER/SPOP/RANDOMKEY/ZRANDMEMBER/HRANDFIELD return a different random choice",
        "random by definition; the differential compares the count and the type",
        _srandmember_sample,
    ),
}

# --------------------------------------------------------------------------- in-process findings
CRASH_KNOWN: dict[str, tuple[str, Callable[[list[bytes]], bool]]] = {
    "incrbyfloat-overflow": (
        "OverflowError in the long double emulation (see UNFIXED)",
        _name(b"incrbyfloat", b"hincrbyfloat"),
    ),
    "i12-2-keys-bad-class": (
        "glob character class with a reversed or empty range (see UNFIXED)",
        lambda cmd: _name(b"keys", b"scan", b"hscan")(cmd) and any(b"[" in a for a in cmd[1:]),
    ),
}


def known_crash(argv: list[bytes]) -> str | None:
    """The id of a known in-process finding this command matches, if any."""
    for kid, (_why, pred) in CRASH_KNOWN.items():
        if kid in UNFIXED and pred(argv):  # fixed once its UNFIXED entry is gone
            return kid
    return None


def kept_difference(cmd: list[bytes], ours: Any, redis: Any) -> str | None:
    """The id of the kept difference that explains this pair of replies, if any."""
    for kid, (_desc, _why, pred) in KEPT.items():
        if pred(cmd, ours, redis):
            return kid
    return None


# --------------------------------------------------------------------------- parser findings
_HUGE_COUNT = re.compile(rb"[*$]-?\d{7,}")
_NONCANONICAL = re.compile(rb"(?:^|\n)[*$](?:-?0\d|-0)")
# Bytes hiredis reads as a RESP type where Redis (and RespParser) take an inline command.
_TYPE_BYTES = frozenset(b"$+:-_~%#,(=|>!")
_LINE_TYPE = re.compile(rb"(?:^|\n)[$+:\-_~%#,(=|>!]")


def _inline_type_start(stream: bytes) -> bytes | None:
    """The first top-level request (as Redis frames the stream) that is an inline command
    starting with a RESP type byte, if any: hiredis reads it as RESP instead."""
    from ironcache.protocol import ProtocolError, RespParser

    p = RespParser(1 << 40, 2**31 - 1)
    p.feed(stream)
    while True:
        if p._argv is None:
            rest = bytes(p.buf[p.pos :]).lstrip(b"\r\n")
            if not rest:
                return None
            if rest[0] in _TYPE_BYTES:
                return rest[:8]
        try:
            if p.next_command() is None:
                return None
        except ProtocolError:
            return None


def parser_skip(stream: bytes) -> str | None:
    """Inputs the parser target does not run while their defect is unfixed.

    A declared count of millions makes hiredis allocate for it at once and spend seconds
    freeing it: a stall of the fuzzer itself, not a new finding.
    """
    if "i12-1-array-2147483647" in UNFIXED and _HUGE_COUNT.search(stream):
        return "i12-1-array-2147483647"
    return None


def parser_disagreement(stream: bytes, py: Any, hi: Any, hi_whole: Any) -> str | None:
    """Which known defect explains the Python and hiredis parsers disagreeing, if any.

    py, hi: (commands, error) of each parser on the split reads; hi_whole: hiredis on the
    stream in one read.
    """
    if "i12-9-leading-zero-count" in UNFIXED and _NONCANONICAL.search(stream):
        return "i12-9-leading-zero-count"
    if hi_whole != py:
        # an element that is not a bulk string: Redis refuses the frame, hiredis reads it
        if "i12-9-simple-string-args" in UNFIXED and (py[1] or "").startswith("expected '$'"):
            return "i12-9-simple-string-args"
        start = _inline_type_start(stream)
        if start is None:  # '*0' frames hide a start from the stepping above
            start = next(
                (c[0][:8] for c in py[0] if c and c[0][:1] and c[0][0] in _TYPE_BYTES), None
            )
        if start is None and py[1] is not None and (m := _LINE_TYPE.search(stream)):
            start = m.group(0).lstrip(b"\n")  # refused inline, where hiredis reads RESP
        if start is not None:
            for prefix, kid in (
                (b"$-1", "i12-9-null-bulk-top-level"),
                (b"_", "i12-9-null-top-level"),
                (b"~", "i12-9-resp3-set-frame"),
            ):
                if start.startswith(prefix) and kid in UNFIXED:
                    return kid
            if "hiredis-type-byte-inline" in UNFIXED:
                return "hiredis-type-byte-inline"
        return None
    if "hiredis-split-frame-lost" in UNFIXED:
        return "hiredis-split-frame-lost"
    return None


# --------------------------------------------------------------------------- command stalls
_INT = re.compile(rb"^-?\d+$")


def command_skip(argv: list[bytes]) -> str | None:
    """Commands the command target does not run while their stall is unfixed (each would
    hold the fuzzer for seconds to years, as it holds the server)."""
    if not argv:
        return None
    name = argv[0].lower()
    if (
        name in (b"keys", b"scan", b"hscan")
        and "i12-2-keys-backtracking" in UNFIXED
        and any(a.count(b"*") >= 3 for a in argv[1:])
    ):
        return "i12-2-keys-backtracking"
    if (
        name == b"srandmember"
        and len(argv) > 2
        and "i12-3-srandmember-min" in UNFIXED
        and _INT.match(argv[2])
        and int(argv[2]) < -100_000
    ):
        return "i12-3-srandmember-min"
    if name in (b"incrbyfloat", b"hincrbyfloat") and "i12-4-incrbyfloat-tiny" in UNFIXED:
        m = re.search(rb"[eE][-+]?(\d+)", argv[-1])
        if m and len(m.group(1)) >= 4:
            return "i12-4-incrbyfloat-tiny"
    return None


# --------------------------------------------------------------------------- differential
def _err(x: Any, *prefixes: str) -> bool:
    return isinstance(x, Exception) and str(x).startswith(prefixes)


def _lset(cmd: list[bytes], ours: Any, redis: Any) -> bool:
    return (
        _name(b"lset")(cmd)
        and _err(redis, "ERR no such key", "WRONGTYPE")
        and _err(ours, "ERR value is not an integer")
    )


def _expire(cmd: list[bytes], ours: Any, redis: Any) -> bool:
    return _err(redis, "ERR invalid expire time") and not _err(ours, "ERR invalid expire time")


def _select(cmd: list[bytes], ours: Any, redis: Any) -> bool:
    return (
        _name(b"select")(cmd)
        and _err(redis, "ERR value is out of range, value must")
        and _err(ours, "ERR DB index is out of range")
    )


def _trailing(cmd: list[bytes], ours: Any, redis: Any) -> bool:
    return (
        _err(ours, "")
        and _err(redis, "")
        and str(ours).rstrip() == str(redis)
        and str(ours) != str(redis)
    )


def _cursor(cmd: list[bytes], ours: Any, redis: Any) -> bool:
    return _name(b"scan", b"hscan")(cmd) and (
        _err(ours, "ERR invalid cursor") != _err(redis, "ERR invalid cursor")
    )


def _internal(*names: bytes) -> Pred:
    return lambda cmd, ours, redis: _name(*names)(cmd) and _err(ours, "ERR internal error")


def _hex(cmd: list[bytes], ours: Any, redis: Any) -> bool:
    return (
        _name(b"incrbyfloat", b"hincrbyfloat")(cmd)
        and b"0x" in cmd[-1].lower()
        and _err(ours, "ERR value is not a valid float")
    )


def _float_range(cmd: list[bytes], ours: Any, redis: Any) -> bool:
    # Redis adds in long double: sums past the double range are numbers there
    return _name(b"incrbyfloat", b"hincrbyfloat")(cmd) and (
        _err(ours, "ERR internal error", "ERR increment would produce NaN or Infinity")
        and not _err(redis, "ERR increment would produce NaN or Infinity")
    )


def _pexpire_min(cmd: list[bytes], ours: Any, redis: Any) -> bool:
    return (
        _name(b"pexpire", b"pexpireat")(cmd)
        and cmd[2:3] == [b"-9223372036854775808"]
        and _err(ours, "ERR invalid expire time")
        and not _err(redis, "ERR")
    )


def _unterminated(cmd: list[bytes], ours: Any, redis: Any) -> bool:
    return _name(b"keys", b"scan", b"hscan")(cmd) and any(
        a.count(b"[") > a.count(b"]") for a in cmd[1:]
    )


def _srand_count(cmd: list[bytes], ours: Any, redis: Any) -> bool:
    return (
        _name(b"srandmember")(cmd)
        and _err(ours, "ERR value is out of range, must be positive")
        and _err(redis, "ERR value is not")
    )


DIFF_UNFIXED: dict[str, Pred] = {
    "srandmember-count-parse": _srand_count,
    "pexpire-negative-min": _pexpire_min,
    "glob-unterminated-class": _unterminated,
    "lset-check-order": _lset,
    "expire-overflow": _expire,
    "select-int-range": _select,
    "error-trailing-newline": _trailing,
    "scan-cursor-parse": _cursor,
    "incrbyfloat-overflow": _float_range,
    "hex-float": _hex,
    "i12-2-keys-bad-class": _internal(b"keys", b"scan"),
}


def diff_unfixed(cmd: list[bytes], ours: Any, redis: Any) -> str | None:
    """The unfixed defect (an id of UNFIXED) that explains this difference, if any."""
    for kid, pred in DIFF_UNFIXED.items():
        if kid in UNFIXED and pred(cmd, ours, redis):
            return kid
    return None
