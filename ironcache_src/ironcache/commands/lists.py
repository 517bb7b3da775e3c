"""List commands (a deque: O(1) at both ends)."""

from __future__ import annotations

from collections import deque
from functools import partial
from itertools import islice
from typing import TYPE_CHECKING

from ironcache.commands import SYNTAX, WRONGTYPE, CommandError, command, to_int
from ironcache.keyspace import CONTAINER_OVERHEAD, ELEM_OVERHEAD, Entry
from ironcache.protocol import EMPTY_ARRAY, OK, ZERO, bulk, bulk_array, integer, null, null_array

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
    r = _bounds(start, end, len(lst))
    if r is None:
        return EMPTY_ARRAY
    return bulk_array(list(islice(lst, r[0], r[1] + 1)))


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
    return integer(removed)


@command("ltrim", 4, "write", K1, "list", "Keeps only a range of elements.")
def ltrim(c: Client, argv: list[bytes]) -> bytes:
    start, end = to_int(argv[2]), to_int(argv[3])
    found = read_list(c, argv[1])
    if found is None:
        return OK
    e, lst = found
    r = _bounds(start, end, len(lst))
    kept = [] if r is None else list(islice(lst, r[0], r[1] + 1))
    delta = sum(ELEM_OVERHEAD + len(x) for x in kept) - sum(ELEM_OVERHEAD + len(x) for x in lst)
    if len(kept) != len(lst):
        lst.clear()
        lst.extend(kept)
        c.db.resized(argv[1], e, delta)
    return OK


def _move(c: Client, src: bytes, dst: bytes, from_left: bool, to_left: bool) -> bytes:
    found = read_list(c, src)
    if found is None:
        return null(c.resp)
    read_list(c, dst)  # type-check the destination before changing anything
    e, lst = found
    x = lst.popleft() if from_left else lst.pop()
    c.db.resized(src, e, -(ELEM_OVERHEAD + len(x)))
    _push(to_left, False, c, [b"", dst, x])
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
