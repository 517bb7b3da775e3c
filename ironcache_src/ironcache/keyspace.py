"""The keyspace: databases of typed values with expiry, memory accounting and eviction.

Values are plain Python objects: bytes (string), dict (hash), deque (list), set (set), or
objects of a structure module (ironcache.zset.ZSet) that name themselves (`TAG`: TYPE, the
state format) and their size (`size()`). A string the bit commands edit (SETBIT, BITFIELD,
PFADD) is a bytearray, changed in place: code that reads a string accepts both, and code that
copies a value must copy a bytearray.
Each key holds an `Entry` (value, LRU clock, estimated size). Sizes are estimates of what
CPython really spends, so `maxmemory` bounds the process, not just the payload.
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from itertools import islice, repeat, starmap
from typing import Any

# Rough CPython costs (bytes object header, dict slot, Entry), measured with tracemalloc.
KEY_OVERHEAD = 33 + 100 + 72
STR_OVERHEAD = 33
FIELD_OVERHEAD = 33 + 33 + 60  # hash field + value + dict slot
ELEM_OVERHEAD = 33 + 8  # list element
MEMBER_OVERHEAD = 33 + 50  # set member
CONTAINER_OVERHEAD = 200

# Values with more elements than this are released in slices (Redis's LAZYFREE_THRESHOLD).
LAZYFREE_THRESHOLD = 64
FREE_SLICE = 5000  # elements released per event-loop turn (about a millisecond)
# What a write over maxmemory frees of pending values before it runs (see Keyspace.evict).
EVICT_FREE_SLICE = 2000
# What one call of Keyspace.evict() spends at most: keys, and time (Redis's bound, 500 us by
# default; a deletion costs more while the SCAN order is compacted); the rest is evicted a
# slice per event-loop turn, as Redis's evictionTimeProc does.
EVICT_KEYS_SLICE = 256
EVICT_TIME_S = 0.002
DATABASE = -1  # the size of a lazy-free job that is a flushed database's dict of entries

TYPE_NAMES = {bytes: "string", bytearray: "string", dict: "hash", deque: "list", set: "set"}


# Keyspace notifications (notify-keyspace-events): Redis's event classes and flag letters.
NOTIFY_KEYSPACE = 1 << 0  # K
NOTIFY_KEYEVENT = 1 << 1  # E
NOTIFY_GENERIC = 1 << 2  # g
NOTIFY_STRING = 1 << 3  # $
NOTIFY_LIST = 1 << 4  # l
NOTIFY_SET = 1 << 5  # s
NOTIFY_HASH = 1 << 6  # h
NOTIFY_ZSET = 1 << 7  # z
NOTIFY_EXPIRED = 1 << 8  # x
NOTIFY_EVICTED = 1 << 9  # e
NOTIFY_STREAM = 1 << 10  # t
NOTIFY_KEY_MISS = 1 << 11  # m (not part of A)
NOTIFY_MODULE = 1 << 13  # d
NOTIFY_NEW = 1 << 14  # n (not part of A)
NOTIFY_ALL = (
    NOTIFY_GENERIC | NOTIFY_STRING | NOTIFY_LIST | NOTIFY_SET | NOTIFY_HASH | NOTIFY_ZSET
    | NOTIFY_EXPIRED | NOTIFY_EVICTED | NOTIFY_STREAM | NOTIFY_MODULE
)
NOTIFY_LETTERS = {
    "A": NOTIFY_ALL, "g": NOTIFY_GENERIC, "$": NOTIFY_STRING, "l": NOTIFY_LIST,
    "s": NOTIFY_SET, "h": NOTIFY_HASH, "z": NOTIFY_ZSET, "x": NOTIFY_EXPIRED,
    "e": NOTIFY_EVICTED, "K": NOTIFY_KEYSPACE, "E": NOTIFY_KEYEVENT, "t": NOTIFY_STREAM,
    "m": NOTIFY_KEY_MISS, "d": NOTIFY_MODULE, "n": NOTIFY_NEW,
}
# CONFIG GET's order (Redis's keyspaceEventsFlagsToString): classes, or A for all of them.
_CLASS_ORDER = "g$lshzxetdn"


def events_from_string(classes: str) -> int:
    """notify-keyspace-events' letters as flags (ValueError on an unknown letter)."""
    flags = 0
    for ch in classes:
        flag = NOTIFY_LETTERS.get(ch)
        if flag is None:
            raise ValueError("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.")
        flags |= flag
    return flags


def events_to_string(flags: int) -> str:
    if flags & NOTIFY_ALL == NOTIFY_ALL:
        out = "A"  # as Redis 7.0.15: "n" is not shown next to "A" (though it is on)
    else:
        out = "".join(ch for ch in _CLASS_ORDER if flags & NOTIFY_LETTERS[ch])
    return out + "".join(ch for ch in "KEm" if flags & NOTIFY_LETTERS[ch])


def type_name(value: Any) -> str:
    """TYPE's answer: builtin types by TYPE_NAMES, structure types by their TAG."""
    return TYPE_NAMES.get(type(value)) or value.TAG


# SCAN walks each database's key order (keys in insertion order; deleted ones stay behind as
# stale slots until a compaction drops them). A cursor is (epoch << SCAN_POS_BITS) | position.
SCAN_POS_BITS = 40
SCAN_POS_MASK = (1 << SCAN_POS_BITS) - 1
SCAN_EPOCH_MASK = (1 << (64 - SCAN_POS_BITS)) - 1
SCAN_MARK = 512  # slots a compaction step takes; it records where each step's first one went
SCAN_EPOCHS = 16  # compactions a cursor can be carried across; older cursors start over

# HSCAN/SSCAN/ZSCAN (MemberScans): collections up to SCAN_WHOLE elements answer in one reply
# (Redis's listpack/intset encodings); bigger ones iterate a snapshot of their members. A cursor
# is (snapshot id << SCAN_POS_BITS) | position.
SCAN_WHOLE = 128
SCAN_SNAPSHOTS = 256  # snapshots kept at once (iterations in progress), least recent dropped
SCAN_SNAPSHOTS_PER_KEY = 4  # of one collection: its memory for iteration is bounded too
SCAN_SNAPSHOT_SLOTS = 16_000_000  # members they may hold together (8 bytes each)


# Set while a journal is replayed, so each write sees the time it first ran at.
FROZEN_MS = 0


def now_ms() -> int:
    return FROZEN_MS or int(time.time() * 1000)


def value_size(value: Any) -> int:
    t = type(value)
    if t is bytes or t is bytearray:
        return STR_OVERHEAD + len(value)
    if t is dict:
        return CONTAINER_OVERHEAD + sum(FIELD_OVERHEAD + len(f) + len(v) for f, v in value.items())
    if t is deque:
        return CONTAINER_OVERHEAD + sum(ELEM_OVERHEAD + len(e) for e in value)
    if t is set:
        return CONTAINER_OVERHEAD + sum(MEMBER_OVERHEAD + len(m) for m in value)
    size = getattr(value, "size", None)
    if size is None:
        raise TypeError(t)
    return int(size())


class Entry:
    __slots__ = ("value", "lru", "size")

    def __init__(self, value: Any, lru: int, size: int) -> None:
        self.value = value
        self.lru = lru
        self.size = size


class Sampler:
    """Random picks from a dict's keys without copying them on every pick.

    A snapshot of the keys is taken lazily and reused; picks that no longer exist are
    skipped, and the snapshot is retaken once it is mostly stale or used up. New keys are
    missing from an old snapshot, which suits eviction: they are the most recently used.
    """

    __slots__ = ("source", "keys", "misses", "release")

    def __init__(
        self, source: dict[bytes, Any], release: Callable[[Any], Any] | None = None
    ) -> None:
        self.source = source
        self.keys: list[bytes] = []
        self.misses = 0
        # Where a retaken snapshot's old list goes (Keyspace.free_later): it may hold the last
        # references to many deleted keys, whose release in one go would stall the server.
        self.release = release

    def reset(self) -> None:
        self.keys = []
        self.misses = 0

    def sample(self, n: int) -> list[bytes]:
        src = self.source
        if not src:
            return []
        out: list[bytes] = []
        tries = 0
        while len(out) < n and tries < 4 * n + 8:
            tries += 1
            if not self.keys or self.misses > len(self.keys) // 2 + 16:
                self.refresh()
            k = self.keys[random.randrange(len(self.keys))]
            if k in src:
                out.append(k)
            else:
                self.misses += 1
        if not out:  # the snapshot was stale through and through: retake it once
            self.refresh()
            out = [k for k in random.sample(self.keys, min(n, len(self.keys))) if k in src]
        return out

    def refresh(self) -> None:
        old = self.keys
        self.keys = list(self.source)
        self.misses = 0
        if self.release is not None:
            self.release(old)


# HRANDFIELD / SRANDMEMBER without a count: a snapshot of a big hash's or set's elements,
# by the container's id, reused while its size is unchanged and its picks are still there
# (every pick is checked, so a stale or foreign snapshot is retaken, never answered from).
_SNAPSHOT_MIN = 64  # smaller ones are walked (at most 63 steps)
_SNAPSHOTS_MAX = 32
_snapshots: OrderedDict[int, list[Any]] = OrderedDict()


def random_element(container: dict[Any, Any] | set[Any]) -> Any:
    """A random field of a hash or member of a set, in O(1) amortised: a copy of the
    elements is taken once and reused until the size changes or a pick was deleted (as
    Redis's dictGetFairRandomKey it is near, not exactly, uniform: an element that replaced
    another at equal size is picked once the deleted one was drawn and the copy retaken)."""
    n = len(container)
    if n < _SNAPSHOT_MIN:
        return next(islice(container, random.randrange(n), None))
    key = id(container)
    snap = _snapshots.get(key)
    if snap is not None and len(snap) == n:
        x = snap[random.randrange(n)]
        if x in container:
            _snapshots.move_to_end(key)
            return x
    snap = list(container)
    _snapshots[key] = snap
    if len(_snapshots) > _SNAPSHOTS_MAX:
        _snapshots.popitem(last=False)
    return snap[random.randrange(n)]


class Database:
    __slots__ = (
        "index", "data", "expires", "keyspace", "sampler", "vsampler", "watchers", "blocked",
        "order", "stale", "epoch", "marks", "compacting", "freqs",
    )

    def __init__(self, index: int, keyspace: Keyspace) -> None:
        self.index = index
        self.keyspace = keyspace
        self.data: dict[bytes, Entry] = {}
        self.expires: dict[bytes, int] = {}  # key -> absolute unix time in ms
        self.sampler = Sampler(self.data, keyspace.free_later)
        self.vsampler = Sampler(self.expires, keyspace.free_later)
        self.watchers: dict[bytes, set[Any]] = {}  # key -> clients WATCHing it
        self.blocked: dict[bytes, Any] = {}  # key -> clients waiting on it (blocking.py)
        # SCAN's key order: every key once, in insertion order, plus stale slots of deleted
        # (or deleted and re-added) keys; `stale` counts deletions since the last compaction.
        self.order: list[bytes] = []
        self.stale = 0
        self.epoch = 0  # bumped by each compaction and flush
        # (epoch, marks) of recent compactions: marks[i] is the new position of old slot
        # i * SCAN_MARK (a lower bound of where the keys after it went), last the new length.
        self.marks: deque[tuple[int, list[int]]] = deque(maxlen=SCAN_EPOCHS)
        # A compaction in progress: (keys kept so far, marks so far); None when there is none.
        self.compacting: tuple[dict[bytes, None], list[int]] | None = None
        # LFU data under an -lfu policy, as Redis packs it: minutes << 8 | log. counter.
        # A key not in it was not accessed since it was written: LFU_INIT_VAL.
        self.freqs: dict[bytes, int] = {}

    def notify(self, flag: int, event: bytes, key: bytes) -> None:
        """A keyspace notification (Redis's notifyKeyspaceEvent), if its class is on."""
        ks = self.keyspace
        if ks.events & flag:
            ks.publish_event(event, key, self.index)

    def notify_emptied(self, flag: int, event: bytes, key: bytes) -> None:
        """The event of a command that removed elements, then "del" if that emptied the key
        (resized() deleted it), as Redis announces both."""
        ks = self.keyspace
        if ks.events:
            if ks.events & flag:
                ks.publish_event(event, key, self.index)
            if ks.events & NOTIFY_GENERIC and key not in self.data:
                ks.publish_event(b"del", key, self.index)

    # ----------------------------------------------------------- lookups
    def lookup(self, key: bytes) -> Entry | None:
        """The live entry for `key`, expiring it first if its time has passed."""
        e = self.data.get(key)
        if e is None:
            return None
        if self.expires:
            when = self.expires.get(key)
            if when is not None and when <= now_ms():
                self._expire(key)
                return None
        ks = self.keyspace
        e.lru = ks.clock
        if ks.lfu:
            self.lfu_touch(key)
        return e

    def peek(self, key: bytes) -> Entry | None:
        """lookup() without counting an access (Redis's LOOKUP_NOTOUCH: TYPE, TTL, EXISTS,
        OBJECT), so OBJECT IDLETIME and FREQ report what the other commands did."""
        e = self.data.get(key)
        if e is None:
            return None
        if self.expires:
            when = self.expires.get(key)
            if when is not None and when <= now_ms():
                self._expire(key)
                return None
        return e

    def lfu_touch(self, key: bytes) -> None:
        """An access under an -lfu policy (fast paths that inline lookup() call it too)."""
        self.freqs[key] = self.keyspace.lfu_touched(self.freqs.get(key))

    def set(self, key: bytes, value: Any, size: int | None = None, keep_ttl: bool = False) -> None:
        ks = self.keyspace
        if size is None:
            size = value_size(value)
        old = self.data.get(key)
        if old is not None:
            ks.used += size - old.size
            old.value = value
            old.size = size
            old.lru = ks.clock
            if self.blocked and key in self.blocked:  # a new value: waiters look again
                ks.signal_ready(self, key)
        else:
            ks.used += size + len(key) + KEY_OVERHEAD
            self.data[key] = Entry(value, ks.clock, size)
            self.order.append(key)
            if self.blocked and key in self.blocked:
                ks.signal_ready(self, key)
            if ks.events & NOTIFY_NEW:
                ks.publish_event(b"new", key, self.index)
        if self.expires and not keep_ttl:
            self.expires.pop(key, None)
        # touched(), inlined: this is the hottest write path.
        ks.dirty += 1
        if self.watchers:
            self.touched(key)
        elif ks.invalidate is not None:
            ks.invalidate(key)

    def resized(self, key: bytes, entry: Entry, delta: int) -> None:
        """A container changed in place: account for it and wake WATCHers."""
        entry.size += delta
        self.keyspace.used += delta
        self.touched(key)
        if not entry.value:  # empty containers do not exist in Redis
            self.delete(key)

    def delete(self, key: bytes) -> bool:
        e = self.data.pop(key, None)
        if e is None:
            return False
        self.keyspace.used -= e.size + len(key) + KEY_OVERHEAD
        if self.expires:
            self.expires.pop(key, None)
        if self.freqs:
            self.freqs.pop(key, None)
        self.stale += 1
        if self.blocked and key in self.blocked:  # XREADGROUP waiters learn it is gone
            self.keyspace.signal_ready(self, key)
        if self.compacting is not None:
            self.compact_step()
        elif self.stale > 32 and 2 * self.stale > len(self.order):
            self.compacting = ({}, [])
            self.compact_step()
        self.touched(key)
        return True

    # ----------------------------------------------------------- SCAN order
    def compact_step(self, steps: int = 1) -> None:
        """Compact the next `steps` * SCAN_MARK slots of the order: a few microseconds each.

        Each deletion takes one step while a compaction runs, so deleting keeps the order
        under about twice the live keys without a pause. The order stays in use (and grows)
        until the last step swaps in the compacted one, so cursors need mapping only then.
        """
        assert self.compacting is not None
        kept, marks = self.compacting
        old, live = self.order, self.data.__contains__
        for dummy in range(steps):
            i = len(marks) * SCAN_MARK
            marks.append(len(kept))
            # First occurrences win: a key deleted and re-added keeps its earlier slot.
            kept.update(dict.fromkeys(filter(live, old[i : i + SCAN_MARK])))
            if i + SCAN_MARK >= len(old):
                marks.append(len(kept))
                self._new_epoch(list(kept), marks)
                self.stale = len(kept) - len(self.data)  # kept keys deleted since
                return

    def compact_order(self) -> None:
        """The whole compaction at once (tests, and loads that want it done)."""
        self.compacting = self.compacting or ({}, [])
        self.compact_step(len(self.order) // SCAN_MARK + 1)

    def rebuild_order(self) -> None:
        """After `data` was filled or emptied directly (load, flush)."""
        self._new_epoch(list(self.data), [0])

    def _new_epoch(self, order: list[bytes], marks: list[int]) -> None:
        self.marks.append((self.epoch, marks))
        self.epoch = (self.epoch + 1) & SCAN_EPOCH_MASK
        # The old order may hold the last references to many deleted keys: released in slices.
        self.keyspace.free_later(self.order)
        self.order = order
        self.stale = 0
        self.compacting = None

    def scan_position(self, cursor: int) -> int:
        """The slot a cursor continues from: its position carried across later compactions.

        Mapped positions never pass a key that was after the cursor, so keys present for the
        whole iteration are returned at least once; an unknown epoch starts over at 0.
        """
        epoch, pos = cursor >> SCAN_POS_BITS, cursor & SCAN_POS_MASK
        if epoch == self.epoch:
            return pos
        history = list(self.marks)
        epochs = [e for e, _marks in history]
        if epoch not in epochs:
            return 0
        for _e, marks in history[epochs.index(epoch) :]:
            pos = marks[min(pos // SCAN_MARK, len(marks) - 1)]
        return pos

    def scan_slots(self, cursor: int, count: int) -> tuple[int, list[bytes]]:
        """Up to `count` slots from `cursor` and the next cursor (0 at the end): O(count)."""
        pos = self.scan_position(cursor)
        end = pos + count
        batch = self.order[pos:end]
        if end >= len(self.order):
            return 0, batch
        return (self.epoch << SCAN_POS_BITS) | end, batch

    def touched(self, key: bytes) -> None:
        """A key changed (Redis's signalModifiedKey): WATCHers and tracking clients learn it."""
        ks = self.keyspace
        ks.dirty += 1
        if self.watchers:
            clients = self.watchers.get(key)
            if clients:
                for c in clients:
                    c.dirty_cas = True
        if ks.invalidate is not None:
            ks.invalidate(key)

    def set_expire(self, key: bytes, when_ms: int) -> None:
        self.expires[key] = when_ms
        self.touched(key)

    def persist(self, key: bytes) -> bool:
        if self.expires.pop(key, None) is None:
            return False
        self.touched(key)
        return True

    # The contents a database swaps (SWAPDB); index, watchers and the keyspace stay.
    CONTENTS = (
        "data", "expires", "sampler", "vsampler", "order", "stale", "epoch", "marks",
        "compacting", "freqs",
    )

    def swap(self, other: Database) -> None:
        """SWAPDB: exchange contents; WATCHers of a key present on either side are dirtied."""
        for db, peer in ((self, other), (other, self)):
            for key in list(db.watchers):
                if key in db.data or key in peer.data:
                    db.touched(key)
        for name in self.CONTENTS:
            mine = getattr(self, name)
            setattr(self, name, getattr(other, name))
            setattr(other, name, mine)
        for db in (self, other):  # waiters stay with the index: their keys may be new or gone
            for key in db.blocked:
                self.keyspace.signal_ready(db, key)

    def flush(self, lazy: bool = False) -> None:
        # As Redis's touchAllWatchedKeysInDb(): only watched keys that exist change.
        data = self.data
        for key in [k for k in self.watchers if k in data]:
            self.touched(key)
        ks = self.keyspace
        for key in [k for k in self.blocked if k in data]:  # XREADGROUP waiters: gone
            ks.signal_ready(self, key)
        for members in ks.member_scans.forget_db(self.index):
            ks.free_later(members)
        self.freqs = {}
        if lazy:
            # FLUSHDB/FLUSHALL ASYNC in O(1): every structure of the database is swapped for
            # an empty one now; the old ones (entries, expiry times, SCAN order, samplers'
            # snapshots) are released in slices. Entries stay counted in `used` until then.
            old = [self.data, self.expires, self.order, self.sampler.keys, self.vsampler.keys]
            if self.compacting is not None:
                old.append(self.compacting[0])
            self.data, self.expires = {}, {}
            self.sampler = Sampler(self.data, ks.free_later)
            self.vsampler = Sampler(self.expires, ks.free_later)
            self.order = []
            self.rebuild_order()
            if len(old[0]) <= LAZYFREE_THRESHOLD:
                for key, e in old[0].items():
                    ks.used -= e.size + len(key) + KEY_OVERHEAD
            else:
                ks.free_later(old[0], DATABASE)
            for structure in old[1:]:
                ks.free_later(structure)
            return
        for key, e in self.data.items():
            ks.used -= e.size + len(key) + KEY_OVERHEAD
        self.data.clear()
        self.expires.clear()
        self.sampler.reset()
        self.vsampler.reset()
        self.rebuild_order()

    def unlink(self, key: bytes) -> bool:
        """delete(), with a big value released in slices (UNLINK, eviction, expiry)."""
        e = self.data.get(key)
        if e is None or not self.delete(key):
            return False
        self.keyspace.free_later(e.value, e.size)
        return True

    def _expire(self, key: bytes) -> None:
        # As Redis with lazyfree-lazy-expire: an expired big value never stalls a request.
        ks = self.keyspace
        ks.server_delete = True  # no client did it (CLIENT TRACKING's NOLOOP)
        self.unlink(key)
        ks.server_delete = False
        ks.expired_keys += 1
        if ks.events & NOTIFY_EXPIRED:
            ks.publish_event(b"expired", key, self.index)

    def expire_now(self, key: bytes) -> None:
        """A key given a time in the past (EXPIRE 0): the command announces a "del" itself."""
        self.unlink(key)
        self.keyspace.expired_keys += 1

    def live_keys(self) -> Iterator[bytes]:
        """Live keys (expired ones are skipped, not deleted, so iteration stays safe)."""
        exp = self.expires
        if not exp:
            yield from self.data
            return
        t = now_ms()
        for k in self.data:
            when = exp.get(k)
            if when is None or when > t:
                yield k

    def random_key(self) -> bytes | None:
        for dummy in range(100):
            picked = self.sampler.sample(1)
            if not picked:
                return None
            if self.lookup(picked[0]) is not None:
                return picked[0]
        return None

    def active_expire(self, budget_s: float) -> int:
        """Delete sampled expired keys until few are found or the time budget is spent."""
        if not self.expires:
            return 0
        deadline = time.monotonic() + budget_s
        removed = 0
        while True:
            t = now_ms()
            sample = self.vsampler.sample(20)
            if not sample:
                return removed
            hit = 0
            for k in sample:
                when = self.expires.get(k)
                if when is not None and when <= t:
                    self._expire(k)
                    hit += 1
            removed += hit
            if hit * 4 <= len(sample) or time.monotonic() > deadline:
                return removed


class MemberSnapshot:
    __slots__ = ("id", "owner", "members")

    def __init__(self, snap_id: int, owner: tuple[int, bytes], members: list[Any]) -> None:
        self.id = snap_id
        self.owner = owner  # (database, key) it was taken of
        self.members = members


class MemberScans:
    """Cursor iteration over big collections for HSCAN, SSCAN and ZSCAN.

    Cursor 0 takes a snapshot of the collection's members (a list of references: a C-level
    copy, about 15 ms per million hash fields, 50 per million set members); each call walks
    `count` slots of it and answers those still members: O(count), nothing rescanned. Every
    member present for the whole iteration was present at cursor 0, so it is returned
    (exactly once), as Redis promises; members added since may be missed, deleted ones are
    skipped. Snapshots are dropped when their iteration ends, and the least recently used
    beyond SCAN_SNAPSHOTS_PER_KEY of one collection, SCAN_SNAPSHOTS in all or
    SCAN_SNAPSHOT_SLOTS members in all: a cursor whose snapshot is gone (or
    names another key) starts over with a new one, which repeats members but misses none.
    Snapshots hold references, not copies: at most SCAN_SNAPSHOT_SLOTS * 8 bytes, plus the
    members deleted during an iteration, kept until it ends.
    """

    def __init__(self) -> None:
        self.snapshots: OrderedDict[int, MemberSnapshot] = OrderedDict()
        self.slots = 0
        self.next_id = 0
        self.taken = 0  # snapshots taken since start (tests read it)

    def scan(
        self, db: int, key: bytes, members: Any, cursor: int, count: int
    ) -> tuple[int, list[Any]]:
        """The next cursor (0 at the end) and the members of this step still in `members`."""
        snap = self.snapshots.get(cursor >> SCAN_POS_BITS) if cursor else None
        pos = cursor & SCAN_POS_MASK
        if snap is None or snap.owner != (db, key) or pos >= len(snap.members):
            snap, pos = self._take((db, key), list(members)), 0
        else:
            self.snapshots.move_to_end(snap.id)
        end = pos + count
        batch = snap.members[pos:end]
        if end >= len(snap.members):
            self._drop(snap.id)
            nxt = 0
        else:
            nxt = (snap.id << SCAN_POS_BITS) | end
        return nxt, [m for m in batch if m in members]

    def _take(self, owner: tuple[int, bytes], members: list[Any]) -> MemberSnapshot:
        self.next_id = self.next_id % SCAN_EPOCH_MASK + 1  # never 0: that cursor starts over
        self._drop(self.next_id)
        same = [s.id for s in self.snapshots.values() if s.owner == owner]  # oldest first
        for snap_id in same[: max(0, len(same) - SCAN_SNAPSHOTS_PER_KEY + 1)]:
            self._drop(snap_id)
        snap = MemberSnapshot(self.next_id, owner, members)
        self.snapshots[snap.id] = snap
        self.slots += len(members)
        self.taken += 1
        while len(self.snapshots) > 1 and (
            len(self.snapshots) > SCAN_SNAPSHOTS or self.slots > SCAN_SNAPSHOT_SLOTS
        ):
            self._drop(next(iter(self.snapshots)))
        return snap

    def _drop(self, snap_id: int) -> None:
        snap = self.snapshots.pop(snap_id, None)
        if snap is not None:
            self.slots -= len(snap.members)

    def forget_db(self, db: int) -> list[list[Any]]:
        """Drop the snapshots of one database (flushed); their lists, for the lazy free."""
        gone = [s for s in self.snapshots.values() if s.owner[0] == db]
        for snap in gone:
            self._drop(snap.id)
        return [snap.members for snap in gone]


LFU_INIT_VAL = 5

POLICIES = (
    "noeviction",
    "allkeys-lru",
    "volatile-lru",
    "allkeys-lfu",
    "volatile-lfu",
    "allkeys-random",
    "volatile-random",
    "volatile-ttl",
)


class Keyspace:
    def __init__(self, databases: int) -> None:
        self.clock = 0  # coarse LRU clock (ms), advanced by the event loop
        self.used = 0  # estimated bytes held by the dataset
        self.dirty = 0  # changes since start (Redis's server.dirty)
        self.expired_keys = 0
        self.evicted_keys = 0
        self.hits = 0
        self.misses = 0
        self.dbs = [Database(i, self) for i in range(databases)]
        # Big values waiting to be released by free_step(): [container, bytes still counted
        # in `used`, counted at all] (DATABASE: a flushed database's entries, each counted
        # on its own; 0: a bare structure, a database's expiry times or SCAN order).
        self.lazy: deque[list[Any]] = deque()
        self.lazy_counted = 0  # jobs of `lazy` counted in `used` (not bare lists or dicts)
        self.member_scans = MemberScans()
        # Keys with waiting clients that a write created: blocking.Blocking serves them.
        self.ready: list[tuple[Database, bytes]] = []
        self.ready_set: set[tuple[int, bytes]] = set()
        self.lazyfreed_objects = 0
        self.free_scheduled = False  # a free_step() is queued on the event loop
        # An eviction going on over several loop turns: evict()'s (limit, policy, samples).
        self.evicting: tuple[int, str, int] | None = None
        self.evict_scheduled = False
        # The event loop's call_soon (the server sets it): free_later() schedules slices.
        self.call_soon: Callable[[Callable[[], None]], Any] | None = None
        # LFU (Redis's evict.c): counted on each access while an -lfu policy is set.
        self.lfu = False
        self.lfu_log_factor = 10
        self.lfu_decay_time = 1
        # Scripting's persistent part (EVAL's script cache by sha, FUNCTION libraries by
        # name), kept here so the handover and the snapshot carry it with the dataset.
        self.scripts: dict[bytes, bytes] = {}
        self.libraries: dict[str, bytes] = {}
        # Keyspace notifications: the notify-keyspace-events flags, 0 when nothing would be
        # published (no class, or neither K nor E), so a write tests one int when they are
        # off. `publish` (channel, message) is given by the server: pub/sub lives above.
        self.events = 0
        self.publish: Callable[[bytes, bytes], Any] | None = None
        # CLIENT TRACKING (tracking.Tracking.invalidate, given by the server): called with
        # each changed key while something is tracked, else None (one test per write).
        self.invalidate: Callable[[bytes], Any] | None = None
        self.server_delete = False  # the change is an expiry or an eviction, not a command
        self.tick()

    def set_events(self, flags: int) -> None:
        on = flags & (NOTIFY_KEYSPACE | NOTIFY_KEYEVENT) and flags & ~(
            NOTIFY_KEYSPACE | NOTIFY_KEYEVENT
        )
        self.events = flags if on else 0

    def publish_event(self, event: bytes, key: bytes, db: int) -> None:
        """Publish one event whose class is on: __keyspace@<db>__:<key> <event> (K) and
        __keyevent@<db>__:<event> <key> (E). None while a journal is replayed: those writes
        were announced when they first ran."""
        publish = self.publish
        if publish is None or FROZEN_MS:
            return
        if self.events & NOTIFY_KEYSPACE:
            publish(b"__keyspace@%d__:%s" % (db, key), event)
        if self.events & NOTIFY_KEYEVENT:
            publish(b"__keyevent@%d__:%s" % (db, event), key)

    def signal_ready(self, db: Database, key: bytes) -> None:
        if (db.index, key) not in self.ready_set:
            self.ready_set.add((db.index, key))
            self.ready.append((db, key))

    def set_policy(self, policy: str, log_factor: int, decay_time: int) -> None:
        self.lfu = policy.endswith("lfu")
        self.lfu_log_factor = log_factor
        self.lfu_decay_time = decay_time

    def lfu_counter(self, packed: int | None) -> int:
        """LFUDecrAndReturn: the counter less one per decay period since its last access."""
        if packed is None:
            return LFU_INIT_VAL
        counter = packed & 255
        now = int(time.time()) // 60 & 65535
        ldt = packed >> 8
        elapsed = now - ldt if now >= ldt else 65535 - ldt + now
        periods = elapsed // self.lfu_decay_time if self.lfu_decay_time else 0
        return max(counter - periods, 0)

    def lfu_packed(self, counter: int) -> int:
        return (int(time.time()) // 60 & 65535) << 8 | counter

    def lfu_touched(self, packed: int | None) -> int:
        """updateLFU: decay, then a logarithmic increment (LFULogIncr), stamped now."""
        counter = self.lfu_counter(packed)
        if counter < 255:
            base = max(counter - LFU_INIT_VAL, 0)
            if random.random() < 1.0 / (base * self.lfu_log_factor + 1):
                counter += 1
        return self.lfu_packed(counter)

    def free_later(self, value: Any, size: int = 0) -> bool:
        """Drop a value, releasing a big container in slices (free_step) rather than at once.

        `size` is the value's size, already taken out of `used` by Database.delete(): a big
        value is counted again until it is released, so `used` stays what the process holds.
        Returns True when the value was queued.
        """
        parts = getattr(value, "lazy_parts", None)  # a structure type (ZSet): its containers
        if parts is not None and len(value) > LAZYFREE_THRESHOLD:
            first, *rest = parts()
            for part in rest:  # released after `first`, which carries the whole size
                self.free_later(part)
            return self.free_later(first, size)
        if not isinstance(value, (dict, set, deque, list)) or len(value) <= LAZYFREE_THRESHOLD:
            return False
        if size > 0:
            self.used += size
        if size:
            self.lazy_counted += 1
        self.lazy.append([value, size, bool(size)])
        self.schedule_free()
        return True

    def schedule_free(self) -> None:
        if self.lazy and not self.free_scheduled and self.call_soon is not None:
            self.free_scheduled = True
            self.call_soon(self._free_turn)

    def _free_turn(self) -> None:
        self.free_scheduled = False
        if self.free_step():
            self.schedule_free()

    def free_step(self, budget: int = FREE_SLICE) -> bool:
        """Release up to `budget` elements of values given to free_later(); True if more wait."""
        lazy = self.lazy
        while budget > 0 and lazy:
            job = lazy[0]
            v, size, counted = job
            before = len(v)
            n = min(budget, before)
            budget -= n
            if size == DATABASE:
                # Entries: the key and the Entry go now; a big value becomes a job of its own.
                for key, e in starmap(v.popitem, repeat((), n)):
                    self.used -= len(key) + KEY_OVERHEAD
                    if not self.free_later(e.value, 0):
                        self.used -= e.size
                    elif e.size > 0:
                        lazy[-1][1:] = [e.size, True]  # still counted in `used`
                        self.lazy_counted += 1
            else:
                if isinstance(v, list):
                    del v[before - n :]
                else:
                    # C-speed pops: no bytecode per element.
                    deque(starmap(v.popitem if isinstance(v, dict) else v.pop, repeat((), n)), 0)
                if size > 0:
                    released = size if n == before else size * n // before
                    job[1] = size - released
                    self.used -= released
            if not v:
                lazy.popleft()
                self.lazyfreed_objects += 1
                if counted:
                    self.lazy_counted -= 1
        return bool(lazy)

    def drain(self) -> None:
        """Release everything pending now (no event loop runs: a journal replay, a test)."""
        while self.free_step(1 << 30):
            pass

    def tick(self) -> None:
        self.clock = int(time.monotonic() * 1000)

    def reset_stats(self) -> None:
        self.expired_keys = self.evicted_keys = self.hits = self.misses = 0
        self.lazyfreed_objects = 0

    def evict(self, limit: int, policy: str, samples: int) -> bool:
        """Evict until `used` is under `limit`. False when that is impossible.

        `used` counts values still being released (lazy free). While some are, a write over
        the limit first frees a slice of them (EVICT_FREE_SLICE elements) and then runs: it
        evicts no more keys for memory already on its way out, so the process holds at most
        maxmemory plus what is still pending, which every such write shrinks. As Redis lets
        writes through while its lazy-free thread works (EVICT_RUNNING).

        One call evicts at most EVICT_KEYS_SLICE keys: when more must go (maxmemory lowered
        under a big dataset), the rest goes a slice per event-loop turn and the write runs
        meanwhile, as Redis's performEvictions() hands over to its evictionTimeProc.
        """
        if self.used <= limit:
            self.evicting = None
            return True
        if self.lazy_counted:
            self.free_step(EVICT_FREE_SLICE)
            if self.lazy_counted or self.used <= limit:
                return True
        if policy == "noeviction":
            self.evicting = None
            return False
        volatile = policy.startswith("volatile")
        budget = EVICT_KEYS_SLICE
        deadline = time.perf_counter() + EVICT_TIME_S
        while self.used > limit:
            if (budget <= 0 or time.perf_counter() > deadline) and self.call_soon is not None:
                self.evicting = (limit, policy, samples)
                if not self.evict_scheduled:
                    self.evict_scheduled = True
                    self.call_soon(self._evict_turn)
                return True  # EVICT_RUNNING: the rest goes in the next loop turns
            budget -= 1
            best: tuple[Database, bytes] | None = None
            best_score = 0.0
            for db in self.dbs:
                src = db.expires if volatile else db.data
                if not src:
                    continue
                sampler = db.vsampler if volatile else db.sampler
                for k in sampler.sample(samples if policy.endswith(("lru", "lfu", "ttl")) else 1):
                    if policy.endswith("lfu"):
                        e = db.data.get(k)
                        score = -float(self.lfu_counter(db.freqs.get(k))) if e else None
                    elif policy.endswith("lru"):
                        e = db.data.get(k)
                        score = -float(e.lru) if e is not None else None
                    elif policy == "volatile-ttl":
                        w = db.expires.get(k)
                        score = -float(w) if w is not None else None
                    else:
                        score = random.random()
                    if score is not None and (best is None or score > best_score):
                        best, best_score = (db, k), score
            if best is None:
                self.evicting = None
                return False
            db, k = best
            self.server_delete = True
            gone = db.unlink(k)
            self.server_delete = False
            if gone:  # as Redis with lazyfree-lazy-eviction: a big value in slices
                self.evicted_keys += 1
                if self.events & NOTIFY_EVICTED:
                    self.publish_event(b"evicted", k, db.index)
                if self.lazy_counted:
                    self.free_step(EVICT_FREE_SLICE)
                    if self.lazy_counted:
                        return True  # the rest is on its way out (see above)
        self.evicting = None
        return True

    def _evict_turn(self) -> None:
        """One slice of an eviction that evict() could not finish in its call."""
        self.evict_scheduled = False
        if self.evicting is not None:
            self.evict(*self.evicting)
        if self.evicting is not None and not self.evict_scheduled and self.call_soon:
            self.evict_scheduled = True  # waiting for a lazy free: look again next turn
            self.call_soon(self._evict_turn)
