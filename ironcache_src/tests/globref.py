"""A direct transcription of Redis 7.0.15's stringmatchlen() (src/util.c, with Debian's
backport of the nesting limit), the reference the
glob tests compare `ironcache.glob` with. Kept as close to the C as Python allows: indexes
stand for the pointers, `at()` reads the NUL terminator past the end, bytes are signed chars.
"""

from __future__ import annotations


def _c(b: int) -> int:
    return b - 256 if b >= 128 else b  # char is signed on x86


def _tolower(c: int) -> int:
    return c + 32 if 65 <= c <= 90 else c


def stringmatchlen(pattern: bytes, string: bytes, nocase: bool = False) -> bool:
    skip = [False]
    return _impl(pattern, 0, len(pattern), string, 0, len(string), nocase, skip, 0)


def _impl(pat: bytes, p: int, plen: int, s: bytes, i: int, slen: int, nocase: bool,
          skip_longer: list[bool], nesting: int) -> bool:
    if nesting > 1000:  # protection against abusive patterns (CVE-2024-31228, Debian 7.0.15)
        return False
    def P(k: int) -> int:
        return _c(pat[k]) if k < len(pat) else 0

    def S(k: int) -> int:
        return _c(s[k]) if k < len(s) else 0

    while plen and slen:
        ch = P(p)
        if ch == ord("*"):
            while plen and P(p + 1) == ord("*"):
                p += 1
                plen -= 1
            if plen == 1:
                return True
            while slen:
                if _impl(pat, p + 1, plen - 1, s, i, slen, nocase, skip_longer, nesting + 1):
                    return True
                if skip_longer[0]:
                    return False
                i += 1
                slen -= 1
            skip_longer[0] = True
            return False
        elif ch == ord("?"):
            i += 1
            slen -= 1
        elif ch == ord("["):
            p += 1
            plen -= 1
            negate = P(p) == ord("^")
            if negate:
                p += 1
                plen -= 1
            match = False
            while True:
                if P(p) == ord("\\") and plen >= 2:
                    p += 1
                    plen -= 1
                    if P(p) == S(i):
                        match = True
                elif P(p) == ord("]"):
                    break
                elif plen == 0:
                    p -= 1
                    plen += 1
                    break
                elif plen >= 3 and P(p + 1) == ord("-"):
                    start, end, c = P(p), P(p + 2), S(i)
                    if start > end:
                        start, end = end, start
                    if nocase:
                        start, end, c = _tolower(start), _tolower(end), _tolower(c)
                    p += 2
                    plen -= 2
                    if start <= c <= end:
                        match = True
                else:
                    if not nocase:
                        if P(p) == S(i):
                            match = True
                    elif _tolower(P(p)) == _tolower(S(i)):
                        match = True
                p += 1
                plen -= 1
            if negate:
                match = not match
            if not match:
                return False
            i += 1
            slen -= 1
        else:
            if ch == ord("\\") and plen >= 2:
                p += 1
                plen -= 1
            if not nocase:
                if P(p) != S(i):
                    return False
            elif _tolower(P(p)) != _tolower(S(i)):
                return False
            i += 1
            slen -= 1
        p += 1
        plen -= 1
        if slen == 0:
            while P(p) == ord("*"):
                p += 1
                plen -= 1
            break
    return plen == 0 and slen == 0
