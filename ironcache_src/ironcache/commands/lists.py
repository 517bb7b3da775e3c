"""List commands (a deque: O(1) at both ends)."""

from __future__ import annotations

from collections import deque
from functools import partial
from itertools import islice
from typing import TYPE_CHECKING

from ironcache.blocking import Serve, deadline, parse_timeout, wait
from ironcache.commands import SYNTAX, WRONGTYPE, CommandError, command, mpop_args, to_int
from ironcache.keyspace import CONTAINER_OVERHEAD, ELEM_OVERHEAD, NOTIFY_LIST, Entry
from ironcache.protocol import (
    EMPTY_ARRAY,
    OK,
    ZERO,
    bulk,
    bulk_array,
    integer,
    null,
    null_array,
)

if TYPE_CHECKING:
    from ironcache.client import Client

K1 = (1, 1, 1)
OUT_OF_RANGE = "ERR value is out of range, must be positive"


def read_list(c: Client, key: bytes) -> tuple[Entry, deque[bytes]] | None:
    e = c.db.lookup(key)
    if e is None:
        return None
    if not isinstance(e.value, deque):
        raise CommandError(WRONGTYPE)
    return e, e.value


def _push(left: bool, only_existing: bool, c: Client, argv: list[bytes]) -> bytes:
    db = c.db
    key = argv[1]
    e = db.data.get(key)
    if e is not None and db.expires:
        e = db.lookup(key)  # may have expired
    if e is None:
        if only_existing:
            return ZERO
        lst: deque[bytes] = deque()
        db.set(key, lst, CONTAINER_OVERHEAD)
        e = db.data[key]
    else:
        lst = e.value
        if lst.__class__ is not deque:
            raise CommandError(WRONGTYPE)
        if db.keyspace.lfu and not db.expires:  # lookup() counted it if it ran
            db.lfu_touch(key)
    if len(argv) == 3:
        item = argv[2]
        if left:
            lst.appendleft(item)
        else:
            lst.append(item)
        delta = ELEM_OVERHEAD + len(item)
    else:
        items = argv[2:]
        if left:
            lst.extendleft(items)
        else:
            lst.extend(items)
        delta = ELEM_OVERHEAD * len(items) + sum(map(len, items))
    # Database.resized(), inlined (the list is not empty: no delete)
    ks = db.keyspace
    e.size += delta
    e.lru = ks.clock
    ks.used += delta
    if db.watchers:
        db.touched(key)
    else:
        ks.dirty += 1
        if ks.invalidate is not None:  # CLIENT TRACKING
            ks.invalidate(key)
    if ks.events:
        db.notify(NOTIFY_LIST, b"lpush" if left else b"rpush", key)
    return b":%d\r\n" % len(lst)


# The handlers are partials of _push(): no Python frame in between on the hot path.
lpush = command("lpush", -3, "write denyoom fast", K1, "list", "Prepends elements to a list.")(
    partial(_push, True, False)
)
rpush = command("rpush", -3, "write denyoom fast", K1, "list", "Appends elements to a list.")(
    partial(_push, False, False)
)
lpushx = command("lpushx", -3, "write denyoom fast", K1, "list", "Prepends to an existing list.")(
    partial(_push, True, True)
)
rpushx = command("rpushx", -3, "write denyoom fast", K1, "list", "Appends to an existing list.")(
    partial(_push, False, True)
)


def _pop(c: Client, argv: list[bytes], left: bool) -> bytes:
    if len(argv) > 3:
        name = "lpop" if left else "rpop"
        raise CommandError(f"ERR wrong number of arguments for '{name}' command")
    count: int | None = None
    if len(argv) == 3:
        count = to_int(argv[2], OUT_OF_RANGE)
        if count < 0:
            raise CommandError(OUT_OF_RANGE)
    found = read_list(c, argv[1])
    if found is None:
        return null(c.resp) if count is None else null_array(c.resp)
    e, lst = found
    n = 1 if count is None else min(count, len(lst))
    popped = [lst.popleft() if left else lst.pop() for dummy in range(n)]
    if popped:
        c.db.resized(argv[1], e, -sum(ELEM_OVERHEAD + len(x) for x in popped))
        c.db.notify_emptied(NOTIFY_LIST, b"lpop" if left else b"rpop", argv[1])
    if count is None:
        return bulk(popped[0])
    return bulk_array(popped)


@command("lpop", -2, "write fast", K1, "list", "Removes and returns the first elements.")
def lpop(c: Client, argv: list[bytes]) -> bytes:
    return _pop(c, argv, True)


@command("rpop", -2, "write fast", K1, "list", "Removes and returns the last elements.")
def rpop(c: Client, argv: list[bytes]) -> bytes:
    return _pop(c, argv, False)


def _bounds(start: int, end: int, n: int) -> tuple[int, int] | None:
    if start < 0:
        start = max(n + start, 0)
    if end < 0:
        end = n + end
    end = min(end, n - 1)
    if start > end or start >= n:
        return None
    return start, end


@command("lrange", 4, "readonly", K1, "list", "Returns a range of elements.")
def lrange(c: Client, argv: list[bytes]) -> bytes:
    start, end = to_int(argv[2]), to_int(argv[3])
    found = read_list(c, argv[1])
    if found is None:
        return EMPTY_ARRAY
    lst = found[1]
    n = len(lst)
    r = _bounds(start, end, n)
    if r is None:
        return EMPTY_ARRAY
    start, end = r
    if start > n - 1 - end:  # closer to the tail: walk from there, as Redis's quicklist does
        items = list(islice(reversed(lst), n - 1 - end, n - start))
        items.reverse()
        return bulk_array(items)
    return bulk_array(list(islice(lst, start, end + 1)))


@command("llen", 2, "readonly fast", K1, "list", "Returns the length of a list.")
def llen(c: Client, argv: list[bytes]) -> bytes:
    found = read_list(c, argv[1])
    return integer(0 if found is None else len(found[1]))


@command("lindex", 3, "readonly", K1, "list", "Returns an element by its index.")
def lindex(c: Client, argv: list[bytes]) -> bytes:
    found = read_list(c, argv[1])
    if found is None:
        return null(c.resp)
    i = to_int(argv[2])
    lst = found[1]
    if i < 0:
        i += len(lst)
    if not 0 <= i < len(lst):
        return null(c.resp)
    return bulk(lst[i])


@command("lset", 4, "write denyoom", K1, "list", "Sets an element by its index.")
def lset(c: Client, argv: list[bytes]) -> bytes:
    found = read_list(c, argv[1])
    if found is None:
        raise CommandError("ERR no such key")
    i = to_int(argv[2])  # after the key's existence and type, as in Redis
    e, lst = found
    if i < 0:
        i += len(lst)
    if not 0 <= i < len(lst):
        raise CommandError("ERR index out of range")
    old = lst[i]
    lst[i] = argv[3]
    c.db.resized(argv[1], e, len(argv[3]) - len(old))
    c.db.notify(NOTIFY_LIST, b"lset", argv[1])
    return OK


@command("lrem", 4, "write", K1, "list", "Removes elements equal to a value.")
def lrem(c: Client, argv: list[bytes]) -> bytes:
    count = to_int(argv[2])
    value = argv[3]
    found = read_list(c, argv[1])
    if found is None:
        return integer(0)
    e, lst = found
    limit = abs(count) or len(lst)
    items = list(lst) if count >= 0 else list(reversed(lst))
    kept: list[bytes] = []
    removed = 0
    for x in items:
        if removed < limit and x == value:
            removed += 1
        else:
            kept.append(x)
    if removed:
        if count < 0:
            kept.reverse()
        lst.clear()
        lst.extend(kept)
        c.db.resized(argv[1], e, -removed * (ELEM_OVERHEAD + len(value)))
        c.db.notify_emptied(NOTIFY_LIST, b"lrem", argv[1])
    return integer(removed)


@command("ltrim", 4, "write", K1, "list", "Keeps only a range of elements.")
def ltrim(c: Client, argv: list[bytes]) -> bytes:
    start, end = to_int(argv[2]), to_int(argv[3])
    found = read_list(c, argv[1])
    if found is None:
        return OK
    e, lst = found
    n = len(lst)
    r = _bounds(start, end, n)
    # pop from both ends: O(removed elements) as in Redis (LPUSH + LTRIM keeps a capped list)
    ltrim_n, rtrim_n = (n, 0) if r is None else (r[0], n - 1 - r[1])
    if ltrim_n or rtrim_n:
        freed = 0
        for dummy in range(ltrim_n):
            freed += ELEM_OVERHEAD + len(lst.popleft())
        for dummy in range(rtrim_n):
            freed += ELEM_OVERHEAD + len(lst.pop())
        c.db.resized(argv[1], e, -freed)
    c.db.notify_emptied(NOTIFY_LIST, b"ltrim", argv[1])
    return OK


def _move(c: Client, src: bytes, dst: bytes, from_left: bool, to_left: bool) -> bytes:
    found = read_list(c, src)
    if found is None:
        return null(c.resp)
    read_list(c, dst)  # type-check the destination before changing anything
    e, lst = found
    x = lst.popleft() if from_left else lst.pop()
    if src == dst:  # a rotation: the key never goes empty, so it keeps its TTL
        if to_left:
            lst.appendleft(x)
        else:
            lst.append(x)
        c.db.resized(src, e, 0)
        c.db.notify(NOTIFY_LIST, b"lpush" if to_left else b"rpush", dst)
        c.db.notify(NOTIFY_LIST, b"lpop" if from_left else b"rpop", src)
        return bulk(x)
    c.db.resized(src, e, -(ELEM_OVERHEAD + len(x)))
    _push(to_left, False, c, [b"", dst, x])  # announces the push
    c.db.notify_emptied(NOTIFY_LIST, b"lpop" if from_left else b"rpop", src)
    return bulk(x)


def _side(arg: bytes) -> bool:
    side = arg.lower()
    if side not in (b"left", b"right"):
        raise CommandError(SYNTAX)
    return side == b"left"


@command("lmove", 5, "write denyoom", (1, 2, 1), "list", "Moves an element between lists.")
def lmove(c: Client, argv: list[bytes]) -> bytes:
    return _move(c, argv[1], argv[2], _side(argv[3]), _side(argv[4]))


@command("rpoplpush", 3, "write denyoom", (1, 2, 1), "list", "Moves the last element over.")
def rpoplpush(c: Client, argv: list[bytes]) -> bytes:
    return _move(c, argv[1], argv[2], False, True)


@command("linsert", 5, "write denyoom", K1, "list", "Inserts an element before or after another.")
def linsert(c: Client, argv: list[bytes]) -> bytes:
    where = argv[2].lower()
    if where not in (b"before", b"after"):
        raise CommandError(SYNTAX)  # before the key is looked up, as in Redis
    found = read_list(c, argv[1])
    if found is None:
        return ZERO
    e, lst = found
    try:
        i = lst.index(argv[3])  # O(n) scan in C, as Redis's is O(n)
    except ValueError:
        return integer(-1)
    lst.insert(i if where == b"before" else i + 1, argv[4])
    c.db.resized(argv[1], e, ELEM_OVERHEAD + len(argv[4]))
    c.db.notify(NOTIFY_LIST, b"linsert", argv[1])
    return integer(len(lst))


def _lpos_option(arg: bytes, message: str) -> int:
    n = to_int(arg, "ERR " + message)
    if n < 0:
        raise CommandError("ERR " + message)
    return n


@command("lpos", -3, "readonly", K1, "list", "Returns the index of matching elements.")
def lpos(c: Client, argv: list[bytes]) -> bytes:
    ele = argv[2]
    rank, count, maxlen = 1, -1, 0  # count -1: no COUNT option, reply with one index
    j = 3
    while j < len(argv):
        opt = argv[j].lower()
        if j + 1 >= len(argv) or opt not in (b"rank", b"count", b"maxlen"):
            raise CommandError(SYNTAX)
        j += 1
        if opt == b"rank":
            rank = to_int(argv[j])
            if rank == 0:
                raise CommandError(
                    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the "
                    "second ... or use negative to start from the end of the list"
                )
        elif opt == b"count":
            count = _lpos_option(argv[j], "COUNT can't be negative")
        else:
            maxlen = _lpos_option(argv[j], "MAXLEN can't be negative")
        j += 1
    found = read_list(c, argv[1])
    if found is None:
        return null(c.resp) if count == -1 else EMPTY_ARRAY
    lst = found[1]
    n = len(lst)
    limit = min(maxlen, n) if maxlen else n
    wanted = 1 if count == -1 else count or n  # COUNT 0: every match
    skip = abs(rank) - 1  # matches before the first one reported
    if rank == -(2**63):  # Redis negates it in place, which leaves it as is: no skip, no limit
        skip, wanted = 0, n
    out: list[int] = []
    if rank > 0:
        i = 0
        while len(out) < wanted:
            try:
                i = lst.index(ele, i, limit)
            except ValueError:
                break
            if skip:
                skip -= 1
            else:
                out.append(i)
            i += 1
    else:
        for k, x in enumerate(islice(reversed(lst), limit)):
            if x == ele:
                if skip:
                    skip -= 1
                    continue
                out.append(n - 1 - k)
                if len(out) >= wanted:
                    break
    if count == -1:
        return integer(out[0]) if out else null(c.resp)
    return b"*%d\r\n" % len(out) + b"".join(b":%d\r\n" % i for i in out)


def mpop(c: Client, keys: list[bytes], left: bool, count: int) -> bytes | None:
    """Pops up to `count` elements of the first non-empty list of `keys`: the [key, elements]
    reply, or None when every list is empty (a wrong type raises, as in Redis)."""
    for key in keys:
        found = read_list(c, key)
        if found is None:
            continue
        e, lst = found
        n = min(count, len(lst))
        popped = [lst.popleft() if left else lst.pop() for dummy in range(n)]
        c.db.resized(key, e, -sum(ELEM_OVERHEAD + len(x) for x in popped))
        c.db.notify_emptied(NOTIFY_LIST, b"lpop" if left else b"rpop", key)
        return b"*2\r\n" + bulk(key) + bulk_array(popped)
    return None


@command("lmpop", -4, "write movablekeys", group="list", summary="Pops elements from a list.")
def lmpop(c: Client, argv: list[bytes]) -> bytes:
    reply = mpop(c, *mpop_args(argv, 1, b"left", b"right"))
    return null_array(c.resp) if reply is None else reply


# ------------------------------------------------------------------ blocking forms
# Each answers at once when it can; else the client waits (ironcache.blocking), and `serve`
# runs the non-blocking form on the key that became ready, journaling that form.


def _timeout(raw: bytes) -> float:
    try:
        return parse_timeout(raw)
    except ValueError as e:
        raise CommandError(str(e)) from None


def _serve_pop(left: bool) -> Serve:
    def serve(c: Client, key: bytes) -> tuple[bytes, list[bytes] | None] | None:
        try:
            reply = mpop(c, [key], left, 1)
        except CommandError:
            return None  # another type now: keep waiting
        if reply is None:
            return None
        value = reply[len(b"*2\r\n") + len(bulk(key)) + len(b"*1\r\n") :]
        return b"*2\r\n" + bulk(key) + value, [b"LPOP" if left else b"RPOP", key]

    return serve


def _bpop(c: Client, argv: list[bytes], left: bool) -> bytes:
    secs = _timeout(argv[-1])
    until = deadline(c, secs)
    keys = argv[1:-1]
    for key in keys:
        found = read_list(c, key)
        if found is not None:
            e, lst = found
            x = lst.popleft() if left else lst.pop()
            c.db.resized(key, e, -(ELEM_OVERHEAD + len(x)))
            c.db.notify_emptied(NOTIFY_LIST, b"lpop" if left else b"rpop", key)
            return b"*2\r\n" + bulk(key) + bulk(x)
    return wait(c, keys, argv, _serve_pop(left), null_array(c.resp), until)


@command("blpop", -3, "write blocking", (1, -2, 1), "list", "Pops the first element, or waits.",
         since="2.0.0", batched=False)
def blpop(c: Client, argv: list[bytes]) -> bytes:
    return _bpop(c, argv, True)


@command("brpop", -3, "write blocking", (1, -2, 1), "list", "Pops the last element, or waits.",
         since="2.0.0", batched=False)
def brpop(c: Client, argv: list[bytes]) -> bytes:
    return _bpop(c, argv, False)


def _bmove(c: Client, argv: list[bytes], src: bytes, dst: bytes, fl: bool, tl: bool) -> bytes:
    secs = _timeout(argv[-1])
    until = deadline(c, secs)
    if read_list(c, src) is not None:
        return _move(c, src, dst, fl, tl)
    side = (b"LEFT" if fl else b"RIGHT", b"LEFT" if tl else b"RIGHT")

    def serve(c: Client, key: bytes) -> tuple[bytes, list[bytes] | None] | None:
        e = c.db.lookup(key)
        if e is None or not isinstance(e.value, deque):
            return None
        try:
            return _move(c, src, dst, fl, tl), [b"LMOVE", src, dst, *side]
        except CommandError as err:  # the destination has another type: Redis's error
            return b"-" + err.message.encode() + b"\r\n", None

    return wait(c, [src], argv, serve, null(c.resp), until)


@command("blmove", 6, "write denyoom blocking", (1, 2, 1), "list",
         "Moves an element between lists, or waits.", since="6.2.0", batched=False)
def blmove(c: Client, argv: list[bytes]) -> bytes:
    fl, tl = _side(argv[3]), _side(argv[4])
    return _bmove(c, argv, argv[1], argv[2], fl, tl)


@command("brpoplpush", 4, "write denyoom blocking", (1, 2, 1), "list",
         "Moves the last element over, or waits.", since="2.2.0", batched=False)
def brpoplpush(c: Client, argv: list[bytes]) -> bytes:
    return _bmove(c, argv, argv[1], argv[2], False, True)


@command("blmpop", -5, "write blocking movablekeys", group="list",
         summary="Pops elements from a list, or waits.", since="7.0.0", batched=False)
def blmpop(c: Client, argv: list[bytes]) -> bytes:
    keys, left, count = mpop_args(argv, 2, b"left", b"right")
    secs = _timeout(argv[1])
    until = deadline(c, secs)
    reply = mpop(c, keys, left, count)
    if reply is not None:
        return reply
    where = b"LEFT" if left else b"RIGHT"

    def serve(c: Client, key: bytes) -> tuple[bytes, list[bytes] | None] | None:
        try:
            done = mpop(c, [key], left, count)
        except CommandError:
            return None
        if done is None:
            return None
        return done, [b"LMPOP", b"1", key, where, b"COUNT", b"%d" % count]

    return wait(c, keys, argv, serve, null_array(c.resp), until)
