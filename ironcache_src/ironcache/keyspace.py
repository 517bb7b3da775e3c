"""The keyspace: databases of typed values with expiry, memory accounting and eviction.

Values are plain Python objects: bytes (string), dict (hash), deque (list), set (set), or
objects of a structure module (ironcache.zset.ZSet) that name themselves (`TAG`: TYPE, the
state format) and their size (`size()`).
Each key holds an `Entry` (value, LRU clock, estimated size). Sizes are estimates of what
CPython really spends, so `maxmemory` bounds the process, not just the payload.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Iterator
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
FREE_SLICE = 5000  # elements released per event-loop turn

TYPE_NAMES = {bytes: "string", dict: "hash", deque: "list", set: "set"}


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


# Set while a journal is replayed, so each write sees the time it first ran at.
FROZEN_MS = 0


def now_ms() -> int:
    return FROZEN_MS or int(time.time() * 1000)


def value_size(value: Any) -> int:
    t = type(value)
    if t is bytes:
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

    __slots__ = ("source", "keys", "misses")

    def __init__(self, source: dict[bytes, Any]) -> None:
        self.source = source
        self.keys: list[bytes] = []
        self.misses = 0

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
        self.keys = list(self.source)
        self.misses = 0


class Database:
    __slots__ = (
        "index", "data", "expires", "keyspace", "sampler", "vsampler", "watchers",
        "order", "stale", "epoch", "marks", "compacting",
    )

    def __init__(self, index: int, keyspace: Keyspace) -> None:
        self.index = index
        self.keyspace = keyspace
        self.data: dict[bytes, Entry] = {}
        self.expires: dict[bytes, int] = {}  # key -> absolute unix time in ms
        self.sampler = Sampler(self.data)
        self.vsampler = Sampler(self.expires)
        self.watchers: dict[bytes, set[Any]] = {}  # key -> clients WATCHing it
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
        e.lru = self.keyspace.clock
        return e

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
        else:
            ks.used += size + len(key) + KEY_OVERHEAD
            self.data[key] = Entry(value, ks.clock, size)
            self.order.append(key)
        if self.expires and not keep_ttl:
            self.expires.pop(key, None)
        # touched(), inlined: this is the hottest write path.
        ks.dirty += 1
        if self.watchers:
            self.touched(key)

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
        self.stale += 1
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
        self.keyspace.dirty += 1
        if self.watchers:
            clients = self.watchers.get(key)
            if clients:
                for c in clients:
                    c.dirty_cas = True

    def set_expire(self, key: bytes, when_ms: int) -> None:
        self.expires[key] = when_ms
        self.touched(key)

    def persist(self, key: bytes) -> bool:
        if self.expires.pop(key, None) is None:
            return False
        self.touched(key)
        return True

    def flush(self, lazy: bool = False) -> None:
        for key in list(self.watchers):
            self.touched(key)
        ks = self.keyspace
        if lazy:
            # FLUSHDB/FLUSHALL ASYNC: new empty dicts now, the old ones freed in slices.
            old, self.data, self.expires = self.data, {}, {}
            self.sampler = Sampler(self.data)
            self.vsampler = Sampler(self.expires)
            self.rebuild_order()
            if len(old) <= LAZYFREE_THRESHOLD:
                for key, e in old.items():
                    ks.used -= e.size + len(key) + KEY_OVERHEAD
            else:
                ks.free_later(old)  # `used` goes down as free_step() releases its entries
            return
        for key, e in self.data.items():
            ks.used -= e.size + len(key) + KEY_OVERHEAD
        self.data.clear()
        self.expires.clear()
        self.sampler.reset()
        self.vsampler.reset()
        self.rebuild_order()

    def _expire(self, key: bytes) -> None:
        self.delete(key)
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


POLICIES = (
    "noeviction",
    "allkeys-lru",
    "volatile-lru",
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
        self.lazy: deque[Any] = deque()  # big values waiting to be released (free_step)
        self.lazyfreed_objects = 0
        self.free_scheduled = False  # a free_step() is queued on the event loop
        self.tick()

    def free_later(self, value: Any) -> None:
        """Drop a value, releasing a big container in slices (free_step) rather than at once."""
        if type(value) in (dict, set, deque) and len(value) > LAZYFREE_THRESHOLD:
            self.lazy.append(value)

    def free_step(self, budget: int = FREE_SLICE) -> bool:
        """Release up to `budget` elements of values given to free_later(); True if more wait."""
        lazy = self.lazy
        while budget > 0 and lazy:
            v = lazy.pop()
            n = min(budget, len(v))
            budget -= n
            pop = v.popitem if isinstance(v, dict) else v.pop
            for _step in range(n):
                item = pop()
                if isinstance(item, tuple) and isinstance(item[1], Entry):  # a flushed database
                    self.used -= item[1].size + len(item[0]) + KEY_OVERHEAD
                    self.free_later(item[1].value)
            if v:
                lazy.append(v)
            else:
                self.lazyfreed_objects += 1
        return bool(lazy)

    def tick(self) -> None:
        self.clock = int(time.monotonic() * 1000)

    def reset_stats(self) -> None:
        self.expired_keys = self.evicted_keys = self.hits = self.misses = 0

    def evict(self, limit: int, policy: str, samples: int) -> bool:
        """Evict until `used` is under `limit`. False when that is impossible."""
        if self.used <= limit:
            return True
        if policy == "noeviction":
            return False
        volatile = policy.startswith("volatile")
        while self.used > limit:
            best: tuple[Database, bytes] | None = None
            best_score = 0.0
            for db in self.dbs:
                src = db.expires if volatile else db.data
                if not src:
                    continue
                sampler = db.vsampler if volatile else db.sampler
                for k in sampler.sample(samples if policy.endswith(("lru", "ttl")) else 1):
                    if policy.endswith("lru"):
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
                return False
            db, k = best
            if db.delete(k):
                self.evicted_keys += 1
        return True
