"""GEO commands on sorted sets (Redis 7.0's geo.c): GEOADD, GEOPOS, GEODIST, GEOHASH.

A point is a member whose score is its 52-bit geohash (ironcache.geohash). GEOADD turns its
coordinates into scores and runs ZADD on them, as Redis does (its stats stay GEOADD's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ironcache import geohash
from ironcache.commands import SYNTAX, TABLE, WRONGTYPE, CommandError, command, to_float
from ironcache.protocol import bulk, null, null_array
from ironcache.zset import ZSet

if TYPE_CHECKING:
    from ironcache.client import Client

K1 = (1, 1, 1)


def _zset(c: Client, key: bytes) -> ZSet | None:
    e = c.db.lookup(key)
    if e is None:
        return None
    if not isinstance(e.value, ZSet):
        raise CommandError(WRONGTYPE)
    return e.value


@command("geoadd", -5, "write denyoom", K1, "geo", "Adds geospatial items.", "3.2.0")
def geoadd(c: Client, argv: list[bytes]) -> bytes:
    i = 2
    nx = xx = False
    while i < len(argv):
        opt = argv[i].lower()
        if opt == b"nx":
            nx = True
        elif opt == b"xx":
            xx = True
        elif opt != b"ch":
            break
        i += 1
    if (len(argv) - i) % 3 or (nx and xx):
        raise CommandError(SYNTAX)
    zargv = argv[:i]
    for j in range(i, len(argv), 3):
        lon, lat = to_float(argv[j]), to_float(argv[j + 1])
        if not geohash.valid(lon, lat):
            raise CommandError(f"ERR invalid longitude,latitude pair {lon:f},{lat:f}")
        zargv += [b"%d" % geohash.encode(lon, lat), argv[j + 2]]
    zargv[0] = b"zadd"
    return TABLE[b"zadd"].handler(c, zargv)


def _human(x: float) -> bytes:
    """addReplyHumanLongDouble's digits: %.17Lf without its trailing zeros."""
    s = b"%.17f" % x
    if b"." in s:
        s = s.rstrip(b"0").rstrip(b".")
    return s


@command("geopos", -2, "readonly", K1, "geo", "Returns the longitude and latitude.", "3.2.0")
def geopos(c: Client, argv: list[bytes]) -> bytes:
    z = _zset(c, argv[1])
    scores = z.scores if z is not None else {}
    out = [b"*%d\r\n" % (len(argv) - 2)]
    for m in argv[2:]:
        score = scores.get(m)
        if score is None:
            out.append(null_array(c.resp))
            continue
        lon, lat = geohash.position(score)
        if c.resp == 3:
            out.append(b"*2\r\n,%s\r\n,%s\r\n" % (_human(lon), _human(lat)))
        else:
            out.append(b"*2\r\n" + bulk(_human(lon)) + bulk(_human(lat)))
    return b"".join(out)


@command("geodist", -4, "readonly", K1, "geo", "Returns the distance between two members.", "3.2.0")
def geodist(c: Client, argv: list[bytes]) -> bytes:
    if len(argv) == 5:
        to_meter = geohash.UNITS.get(argv[4].lower())
        if to_meter is None:
            raise CommandError("ERR unsupported unit provided. please use M, KM, FT, MI")
    elif len(argv) > 5:
        raise CommandError(SYNTAX)
    else:
        to_meter = 1.0
    z = _zset(c, argv[1])
    if z is None:
        return null(c.resp)
    a, b = z.scores.get(argv[2]), z.scores.get(argv[3])
    if a is None or b is None:
        return null(c.resp)
    d = geohash.distance(*geohash.position(a), *geohash.position(b))
    return bulk(b"%.4f" % (d / to_meter))


@command("geohash", -2, "readonly", K1, "geo", "Returns members as geohash strings.", "3.2.0")
def geohash_(c: Client, argv: list[bytes]) -> bytes:
    z = _zset(c, argv[1])
    scores = z.scores if z is not None else {}
    out = [b"*%d\r\n" % (len(argv) - 2)]
    for m in argv[2:]:
        score = scores.get(m)
        out.append(null(c.resp) if score is None else bulk(geohash.to_string(score)))
    return b"".join(out)
