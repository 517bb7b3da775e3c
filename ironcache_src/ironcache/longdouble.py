"""Redis's long double arithmetic (INCRBYFLOAT, HINCRBYFLOAT) on x86-64, exactly.

Redis parses with string2ld() (glibc strtold(): decimal and hex floats, inf, no spaces,
under 5120 bytes, ERANGE to zero or infinity refused), adds two x87 80-bit long doubles and
prints with "%.17Lf" minus trailing zeros. ctypes cannot hand a long double back to Python
without rounding it to a double, so the 80-bit format is emulated with exact rationals: a
64-bit significand, ties to even, subnormals below 2**-16382. Magnitudes are checked before
any big number is built, so `1e-1000000` is refused at once instead of computing 10**1000000.
"""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction

MAX_CHARS = 5 * 1024  # MAX_LONG_DOUBLE_CHARS: string2ld() refuses this length and more
MANT_BITS = 64
EMIN = -16382  # smallest normal exponent
EMAX = 16383
LIMIT = Fraction(2) ** (EMAX + 1)  # the first magnitude that rounds to infinity

_DEC = re.compile(rb"([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?\Z")
_HEX = re.compile(rb"([+-]?)0[xX]([0-9a-fA-F]*)(?:\.([0-9a-fA-F]*))?(?:[pP]([+-]?\d+))?\Z")
_INF = re.compile(rb"([+-]?)(?:inf|infinity)\Z", re.IGNORECASE)


class Inf:
    """An infinity that parsed (`inf`): valid input, but any sum with it is refused."""

    def __init__(self, negative: bool) -> None:
        self.negative = negative


Value = Fraction | Inf


def round_ld(x: Fraction) -> Fraction | None:
    """`x` rounded to the nearest long double; None when that is an infinity."""
    if x == 0:
        return x
    a = abs(x)
    e = a.numerator.bit_length() - a.denominator.bit_length()
    if Fraction(2) ** e > a:
        e -= 1
    q = max(e, EMIN) - (MANT_BITS - 1)  # the weight of the last significand bit
    scaled = a / Fraction(2) ** q if q < 0 else a / (1 << q)
    r = Fraction(round(scaled)) * (Fraction(2) ** q)  # round() on a Fraction: ties to even
    if r >= LIMIT:
        return None
    return r if x > 0 else -r


def _exponent(raw: bytes | None) -> int | None:
    """The exponent's value, or None when it is beyond any long double (sign kept apart)."""
    if raw is None:
        return 0
    digits = raw.lstrip(b"+-").lstrip(b"0")
    if len(digits) > 9:
        return None
    return -int(digits or b"0") if raw[:1] == b"-" else int(digits or b"0")


def parse(raw: bytes) -> Value | None:
    """string2ld(): the value, or None for what Redis answers `not a valid float`."""
    if not raw or len(raw) >= MAX_CHARS:
        return None
    m = _INF.match(raw)
    if m:
        return Inf(m.group(1) == b"-")
    m = _HEX.match(raw)
    if m:
        sign, whole, frac, exp = m.groups()
        frac = frac or b""
        if not whole and not frac:
            return None  # strtold reads "0" and stops at "x"
        mant = int(whole + frac, 16)
        e = _exponent(exp)
        if mant == 0:
            return Fraction(0)
        if e is None:
            return None  # ERANGE: to zero or to infinity, refused either way
        e2 = e - 4 * len(frac)
        top = mant.bit_length() + e2
        if top > EMAX + 2 or top < EMIN - MANT_BITS - 2:
            return None
        value = Fraction(mant) * Fraction(2) ** e2
    else:
        m = _DEC.match(raw)
        if not m:
            return None
        sign, whole, frac, exp = m.groups()
        frac = frac or b""
        if not whole and not frac:
            return None
        digits = (whole + frac).lstrip(b"0")
        if not digits:
            return Fraction(0)
        e = _exponent(exp)
        if e is None:
            return None
        # The decimal magnitude of the leading digit: 10**top <= |value| < 10**(top + 1).
        top = len(digits) - len(frac) + e - 1
        if top > 4933 or top < -4952:
            return None
        value = Fraction(Decimal((0, tuple(d - 48 for d in digits), e - len(frac))))
    rounded = round_ld(value)
    if rounded is None or rounded == 0:
        return None  # ERANGE with HUGE_VAL or zero
    return -rounded if sign == b"-" else rounded


def add(a: Value, b: Value) -> Fraction | None:
    """a + b in long double; None for NaN or infinity."""
    if isinstance(a, Inf) or isinstance(b, Inf):
        return None
    return round_ld(a + b)


def format_human(x: Fraction) -> bytes:
    """ld2string(LD_STR_HUMAN): printf("%.17Lf"), trailing zeros and point removed."""
    scaled = round(x * 10**17)  # the exact binary value, rounded half to even as glibc does
    sign = "-" if scaled < 0 else ""
    digits = str(Decimal(abs(scaled))).rjust(18, "0")  # str(int) stops at 4300 digits
    text = f"{sign}{digits[:-17]}.{digits[-17:]}".rstrip("0").rstrip(".")
    return b"0" if text in ("-0", "") else text.encode()
