"""The sorted set: a member -> score dict plus an ordered index of byte-string keys.

Each index key is the score in 8 bytes whose byte order is the numbers' order (encode())
followed by the member, so keys compare with one memcmp in Redis's order: by score, ties by
member bytes. A tuple (score, member) would compare in two steps and spread one member over
three objects; at 100,000 members a ZADD that moves a member costs about 40% less this way,
most of it memory access. The index is a `sortedcontainers.SortedList`, so insert, delete and
rank are O(log n) as in Redis's skiplist, and ranges are a bisection plus the slice. Scores
are never NaN (the commands refuse them first) and -0 is stored as 0.
"""

from __future__ import annotations

import math
import struct
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Iterator
from operator import itemgetter
from typing import Any

from sortedcontainers import SortedList

# Memory estimate per member (value_size): the member, its float, the index key (a second copy
# of the member after 8 score bytes), the dict slot and the index's list slot, as CPython
# spends them; member_size() adds the member's length twice.
ZMEMBER_OVERHEAD = 33 + 24 + 41 + 100 + 8
ZSET_OVERHEAD = 600  # the dict, the SortedList and its first sublist

_PACK = struct.Struct(">d").pack
_INVERT = bytes(range(255, -1, -1))


def encode(x: float) -> bytes:
    """8 bytes that sort as the doubles do: a non-negative double with its sign bit set (which
    is what negating it does; -0 counts as 0), a negative one with every bit inverted."""
    return _PACK(-(x + 0.0)) if x >= 0 else _PACK(x).translate(_INVERT)


def after(x: float) -> bytes:
    """8 bytes that sort after every key of score `x` and before every greater score: those
    of the next double (encode() is monotonic), or past +inf's for +inf."""
    return encode(math.nextafter(x, math.inf)) if x != math.inf else _AFTER_INF


# The member of an index key: one C call a key where a comprehension runs Python code.
member_of = itemgetter(slice(8, None))

_AFTER_INF = (int.from_bytes(encode(math.inf), "big") + 1).to_bytes(8, "big")


def score_bounds(lo: float, lo_ex: bool, hi: float, hi_ex: bool) -> tuple[bytes, bytes]:
    """keys_between()'s bounds for a score range: its first key, and the first key past it,
    are the first keys at or after these."""
    return (after(lo) if lo_ex else encode(lo)), (encode(hi) if hi_ex else after(hi))


def digit_bounds(lo: bytes, hi: bytes) -> tuple[bytes, bytes]:
    """keys_between()'s bounds for the scores lo..hi, both inclusive, given as digits only
    (the common form of a score range): encode() and after() without their branches."""
    return _PACK(-float(lo)), _PACK(-_nextafter(float(hi), math.inf))


_nextafter = math.nextafter


def member_size(member: bytes) -> int:
    return ZMEMBER_OVERHEAD + 2 * len(member)


class Index(SortedList):
    """The ordered index of keys. Sublists of 500-1,000 instead of the default 1,000-2,000:
    at 100,000 members a ZADD that moves a member costs about 15% less, the shorter insort and
    delete moves outweighing the longer bisection of the sublist maxima."""

    DEFAULT_LOAD_FACTOR = 500


def index_add(ix: Index, v: bytes) -> None:
    """SortedList.add with its _expand() call made only when it has work (a sublist to
    split, a positional index to update): one Python call per insert instead of two."""
    lists = ix._lists
    maxes = ix._maxes
    if maxes:
        pos = bisect_right(maxes, v)
        if pos == len(maxes):
            pos -= 1
            lists[pos].append(v)
            maxes[pos] = v
        else:
            insort(lists[pos], v)
        if ix._index or len(lists[pos]) > ix._load << 1:
            ix._expand(pos)
    else:
        lists.append([v])
        maxes.append(v)
    ix._len += 1


def index_remove(ix: Index, v: bytes) -> None:
    """SortedList.remove of a key known to be there (the member dict says so), with
    _delete() called only when it has work (sublists to join, a positional index)."""
    maxes = ix._maxes
    pos = bisect_left(maxes, v)
    sub = ix._lists[pos]
    idx = bisect_left(sub, v)
    if ix._index or len(sub) <= (ix._load >> 1) + 1:
        ix._delete(pos, idx)
        return
    del sub[idx]
    ix._len -= 1
    maxes[pos] = sub[-1]


# A lex bound: (kind, member, exclusive); kind -1 is '-' (below all), 1 is '+' (above all),
# 0 a member ('[' inclusive, '(' exclusive).
LexBound = tuple[int, bytes, bool]


def shared_width(members: Iterable[bytes]) -> int:
    """The length every member has, or -1 (they differ, or there are none)."""
    widths = set(map(len, members))
    return widths.pop() if len(widths) == 1 else -1


class ZSet:
    __slots__ = ("scores", "index", "width")

    TAG = "zset"  # its tag in the state format (state.py)

    def __init__(self) -> None:
        self.scores: dict[bytes, float] = {}
        self.index: Index = Index()
        # The length every member has, -1 once two differ (until the set is rebuilt): a
        # reply of members then frames them all with one join (protocol.bulks_of_width), the
        # usual case of fixed-width ids. Whatever adds a member keeps it, as add() does.
        self.width = -1

    def __len__(self) -> int:
        return len(self.scores)

    def __bool__(self) -> bool:
        return bool(self.scores)

    def __iter__(self) -> Iterator[tuple[float, bytes]]:
        """(score, member) in order (built at C speed: every caller reads them all)."""
        return iter(self.pairs(self.index))

    def pairs(self, keys: Iterable[bytes]) -> list[tuple[float, bytes]]:
        """(score, member) of index keys; the score is the dict's (a -0 that a computed,
        unstored set keeps stays -0)."""
        members = list(map(member_of, keys))
        return list(zip(map(self.scores.__getitem__, members), members, strict=True))

    # ------------------------------------------------------------------ changes
    def add(self, member: bytes, score: float) -> float | None:
        """Set `member`'s score; returns the old score (None if it was new)."""
        score += 0.0  # -0 is stored as 0, as Redis's listpack stores it (an integer 0)
        scores = self.scores
        old = scores.get(member)
        if old is None:
            if len(member) != self.width:
                self.width = -1 if scores else len(member)
            scores[member] = score
            index_add(self.index, encode(score) + member)
        elif old != score:  # -0 and 0 are equal: the old one stays, as in Redis
            index_remove(self.index, encode(old) + member)
            scores[member] = score
            index_add(self.index, encode(score) + member)
        return old

    def discard(self, member: bytes) -> bool:
        old = self.scores.pop(member, None)
        if old is None:
            return False
        index_remove(self.index, encode(old) + member)
        return True

    def delete_slice(self, start: int, stop: int) -> list[tuple[float, bytes]]:
        """Remove index positions [start, stop) and return them as (score, member)."""
        gone = list(self.index.islice(start, stop))
        if len(gone) == len(self.index):
            self.index.clear()
        else:
            for dummy in range(len(gone)):
                del self.index[start]
        scores = self.scores
        members = list(map(member_of, gone))
        return list(zip(map(scores.pop, members), members, strict=True))

    # ------------------------------------------------------------------ reads
    def rank(self, member: bytes) -> int | None:
        score = self.scores.get(member)
        if score is None:
            return None
        return self.index.index(encode(score) + member)

    def keys_at(self, start: int, stop: int) -> list[bytes]:
        """The index keys at positions [start, stop), ascending."""
        return list(self.index.islice(start, stop))

    def score_span(self, lo: float, lo_ex: bool, hi: float, hi_ex: bool) -> tuple[int, int]:
        """Index positions [start, stop) of the members whose score is in the range."""
        ix = self.index
        lo_key, hi_key = score_bounds(lo, lo_ex, hi, hi_ex)
        start = ix.bisect_left(lo_key)
        return start, max(start, ix.bisect_left(hi_key))

    def score_keys(self, lo: float, lo_ex: bool, hi: float, hi_ex: bool) -> list[bytes]:
        """The index keys of a score range, ascending, without positions."""
        return self.keys_between(*score_bounds(lo, lo_ex, hi, hi_ex))

    def keys_between(self, lo_key: bytes, hi_key: bytes) -> list[bytes]:
        """The index keys k with lo_key <= k < hi_key, ascending (score_keys' bounds, or
        digit_bounds()).

        Bisects SortedList's sublists directly (`_maxes`, `_lists`: sortedcontainers is
        pinned): a few C calls where irange() runs a generator of Python code per range.
        """
        lists = self.index._lists
        n = len(lists)
        if n == 1:  # up to 1,000 members: one sublist
            sub = lists[0]
            return sub[bisect_left(sub, lo_key) : bisect_left(sub, hi_key)]
        pos = bisect_left(self.index._maxes, lo_key)
        if pos == n:
            return []
        sub = lists[pos]
        start = bisect_left(sub, lo_key)
        stop = bisect_left(sub, hi_key)
        if stop < len(sub):
            return sub[start:stop]
        out = sub[start:]
        pos += 1
        while pos < n:
            sub = lists[pos]
            stop = bisect_left(sub, hi_key)
            out += sub[:stop]
            if stop < len(sub):
                break
            pos += 1
        return out

    def score_items(self, lo: float, lo_ex: bool, hi: float, hi_ex: bool) -> list:
        """The (score, member) pairs of a score range, ascending."""
        return self.pairs(self.score_keys(lo, lo_ex, hi, hi_ex))

    def lex_span(self, lo: LexBound, hi: LexBound) -> tuple[int, int]:
        """Index positions [start, stop) of a lex range, walked as Redis walks a listpack.

        Redis defines lex ranges only when all scores are equal; with mixed scores its
        answer is that of a walk in score order: the first member >= min, then every one
        up to the first member > max. Equal scores (the documented case) bisect instead.
        """
        ix = self.index
        n = len(ix)
        if not n:
            return 0, 0
        prefix = ix[0][:8]
        if prefix == ix[-1][:8]:
            if lo[0]:
                start = 0 if lo[0] < 0 else n
            else:
                k = prefix + lo[1]
                start = ix.bisect_right(k) if lo[2] else ix.bisect_left(k)
            if hi[0]:
                stop = 0 if hi[0] < 0 else n
            else:
                k = prefix + hi[1]
                stop = ix.bisect_left(k) if hi[2] else ix.bisect_right(k)
            return start, max(start, stop)
        if not gte_min(ix[-1][8:], lo) or not lte_max(ix[0][8:], hi):
            return 0, 0  # zzlIsInLexRange: the ends decide first
        start = 0
        while start < n and not gte_min(ix[start][8:], lo):
            start += 1
        stop = start
        while stop < n and lte_max(ix[stop][8:], hi):
            stop += 1
        return start, stop

    def lex_span_rev(self, lo: LexBound, hi: LexBound) -> tuple[int, int]:
        """As lex_span, walking from the end (Redis's REV lex ranges on a listpack)."""
        ix = self.index
        n = len(ix)
        if not n or ix[0][:8] == ix[-1][:8]:
            return self.lex_span(lo, hi)
        if not gte_min(ix[-1][8:], lo) or not lte_max(ix[0][8:], hi):
            return 0, 0
        stop = n
        while stop > 0 and not lte_max(ix[stop - 1][8:], hi):
            stop -= 1
        start = stop
        while start > 0 and gte_min(ix[start - 1][8:], lo):
            start -= 1
        return start, stop

    def random_member(self, i: int) -> bytes:
        return self.index[i][8:]

    # ------------------------------------------------------------------ state format
    def dump(self) -> tuple[list[bytes], list[float]]:
        """A marshal-able form: members and their scores, in order."""
        members = list(map(member_of, self.index))
        scores = self.scores
        return members, [scores[m] for m in members]

    @classmethod
    def load(cls, payload: Any) -> ZSet:
        """The inverse of dump(); ValueError names what is wrong with a bad payload."""
        if not isinstance(payload, tuple) or len(payload) != 2:
            raise ValueError("a sorted set is not a (members, scores) pair")
        members, scores = payload
        if not isinstance(members, list) or not isinstance(scores, list):
            raise ValueError("a sorted set's members or scores are not lists")
        if len(members) != len(scores):
            raise ValueError("a sorted set's members and scores differ in number")
        if not members:
            raise ValueError("an empty collection")
        if not set(map(type, members)) <= {bytes}:
            raise ValueError("a sorted set member is not a byte string")
        if not set(map(type, scores)) <= {float} or any(map(math.isnan, scores)):
            raise ValueError("a sorted set score is not a number")
        z = cls()
        z.scores = dict(zip(members, scores, strict=True))
        if len(z.scores) != len(members):
            raise ValueError("a sorted set member appears twice")
        z.index = Index([encode(s) + m for m, s in z.scores.items()])
        z.width = shared_width(members)
        return z

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[bytes, float]], stored: bool = True) -> ZSet:
        """A zset of (member, score); `stored`: -0 becomes 0, as add() stores it."""
        z = cls()
        z.scores = {m: s + 0.0 for m, s in pairs} if stored else dict(pairs)
        z.index = Index([encode(s) + m for m, s in z.scores.items()])
        z.width = shared_width(z.scores)
        return z

    def copy(self) -> ZSet:
        z = ZSet()
        z.scores = self.scores.copy()
        z.index = self.index.copy()
        z.width = self.width
        return z

    def lazy_parts(self) -> list[Any]:
        """The containers the lazy free releases in slices (keyspace.free_later): the member
        dict first, then the index's sublists (500 to 1,000 keys each)."""
        return [self.scores, *self.index._lists]

    def size(self) -> int:
        return ZSET_OVERHEAD + sum(map(member_size, self.scores))


def gte_min(member: bytes, lo: LexBound) -> bool:
    if lo[0]:
        return lo[0] < 0
    return member > lo[1] if lo[2] else member >= lo[1]


def lte_max(member: bytes, hi: LexBound) -> bool:
    if hi[0]:
        return hi[0] > 0
    return member < hi[1] if hi[2] else member <= hi[1]
