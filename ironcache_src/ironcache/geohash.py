"""Redis's geohash (geohash.c, geohash_helper.c): a point as the 52-bit score of a sorted set
member, interleaved latitude (even bits) and longitude (odd bits) at step 26.

Same arithmetic in the same order as Redis's C, so scores, positions and distances agree to
the last bit (a double converted to an unsigned 32-bit integer truncates in both).
"""

from __future__ import annotations

import math

STEP_MAX = 26
LONG_MIN, LONG_MAX = -180.0, 180.0
LAT_MIN, LAT_MAX = -85.05112878, 85.05112878  # WGS84 in Web Mercator's square
EARTH_RADIUS_IN_METERS = 6372797.560856
D_R = math.pi / 180.0
ALPHABET = b"0123456789bcdefghjkmnpqrstuvwxyz"
UNITS = {b"m": 1.0, b"km": 1000.0, b"ft": 0.3048, b"mi": 1609.34}


def _spread(v: int) -> int:
    """The 32 bits of v at the even positions of a 64-bit integer (interleave64's step)."""
    v &= 0xFFFFFFFF
    v = (v | (v << 16)) & 0x0000FFFF0000FFFF
    v = (v | (v << 8)) & 0x00FF00FF00FF00FF
    v = (v | (v << 4)) & 0x0F0F0F0F0F0F0F0F
    v = (v | (v << 2)) & 0x3333333333333333
    return (v | (v << 1)) & 0x5555555555555555


def _squash(v: int) -> int:
    """The even bits of v, packed (deinterleave64's step)."""
    v &= 0x5555555555555555
    v = (v | (v >> 1)) & 0x3333333333333333
    v = (v | (v >> 2)) & 0x0F0F0F0F0F0F0F0F
    v = (v | (v >> 4)) & 0x00FF00FF00FF00FF
    v = (v | (v >> 8)) & 0x0000FFFF0000FFFF
    return (v | (v >> 16)) & 0x00000000FFFFFFFF


def valid(lon: float, lat: float) -> bool:
    return LONG_MIN <= lon <= LONG_MAX and LAT_MIN <= lat <= LAT_MAX


def encode(
    lon: float,
    lat: float,
    step: int = STEP_MAX,
    lat_range: tuple[float, float] = (LAT_MIN, LAT_MAX),
) -> int:
    """geohashEncode over longitude [-180, 180] and `lat_range`; the point must be valid."""
    lat_off = (lat - lat_range[0]) / (lat_range[1] - lat_range[0])
    lon_off = (lon - LONG_MIN) / (LONG_MAX - LONG_MIN)
    lat_off *= 1 << step
    lon_off *= 1 << step
    return _spread(int(lat_off)) | (_spread(int(lon_off)) << 1)


def decode(bits: int, step: int = STEP_MAX) -> tuple[float, float]:
    """geohashDecodeToLongLatWGS84: the centre of the cell, as (longitude, latitude)."""
    ilat = _squash(bits)
    ilon = _squash(bits >> 1)
    cells = float(1 << step)
    lat_scale = LAT_MAX - LAT_MIN
    lon_scale = LONG_MAX - LONG_MIN
    lat_min = LAT_MIN + (ilat * 1.0 / cells) * lat_scale
    lat_max = LAT_MIN + ((ilat + 1) * 1.0 / cells) * lat_scale
    lon_min = LONG_MIN + (ilon * 1.0 / cells) * lon_scale
    lon_max = LONG_MIN + ((ilon + 1) * 1.0 / cells) * lon_scale
    lon = min(max((lon_min + lon_max) / 2, LONG_MIN), LONG_MAX)
    lat = min(max((lat_min + lat_max) / 2, LAT_MIN), LAT_MAX)
    return lon, lat


def distance(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """geohashGetDistance: haversine on Redis's earth radius, in meters."""
    lon1r = lon1 * D_R
    lon2r = lon2 * D_R
    v = math.sin((lon2r - lon1r) / 2)
    if v == 0.0:  # same longitude: the latitude difference alone
        return EARTH_RADIUS_IN_METERS * abs(lat2 * D_R - lat1 * D_R)
    lat1r = lat1 * D_R
    lat2r = lat2 * D_R
    u = math.sin((lat2r - lat1r) / 2)
    a = u * u + math.cos(lat1r) * math.cos(lat2r) * v * v
    return 2.0 * EARTH_RADIUS_IN_METERS * math.asin(math.sqrt(a))


def score_bits(score: float) -> int:
    """A score as C's (uint64_t) cast reads it (what any score of a non-geo member gives)."""
    return int(score) & 0xFFFFFFFFFFFFFFFF if math.isfinite(score) else 0


def position(score: float) -> tuple[float, float]:
    """decodeGeohash: a member's (longitude, latitude)."""
    return decode(score_bits(score))


def to_string(score: float) -> bytes:
    """GEOHASH's 11 characters: the point re-encoded over the standard latitude [-90, 90]."""
    lon, lat = position(score)
    h = encode(lon, lat, STEP_MAX, (-90.0, 90.0))
    return bytes(ALPHABET[0 if i == 10 else (h >> (52 - (i + 1) * 5)) & 0x1F] for i in range(11))
