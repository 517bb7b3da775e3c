"""Glob patterns with the semantics of Redis 7.0's stringmatchlen(), in linear-ish time.

The pattern is parsed once into tokens exactly as stringmatchlen() walks it (its parse does
not depend on the string: `[` classes, ranges that Redis swaps when reversed such as `[z-a]`,
`[^...]`, backslash escapes, an unterminated `[` that takes the rest of the pattern, signed
`char` comparisons in ranges). Each token but `*` matches exactly one byte, so the match
compiles to a regular expression whose star segments are atomic groups: no backtracking
into an earlier segment, so `*a*a*a*a*a*a*a*a*a*b` costs O(len(pattern) * len(key)) like
Redis's skipLongerMatches, never exponential.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator

STAR = None  # the token for `*`; every other token is a 256-entry byte table


def _signed(b: int) -> int:
    return b - 256 if b >= 128 else b  # x86 `char` is signed


def _lower(b: int) -> int:
    return b + 32 if 65 <= b <= 90 else b  # tolower() in the C locale


_PLAIN = re.compile(rb"[^\\\]-]+")
FLIP = bytes([1, 0]) + bytes(254)
ANY = b"\x01" * 256


@functools.cache
def _literal(ch: int, nocase: bool) -> bytes:
    return bytes(1 if c == ch or (nocase and _lower(c) == _lower(ch)) else 0 for c in range(256))


def tokenize(pattern: bytes, nocase: bool = False) -> list[bytes | None]:
    """Tokens of `pattern`: STAR, or a bytes table whose byte i is 1 when byte i matches."""
    return list(iter_tokens(pattern, nocase))


def iter_tokens(pattern: bytes, nocase: bool = False) -> Iterator[bytes | None]:
    n = len(pattern)

    def at(i: int) -> int:  # the pattern is NUL-terminated in Redis
        return pattern[i] if i < n else 0

    i = 0
    while i < n:
        ch = pattern[i]
        if ch == 0x2A:  # '*': a run of stars is one star
            while i + 1 < n and pattern[i + 1] == 0x2A:
                i += 1
            yield STAR
        elif ch == 0x3F:  # '?'
            yield ANY
        elif ch == 0x5B:  # '['
            i += 1
            negate = at(i) == 0x5E
            if negate:
                i += 1
            table = bytearray(256)
            while True:
                if at(i) == 0x5C and n - i >= 2:  # escaped: compared as is, even with nocase
                    i += 1
                    table[at(i)] = 1
                elif at(i) == 0x5D:  # ']'
                    break
                elif i >= n:  # unterminated: the class ends with the pattern
                    i -= 1
                    break
                elif n - i >= 3 and at(i + 1) == 0x2D:  # a range, swapped when reversed
                    start, end = _signed(at(i)), _signed(at(i + 2))
                    if start > end:
                        start, end = end, start
                    if nocase:
                        start, end = _signed(_lower(start & 0xFF)), _signed(_lower(end & 0xFF))
                    upper = table[65:91]  # what earlier items of the class set there
                    spans = ((max(start, 0), end), (start + 256, min(end, -1) + 256))
                    for lo, hi in spans:
                        if lo <= hi:
                            table[lo : hi + 1] = b"\x01" * (hi + 1 - lo)
                    if nocase:  # an upper-case byte is compared as its lower-case one
                        for c in range(65, 91):
                            table[c] = 1 if upper[c - 65] or start <= c + 32 <= end else 0
                    i += 2
                elif (run := _PLAIN.match(pattern, i)) is not None and run.end() - i > 1:
                    # A run of plain bytes, read at C speed (a long class must not cost a
                    # Python step per byte); its last byte may start a range: left for above.
                    end = run.end()
                    if end < n and n - (end - 1) >= 3 and pattern[end] == 0x2D:
                        end -= 1
                    for lit in set(pattern[i:end]):
                        table[lit] = 1
                        if nocase:
                            table[_lower(lit)] = 1
                            if 97 <= lit <= 122:
                                table[lit - 32] = 1
                    i = end
                    continue
                else:
                    lit = at(i)
                    table[lit] = 1
                    if nocase and _lower(lit) != lit:
                        table[_lower(lit)] = 1
                    if nocase and 97 <= lit <= 122:
                        table[lit - 32] = 1
                i += 1
            if negate:
                table = bytearray(table.translate(FLIP))
            yield bytes(table)
        else:
            if ch == 0x5C and n - i >= 2:  # '\x': x literally
                i += 1
                ch = pattern[i]
            yield _literal(ch, nocase)
        i += 1


def _token_regex(table: bytes) -> bytes:
    members = [c for c in range(256) if table[c]]
    if len(members) == 256:
        return b"."
    if len(members) == 1:
        return re.escape(bytes(members))
    if not members:
        return b"(?!)"
    parts = bytearray()
    start = prev = members[0]
    for c in members[1:] + [-1]:
        if c == prev + 1:
            prev = c
            continue
        parts += b"\\x%02x" % start if start == prev else b"\\x%02x-\\x%02x" % (start, prev)
        start = prev = c
    return b"[" + bytes(parts) + b"]"


def compile_tokens(tokens: list[bytes | None]) -> re.Pattern[bytes]:
    """A regex matching what the tokens match, with no backtracking across stars."""
    segments: list[list[bytes]] = [[]]
    for t in tokens:
        if t is STAR:
            segments.append([])
        else:
            segments[-1].append(_token_regex_cached(t))
    if len(segments) == 1:
        return re.compile(b"".join(segments[0]) + rb"\Z", re.DOTALL)
    head, *middle, tail = segments
    rx = b"".join(head)
    # The earliest place a middle segment fits is always the best one (its tokens each take
    # one byte), so each is committed to atomically; only the tail is anchored at the end.
    for seg in middle:
        rx += b"(?>.*?" + b"".join(seg) + b")"
    rx += b".*" + b"".join(tail) + rb"\Z"
    return re.compile(rx, re.DOTALL)


# stringmatchlen() returns "no match" when its star recursion gets deeper than this (the fix
# of CVE-2024-31228, in Debian's 7.0.15): a pattern with more stars than that, not counting
# a last one, matches no string. Only patterns longer than COMPILE_LIMIT can have that many.
MAX_NESTING = 1000

# Longer patterns are not compiled (re.compile costs microseconds per byte): they are read
# lazily, token by token, as far as each string needs, like stringmatchlen() does.
COMPILE_LIMIT = 256


@functools.lru_cache(maxsize=4096)
def _token_regex_cached(table: bytes) -> bytes:
    return _token_regex(table)


def matcher(pattern: bytes, nocase: bool = False) -> Callable[[bytes], bool]:
    """A predicate telling whether a string matches `pattern` as Redis's stringmatchlen()."""
    if pattern == b"*":
        # KEYS and SCAN take every key, the empty one included, for the pattern `*`.
        return lambda _s: True
    empty_matches = not pattern  # stringmatchlen(p, "") is 1 only for the empty pattern
    if len(pattern) > COMPILE_LIMIT:
        return _LazyMatcher(pattern, nocase).match
    rx = compile_tokens(tokenize(pattern, nocase))
    match = rx.match

    def test(s: bytes) -> bool:
        if not s:
            return empty_matches
        return match(s) is not None

    return test


class _LazyMatcher:
    """Greedy matching with backtracking to the last star only: O(len(s) ** 2) at worst per
    string whatever the pattern's length, and the pattern is tokenized only as far as used."""

    def __init__(self, pattern: bytes, nocase: bool) -> None:
        self.tokens: list[bytes | None] = []
        self.stars: list[int] = []  # stars among tokens[: i + 1]
        self.source: Iterator[bytes | None] | None = iter_tokens(pattern, nocase)

    def has(self, k: int) -> bool:
        toks = self.tokens
        while len(toks) <= k and self.source is not None:
            nxt = next(self.source, False)
            if nxt is False:
                self.source = None
            else:
                toks.append(nxt)  # type: ignore[arg-type]
                self.stars.append((self.stars[-1] if self.stars else 0) + (nxt is STAR))
        return k < len(toks)

    def match(self, s: bytes) -> bool:
        if not s:
            return False  # this pattern is not empty
        toks, has = self.tokens, self.has
        p = i = mark = 0
        star = -1
        n = len(s)
        while i < n:
            if has(p):
                t = toks[p]
                if t is STAR:
                    if self.stars[p] > MAX_NESTING and has(p + 1):
                        return False  # Redis gives up at this depth: no path can match
                    star, mark = p, i
                    p += 1
                    continue
                if t[s[i]]:
                    p += 1
                    i += 1
                    continue
            if star < 0:
                return False
            p = star + 1
            mark += 1
            i = mark
        while has(p) and toks[p] is STAR:
            p += 1
        return not has(p)


def stringmatch(pattern: bytes, string: bytes, nocase: bool = False) -> bool:
    return matcher(pattern, nocase)(string)
