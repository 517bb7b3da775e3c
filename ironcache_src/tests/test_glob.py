"""Glob patterns (KEYS, SCAN MATCH, HSCAN/SSCAN MATCH, CONFIG GET) as Redis 7.0.15 matches them.

`ironcache.glob` is compared with `globref`, a line-by-line transcription of Redis's
stringmatchlen(), over generated patterns; the server tests run against Redis as well.
"""

from __future__ import annotations

import threading
import time

import redis
from hypothesis import given, settings
from hypothesis import strategies as st

import globref
from ironcache import glob
from support import Server

# Bytes that mean something to the matcher, a few plain ones and signed-char edge cases.
ALPHABET = b"*?[]^-\\azAZ\x00\x7f\x80\xff"
patterns = st.binary(max_size=12).map(lambda b: bytes(ALPHABET[x % len(ALPHABET)] for x in b))
strings = st.binary(max_size=8).map(lambda b: bytes(b"aAzZ-]^\\*?[\x00\x80\xff"[x % 14] for x in b))


@settings(max_examples=3000)
@given(patterns, strings, st.booleans())
def test_same_as_stringmatchlen(pattern: bytes, string: bytes, nocase: bool) -> None:
    if pattern == b"*":
        return  # KEYS/SCAN special-case it (every key, the empty one included)
    expected = globref.stringmatchlen(pattern, string, nocase)
    assert glob.stringmatch(pattern, string, nocase) == expected


@settings(max_examples=1000)
@given(patterns, strings, st.booleans())
def test_lazy_matcher_same_as_stringmatchlen(pattern: bytes, string: bytes, nocase: bool) -> None:
    if not pattern or pattern == b"*":
        return
    lazy = glob._LazyMatcher(pattern, nocase)
    assert lazy.match(string) == globref.stringmatchlen(pattern, string, nocase)


def test_nesting_limit_as_redis() -> None:
    key = b"a" * 2000
    for pattern, expected in ((b"*a" * 1000, True), (b"*a" * 1001, False),
                              (b"?*" * 1001, True), (b"*?" * 1001, False)):
        assert glob.stringmatch(pattern, key) is expected


def test_reference_cases() -> None:
    cases = {
        (b"[z-a]", b"m"): True, (b"[]", b"a"): False, (b"[^]", b"a"): True,
        (b"[a-]", b"]"): True, (b"[abc", b"b"): True, (b"[", b"["): False,
        (b"a\\", b"a\\"): True, (b"\\*", b"*"): True, (b"\\*", b"a"): False,
        (b"**", b""): False, (b"", b""): True, (b"h?llo", b"hello"): True,
        (b"[a-\xff]", b"\x80"): False, (b"[\x80-\xff]", b"\x90"): True,
    }
    for (pattern, string), expected in cases.items():
        assert globref.stringmatchlen(pattern, string) is expected, (pattern, string)
        assert glob.stringmatch(pattern, string) is expected, (pattern, string)
    assert glob.stringmatch(b"MAXMEM*", b"maxmemory", nocase=True)


def test_keys_odd_patterns(r: redis.Redis) -> None:
    r.mset({"a": 1, "z": 2, "m": 3, "ab": 4, "]": 5})
    assert sorted(r.keys("[z-a]")) == ["a", "m", "z"]
    assert r.keys("[]") == []
    assert sorted(r.keys("[^]")) == ["]", "a", "m", "z"]
    assert sorted(r.keys("[a-")) == ["a"]
    assert sorted(r.keys("[a-]")) == ["]", "a"]


def test_pattern_matching_long_nested_loops(r: redis.Redis) -> None:
    # Redis's own regression tests (tests/unit/keyspace.tcl).
    r.set("a" * 50, 1)
    assert r.keys("a" + "*a" * 44 + "*b") == []
    assert r.keys("*a*a*a*a*a*a*a*a*a*b") == []
    r.flushdb()
    r.set("a" * 50000, 1)
    assert r.keys("*?" * 50000) == []


def test_hostile_pattern_does_not_stall_others(server: Server, r: redis.Redis) -> None:
    r.set("a" * 50, 1)
    done = threading.Event()
    gaps: list[float] = []

    def ping() -> None:
        other = server.client()
        while not done.is_set():
            t = time.monotonic()
            other.ping()
            gaps.append(time.monotonic() - t)
        other.close()

    th = threading.Thread(target=ping)
    th.start()
    try:
        for _ in range(20):
            assert r.keys("*a*a*a*a*a*a*a*a*a*b") == []
            assert r.scan(0, match="*a" * 20 + "*b", count=100) == (0, [])
    finally:
        done.set()
        th.join(10)
    assert gaps and max(gaps) < 2.0  # generous: the old matcher took 48 s per KEYS


def test_config_get_pattern_nocase(r: redis.Redis) -> None:
    policy = r.config_get("maxmemory-policy")
    assert list(policy) == ["maxmemory-policy"]
    assert r.config_get("MAXMEMORY-POL*") == policy
    assert r.config_get("[m]axmemory-polic?") == policy
