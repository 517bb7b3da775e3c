"""The command table and the helpers every command family shares.

A handler takes the client and the argv (command name included) and returns the encoded
reply. Errors are raised as `CommandError` with Redis's exact wording, because clients
parse it (redis-py maps `WRONGTYPE`, `NOAUTH`, `EXECABORT`... to exception classes).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

from ironcache import longdouble
from ironcache.glob import matcher
from ironcache.protocol import bulk, bulk_array
from ironcache.redis_table import SUBCOMMANDS

if TYPE_CHECKING:
    from ironcache.client import Client

Handler = Callable[["Client", list[bytes]], bytes]


class CommandError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
NOT_INT = "ERR value is not an integer or out of range"
NOT_FLOAT = "ERR value is not a valid float"
SYNTAX = "ERR syntax error"
REDIS_COMPAT_VERSION = "7.2.0"  # the Redis version IronCache answers as (HELLO, INFO)


@dataclass(slots=True, eq=False)
class Command:
    name: str
    handler: Handler
    arity: int  # > 0 exact, < 0 minimum (Redis's convention, argv[0] included)
    flags: frozenset[str]
    first_key: int
    last_key: int
    step: int
    group: str
    summary: str
    since: str
    denyoom: bool = False  # may grow memory: evict first, or refuse with -OOM
    noauth: bool = False  # allowed before AUTH
    batched: bool = True  # may run in Server.execute_batch()'s fast loop (see NOT_BATCHED)
    # The argument counts the batch loop runs it with, as one chained comparison: the arity
    # as a range, empty (min > max) when not batched, so that one test says both.
    min_argc: int = 1
    max_argc: int = 0
    client_state: bool = False  # changes the connection's state: the handover records it
    # Keys found by reading the arguments (SORT ... STORE), where first/last/step cannot say.
    find_keys: Callable[[list[bytes]], list[bytes]] | None = None
    # INFO commandstats, bumped where the command runs (Server.execute and its batch loop).
    calls: int = 0
    secs: float = 0.0
    rejected_calls: int = 0
    failed_calls: int = 0
    # A container's (CLIENT, CONFIG...) subcommands by lower-case name, each a Command named
    # "container|sub": COMMAND lists them, commandstats and CLIENT LIST name them.
    subcommands: dict[bytes, Command] | None = None
    parent: Command | None = None
    # Keys whose positions depend on the arguments (EVAL's numkeys): set by the family.
    key_finder: Callable[[list[bytes]], list[bytes]] | None = None

    def keys(self, argv: list[bytes]) -> list[bytes]:
        if self.find_keys is not None:
            return self.find_keys(argv)
        if self.key_finder is not None:
            return self.key_finder(argv)
        if not self.first_key:
            return []
        last = self.last_key if self.last_key >= 0 else len(argv) + self.last_key
        return argv[self.first_key : last + 1 : self.step]


# Commands that change what Server.execute_batch() reads once per batch (MULTI state, auth,
# closing, maxmemory) or read the counters it keeps: they run one by one through execute().
# A new family says so in its own file instead: @command(..., batched=False).
NOT_BATCHED = frozenset(
    ("multi", "exec", "discard", "auth", "hello", "reset", "quit", "client", "shutdown")
    + ("config", "info")
)

# Flags of commands MONITOR does not show (too dangerous, or shown by the command itself).
NOT_MONITORED = frozenset(("admin", "skip_monitor"))

TABLE: dict[bytes, Command] = {}  # by lower-case name: what COMMAND lists
# Lookup table with upper-case names too: clients send GET or get, rarely Get.
ALIASES: dict[bytes, Command] = {}


def _argc_range(arity: int, batched: bool) -> tuple[int, int]:
    """Command.min_argc and max_argc."""
    if not batched:
        return 1, 0
    return (arity, arity) if arity > 0 else (-arity, 1 << 62)


def command(
    name: str,
    arity: int,
    flags: str = "",
    keys: tuple[int, int, int] = (0, 0, 0),
    group: str = "generic",
    summary: str = "",
    since: str = "1.0.0",
    batched: bool = True,
    client_state: bool = False,
    find_keys: Callable[[list[bytes]], list[bytes]] | None = None,
) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        fl = frozenset(flags.split())
        TABLE[name.encode()] = Command(
            name,
            fn,
            arity,
            fl,
            *keys,
            group,
            summary or fn.__doc__ or "",
            since,
            "denyoom" in fl,
            "noauth" in fl,
            batched and name not in NOT_BATCHED,
            *_argc_range(arity, batched and name not in NOT_BATCHED),
            client_state,
            find_keys,
        )
        return fn

    return register


def subcommands(
    container: str, arities: dict[bytes, int], flags: dict[bytes, str] | None = None
) -> None:
    """Register the subcommands of a container command (after its @command): Server.execute
    checks their arity before running or queueing them, COMMAND lists them. Flags and key
    positions are Redis's (redis_table) unless `flags` names them."""
    parent = TABLE[container.encode()]
    parent.subcommands = {}
    parent.batched = False  # execute() checks the subcommand and names it in the stats
    parent.min_argc, parent.max_argc = _argc_range(parent.arity, False)
    known = SUBCOMMANDS.get(container, {})
    for sub, arity in arities.items():
        redis = known.get(sub.decode())
        if flags and sub in flags:
            fl = frozenset(flags[sub].split())
        elif redis is not None:
            fl = frozenset(redis[1])
        else:
            fl = parent.flags
        first, last, step = redis[2] if redis is not None else (0, 0, 0)
        parent.subcommands[sub] = Command(
            f"{container}|{sub.decode()}",
            parent.handler,
            arity,
            fl,
            first,
            last,
            step,
            parent.group,
            parent.summary,
            parent.since,
            "denyoom" in fl,
            "noauth" in fl,
            parent.batched,
            *_argc_range(arity, parent.batched),
            parent.client_state,
            parent=parent,
        )


def reset_command_stats() -> None:
    for cmd in TABLE.values():
        cmd.calls = cmd.rejected_calls = cmd.failed_calls = 0
        cmd.secs = 0.0
        for sub in (cmd.subcommands or {}).values():
            sub.calls = sub.rejected_calls = sub.failed_calls = 0
            sub.secs = 0.0


# ------------------------------------------------------------------ argument parsing


def to_int(v: bytes, message: str = NOT_INT) -> int:
    # Redis accepts only canonical integers: no spaces, '+', leading zeros or overflow.
    digits = v[1:] if v[:1] == b"-" else v
    if not digits.isdigit() or (digits[0] == 0x30 and len(digits) > 1) or len(digits) > 19:
        raise CommandError(message)
    n = int(v)
    if not -(2**63) <= n < 2**63 or v == b"-0":
        raise CommandError(message)
    return n


def to_float(v: bytes) -> float:
    try:
        s = v.decode("ascii")
    except UnicodeDecodeError:
        raise CommandError(NOT_FLOAT) from None
    if not s or s != s.strip() or s.lower() in ("nan", "+nan", "-nan") or "_" in s:
        raise CommandError(NOT_FLOAT)
    try:
        x = float(s)
    except ValueError:
        raise CommandError(NOT_FLOAT) from None
    if math.isnan(x):
        raise CommandError(NOT_FLOAT)
    return x


def add_floats(
    old: bytes | None, incr: bytes, not_float: str = NOT_FLOAT, finite_incr: bool = False
) -> bytes:
    """INCRBYFLOAT / HINCRBYFLOAT arithmetic as Redis does it (ironcache.longdouble).

    INCRBYFLOAT checks the stored value, then the increment; HINCRBYFLOAT (`finite_incr`)
    checks the increment first and refuses an infinite one, then the stored value."""
    if finite_incr:
        inc = longdouble.parse(incr)
        if inc is None:
            raise CommandError(NOT_FLOAT)
        if isinstance(inc, longdouble.Inf):
            raise CommandError("ERR value is NaN or Infinity")
    base: longdouble.Value = Fraction(0)
    if old is not None:
        parsed = longdouble.parse(old)
        if parsed is None:
            raise CommandError(not_float)
        base = parsed
    if not finite_incr:
        inc = longdouble.parse(incr)
        if inc is None:
            raise CommandError(NOT_FLOAT)
    total = longdouble.add(base, inc)
    if total is None:
        raise CommandError("ERR increment would produce NaN or Infinity")
    return longdouble.format_human(total)


def subcommand(argv: list[bytes], arities: dict[bytes, int]) -> bytes:
    """The lower-case subcommand of a container command (CONFIG GET...), checked as Redis does."""
    sub = argv[1].lower()
    arity = arities.get(sub)
    container = argv[0].decode(errors="replace")
    if arity is None:
        raise CommandError(
            f"ERR unknown subcommand '{argv[1][:128].decode(errors='replace')}'. "
            f"Try {container.upper()} HELP."
        )
    if len(argv) != arity if arity > 0 else len(argv) < -arity:
        raise CommandError(
            f"ERR wrong number of arguments for '{container.lower()}|{sub.decode()}' command"
        )
    return sub


# ------------------------------------------------------------ SCAN cursors (SCAN, HSCAN, SSCAN)


def mpop_args(
    argv: list[bytes], at: int, first: bytes, second: bytes
) -> tuple[list[bytes], bool, int]:
    """[numkeys key... FIRST|SECOND [COUNT n]] from argv[at] (LMPOP, ZMPOP and their blocking
    forms), with Redis's checks in Redis's order: (keys, whether the side is `first`, count)."""
    numkeys = to_int(argv[at], "ERR numkeys should be greater than 0")
    if numkeys < 1:
        raise CommandError("ERR numkeys should be greater than 0")
    where = at + numkeys + 1
    if where >= len(argv):
        raise CommandError(SYNTAX)
    side = argv[where].lower()
    if side not in (first, second):
        raise CommandError(SYNTAX)
    count = -1
    j = where + 1
    while j < len(argv):
        if count == -1 and argv[j].lower() == b"count" and j + 1 < len(argv):
            count = to_int(argv[j + 1], "ERR count should be greater than 0")
            if count < 1:
                raise CommandError("ERR count should be greater than 0")
            j += 2
        else:
            raise CommandError(SYNTAX)
    return argv[at + 1 : where], side == first, max(count, 1)


def scan_reply(cursor: int, items: list[bytes]) -> bytes:
    return b"*2\r\n" + bulk(b"%d" % cursor) + bulk_array(items)


def parse_cursor(raw: bytes) -> int:
    """A cursor as Redis 7.0 reads it: strtoul base 10, so a sign is taken ('-1' wraps to
    2**64-1) and '' is 0, but a leading space, trailing bytes or overflow are refused."""
    digits = raw[1:] if raw[:1] in (b"+", b"-") else raw
    if not raw:
        return 0
    if not digits.isdigit() or len(digits.lstrip(b"0")) > 20:
        raise CommandError("ERR invalid cursor")
    n = int(digits)
    if n >= 2**64:
        raise CommandError("ERR invalid cursor")
    return -n % 2**64 if raw[:1] == b"-" else n


def scan_options(
    argv: list[bytes], start: int, allow_type: bool
) -> tuple[int, Callable[[bytes], bool], bytes | None]:
    count, match, kind = 10, matcher(b"*"), None
    i = start
    while i < len(argv):
        opt = argv[i].lower()
        if i + 1 >= len(argv):
            raise CommandError(SYNTAX)
        if opt == b"count":
            count = to_int(argv[i + 1])
            if count < 1:
                raise CommandError(SYNTAX)
        elif opt == b"match":
            match = matcher(argv[i + 1])
        elif opt == b"type" and allow_type:
            kind = argv[i + 1].lower()
        else:
            raise CommandError(SYNTAX)
        i += 2
    return count, match, kind
