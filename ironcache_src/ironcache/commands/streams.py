"""Stream commands (ironcache.stream), as Redis 7.0.15's t_stream.c answers them.

Writes whose replay could choose differently (an XADD `*` ID, `~` trimming that depends on
node sizes) rewrite their argv in place, as Redis rewrites what it propagates, so the
journal replays the outcome. XREAD/XREADGROUP BLOCK wait through ironcache.blocking; the
argv they leave for a handover names the IDs `$` stood for.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ironcache.blocking import deadline, wait
from ironcache.commands import (
    SYNTAX,
    TABLE,
    WRONGTYPE,
    CommandError,
    command,
    subcommand,
    subcommands,
    to_int,
)
from ironcache.keyspace import NOTIFY_STREAM, Entry, now_ms
from ironcache.protocol import (
    EMPTY_ARRAY,
    NULL_ARRAY,
    OK,
    ONE,
    ZERO,
    bulk,
    encode,
    integer,
    null,
    null_array,
    string2ll,
)
from ironcache.stream import (
    ID,
    INVALID_READ,
    MAX,
    MAX_ID,
    ZERO_ID,
    Consumer,
    Group,
    Nack,
    Stream,
    decr,
    id_bytes,
    incr,
)

if TYPE_CHECKING:
    from ironcache.client import Client

K1 = (1, 1, 1)
INVALID_ID = "ERR Invalid stream ID specified as stream command argument"
XREAD_BLOCKED_COUNT = 1000
_STRTOULL = re.compile(rb"[ \t\n\v\f\r]*([+-]?)([0-9]+)\Z")


# ------------------------------------------------------------------ IDs


def _ull(s: bytes) -> int | None:
    """Redis's string2ull: string2ll, else strtoull (spaces, a sign, leading zeros)."""
    v = string2ll(s)
    if v is not None:
        return v if v >= 0 else None
    m = _STRTOULL.match(s)
    if m is None:
        return None
    n = int(m.group(2))
    if n > MAX:
        return None
    return (-n) % 2**64 if m.group(1) == b"-" else n


def parse_id(
    raw: bytes, missing_seq: int = 0, strict: bool = False, star: bool = False
) -> tuple[ID, bool]:
    """streamGenericParseIDOrReply: (ID, whether the sequence was given)."""
    if len(raw) > 127 or (strict and raw in (b"-", b"+")):
        raise CommandError(INVALID_ID)
    if raw == b"-":
        return ZERO_ID, True
    if raw == b"+":
        return MAX_ID, True
    raw = raw.split(b"\0", 1)[0]
    ms_part, dash, seq_part = raw.partition(b"-")
    ms = _ull(ms_part)
    if ms is None:
        raise CommandError(INVALID_ID)
    if not dash:
        return (ms, missing_seq), True
    if star and seq_part == b"*":
        return (ms, 0), False
    seq = _ull(seq_part)
    if seq is None:
        raise CommandError(INVALID_ID)
    return (ms, seq), True


def _interval(raw: bytes, missing_seq: int) -> tuple[ID, bool]:
    if len(raw) > 1 and raw[:1] == b"(":
        return parse_id(raw[1:], missing_seq, strict=True)[0], True
    return parse_id(raw, missing_seq)[0], False


def _range_ids(lo_raw: bytes, hi_raw: bytes) -> tuple[ID, ID]:
    lo, ex = _interval(lo_raw, 0)
    if ex:
        nxt = incr(lo)
        if nxt is None:
            raise CommandError("ERR invalid start ID for the interval")
        lo = nxt
    hi, ex = _interval(hi_raw, MAX)
    if ex:
        prv = decr(hi)
        if prv is None:
            raise CommandError("ERR invalid end ID for the interval")
        hi = prv
    return lo, hi


# ------------------------------------------------------------------ replies


def _entry(i: ID, fields: list[bytes]) -> bytes:
    idb = id_bytes(i)
    parts = [b"*2\r\n$%d\r\n%s\r\n*%d\r\n" % (len(idb), idb, len(fields))]
    parts += [b"$%d\r\n%s\r\n" % (len(f), f) for f in fields]
    return b"".join(parts)


def _entries(items: list[tuple[ID, list[bytes]]]) -> bytes:
    return b"*%d\r\n" % len(items) + b"".join(_entry(i, f) for i, f in items)


def _entry_value(i: ID, fields: list[bytes]) -> list[Any]:
    return [id_bytes(i), list(fields)]


def _streams_reply(c: Client, parts: list[tuple[bytes, bytes]]) -> bytes:
    head = b"%%%d\r\n" % len(parts) if c.resp == 3 else b"*%d\r\n" % len(parts)
    if c.resp == 3:
        return head + b"".join(bulk(k) + body for k, body in parts)
    return head + b"".join(b"*2\r\n" + bulk(k) + body for k, body in parts)


# ------------------------------------------------------------------ lookups


def read_stream(c: Client, key: bytes) -> tuple[Entry, Stream] | None:
    e = c.db.lookup(key)
    if e is None:
        return None
    if not isinstance(e.value, Stream):
        raise CommandError(WRONGTYPE)
    return e, e.value


def _changed(c: Client, key: bytes, e: Entry, s: Stream, before: int) -> None:
    c.db.resized(key, e, s.size() - before)


def _create(c: Client, key: bytes) -> tuple[Entry, Stream]:
    s = Stream()
    c.db.set(key, s, s.size())
    return c.db.data[key], s


def _consumer(c: Client, key: bytes, g: Group, name: bytes, now: int) -> Consumer:
    """The group's consumer `name`, created when missing (announced then, as Redis does)."""
    if name not in g.consumers:
        c.db.notify(NOTIFY_STREAM, b"xgroup-createconsumer", key)
    cons = g.consumer(name, now)
    assert cons is not None
    return cons


def _ready(c: Client, key: bytes) -> None:
    """New data (or a destroyed group): blocked XREAD/XREADGROUP clients look again."""
    db = c.db
    if db.blocked and key in db.blocked:
        c.server.keyspace.signal_ready(db, key)


def _nogroup(key: bytes, group: bytes, suffix: str = "") -> CommandError:
    return CommandError(
        f"NOGROUP No such key '{key.decode(errors='replace')}' or consumer group "
        f"'{group.decode(errors='replace')}'{suffix}"
    )


# ------------------------------------------------------------------ XADD / XTRIM


class TrimArgs:
    __slots__ = ("maxlen", "minid", "approx", "limit", "arg_idx", "id", "id_given", "seq_given",
                 "nomkstream", "idpos")

    def __init__(self) -> None:
        self.maxlen: int | None = None
        self.minid: ID | None = None
        self.approx = False
        self.limit = 0
        self.arg_idx = 0
        self.id: ID = ZERO_ID
        self.id_given = False
        self.seq_given = True
        self.nomkstream = False
        self.idpos = 0

    @property
    def strategy(self) -> bool:
        return self.maxlen is not None or self.minid is not None


BOTH = "ERR syntax error, MAXLEN and MINID options at the same time are not compatible"


def _trim_args(c: Client, argv: list[bytes], xadd: bool) -> TrimArgs:
    a = TrimArgs()
    limit_given = False
    i = 2
    n = len(argv)
    while i < n:
        more = n - 1 - i
        opt = argv[i]
        low = opt.lower()
        if xadd and opt == b"*":
            break
        if (low == b"maxlen" or low == b"minid") and more:
            if a.strategy:
                raise CommandError(BOTH)
            a.approx = False
            nxt = argv[i + 1]
            if more >= 2 and nxt == b"~":
                a.approx = True
                i += 1
            elif more >= 2 and nxt == b"=":
                i += 1
            if low == b"maxlen":
                a.maxlen = to_int(argv[i + 1])
                if a.maxlen < 0:
                    raise CommandError("ERR The MAXLEN argument must be >= 0.")
            else:
                a.minid = parse_id(argv[i + 1], 0, strict=True)[0]
            i += 1
            a.arg_idx = i
        elif low == b"limit" and more:
            a.limit = to_int(argv[i + 1])
            if a.limit < 0:
                raise CommandError("ERR The LIMIT argument must be >= 0.")
            limit_given = True
            i += 1
        elif xadd and low == b"nomkstream":
            a.nomkstream = True
        elif xadd:
            a.id, a.seq_given = parse_id(opt, 0, strict=True, star=True)
            a.id_given = True
            break
        else:
            raise CommandError(SYNTAX)
        i += 1
    a.idpos = i
    if a.limit and not a.strategy:
        raise CommandError(
            "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy"
        )
    if not xadd and not a.strategy:
        raise CommandError("ERR syntax error, XTRIM must be called with a trimming strategy")
    if c.id == 0:  # journal replay: the outcome was journaled, trim exactly
        a.limit = 0
    elif limit_given:
        if not a.approx:
            raise CommandError(
                "ERR syntax error, LIMIT cannot be used without the special ~ option"
            )
    elif a.approx:
        a.limit = 100 * c.server.config["stream-node-max-entries"]
        if a.limit <= 0:
            a.limit = 10000
        a.limit = min(a.limit, 1000000)
    else:
        a.limit = 0
    return a


def _trim(s: Stream, a: TrimArgs) -> int:
    return s.trim(a.maxlen, a.minid, a.approx, a.limit)


def _trim_outcome(s: Stream, a: TrimArgs) -> list[bytes]:
    """MAXLEN/MINID = <what the stream holds now>: how an approximate trim replays."""
    if a.maxlen is not None:
        return [b"MAXLEN", b"=", b"%d" % len(s)]
    first = s.first_id if len(s) else incr(s.last_id) or s.last_id
    return [b"MINID", b"=", id_bytes(first)]


@command("xadd", -5, "write denyoom fast", K1, "stream",
         "Appends a new entry to a stream.", "5.0.0")
def xadd(c: Client, argv: list[bytes]) -> bytes:
    a = _trim_args(c, argv, True)
    field_pos = a.idpos + 1
    nfields = len(argv) - field_pos
    if nfields < 2 or nfields % 2:
        raise CommandError("ERR wrong number of arguments for 'xadd' command")
    if a.id_given and a.seq_given and a.id == ZERO_ID:
        raise CommandError("ERR The ID specified in XADD must be greater than 0-0")
    key = argv[1]
    found = read_stream(c, key)
    if found is None:
        if a.nomkstream:
            return null(c.resp)
        e, s = None, Stream()
    else:
        e, s = found
    last = s.last_id
    if last == MAX_ID:
        raise CommandError(
            "ERR The stream has exhausted the last possible ID, unable to add more items"
        )
    too_small = CommandError(
        "ERR The ID specified in XADD is equal or smaller than the target stream top item"
    )
    if a.id_given:
        if a.seq_given:
            new = a.id
        elif last[0] == a.id[0]:
            if last[1] == MAX:  # Redis fails here without setting errno: its other message
                raise CommandError("ERR Elements are too large to be stored")
            new = (last[0], last[1] + 1)
        else:
            new = a.id
    else:
        ms = now_ms()
        new = (ms, 0) if ms > last[0] else incr(last) or ZERO_ID
    if new <= last:
        raise too_small
    if e is None:
        e, s = _create(c, key)
    before = s.size()
    cfg = c.server.config
    fields = argv[field_pos:]
    s.append(new, fields, cfg["stream-node-max-entries"], cfg["stream-node-max-bytes"])
    reply = bulk(id_bytes(new))
    c.db.notify(NOTIFY_STREAM, b"xadd", key)
    if a.strategy and _trim(s, a):
        c.db.notify(NOTIFY_STREAM, b"xtrim", key)
    _changed(c, key, e, s, before)
    # What the journal replays: the ID chosen and the trim's outcome.
    journaled = [argv[0], key]
    if a.strategy:
        journaled += _trim_outcome(s, a) if a.approx else (
            [b"MAXLEN", b"=", b"%d" % a.maxlen] if a.maxlen is not None
            else [b"MINID", b"=", id_bytes(a.minid or ZERO_ID)]
        )
    argv[:] = [*journaled, id_bytes(new), *fields]
    _ready(c, key)
    return reply


@command("xtrim", -4, "write", K1, "stream", "Deletes entries from the start of a stream.",
         "6.2.0")
def xtrim(c: Client, argv: list[bytes]) -> bytes:
    a = _trim_args(c, argv, False)
    found = read_stream(c, argv[1])
    if found is None:
        return ZERO
    e, s = found
    before = s.size()
    deleted = _trim(s, a)
    if deleted:
        _changed(c, argv[1], e, s, before)
        c.db.notify(NOTIFY_STREAM, b"xtrim", argv[1])
        if a.approx:
            argv[:] = [argv[0], argv[1], *_trim_outcome(s, a)]
    return integer(deleted)


@command("xdel", -3, "write fast", K1, "stream", "Deletes entries from a stream.", "5.0.0")
def xdel(c: Client, argv: list[bytes]) -> bytes:
    found = read_stream(c, argv[1])
    if found is None:
        return ZERO
    ids = [parse_id(raw, 0, strict=True)[0] for raw in argv[2:]]
    e, s = found
    before = s.size()
    deleted = 0
    for i in ids:
        if s.delete(i):
            if i > s.max_deleted:
                s.max_deleted = i
            deleted += 1
    if deleted:
        _changed(c, argv[1], e, s, before)
        c.db.notify(NOTIFY_STREAM, b"xdel", argv[1])
    return integer(deleted)


@command("xlen", 2, "readonly fast", K1, "stream", "Returns the number of entries.", "5.0.0")
def xlen(c: Client, argv: list[bytes]) -> bytes:
    found = read_stream(c, argv[1])
    return ZERO if found is None else integer(len(found[1]))


# ------------------------------------------------------------------ XRANGE / XREVRANGE


def _xrange(c: Client, argv: list[bytes], rev: bool) -> bytes:
    lo_raw, hi_raw = (argv[3], argv[2]) if rev else (argv[2], argv[3])
    lo, hi = _range_ids(lo_raw, hi_raw)
    count = -1
    j = 4
    while j < len(argv):
        if argv[j].lower() == b"count" and j + 1 < len(argv):
            count = max(to_int(argv[j + 1]), 0)
            j += 2
        else:
            raise CommandError(SYNTAX)
    found = read_stream(c, argv[1])
    if found is None:
        return EMPTY_ARRAY
    if count == 0:
        return null_array(c.resp)
    return _entries(found[1].range(lo, hi, max(count, 0), rev))


@command("xrange", -4, "readonly", K1, "stream", "Returns entries in an ID range.", "5.0.0")
def xrange(c: Client, argv: list[bytes]) -> bytes:
    return _xrange(c, argv, False)


@command("xrevrange", -4, "readonly", K1, "stream", "Returns entries in reverse order.",
         "5.0.0")
def xrevrange(c: Client, argv: list[bytes]) -> bytes:
    return _xrange(c, argv, True)


# ------------------------------------------------------------------ consumer group reads


def _deliver(
    s: Stream, g: Group, cons: Consumer, start: ID, count: int, noack: bool, now: int
) -> list[tuple[ID, list[bytes]]]:
    """New entries for a group (`>`): advance its last ID and read counter, fill the PELs."""
    items = s.range(start, MAX_ID, count)
    for i, _f in items:
        if i > g.last_id:
            if g.entries_read != INVALID_READ and not s.has_tombstones(i):
                g.entries_read += 1
            elif s.entries_added:
                g.entries_read = s.estimate_read(i)
            g.last_id = i
        if not noack:
            nack = g.pel.get(i)
            if nack is None:
                nack = g.pel[i] = Nack(now, 1, cons)
            else:
                if nack.consumer is not None:
                    nack.consumer.pel.pop(i, None)
                nack.consumer, nack.time, nack.count = cons, now, 1
            cons.pel[i] = nack
    return items


def _history(s: Stream, cons: Consumer, start: ID, count: int, now: int) -> bytes:
    """A consumer's own pending entries from `start` (XREADGROUP with an ID)."""
    parts = []
    for i in cons.pel.irange(start):
        if count and len(parts) >= count:
            break
        fields = s.entries.get(i)
        if fields is None:
            idb = id_bytes(i)
            parts.append(b"*2\r\n$%d\r\n%s\r\n%s" % (len(idb), idb, NULL_ARRAY))
        else:
            parts.append(_entry(i, fields))
            nack = cons.pel[i]
            nack.time = now
            nack.count += 1
    return b"*%d\r\n" % len(parts) + b"".join(parts)


def _xread(c: Client, argv: list[bytes], group_read: bool) -> bytes:
    timeout = -1
    count = 0
    streams_at = 0
    noack = False
    group = consumer = None
    n = len(argv)
    i = 1
    while i < n:
        more = n - i - 1
        opt = argv[i].lower()
        if opt == b"block" and more:
            if c.id == -1:
                raise CommandError(
                    f"ERR {argv[0].decode(errors='replace')} command is not allowed with "
                    "BLOCK option from scripts"
                )
            i += 1
            timeout = to_int(argv[i], "ERR timeout is not an integer or out of range")
            if timeout < 0:
                raise CommandError("ERR timeout is negative")
        elif opt == b"count" and more:
            i += 1
            count = max(to_int(argv[i]), 0)
        elif opt == b"streams" and more:
            streams_at = i + 1
            if (n - streams_at) % 2:
                raise CommandError(
                    "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' "
                    "must be specified."
                )
            break
        elif opt == b"group" and more >= 2:
            if not group_read:
                raise CommandError(
                    "ERR The GROUP option is only supported by XREADGROUP. "
                    "You called XREAD instead."
                )
            group, consumer = argv[i + 1], argv[i + 2]
            i += 2
        elif opt == b"noack":
            if not group_read:
                raise CommandError(
                    "ERR The NOACK option is only supported by XREADGROUP. "
                    "You called XREAD instead."
                )
            noack = True
        else:
            raise CommandError(SYNTAX)
        i += 1
    if not streams_at:
        raise CommandError(SYNTAX)
    if group_read and group is None:
        raise CommandError("ERR Missing GROUP option for XREADGROUP")
    nkeys = (n - streams_at) // 2
    keys = argv[streams_at : streams_at + nkeys]
    ids: list[ID] = []
    groups: list[Group | None] = []
    for k, raw in zip(keys, argv[streams_at + nkeys :], strict=True):
        found = read_stream(c, k)
        g = None
        if group is not None:
            g = None if found is None else found[1].groups.get(group)
            if g is None:
                raise _nogroup(k, group, " in XREADGROUP with GROUP option")
        groups.append(g)
        if raw == b"$":
            if group_read:
                raise CommandError(
                    "ERR The $ ID is meaningless in the context of XREADGROUP: you want to "
                    "read the history of this consumer by specifying a proper ID, or use the "
                    "> ID to get new messages. The $ ID would just return an empty result set."
                )
            ids.append(ZERO_ID if found is None else found[1].last_id)
            continue
        if raw == b">":
            if not group_read:
                raise CommandError(
                    "ERR The > ID can be specified only when calling XREADGROUP using the "
                    "GROUP <group> <consumer> option."
                )
            ids.append(MAX_ID)
            continue
        ids.append(parse_id(raw, 0, strict=True)[0])
    now = now_ms()
    parts = []
    for k, gt, g in zip(keys, ids, groups, strict=True):
        found = read_stream(c, k)
        if found is None:
            continue
        e, s = found
        if g is not None:
            assert consumer is not None
            if gt != MAX_ID:
                cons = _consumer(c, k, g, consumer, now)
                parts.append((k, _history(s, cons, incr(gt) or ZERO_ID, count, now)))
                _changed(c, k, e, s, e.size)
                continue
            if s.entries and s.last_valid_id() > g.last_id:
                before = s.size()
                cons = _consumer(c, k, g, consumer, now)
                items = _deliver(s, g, cons, incr(g.last_id) or ZERO_ID, count, noack, now)
                parts.append((k, _entries(items)))
                _changed(c, k, e, s, before)
        elif s.entries and s.last_valid_id() > gt:
            parts.append((k, _entries(s.range(incr(gt) or ZERO_ID, MAX_ID, count))))
    if parts:
        return _streams_reply(c, parts)
    if timeout == -1:
        return null_array(c.resp)
    until = deadline(c, timeout / 1000) if timeout else deadline(c, 0)
    wanted = dict(zip(keys, ids, strict=True))
    bcount = count or XREAD_BLOCKED_COUNT
    # What a handover re-sends: `$` as the ID it stood for.
    resend = [*argv[:streams_at], *keys, *(id_bytes(wanted[k]) for k in keys)]
    if group_read:
        resend[streams_at + nkeys :] = [b">" if x == b">" else x
                                        for x in argv[streams_at + nkeys :]]

    def serve(c: Client, key: bytes) -> tuple[bytes, list[bytes] | None] | None:
        e = c.db.lookup(key)
        if e is None or not isinstance(e.value, Stream):
            if group is not None:
                return _blocked_error(c, "UNBLOCKED the stream key no longer exists")
            return None
        s = e.value
        gt = wanted[key]
        if group is None:
            if not s.entries or s.last_valid_id() <= gt:
                return None
            items = s.range(incr(gt) or ZERO_ID, MAX_ID, bcount)
            return _streams_reply(c, [(key, _entries(items))]), None
        g = s.groups.get(group)
        if g is None:
            return _blocked_error(
                c, "NOGROUP the consumer group this client was blocked on no longer exists"
            )
        if not s.entries or s.last_valid_id() <= g.last_id:
            return None
        assert consumer is not None
        now = now_ms()
        before = s.size()
        cons = _consumer(c, key, g, consumer, now)
        items = _deliver(s, g, cons, incr(g.last_id) or ZERO_ID, bcount, noack, now)
        c.db.resized(key, e, s.size() - before)
        write = [b"XREADGROUP", b"GROUP", group, consumer, b"COUNT", b"%d" % bcount]
        if noack:
            write.append(b"NOACK")
        return _streams_reply(c, [(key, _entries(items))]), [*write, b"STREAMS", key, b">"]

    return wait(c, keys, resend, serve, null_array(c.resp), until, on_gone=group_read)


def _blocked_error(c: Client, message: str) -> tuple[bytes, None]:
    """A blocked XREADGROUP ends in an error: counted as Redis counts a failed call."""
    c.server.count_error(message)
    TABLE[b"xreadgroup"].failed_calls += 1
    return b"-" + message.encode() + b"\r\n", None


def _xread_keys(argv: list[bytes]) -> list[bytes]:
    for i in range(1, len(argv)):
        if argv[i].lower() == b"streams":
            rest = argv[i + 1 :]
            return rest[: len(rest) // 2]
    return []


@command("xread", -4, "readonly blocking movablekeys", (0, 0, 0), "stream",
         "Returns entries from streams, or waits.", "5.0.0", batched=False,
         find_keys=_xread_keys)
def xread(c: Client, argv: list[bytes]) -> bytes:
    return _xread(c, argv, False)


@command("xreadgroup", -7, "write blocking movablekeys", (0, 0, 0), "stream",
         "Reads entries as a consumer of a group, or waits.", "5.0.0", batched=False,
         find_keys=_xread_keys)
def xreadgroup(c: Client, argv: list[bytes]) -> bytes:
    return _xread(c, argv, True)


# ------------------------------------------------------------------ XGROUP / XSETID

XGROUP_ARITY = {b"create": -5, b"createconsumer": 5, b"delconsumer": 5, b"destroy": 4,
                b"setid": -5, b"help": 2}
XGROUP_HELP = [
    "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CREATE <key> <groupname> <id|$> [option]",
    "    Create a new consumer group. Options are:",
    "    * MKSTREAM",
    "      Create the empty stream if it does not exist.",
    "    * ENTRIESREAD entries_read",
    "      Set the group's entries_read counter (internal use).",
    "CREATECONSUMER <key> <groupname> <consumer>",
    "    Create a new consumer in the specified group.",
    "DELCONSUMER <key> <groupname> <consumer>",
    "    Remove the specified consumer.",
    "DESTROY <key> <groupname>",
    "    Remove the specified group.",
    "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    "    Set the current group ID and entries_read counter.",
    "HELP",
    "    Prints this help.",
]


def _help(lines: list[str]) -> bytes:
    return b"*%d\r\n" % len(lines) + b"".join(b"+" + x.encode() + b"\r\n" for x in lines)


def _sub_syntax(argv: list[bytes]) -> CommandError:
    return CommandError(
        f"ERR unknown subcommand or wrong number of arguments for "
        f"'{argv[1][:128].decode(errors='replace')}'. Try "
        f"{argv[0].decode(errors='replace').upper()}"
        " HELP."
    )


@command("xgroup", -2, "", (0, 0, 0), "stream", "Manages consumer groups.", "5.0.0")
def xgroup(c: Client, argv: list[bytes]) -> bytes:
    sub = subcommand(argv, XGROUP_ARITY)
    if sub == b"help":
        return _help(XGROUP_HELP)
    key, name = argv[2], argv[3]
    mkstream = False
    entries_read = INVALID_READ
    i = 5
    while i < len(argv):
        opt = argv[i].lower()
        if sub == b"create" and opt == b"mkstream":
            mkstream = True
            i += 1
        elif sub in (b"create", b"setid") and opt == b"entriesread" and i + 1 < len(argv):
            entries_read = to_int(argv[i + 1])
            if entries_read < 0 and entries_read != INVALID_READ:
                raise CommandError("ERR value for ENTRIESREAD must be positive or -1")
            i += 2
        else:
            raise _sub_syntax(argv)
    found = read_stream(c, key)
    g = None
    if not mkstream:
        if found is None:
            raise CommandError(
                "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE "
                "you may want to use the MKSTREAM option to create an empty stream "
                "automatically."
            )
        g = found[1].groups.get(name)
        if g is None and sub in (b"setid", b"createconsumer", b"delconsumer"):
            raise CommandError(
                f"NOGROUP No such consumer group '{name.decode(errors='replace')}' for key "
                f"name '{key.decode(errors='replace')}'"
            )
    now = now_ms()
    if sub == b"create" and len(argv) <= 8:
        if argv[4] == b"$":
            gid = found[1].last_id if found else ZERO_ID
        else:
            gid = parse_id(argv[4], 0, strict=True)[0]
        if found is None:
            found = _create(c, key)
        e, s = found
        if name in s.groups:
            raise CommandError("BUSYGROUP Consumer Group name already exists")
        before = s.size()
        s.groups[name] = Group(gid, entries_read)
        _changed(c, key, e, s, before)
        c.db.notify(NOTIFY_STREAM, b"xgroup-create", key)
        return OK
    if sub == b"setid" and len(argv) in (5, 7):
        assert found is not None and g is not None
        e, s = found
        gid = s.last_id if argv[4] == b"$" else parse_id(argv[4], 0)[0]
        g.last_id = gid
        g.entries_read = entries_read
        _changed(c, key, e, s, e.size)
        c.db.notify(NOTIFY_STREAM, b"xgroup-setid", key)
        return OK
    if sub == b"destroy" and found is not None:
        e, s = found
        if g is None:
            return ZERO
        before = s.size()
        del s.groups[name]
        _changed(c, key, e, s, before)
        c.db.notify(NOTIFY_STREAM, b"xgroup-destroy", key)
        _ready(c, key)
        return ONE
    if sub == b"createconsumer" and found is not None:
        assert g is not None
        e, s = found
        if argv[4] in g.consumers:
            return ZERO
        before = s.size()
        _consumer(c, key, g, argv[4], now)
        _changed(c, key, e, s, before)
        return ONE
    if sub == b"delconsumer" and found is not None:
        assert g is not None
        e, s = found
        cons = g.consumers.get(argv[4])
        if cons is None:
            return ZERO
        before = s.size()
        pending = g.delete_consumer(cons)
        _changed(c, key, e, s, before)
        c.db.notify(NOTIFY_STREAM, b"xgroup-delconsumer", key)
        return integer(pending)
    raise _sub_syntax(argv)


subcommands("xgroup", XGROUP_ARITY, {b"help": "loading stale"})
TABLE[b"xgroup"].flags = frozenset()
for _sub in TABLE[b"xgroup"].subcommands or {}:
    _cmd = TABLE[b"xgroup"].subcommands[_sub]  # type: ignore[index]
    if _sub != b"help":
        _cmd.flags = frozenset(("write",) + (("denyoom",) if _sub == b"create" else ()))
        _cmd.first_key = _cmd.last_key = 2
        _cmd.step = 1


def _xgroup_keys(argv: list[bytes]) -> list[bytes]:
    return [argv[2]] if len(argv) > 2 and argv[1].lower() != b"help" else []


TABLE[b"xgroup"].find_keys = _xgroup_keys
# The handover journals commands flagged "write": XGROUP's subcommands change the stream.
TABLE[b"xgroup"].flags = frozenset(("write",))


@command("xsetid", -3, "write denyoom fast", K1, "stream",
         "Sets a stream's last ID.", "5.0.0")
def xsetid(c: Client, argv: list[bytes]) -> bytes:
    new = parse_id(argv[2], 0, strict=True)[0]
    added = -1
    max_del = ZERO_ID
    i = 3
    while i < len(argv):
        more = len(argv) - 1 - i
        opt = argv[i].lower()
        if opt == b"entriesadded" and more:
            added = to_int(argv[i + 1])
            if added < 0:
                raise CommandError("ERR entries_added must be positive")
            i += 2
        elif opt == b"maxdeletedid" and more:
            max_del = parse_id(argv[i + 1], 0, strict=True)[0]
            if new < max_del:
                raise CommandError(
                    "ERR The ID specified in XSETID is smaller than the provided "
                    "max_deleted_entry_id"
                )
            i += 2
        else:
            raise CommandError(SYNTAX)
    found = read_stream(c, argv[1])
    if found is None:
        raise CommandError("ERR no such key")
    e, s = found
    if len(s):
        if new < s.last_valid_id():
            raise CommandError(
                "ERR The ID specified in XSETID is smaller than the target stream top item"
            )
        if added != -1 and len(s) > added:
            raise CommandError(
                "ERR The entries_added specified in XSETID is smaller than the target "
                "stream length"
            )
    s.last_id = new
    if added != -1:
        s.entries_added = added
    if max_del != ZERO_ID:
        s.max_deleted = max_del
    _changed(c, argv[1], e, s, e.size)
    c.db.notify(NOTIFY_STREAM, b"xsetid", argv[1])
    return OK


# ------------------------------------------------------------------ XACK / XPENDING


@command("xack", -4, "write fast", K1, "stream", "Acknowledges pending entries.", "5.0.0")
def xack(c: Client, argv: list[bytes]) -> bytes:
    found = read_stream(c, argv[1])
    g = None if found is None else found[1].groups.get(argv[2])
    if found is None or g is None:
        return ZERO
    ids = [parse_id(raw, 0, strict=True)[0] for raw in argv[3:]]
    e, s = found
    before = s.size()
    acked = sum(1 for i in ids if g.ack(i))
    if acked:
        _changed(c, argv[1], e, s, before)
    return integer(acked)


@command("xpending", -3, "readonly", K1, "stream", "Returns pending entries of a group.",
         "5.0.0")
def xpending(c: Client, argv: list[bytes]) -> bytes:
    n = len(argv)
    if n != 3 and not 6 <= n <= 9:
        raise CommandError(SYNTAX)
    minidle = 0
    cname = None
    lo = hi = ZERO_ID
    count = 0
    if n >= 6:
        at = 3
        if argv[3].lower() == b"idle":
            minidle = to_int(argv[4])
            if n < 8:
                raise CommandError(SYNTAX)
            at += 2
        count = max(to_int(argv[at + 2]), 0)
        lo, hi = _range_ids(argv[at], argv[at + 1])
        if at + 3 < n:
            cname = argv[at + 3]
    found = read_stream(c, argv[1])
    g = None if found is None else found[1].groups.get(argv[2])
    if g is None:
        raise _nogroup(argv[1], argv[2])
    if n == 3:
        if not g.pel:
            return b"*4\r\n:0\r\n" + null(c.resp) * 2 + null_array(c.resp)
        owners = []
        for name in sorted(g.consumers):
            cn = g.consumers[name]
            if cn.pel:
                owners.append(b"*2\r\n" + bulk(name) + bulk(b"%d" % len(cn.pel)))
        return (
            b"*4\r\n" + integer(len(g.pel)) + bulk(id_bytes(g.pel.peekitem(0)[0]))
            + bulk(id_bytes(g.pel.peekitem(-1)[0]))
            + b"*%d\r\n" % len(owners) + b"".join(owners)
        )
    pel = g.pel
    if cname is not None:
        cn = g.consumers.get(cname)
        if cn is None:
            return EMPTY_ARRAY
        pel = cn.pel
    now = now_ms()
    parts = []
    if count and lo <= hi:
        for i in pel.irange(lo, hi):
            nack = pel[i]
            if minidle and now - nack.time < minidle:
                continue
            owner = nack.consumer.name if nack.consumer is not None else b""
            parts.append(
                b"*4\r\n" + bulk(id_bytes(i)) + bulk(owner) + integer(max(now - nack.time, 0))
                + integer(nack.count)
            )
            if len(parts) >= count:
                break
    return b"*%d\r\n" % len(parts) + b"".join(parts)


# ------------------------------------------------------------------ XCLAIM / XAUTOCLAIM


def _claim(g: Group, cons: Consumer, i: ID, nack: Nack) -> None:
    if nack.consumer is not cons:
        if nack.consumer is not None:
            nack.consumer.pel.pop(i, None)
        cons.pel[i] = nack
        nack.consumer = cons


@command("xclaim", -6, "write fast", K1, "stream", "Changes the owner of pending entries.",
         "5.0.0")
def xclaim(c: Client, argv: list[bytes]) -> bytes:
    found = read_stream(c, argv[1])
    g = None if found is None else found[1].groups.get(argv[2])
    if found is None or g is None:
        raise _nogroup(argv[1], argv[2])
    minidle = max(to_int(argv[4], "ERR Invalid min-idle-time argument for XCLAIM"), 0)
    ids: list[ID] = []
    j = 5
    while j < len(argv):
        try:
            ids.append(parse_id(argv[j], 0, strict=True)[0])
        except CommandError:
            break
        j += 1
    now = now_ms()
    force = justid = False
    retry = -1
    when = -1
    last = ZERO_ID
    while j < len(argv):
        more = len(argv) - 1 - j
        opt = argv[j].lower()
        if opt == b"force":
            force = True
        elif opt == b"justid":
            justid = True
        elif opt == b"idle" and more:
            j += 1
            when = now - to_int(argv[j], "ERR Invalid IDLE option argument for XCLAIM")
        elif opt == b"time" and more:
            j += 1
            when = to_int(argv[j], "ERR Invalid TIME option argument for XCLAIM")
        elif opt == b"retrycount" and more:
            j += 1
            retry = to_int(argv[j], "ERR Invalid RETRYCOUNT option argument for XCLAIM")
        elif opt == b"lastid" and more:
            j += 1
            last = parse_id(argv[j], 0, strict=True)[0]
        else:
            opt_text = argv[j].decode(errors="replace")
            raise CommandError(f"ERR Unrecognized XCLAIM option '{opt_text}'")
        j += 1
    e, s = found
    before = s.size()
    if last > g.last_id:
        g.last_id = last
    if when == -1 or when < 0 or when > now:
        when = now
    cons: Consumer | None = None
    parts = []
    for i in ids:
        nack = g.pel.get(i)
        fields = s.entries.get(i)
        if fields is None:
            if nack is not None:
                g.ack(i)
            continue
        if force and nack is None:
            nack = g.pel[i] = Nack(now, 1, None)
        if nack is None:
            continue
        if nack.consumer is not None and minidle and now - nack.time < minidle:
            continue
        if cons is None:
            cons = _consumer(c, argv[1], g, argv[3], now)
        _claim(g, cons, i, nack)
        nack.time = when
        if retry >= 0:
            nack.count = retry
        elif not justid:
            nack.count += 1
        parts.append(bulk(id_bytes(i)) if justid else _entry(i, fields))
    _changed(c, argv[1], e, s, before)
    return b"*%d\r\n" % len(parts) + b"".join(parts)


@command("xautoclaim", -6, "write fast", K1, "stream",
         "Claims pending entries idle long enough.", "6.2.0")
def xautoclaim(c: Client, argv: list[bytes]) -> bytes:
    minidle = max(to_int(argv[4], "ERR Invalid min-idle-time argument for XAUTOCLAIM"), 0)
    start, ex = _interval(argv[5], 0)
    if ex:
        nxt = incr(start)
        if nxt is None:
            raise CommandError("ERR invalid start ID for the interval")
        start = nxt
    count = 100
    justid = False
    j = 6
    while j < len(argv):
        more = len(argv) - 1 - j
        opt = argv[j].lower()
        if opt == b"count" and more:
            count = to_int(argv[j + 1], "ERR COUNT must be > 0")
            if not 1 <= count <= (2**63 - 1) // 16:
                raise CommandError("ERR COUNT must be > 0")
            j += 1
        elif opt == b"justid":
            justid = True
        else:
            raise CommandError(SYNTAX)
        j += 1
    found = read_stream(c, argv[1])
    g = None if found is None else found[1].groups.get(argv[2])
    if found is None or g is None:
        raise _nogroup(argv[1], argv[2])
    e, s = found
    before = s.size()
    now = now_ms()
    attempts = count * 10
    cons: Consumer | None = None
    parts = []
    deleted: list[ID] = []
    pel = g.pel
    it = iter(list(pel.irange(start)))
    nxt_id: ID | None = None
    while True:
        if not attempts or not count:
            nxt_id = next(it, None)
            break
        i = next(it, None)
        if i is None:
            break
        attempts -= 1
        nack = pel[i]
        fields = s.entries.get(i)
        if fields is None:
            g.ack(i)
            deleted.append(i)
            count -= 1
            continue
        if minidle and now - nack.time < minidle:
            continue
        if cons is None:
            cons = _consumer(c, argv[1], g, argv[3], now)
        _claim(g, cons, i, nack)
        nack.time = now
        if not justid:
            nack.count += 1
        parts.append(bulk(id_bytes(i)) if justid else _entry(i, fields))
        count -= 1
    _changed(c, argv[1], e, s, before)
    return (
        b"*3\r\n" + bulk(id_bytes(nxt_id or ZERO_ID))
        + b"*%d\r\n" % len(parts) + b"".join(parts)
        + b"*%d\r\n" % len(deleted) + b"".join(bulk(id_bytes(i)) for i in deleted)
    )


# ------------------------------------------------------------------ XINFO

XINFO_HELP = [
    "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CONSUMERS <key> <groupname>",
    "    Show consumers of <groupname>.",
    "GROUPS <key>",
    "    Show the stream consumer groups.",
    "STREAM <key> [FULL [COUNT <count>]",
    "    Show information about the stream.",
    "HELP",
    "    Prints this help.",
]
XINFO_ARITY = {b"consumers": 4, b"groups": 3, b"stream": -3, b"help": 2}


def _lag(s: Stream, g: Group) -> int | None:
    return s.lag(g)


def _read_count(g: Group) -> int | None:
    return None if g.entries_read == INVALID_READ else g.entries_read


def _stream_info(c: Client, s: Stream, argv: list[bytes]) -> bytes:
    opts = argv[3:]
    full = bool(opts)
    count = 10
    if full:
        if len(opts) not in (1, 3) or opts[0].lower() != b"full":
            raise _sub_syntax(argv)
        if len(opts) == 3:
            if opts[1].lower() != b"count":
                raise _sub_syntax(argv)
            count = to_int(opts[2])
            if count < 0:
                count = 10
    info: dict[str, Any] = {
        "length": len(s),
        "radix-tree-keys": len(s.nodes),
        "radix-tree-nodes": s.radix_nodes(),
        "last-generated-id": id_bytes(s.last_id),
        "max-deleted-entry-id": id_bytes(s.max_deleted),
        "entries-added": s.entries_added,
        "recorded-first-entry-id": id_bytes(s.first_id),
    }
    if not full:
        info["groups"] = len(s.groups)
        first = s.range(ZERO_ID, MAX_ID, 1)
        last = s.range(ZERO_ID, MAX_ID, 1, rev=True)
        info["first-entry"] = _entry_value(*first[0]) if first else None
        info["last-entry"] = _entry_value(*last[0]) if last else None
        return encode(info, c.resp)
    info["entries"] = [_entry_value(i, f) for i, f in s.range(ZERO_ID, MAX_ID, count)]
    groups = []
    for name in sorted(s.groups):
        g = s.groups[name]
        pending = []
        for i, nack in g.pel.items():
            if count and len(pending) >= count:
                break
            owner = nack.consumer.name if nack.consumer is not None else b""
            pending.append([id_bytes(i), owner, nack.time, nack.count])
        consumers = []
        for cname in sorted(g.consumers):
            cn = g.consumers[cname]
            cpending = []
            for i, nack in cn.pel.items():
                if count and len(cpending) >= count:
                    break
                cpending.append([id_bytes(i), nack.time, nack.count])
            consumers.append({
                "name": cname, "seen-time": cn.seen, "pel-count": len(cn.pel),
                "pending": cpending,
            })
        groups.append({
            "name": name,
            "last-delivered-id": id_bytes(g.last_id),
            "entries-read": _read_count(g),
            "lag": _lag(s, g),
            "pel-count": len(g.pel),
            "pending": pending,
            "consumers": consumers,
        })
    info["groups"] = groups
    return encode(info, c.resp)


@command("xinfo", -2, "", (0, 0, 0), "stream", "Returns information about streams.", "5.0.0")
def xinfo(c: Client, argv: list[bytes]) -> bytes:
    sub = subcommand(argv, XINFO_ARITY)
    if sub == b"help":
        return _help(XINFO_HELP)
    found = read_stream(c, argv[2])
    if found is None:
        raise CommandError("ERR no such key")
    s = found[1]
    if sub == b"consumers" and len(argv) == 4:
        g = s.groups.get(argv[3])
        if g is None:
            raise CommandError(
                f"NOGROUP No such consumer group '{argv[3].decode(errors='replace')}' for key "
                f"name '{argv[2].decode(errors='replace')}'"
            )
        now = now_ms()
        return encode([
            {"name": name, "pending": len(g.consumers[name].pel),
             "idle": max(now - g.consumers[name].seen, 0)}
            for name in sorted(g.consumers)
        ], c.resp)
    if sub == b"groups" and len(argv) == 3:
        return encode([
            {"name": name, "consumers": len(g.consumers), "pending": len(g.pel),
             "last-delivered-id": id_bytes(g.last_id), "entries-read": _read_count(g),
             "lag": _lag(s, g)}
            for name, g in sorted(s.groups.items())
        ], c.resp)
    if sub == b"stream":
        return _stream_info(c, s, argv)
    raise _sub_syntax(argv)


subcommands("xinfo", XINFO_ARITY, {b"consumers": "readonly", b"groups": "readonly",
                                   b"stream": "readonly", b"help": "loading stale"})
for _sub, _cmd in (TABLE[b"xinfo"].subcommands or {}).items():
    if _sub != b"help":
        _cmd.first_key = _cmd.last_key = 2
        _cmd.step = 1
TABLE[b"xinfo"].find_keys = _xgroup_keys
