"""The stream: entries ordered by ID, consumer groups with their pending entries lists.

Entries live in a `sortedcontainers.SortedDict` keyed by the ID as an (ms, seq) tuple, so
XADD is O(log n) (amortised O(1) at the tail), XRANGE O(log n + M), XDEL O(log n) each.
Redis stores entries in listpack "nodes" of up to `stream-node-max-entries` entries; the
approximate (`~`) trimming removes whole nodes only, so the node boundaries are tracked
here too (`nodes`: master ID -> [live, deleted, last ID, bytes]) as Redis would draw them.
A group's PEL and each consumer's PEL are SortedDicts of ID -> Nack (the same object).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sortedcontainers import SortedDict

ID = tuple[int, int]
MAX = 2**64 - 1
MAX_ID: ID = (MAX, MAX)
ZERO_ID: ID = (0, 0)
INVALID_READ = -1  # SCG_INVALID_ENTRIES_READ

# Memory estimates (value_size): an entry's ID tuple, its field list and dict slot; a NACK
# and its two index slots; a consumer; a group.
ENTRY_OVERHEAD = 64 + 56 + 100
FIELD_OVERHEAD = 33 + 8
NACK_OVERHEAD = 72 + 64 + 200
CONSUMER_OVERHEAD = 300
GROUP_OVERHEAD = 600
STREAM_OVERHEAD = 1200
LISTPACK_MAX = 2**30  # STREAM_LISTPACK_MAX_SIZE


def id_bytes(i: ID) -> bytes:
    return b"%d-%d" % i


def incr(i: ID) -> ID | None:
    ms, seq = i
    if seq == MAX:
        return None if ms == MAX else (ms + 1, 0)
    return (ms, seq + 1)


def decr(i: ID) -> ID | None:
    ms, seq = i
    if seq == 0:
        return None if ms == 0 else (ms - 1, MAX)
    return (ms, seq - 1)


def _str_cost(n: int) -> int:
    """Bytes a string of n bytes takes in a listpack (header, data, back-length)."""
    head = 1 if n < 64 else 2 if n < 4096 else 5
    return head + n + (1 if head + n < 128 else 2 if head + n < 16384 else 3)


def _int_cost(n: int) -> int:
    return 2 if 0 <= n < 128 else 3 if -4096 <= n < 4096 else 4 if -(2**15) <= n < 2**15 else 9


class Nack:
    __slots__ = ("time", "count", "consumer")

    def __init__(self, time: int, count: int, consumer: Consumer | None) -> None:
        self.time = time
        self.count = count
        self.consumer = consumer


class Consumer:
    __slots__ = ("name", "seen", "pel")

    def __init__(self, name: bytes, seen: int) -> None:
        self.name = name
        self.seen = seen
        self.pel: SortedDict = SortedDict()


class Group:
    __slots__ = ("last_id", "entries_read", "pel", "consumers")

    def __init__(self, last_id: ID, entries_read: int) -> None:
        self.last_id = last_id
        self.entries_read = entries_read
        self.pel: SortedDict = SortedDict()
        self.consumers: dict[bytes, Consumer] = {}

    def consumer(self, name: bytes, now: int, create: bool = True) -> Consumer | None:
        """Look a consumer up (its seen time refreshed), creating it when asked."""
        cons = self.consumers.get(name)
        if cons is not None:
            cons.seen = now
        elif create:
            cons = self.consumers[name] = Consumer(name, now)
        return cons

    def delete_consumer(self, cons: Consumer) -> int:
        n = len(cons.pel)
        for i in cons.pel:
            del self.pel[i]
        del self.consumers[cons.name]
        return n

    def ack(self, i: ID) -> bool:
        nack = self.pel.pop(i, None)
        if nack is None:
            return False
        if nack.consumer is not None:
            nack.consumer.pel.pop(i, None)
        return True


class Stream:
    __slots__ = ("entries", "nodes", "last_id", "max_deleted", "entries_added", "groups", "ebytes")

    TAG = "stream"  # TYPE and the state format's tag (state.py)

    def __init__(self) -> None:
        self.entries: SortedDict = SortedDict()  # ID -> [field, value, ...]
        self.nodes: SortedDict = SortedDict()  # master ID -> [live, deleted, last ID, bytes]
        self.last_id: ID = ZERO_ID
        self.max_deleted: ID = ZERO_ID
        self.entries_added = 0
        self.groups: dict[bytes, Group] = {}
        self.ebytes = 0  # memory estimate of the entries

    def __len__(self) -> int:
        return len(self.entries)

    def __bool__(self) -> bool:
        return True  # an empty stream is still a value (groups, last ID)

    # ------------------------------------------------------------------ reading
    @property
    def first_id(self) -> ID:
        """The recorded first entry ID: the first live entry, 0-0 when empty."""
        return self.entries.peekitem(0)[0] if self.entries else ZERO_ID

    def last_valid_id(self) -> ID:
        return self.entries.peekitem(-1)[0] if self.entries else ZERO_ID

    def range(self, lo: ID, hi: ID, count: int = 0, rev: bool = False) -> list[tuple[ID, list]]:
        """Entries with lo <= ID <= hi, at most `count` (0: all), O(log n + M)."""
        if lo > hi:
            return []
        it = self.entries.irange(lo, hi, reverse=rev)
        out = []
        ent = self.entries
        for i in it:
            out.append((i, ent[i]))
            if count and len(out) >= count:
                break
        return out

    def has_tombstones(self, start: ID | None) -> bool:
        """streamRangeHasTombstones(start, +inf)."""
        if not self.entries or self.max_deleted == ZERO_ID:
            return False
        if self.first_id > self.max_deleted:
            return False
        return (start or ZERO_ID) <= self.max_deleted

    def estimate_read(self, i: ID) -> int:
        """streamEstimateDistanceFromFirstEverEntry."""
        if not self.entries_added:
            return 0
        if not self.entries and i <= self.last_id:
            return self.entries_added
        if i == self.last_id:
            return self.entries_added
        if i > self.last_id:
            return INVALID_READ
        first = self.first_id
        if self.max_deleted == ZERO_ID or self.max_deleted < first:
            if i < first:
                return self.entries_added - len(self.entries)
            if i == first:
                return self.entries_added - len(self.entries) + 1
        return INVALID_READ

    def lag(self, g: Group) -> int | None:
        if not self.entries_added:
            return 0
        if g.entries_read != INVALID_READ and not self.has_tombstones(g.last_id):
            return self.entries_added - g.entries_read
        read = self.estimate_read(g.last_id)
        return None if read == INVALID_READ else self.entries_added - read

    # ------------------------------------------------------------------ changes
    def append(self, i: ID, fields: list[bytes], node_entries: int, node_bytes: int) -> None:
        """Add an entry whose ID is above last_id (the caller checked)."""
        self.entries[i] = fields
        cost = ENTRY_OVERHEAD + sum(FIELD_OVERHEAD + len(f) for f in fields)
        self.ebytes += cost
        self.last_id = i
        self.entries_added += 1
        size = sum(map(len, fields))
        nodes = self.nodes
        node = nodes.peekitem(-1) if nodes else None
        if node is not None:
            master, info = node
            limit = node_bytes if 0 < node_bytes <= LISTPACK_MAX else LISTPACK_MAX
            if info[3] + size >= limit or (node_entries and info[0] + info[1] >= node_entries):
                node = None
        if node is None:
            nfields = len(fields) // 2
            head = 7 + 2 + 2 + _int_cost(nfields) + sum(_str_cost(len(f)) for f in fields[::2]) + 2
            nodes[i] = [1, 0, i, head + self._entry_cost(i, i, fields, True)]
            return
        master, info = node
        info[0] += 1
        info[2] = i
        info[3] += self._entry_cost(master, i, fields, False)

    @staticmethod
    def _entry_cost(master: ID, i: ID, fields: list[bytes], same: bool) -> int:
        cost = 2 + _int_cost(i[0] - master[0]) + _int_cost(i[1] - master[1]) + 2
        if same:
            return cost + sum(_str_cost(len(v)) for v in fields[1::2])
        return cost + _int_cost(len(fields) // 2) + sum(_str_cost(len(f)) for f in fields)

    def _node_of(self, i: ID) -> tuple[ID, list]:
        nodes = self.nodes
        return nodes.peekitem(nodes.bisect_right(i) - 1)

    def delete(self, i: ID) -> bool:
        """XDEL of one ID: the entry goes, its node keeps a tombstone (or goes when empty)."""
        fields = self.entries.pop(i, None)
        if fields is None:
            return False
        self.ebytes -= ENTRY_OVERHEAD + sum(FIELD_OVERHEAD + len(f) for f in fields)
        master, info = self._node_of(i)
        if info[0] == 1:
            del self.nodes[master]
        else:
            info[0] -= 1
            info[1] += 1
        return True

    def trim(self, maxlen: int | None, minid: ID | None, approx: bool, limit: int) -> int:
        """streamTrim: by length or minimum ID; `approx` removes whole nodes only, and at
        most `limit` entries (0: no limit) are removed."""
        deleted = 0
        nodes, entries = self.nodes, self.entries
        while nodes:
            if maxlen is not None and len(entries) <= maxlen:
                break
            master, info = nodes.peekitem(0)
            live = info[0]
            if limit and deleted + live > limit:
                break
            if maxlen is not None:
                whole = len(entries) - live >= maxlen
            else:
                assert minid is not None
                whole = info[2] < minid
            if whole:
                for i in list(entries.irange(master, info[2])):
                    self._drop(i)
                del nodes[master]
                deleted += live
                continue
            if approx:
                break
            gone = 0
            for i in list(entries.irange(master, info[2])):
                if maxlen is not None:
                    if len(entries) <= maxlen:
                        break
                elif i >= minid:  # type: ignore[operator]
                    break
                self._drop(i)
                gone += 1
            info[0] -= gone
            info[1] += gone
            deleted += gone
            break
        return deleted

    def _drop(self, i: ID) -> None:
        fields = self.entries.pop(i)
        self.ebytes -= ENTRY_OVERHEAD + sum(FIELD_OVERHEAD + len(f) for f in fields)

    def radix_nodes(self) -> int:
        """An estimate of Redis's `radix-tree-nodes` (it depends on rax internals)."""
        n = len(self.nodes)
        return n + 1 if n else 1

    # ------------------------------------------------------------------ groups
    def size(self) -> int:
        total = STREAM_OVERHEAD + self.ebytes + 80 * len(self.nodes)
        for name, g in self.groups.items():
            total += GROUP_OVERHEAD + len(name) + NACK_OVERHEAD * len(g.pel)
            total += sum(CONSUMER_OVERHEAD + len(n) for n in g.consumers)
        return total

    def copy(self) -> Stream:
        return Stream.load(self.dump())

    def lazy_parts(self) -> list[Any]:
        """What the lazy free releases in slices (keyspace.free_later): the entries as a
        plain dict (a C-speed copy; the index is dropped now, its keys live on in it)."""
        entries = dict.copy(self.entries)
        self.entries = SortedDict()
        return [entries]

    # ------------------------------------------------------------------ state format
    def dump(self) -> tuple[Any, ...]:
        """A marshal-able form: entries, nodes, counters, groups (PELs and consumers)."""
        groups = []
        for name, g in self.groups.items():
            cons = [(cn.name, cn.seen) for cn in g.consumers.values()]
            pel = [
                (i, n.time, n.count, None if n.consumer is None else n.consumer.name)
                for i, n in g.pel.items()
            ]
            groups.append((name, g.last_id, g.entries_read, cons, pel))
        return (
            list(self.entries.items()),
            [(m, tuple(info)) for m, info in self.nodes.items()],
            self.last_id,
            self.max_deleted,
            self.entries_added,
            groups,
        )

    @classmethod
    def load(cls, payload: Any) -> Stream:
        """The inverse of dump(); ValueError names what is wrong with a bad payload."""
        try:
            entries, nodes, last_id, max_deleted, added, groups = payload
            s = cls()
            for i, fields in entries:
                _check_id(i)
                if not isinstance(fields, list) or not fields or len(fields) % 2:
                    raise ValueError("a stream entry's fields are not pairs")
                if not set(map(type, fields)) <= {bytes}:
                    raise ValueError("a stream field is not a byte string")
                s.entries[i] = fields
                s.ebytes += ENTRY_OVERHEAD + sum(FIELD_OVERHEAD + len(f) for f in fields)
            if len(s.entries) != len(entries):
                raise ValueError("a stream entry ID appears twice")
            for m, info in nodes:
                _check_id(m)
                live, deleted, last, nbytes = info
                _check_id(last)
                if not all(isinstance(x, int) and x >= 0 for x in (live, deleted, nbytes)):
                    raise ValueError("a stream node's counters are not counts")
                s.nodes[m] = [live, deleted, last, nbytes]
            if sum(info[0] for info in s.nodes.values()) != len(s.entries):
                raise ValueError("a stream's nodes do not hold its entries")
            if s.entries and not s.nodes:
                raise ValueError("a stream's nodes do not hold its entries")
            _check_id(last_id)
            _check_id(max_deleted)
            s.last_id, s.max_deleted = last_id, max_deleted
            if s.entries and s.entries.peekitem(-1)[0] > last_id:
                raise ValueError("a stream entry is above the last ID")
            if not isinstance(added, int) or added < 0:
                raise ValueError("a stream's entries-added is not a count")
            s.entries_added = added
            for name, glast, read, cons, pel in groups:
                if not isinstance(name, bytes) or not isinstance(read, int):
                    raise ValueError("a stream group is malformed")
                _check_id(glast)
                g = s.groups[name] = Group(glast, read)
                for cname, seen in cons:
                    if not isinstance(cname, bytes) or not isinstance(seen, int):
                        raise ValueError("a stream consumer is malformed")
                    g.consumers[cname] = Consumer(cname, seen)
                for i, t, count, owner in pel:
                    _check_id(i)
                    if not isinstance(t, int) or not isinstance(count, int):
                        raise ValueError("a pending entry is malformed")
                    cn = None if owner is None else g.consumers.get(owner)
                    if owner is not None and cn is None:
                        raise ValueError("a pending entry names an unknown consumer")
                    nack = g.pel[i] = Nack(t, count, cn)
                    if cn is not None:
                        cn.pel[i] = nack
            return s
        except (TypeError, ValueError) as e:
            raise ValueError(str(e)) from None

    def iter_nodes(self) -> Iterator[tuple[ID, list[tuple[ID, list]]]]:
        """Live entries grouped by node (DUMP writes one listpack per node)."""
        for master, info in self.nodes.items():
            items = [(i, self.entries[i]) for i in self.entries.irange(master, info[2])]
            if items:
                yield items[0][0], items


def _check_id(i: Any) -> None:
    if (
        not isinstance(i, tuple)
        or len(i) != 2
        or not all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= MAX for x in i)
    ):
        raise ValueError("a stream ID is not a pair of 64-bit counts")


def describe(s: Stream) -> dict[str, Any]:
    """The plain description rdb.encode_stream writes (DUMP)."""
    nodes = [(m, len(items), 0, items[-1][0], 0, items) for m, items in s.iter_nodes()]
    groups = []
    for name in sorted(s.groups):
        g = s.groups[name]
        pel = [(i, n.time, n.count, n.consumer.name if n.consumer else b"")
               for i, n in g.pel.items()]
        groups.append((name, g.last_id, g.entries_read, pel,
                       [(cn, g.consumers[cn].seen) for cn in sorted(g.consumers)]))
    return {"nodes": nodes, "last_id": s.last_id, "max_deleted": s.max_deleted,
            "entries_added": s.entries_added, "groups": groups}


def from_description(desc: dict[str, Any]) -> Stream:
    """RESTORE: the stream rdb.load described (it checked order, counts and owners)."""
    s = Stream()
    for master, live, deleted, last, nbytes, entries in desc["nodes"]:
        for i, fields in entries:
            s.entries[i] = fields
            s.ebytes += ENTRY_OVERHEAD + sum(FIELD_OVERHEAD + len(f) for f in fields)
        s.nodes[master] = [live, deleted, last, nbytes]
    s.last_id, s.max_deleted = desc["last_id"], desc["max_deleted"]
    s.entries_added = desc["entries_added"]
    for name, glast, read, pel, consumers in desc["groups"]:
        g = s.groups[name] = Group(glast, s.estimate_read(glast) if read is None else read)
        for cname, seen in consumers:
            g.consumers[cname] = Consumer(cname, seen)
        for i, when, count, owner in pel:
            cn = g.consumers[owner]
            g.pel[i] = cn.pel[i] = Nack(when, count, cn)
    return s
