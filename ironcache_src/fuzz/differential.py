"""Differential run: the same command sequences on redis-server 7.0.15 and on IronCache.

Sequences come from a small grammar of commands IronCache implements (random.Random(seed):
the same cases on every run) and from the corpus (corpus/differential/*.txt, one command a
line, shell quoting). Each sequence starts with FLUSHALL on a fresh connection of each server
(RESP2, or RESP3 through HELLO 3). Replies are compared after this normalisation:

- replies whose order Redis leaves unspecified (KEYS, SMEMBERS, HKEYS, HVALS, SCAN, SSCAN and
  HSCAN items, HGETALL pairs) are sorted; a cursor is compared as zero / not zero only
  (fuzz/normalize.py, shared with tests/test_differential.py);
- TTL, PTTL, EXPIRETIME, PEXPIRETIME are reduced to their sign (they depend on the clock);
- errors are compared word for word, except the kept differences of known.KEPT;
- keyspace notifications: every sequence runs with notify-keyspace-events AKEn (unless it
  changes it) and a subscriber to every __keyspace/__keyevent channel; the messages it got
  are compared once all replies matched ("expired" ones left out: when a key with a TTL of a
  few ms is found expired depends on the clock).

The first difference in a sequence ends the comparison of that sequence (the datasets may have
diverged). A difference is either kept (known.KEPT), an unfixed defect (known.DIFF_UNFIXED, by
the regression id of known.UNFIXED), or new: a new one fails the run.

  python fuzz/differential.py --cases 300 --seed 1 [--redis-port P --ironcache-port P]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fuzz import known  # noqa: E402
from fuzz.common import Incomplete, RespError, parse_reply  # noqa: E402
from fuzz.normalize import normalize as normalize_reply  # noqa: E402
from ironcache import rdb  # noqa: E402

HERE = Path(__file__).resolve().parent
SRC = HERE.parent

KEYS = [b"a", b"b", b"c"]
FIELDS = [b"f", b"g"]
VALUES = [b"", b"0", b"1", b"-1", b"10", b"1.5", b"abc", b"x y", b"3.0e2", b"007", b" 1",
          b"a\nb", b"\xff"]
INTS = [b"0", b"1", b"2", b"-1", b"-2", b"3", b"-5", b"100", b"x", b"1.5", b"+1", b" 1",
        b"01", b"9223372036854775807", b"-9223372036854775808", b"9223372036854775808",
        b"4294967296", b"2147483648"]
FLOATS = [b"0.1", b"1", b"-1.5", b"1e2", b"abc", b"0", b"inf", b"0x10", b"1e308", b"-1e308",
          b"1e-300", b"nan", b"1_0", b" 1"]
TTLS = [b"100", b"0", b"-1", b"x", b"9223372036854775807", b"9223372036854775",
        b"-9223372036854775808"]
PATTERNS = [b"*", b"a", b"[ab]", b"?", b"c*", b"[^a]", b"\\a", b"[a-", b"*a*"]
CURSORS = [b"0", b"1", b"+0", b"-1", b"01", b"x", b"18446744073709551615",
           b"18446744073709551616"]
OPTS = [b"NX", b"XX", b"GT", b"LT", b"x", b"x\n"]
# sorted sets: scores, score ranges, lex ranges, ZADD options
SCORES = [b"0", b"1", b"-1", b"1.5", b"2", b"inf", b"-inf", b"+inf", b"nan", b"x", b"1e308",
          b"-0", b"0x10", b"2.5e-1", b" 1", b"1e400", b"1e-400", b"3"]
RANGES = [b"-inf", b"+inf", b"(1", b"0", b"1", b"(0", b"x", b"(", b"1.5", b"(inf", b"",
          b"nan", b"2", b"(-inf", b" 1"]
LEXES = [b"-", b"+", b"[a", b"(a", b"[1", b"(x y", b"a", b"[", b"(", b"[abc", b"+x"]
ZOPTS = [b"NX", b"XX", b"GT", b"LT", b"CH", b"INCR"]
# GEO: coordinates in and out of range, and distance units
LONS = [b"13.361389", b"-180", b"180", b"180.1", b"0", b"x", b"-73.9", b"inf", b"1e2"]
LATS = [b"38.115556", b"85.05112878", b"-85.05112879", b"0", b"x", b"40.7", b"-33.5"]
UNITS = [b"m", b"KM", b"ft", b"mi", b"yd"]
# RESTORE payloads: valid ones of each type (as Redis writes them), then refused ones.
_GOOD = [rdb.dump(v) for v in (b"v", b"12", b"x" * 40, deque([b"a", b"1"]),
                               {b"1", b"2"}, {b"m", b"1"}, {b"f": b"v"})]
PAYLOADS = _GOOD + [
    _GOOD[0][:-1] + b"\x00",  # checksum
    rdb.seal(b"\x00\x03bar")[:-10] + b"\x0b\x00" + b"\x00" * 8,  # RDB version 11
    rdb.seal(b"\x02\x81" + b"\xff" * 8),  # a forged set length
    rdb.seal(b"\x02\x00"),  # an empty set
    b"", b"garbage",
]
SORTBY = [b"nosort", b"*", b"c*", b"a*->f", b"*->g", b"x"]
SORTGET = [b"#", b"*", b"c*", b"a*->f", b"*->f", b"x"]

TEMPLATES: dict[bytes, list[list[str]]] = {
    b"GET": [["K"]], b"SET": [["K", "V"], ["K", "V", "SETOPT"], ["K", "V", "SETOPT", "SETOPT"]],
    b"SETNX": [["K", "V"]], b"SETEX": [["K", "TTL", "V"]], b"PSETEX": [["K", "TTL", "V"]],
    b"MSET": [["K", "V", "K", "V"]], b"MGET": [["K", "K"]], b"GETSET": [["K", "V"]],
    b"GETDEL": [["K"]], b"GETEX": [["K"], ["K", "EX", "TTL"], ["K", "PERSIST"]],
    b"APPEND": [["K", "V"]], b"STRLEN": [["K"]], b"INCR": [["K"]], b"DECR": [["K"]],
    b"INCRBY": [["K", "I"]], b"DECRBY": [["K", "I"]], b"INCRBYFLOAT": [["K", "FL"]],
    b"GETRANGE": [["K", "I", "I"]], b"SETRANGE": [["K", "SMALLI", "V"]],
    b"DEL": [["K", "K"]], b"EXISTS": [["K", "K"]], b"TYPE": [["K"]],
    b"EXPIRE": [["K", "TTL"], ["K", "TTL", "OPT"]], b"PEXPIRE": [["K", "TTL"]],
    b"EXPIREAT": [["K", "TTL"]], b"TTL": [["K"]], b"PTTL": [["K"]], b"PERSIST": [["K"]],
    b"RENAME": [["K", "K"]], b"RENAMENX": [["K", "K"]], b"KEYS": [["PAT"]], b"DBSIZE": [[]],
    b"SCAN": [["CUR", "COUNT", "1000"], ["CUR", "COUNT", "1000", "MATCH", "PAT"]],
    b"HSET": [["K", "F", "V"]], b"HGET": [["K", "F"]], b"HDEL": [["K", "F"]],
    b"HGETALL": [["K"]], b"HKEYS": [["K"]], b"HVALS": [["K"]], b"HLEN": [["K"]],
    b"HINCRBY": [["K", "F", "I"]], b"HINCRBYFLOAT": [["K", "F", "FL"]],
    b"HSCAN": [["K", "CUR", "COUNT", "1000"]], b"SSCAN": [["K", "0", "COUNT", "1000"]],
    b"UNLINK": [["K", "K"]], b"FLUSHDB": [[], ["ASYNC"]],
    b"FLUSHALL": [[], ["ASYNC"], ["SYNC"]],
    b"LPUSH": [["K", "V", "V"]], b"RPUSH": [["K", "V"]], b"LPOP": [["K"], ["K", "I"]],
    b"RPOP": [["K"], ["K", "I"]], b"LRANGE": [["K", "I", "I"]], b"LLEN": [["K"]],
    b"LINDEX": [["K", "I"]],
    b"LSET": [["K", "I", "V"]], b"LREM": [["K", "I", "V"]], b"LTRIM": [["K", "I", "I"]],
    b"LPUSHX": [["K", "V", "V"]], b"RPUSHX": [["K", "V"]],
    b"LINSERT": [["K", "WHERE", "V", "V"]],
    b"LPOS": [["K", "V"], ["K", "V", "LPOSOPT", "I"], ["K", "V", "LPOSOPT", "I", "LPOSOPT", "I"],
              ["K", "V", "LPOSOPT", "I", "LPOSOPT", "I", "LPOSOPT", "I"]],
    b"LMPOP": [["NUMKEYS", "K", "SIDE"], ["NUMKEYS", "K", "K", "SIDE", "COUNT", "I"],
               ["NUMKEYS", "K", "SIDE", "COUNT", "I", "COUNT", "I"]],
    b"LMOVE": [["K", "K", "SIDE", "SIDE"]], b"RPOPLPUSH": [["K", "K"]],
    b"HRANDFIELD": [["K"], ["K", "I"], ["K", "I", "WITHVALUES"], ["K", "I", "V"]],
    b"HSTRLEN": [["K", "F"]], b"HSETNX": [["K", "F", "V"]], b"HEXISTS": [["K", "F"]],
    b"HMSET": [["K", "F", "V", "F", "V"]], b"HMGET": [["K", "F", "F"]],
    b"SADD": [["K", "V", "V"]], b"SREM": [["K", "V"]], b"SMEMBERS": [["K"]],
    b"SISMEMBER": [["K", "V"]], b"SCARD": [["K"]], b"SRANDMEMBER": [["K"], ["K", "I"]],
    b"ZADD": [["K", "SC", "V"], ["K", "SC", "V", "SC", "V"], ["K", "ZOPT", "SC", "V"],
              ["K", "ZOPT", "ZOPT", "SC", "V", "SC", "V"], ["K", "INCR", "SC", "V"]],
    b"ZINCRBY": [["K", "SC", "V"]], b"ZCARD": [["K"]], b"ZSCORE": [["K", "V"]],
    b"ZMSCORE": [["K", "V", "V"]], b"ZRANK": [["K", "V"]], b"ZREVRANK": [["K", "V"]],
    b"ZCOUNT": [["K", "RS", "RS"]], b"ZLEXCOUNT": [["K", "LX", "LX"]],
    b"ZRANGE": [["K", "I", "I"], ["K", "I", "I", "WITHSCORES"],
                ["K", "RS", "RS", "BYSCORE", "LIMIT", "I", "I"], ["K", "LX", "LX", "BYLEX", "REV"],
                ["K", "RS", "RS", "BYSCORE", "REV", "WITHSCORES"], ["K", "I", "I", "REV"]],
    b"ZRANGEBYSCORE": [["K", "RS", "RS"], ["K", "RS", "RS", "WITHSCORES", "LIMIT", "I", "I"]],
    b"ZREVRANGEBYSCORE": [["K", "RS", "RS", "WITHSCORES"]],
    b"ZRANGEBYLEX": [["K", "LX", "LX"]], b"ZREVRANGEBYLEX": [["K", "LX", "LX", "LIMIT", "I", "I"]],
    b"ZREVRANGE": [["K", "I", "I", "WITHSCORES"]], b"ZRANGESTORE": [["K", "K", "I", "I"]],
    b"ZREM": [["K", "V", "V"]], b"ZREMRANGEBYRANK": [["K", "I", "I"]],
    b"ZREMRANGEBYSCORE": [["K", "RS", "RS"]], b"ZREMRANGEBYLEX": [["K", "LX", "LX"]],
    b"ZPOPMIN": [["K"], ["K", "I"]], b"ZPOPMAX": [["K", "I"]],
    b"ZMPOP": [["2", "K", "K", "MINMAX"], ["1", "K", "MINMAX", "COUNT", "I"]],
    b"ZRANDMEMBER": [["K"], ["K", "I"], ["K", "I", "WITHSCORES"]],
    b"ZUNION": [["2", "K", "K", "WITHSCORES"],
                ["2", "K", "K", "WEIGHTS", "SC", "SC", "AGGREGATE", "AGG", "WITHSCORES"]],
    b"ZINTER": [["2", "K", "K", "WITHSCORES"]], b"ZDIFF": [["2", "K", "K", "WITHSCORES"]],
    b"ZUNIONSTORE": [["K", "2", "K", "K"]],
    b"ZINTERSTORE": [["K", "2", "K", "K", "AGGREGATE", "AGG"]],
    b"ZDIFFSTORE": [["K", "2", "K", "K"]], b"ZINTERCARD": [["2", "K", "K", "LIMIT", "I"]],
    b"ZSCAN": [["K", "CUR"], ["K", "0", "MATCH", "PAT"]],
    b"COPY": [["K", "K"], ["K", "K", "REPLACE"], ["K", "K", "DB", "DB"],
              ["K", "K", "DB", "DB", "REPLACE"], ["K", "K", "V"]],
    b"MOVE": [["K", "DB"]], b"SWAPDB": [["DB", "DB"]], b"TOUCH": [["K", "K"]],
    b"DUMP": [["K"]],
    b"RESTORE": [["K", "RTTL", "PAYLOAD"], ["K", "RTTL", "PAYLOAD", "REPLACE"],
                 ["K", "RTTL", "PAYLOAD", "ABSTTL"], ["K", "0", "PAYLOAD", "IDLETIME", "I"],
                 ["K", "0", "PAYLOAD", "FREQ", "I"], ["K", "0", "PAYLOAD", "REPLACE", "V"]],
    b"OBJECT": [["ENCODING", "K"], ["NOSUCH", "K"], ["ENCODING"], ["FREQ"], ["HELP", "x"]],
    b"MEMORY": [["USAGE"], ["NOSUCH"]],
    b"CLUSTER": [["INFO"], ["HELP"], ["NOSUCH"], ["KEYSLOT"]],
    b"GEOADD": [["K", "LON", "LAT", "V"], ["K", "ZOPT", "LON", "LAT", "V"],
                ["K", "LON", "LAT", "V", "LON", "LAT", "V"], ["K", "LON", "LAT"]],
    b"GEOPOS": [["K", "V", "V"], ["K"]], b"GEOHASH": [["K", "V", "V"], ["K"]],
    b"GEODIST": [["K", "V", "V"], ["K", "V", "V", "UNIT"], ["K", "V", "V", "UNIT", "x"]],
    b"SORT": [["K"], ["K", "ALPHA"], ["K", "DESC"], ["K", "LIMIT", "I", "I"],
              ["K", "BY", "SORTBY"], ["K", "GET", "SORTGET"], ["K", "ALPHA", "STORE", "K"],
              ["K", "BY", "SORTBY", "GET", "#", "GET", "SORTGET"], ["K", "STORE", "K"],
              ["K", "ALPHA", "DESC", "LIMIT", "I", "I", "GET", "SORTGET"], ["K", "V"]],
    b"SORT_RO": [["K", "ALPHA"], ["K", "STORE", "K"]],
    b"CONFIG": [["SET", "maxmemory-policy", "POL"], ["SET", "maxmemory-clients", "MMC"],
                ["SET", "notify-keyspace-events", "NKE"], ["GET", "notify-keyspace-events"],
                ["GET", "maxmemory-clients"], ["GET", "repl-backlog-size"],
                ["GET", "key-load-delay"], ["SET", "replicaof", "V"]],
    # Blocking forms with short timeouts only (BT): never a forever wait in the fuzzer.
    b"BLPOP": [["K", "BT"], ["K", "K", "BT"]], b"BRPOP": [["K", "K", "BT"]],
    b"BLMOVE": [["K", "K", "SIDE", "SIDE", "BT"]], b"BRPOPLPUSH": [["K", "K", "BT"]],
    b"BLMPOP": [["BT", "NUMKEYS", "K", "SIDE"], ["BT", "NUMKEYS", "K", "K", "SIDE", "COUNT", "I"]],
    b"BZPOPMIN": [["K", "BT"], ["K", "K", "BT"]], b"BZPOPMAX": [["K", "BT"]],
    b"BZMPOP": [["BT", "2", "K", "K", "MINMAX"], ["BT", "1", "K", "MINMAX", "COUNT", "I"]],
    b"PUBLISH": [["V", "V"]], b"SPUBLISH": [["K", "V"]],
    b"PUBSUB": [["CHANNELS"], ["CHANNELS", "PAT"], ["NUMSUB", "V", "V"], ["NUMPAT"],
                ["SHARDCHANNELS"], ["SHARDNUMSUB", "K"], ["NOSUCH"]],
    b"MULTI": [[]], b"EXEC": [[]], b"DISCARD": [[]], b"WATCH": [["K"]],
    b"SELECT": [["DB"]], b"PING": [[], ["V"]], b"ECHO": [["V"]], b"NOSUCH": [["V"]],
    b"UNWATCH": [[]],
    b"CLIENT": [["KILL", "ID", "CID"], ["KILL", "TYPE", "CTYPE"], ["KILL", "USER", "CUSER"],
                ["KILL", "ADDR", "1.2.3.4:5"], ["KILL", "SKIPME", "YESISH"], ["KILL", "CID"],
                ["KILL", "ID", "CID", "SKIPME"], ["GETNAME"], ["SETNAME", "V"],
                ["LIST", "ID", "x"], ["LIST", "TYPE", "bogus"], ["NO-EVICT", "YESISH"],
                ["REPLY", "bogus"], ["REPLY", "ON"], ["NOSUCH"],
                # CLIENT TRACKING's parsing and errors (never on: its pushes would interleave)
                ["TRACKING", "OFF"], ["TRACKING", "MAYBE"], ["TRACKING", "ON", "REDIRECT", "CID"],
                ["TRACKING", "ON", "PREFIX", "V"], ["TRACKING", "ON", "BCAST", "OPTOUT"],
                ["TRACKING", "ON", "OPTIN", "OPTOUT"], ["TRACKING", "ON", "NOSUCH"],
                ["CACHING", "YESISH"], ["GETREDIR"], ["TRACKINGINFO"]],
    b"COMMAND": [["GETKEYS", "SET", "K", "V"], ["GETKEYS", "MSET", "K", "V", "K", "V"],
                 ["GETKEYS", "GET"], ["GETKEYS", "PING"], ["GETKEYS", "NOSUCH", "K"],
                 ["GETKEYS", "LMOVE", "K", "K", "LEFT", "RIGHT"], ["LIST", "x", "y"],
                 ["GETKEYSANDFLAGS", "SET", "K", "V", "SETOPT"],
                 ["GETKEYSANDFLAGS", "SORT", "K", "STORE", "K"],
                 ["GETKEYSANDFLAGS", "ZUNIONSTORE", "K", "NUMKEYS", "K", "K"],
                 ["GETKEYSANDFLAGS", "EVAL", "LUA", "NUMKEYS", "K"],
                 ["GETKEYSANDFLAGS", "BITFIELD", "K", "GET", "u8", "0"],
                 ["GETKEYS", "MEMORY", "USAGE", "K"], ["GETKEYSANDFLAGS", "GET"],
                 ["LIST", "FILTERBY", "BOGUS", "x"], ["LIST", "FILTERBY", "ACLCAT", "nosuch"],
                 ["LIST", "FILTERBY", "PATTERN", "nosuch*"], ["LIST", "FILTERBY", "MODULE", "m"],
                 ["INFO", "nosuch", "get|key"], ["INFO", "config|get|x", "x"],
                 ["DOCS", "nosuch", "x"], ["NOSUCH"]],
    b"EVAL": [["LUA", "0"], ["LUA", "1", "K"], ["LUA", "2", "K", "K", "V"], ["LUA", "I", "K"]],
    b"EVAL_RO": [["LUA", "1", "K"]], b"EVALSHA": [["SHA", "1", "K", "V"]],
    b"SCRIPT": [["LOAD", "LUA"], ["EXISTS", "SHA", "SHA"], ["FLUSH"]],
}
# Set algebra, bit commands, HyperLogLog and LCS (issue 15). Bit offsets stay small or are
# refused: an accepted offset near 2**32 would make both servers allocate 512 MB.
TEMPLATES.update({
    b"SINTER": [["K", "K"], ["K", "K", "K"]], b"SUNION": [["K", "K"]], b"SDIFF": [["K", "K"]],
    b"SINTERSTORE": [["K", "K", "K"]], b"SUNIONSTORE": [["K", "K", "K"]],
    b"SDIFFSTORE": [["K", "K", "K"]], b"SMOVE": [["K", "K", "V"]],
    b"SINTERCARD": [["NK", "K", "K"], ["NK", "K", "K", "LIMIT", "I"]],
    b"SMISMEMBER": [["K", "V", "V"]],
    b"SETBIT": [["K", "BIT", "BITV"]], b"GETBIT": [["K", "BIT"]],
    b"BITCOUNT": [["K"], ["K", "I", "I"], ["K", "I", "I", "UNIT"]],
    b"BITPOS": [["K", "BITV"], ["K", "BITV", "I"], ["K", "BITV", "I", "I", "UNIT"]],
    b"BITOP": [["BOP", "K", "K", "K"], ["BOP", "K", "K"]],
    b"BITFIELD": [["K", "BFOP"], ["K", "BFOP", "BFOP"], ["K", "OVERFLOW", "OVF", "BFOP"]],
    b"BITFIELD_RO": [["K", "GET", "BFT", "BIT"]],
    b"PFADD": [["K"], ["K", "V", "V", "V"]], b"PFCOUNT": [["K"], ["K", "K"]],
    b"PFMERGE": [["K", "K"], ["K", "K", "K"]],
    b"LCS": [["K", "K"], ["K", "K", "LCSOPT"], ["K", "K", "LCSOPT", "LCSOPT"]],
})
# Streams (issue 16): explicit IDs only (`*` takes the clock), no XPENDING ranges, XINFO
# CONSUMERS or STREAM (idle times, delivery times, rax node counts), short BLOCKs only.
TEMPLATES.update({
    b"XADD": [["K", "SID", "F", "V"], ["K", "SID", "F", "V", "F", "V"],
              ["K", "NOMKSTREAM", "SID", "F", "V"], ["K", "TRIM", "SID", "F", "V"],
              ["K", "TRIM", "LIMIT", "I", "SID", "F", "V"], ["K", "SID"]],
    b"XRANGE": [["K", "SID", "SID"], ["K", "-", "+"], ["K", "SID", "+", "COUNT", "I"]],
    b"XREVRANGE": [["K", "+", "-"], ["K", "SID", "SID", "COUNT", "I"]],
    b"XLEN": [["K"]], b"XDEL": [["K", "SID"], ["K", "SID", "SID"]],
    b"XTRIM": [["K", "TRIM"], ["K", "TRIM", "LIMIT", "I"], ["K", "LIMIT", "I"]],
    b"XSETID": [["K", "SID"], ["K", "SID", "ENTRIESADDED", "I"],
                ["K", "SID", "ENTRIESADDED", "I", "MAXDELETEDID", "SID"]],
    b"XREAD": [["STREAMS", "K", "SID"], ["COUNT", "I", "STREAMS", "K", "K", "SID", "SID"],
               ["BLOCK", "XBT", "STREAMS", "K", "SID"], ["STREAMS", "K"]],
    b"XGROUP": [["CREATE", "K", "GRP", "SID"], ["CREATE", "K", "GRP", "SID", "MKSTREAM"],
                ["CREATE", "K", "GRP", "SID", "ENTRIESREAD", "I"], ["SETID", "K", "GRP", "SID"],
                ["DESTROY", "K", "GRP"], ["CREATECONSUMER", "K", "GRP", "CONS"],
                ["DELCONSUMER", "K", "GRP", "CONS"], ["NOSUCH", "K"]],
    b"XREADGROUP": [["GROUP", "GRP", "CONS", "STREAMS", "K", "SID"],
                    ["GROUP", "GRP", "CONS", "COUNT", "I", "STREAMS", "K", ">"],
                    ["GROUP", "GRP", "CONS", "NOACK", "STREAMS", "K", ">"],
                    ["GROUP", "GRP", "CONS", "BLOCK", "XBT", "STREAMS", "K", ">"],
                    ["GROUP", "GRP", "CONS", "STREAMS", "K", "K", "SID", "SID"]],
    b"XACK": [["K", "GRP", "SID"], ["K", "GRP", "SID", "SID"]],
    b"XPENDING": [["K", "GRP"], ["K", "GRP", "IDLE", "1000000", "-", "+", "I"]],
    b"XCLAIM": [["K", "GRP", "CONS", "0", "SID", "JUSTID"],
                ["K", "GRP", "CONS", "I", "SID", "SID", "JUSTID", "FORCE"],
                ["K", "GRP", "CONS", "0", "SID", "BOGUS"]],
    b"XAUTOCLAIM": [["K", "GRP", "CONS", "0", "SID", "JUSTID"],
                    ["K", "GRP", "CONS", "0", "SID", "COUNT", "I", "JUSTID"]],
    b"XINFO": [["GROUPS", "K"], ["NOSUCH", "K"], ["HELP", "x"]],
})
# ACL (issue 17): rule errors, DRYRUN verdicts and their wording; no GETUSER of a user with
# single-command rules (their order follows each server's command table).
TEMPLATES.update({
    b"ACL": [["WHOAMI"], ["CAT"], ["CAT", "nosuch"], ["DRYRUN", "default", "GET", "K"],
             ["DRYRUN", "fz", "GET", "K"], ["DRYRUN", "fz", "SET", "K", "V"],
             ["DRYRUN", "fz", "SET", "K", "V", "GET"], ["DRYRUN", "fz", "COPY", "K", "K"],
             ["DRYRUN", "nosuch", "GET", "K"], ["DRYRUN", "fz", "NOSUCH"],
             ["DRYRUN", "fz", "GET"], ["SETUSER", "fz", "ACLRULE"],
             ["SETUSER", "fz", "ACLRULE", "ACLRULE", "ACLRULE"], ["GETUSER", "nosuch"],
             ["DELUSER", "default"], ["DELUSER", "nosuchuser"], ["NOSUCH"], ["GENPASS", "x"],
             ["GENPASS", "0"], ["LOG", "x"], ["LOG", "0"], ["USERS", "x"], ["WHOAMI", "x"]],
})
EXTRA_KINDS: dict[str, list[bytes]] = {
    "SID": [b"1-1", b"1-*", b"2", b"0-1", b"0-0", b"5-0", b"3-18446744073709551615", b"x",
            b"-", b"+", b"$", b">", b"(1-1", b"0", b"18446744073709551615-18446744073709551615",
            b"4-x", b"7-0"],
    "TRIM": [b"MAXLEN 1", b"MAXLEN ~ 1", b"MAXLEN = 0", b"MINID 2", b"MINID ~ 5-0",
             b"MAXLEN -1", b"MINID x"],
    "XBT": [b"1", b"5", b"-1", b"x"],
    "GRP": [b"g", b"h"], "CONS": [b"alice", b"bob"],
    "ACLRULE": [b"on", b"off", b"+get", b"-get", b"+set", b"+@read", b"+@write", b"-@all",
                b"+@all", b"~k*", b"%R~k*", b"%W~*", b"%RW~k*", b"%X~k", b"resetkeys", b"allkeys",
                b"+@nosuch", b"bogus", b"&c*", b"reset", b">pw", b"<nopw", b"+config|get",
                b"+select|0", b"+get|x", b"#abc", b"nopass", b"+copy"],
    "NK": [b"1", b"2", b"3", b"0", b"x"],
    "BIT": [b"0", b"1", b"7", b"8", b"15", b"100", b"-1", b"x", b"4294967296", b"#1"],
    "BITV": [b"0", b"1", b"2", b"x"],
    "UNIT": [b"BIT", b"BYTE", b"byte", b"nibble"],
    "BOP": [b"AND", b"OR", b"XOR", b"NOT", b"nand"],
    "BFT": [b"u8", b"i8", b"u1", b"i64", b"u63", b"u64", b"i5", b"x8"],
    "OVF": [b"WRAP", b"SAT", b"FAIL", b"up"],
    "LCSOPT": [b"LEN", b"IDX", b"WITHMATCHLEN", b"MINMATCHLEN 1", b"MINMATCHLEN x", b"bogus"],
}
BFOPS = [b"GET u8 0", b"GET i5 #1", b"SET i8 0 -3", b"SET u4 4 100", b"INCRBY u2 1 1",
         b"INCRBY i8 8 127", b"INCRBY i64 0 -1", b"GET x8 0", b"SET u8 -1 1", b"INCRBY u8 0 y"]
# Small scripts: conversions both ways, errors, read-only refusals.
SCRIPTS = [
    b"return redis.call('incr', KEYS[1])", b"return redis.call('hget', KEYS[1], 'f')",
    b"return 1", b"return 3.7", b"return {1, 'a', false, true, {2, {}}}", b"return nil",
    b"local v = redis.call('get', KEYS[1]) return v",
    b"local v = redis.call('incr', KEYS[1]) return v",
    b"local v = redis.pcall('incr', KEYS[1]) return v",
    b"local v = redis.call('set', KEYS[1], ARGV[1] or 'v') return v",
    b"local v = redis.call('lrange', KEYS[1], 0, -1) return v",
    b"local v = redis.pcall('rpush', KEYS[1], 'x', 'y') return {v, #KEYS, #ARGV}",
    b"local t = redis.call('type', KEYS[1]) return t.ok",
    b"return redis.status_reply('FINE')", b"return redis.error_reply('MY err')",
    b"return {err='ERR custom'}", b"return cjson.encode({1, 2, {a=1}})",
    b"return cmsgpack.unpack(cmsgpack.pack({1, 2, 3}))", b"return bit.bxor(5, 3)",
    b"#!lua flags=no-writes\nlocal v = redis.call('set', KEYS[1], 'x') return v",
    b"#!lua flags=no-writes\nlocal v = redis.call('get', KEYS[1]) return v",
    b"local x = nosuch", b"error('boom')", b"return (",
]
UNORDERED = {b"HKEYS", b"HVALS", b"SMEMBERS", b"KEYS", b"SRANDMEMBER", b"SINTER", b"SUNION",
             b"SDIFF"}
PAIRS = {b"HGETALL"}
TIME_DEPENDENT = {b"TTL", b"PTTL", b"EXPIRETIME", b"PEXPIRETIME"}
SETOPTS = [b"NX", b"XX", b"GET", b"KEEPTTL", b"EX 100", b"PX 100000", b"EX 0", b"EX x",
           b"PX 9223372036854775807", b"EXAT 9223372036854775807", b"BOGUS"]


def command(rnd: random.Random) -> list[bytes]:
    name = rnd.choice(sorted(TEMPLATES))
    args: list[bytes] = []
    for kind in rnd.choice(TEMPLATES[name]):
        pick = {
            "K": KEYS, "F": FIELDS, "V": VALUES, "I": INTS, "FL": FLOATS, "TTL": TTLS,
            "PAT": PATTERNS, "CUR": CURSORS, "OPT": OPTS, "SMALLI": [b"0", b"3", b"-1"],
            "DB": [b"0", b"1", b"15", b"16", b"-1", b"x", b"4294967296", b"2147483648"],
            "POL": [b"noeviction", b"allkeys-lru", b"allkeys-lfu", b"bogus"],
            "BT": [b"0.01", b"0.001", b"-1", b"x", b"nan", b"1e400", b"0.02"],
            "SC": SCORES, "RS": RANGES, "LX": LEXES, "ZOPT": ZOPTS,
            "LON": LONS, "LAT": LATS, "UNIT": UNITS,
            "AGG": [b"SUM", b"MIN", b"max", b"bogus"], "MINMAX": [b"MIN", b"max", b"x"],
            "PAYLOAD": PAYLOADS, "SORTBY": SORTBY, "SORTGET": SORTGET,
            "RTTL": [b"0", b"100000", b"-1", b"x", b"9223372036854775807"],
            "WHERE": [b"BEFORE", b"after", b"x"], "SIDE": [b"LEFT", b"right", b"x"],
            "LPOSOPT": [b"RANK", b"COUNT", b"maxlen", b"x"],
            "NUMKEYS": [b"1", b"2", b"0", b"-1", b"3", b"x"],
            "CID": [b"0", b"-1", b"x", b"999999", b"9223372036854775808"],
            "CTYPE": [b"normal", b"master", b"replica", b"pubsub", b"bogus"],
            "CUSER": [b"default", b"nobody"], "YESISH": [b"yes", b"YES", b"maybe"],
            "MMC": [b"0", b"10%", b"100%", b"200%", b"1mb", b"x", b"-1", b"5%x"],
            "LUA": SCRIPTS,
            "NKE": [b"KEA", b"AKEn", b"gKE", b"$lshzxeKE", b"Kl", b"En", b"tdm", b"", b"KEq"],
            "SHA": [hashlib.sha1(x).hexdigest().encode() for x in SCRIPTS[:6]] + [b"0" * 40],
        }.get(kind)
        if pick is not None:
            args.append(rnd.choice(pick))
        elif kind in EXTRA_KINDS:
            args.extend(rnd.choice(EXTRA_KINDS[kind]).split())
        elif kind == "SETOPT":
            args.extend(rnd.choice(SETOPTS).split())
        elif kind == "BFOP":
            args.extend(rnd.choice(BFOPS).split())
        elif kind == "PERSIST":
            args.append(b"PERSIST")
        else:
            args.append(kind.encode())
    if rnd.random() < 0.05 and args:
        args.pop()  # arity mistakes
    if rnd.random() < 0.1:
        name = name.lower()
    return [name, *args]


def sequences(seed: int, cases: int) -> list[tuple[int, list[list[bytes]]]]:
    rnd = random.Random(seed)
    out = []
    for path in sorted((HERE / "corpus" / "differential").glob("*.txt")):
        cmds = [[a.encode("latin-1") for a in shlex.split(line)]
                for line in path.read_text("latin-1").splitlines() if line.strip()]
        out.append((2, cmds))
    while len(out) < cases:
        out.append((rnd.choice((2, 2, 3)), [command(rnd) for _ in range(rnd.randint(1, 20))]))
    return out


class Conn:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = b""

    def call(self, argv: list[bytes]) -> Any:
        if argv:
            self.sock.sendall(b"*%d\r\n" % len(argv)
                              + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in argv))
        while True:
            try:
                reply, pos = parse_reply(self.buf)
            except Incomplete:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed") from None
                self.buf += chunk
                continue
            self.buf = self.buf[pos:]
            return reply

    def close(self) -> None:
        self.sock.close()


def _payload(reply: Any) -> Any:
    """A DUMP payload as the value it holds: encodings may differ (set order, LZF choices)."""
    try:
        kind, value = rdb.load(reply)
    except rdb.RdbError as e:
        return f"unreadable payload: {e}"
    if isinstance(value, (set, dict)):
        value = sorted(value.items() if isinstance(value, dict) else value)
    return ("payload", type(value).__name__, list(value) if isinstance(value, deque)
            else value)


def normalize(cmd: list[bytes], reply: Any, in_exec: bool = False) -> Any:
    name = cmd[0].upper()
    if not isinstance(reply, RespError):
        if in_exec and known.kept_difference(cmd, reply, reply) == "scan-foreign-cursor":
            # kept differences are matched per command; inside EXEC, one reply of many
            return "SCAN with a cursor the server never returned (kept: scan-foreign-cursor)"
        if name == b"DUMP" and isinstance(reply, bytes):
            return _payload(reply)
        if name == b"ACL" and cmd[1:2] == [b"GENPASS"] and isinstance(reply, bytes):
            return ("random password of", len(reply))  # random by design: its length only
        if name in (b"SORT", b"SORT_RO") and b"nosort" in cmd and isinstance(reply, list):
            return sorted(reply, key=repr)  # a set has no order of its own: BY nosort shows it
    return normalize_reply(cmd, reply, RespError)


END = b"differential-end"


def notifications(port: int, sub: Conn) -> list[Any]:
    """The keyspace notifications `sub` received, up to the end marker published now."""
    with contextlib.closing(Conn(port)) as pub:
        pub.call([b"PUBLISH", END, b"x"])
    got = []
    while True:
        try:
            msg = sub.call([])  # reads the next message (nothing is sent)
        except (ConnectionError, OSError):  # CLIENT KILL TYPE pubsub in the sequence
            return [*got, "subscriber disconnected"]
        if msg[-2] == END:
            return got
        if not msg[2].endswith(b":expired") and msg[3] != b"expired":
            got.append(msg[2:])


def run_sequence(port: int, protocol: int, seq: list[list[bytes]]) -> list[Any]:
    conn = Conn(port)
    sub = Conn(port)
    try:
        conn.call([b"FLUSHALL"])
        conn.call([b"CONFIG", b"SET", b"notify-keyspace-events", b"AKEn"])
        sub.call([b"PSUBSCRIBE", b"__key*__:*"])
        sub.call([b"SUBSCRIBE", END])
        if protocol == 3:
            conn.call([b"HELLO", b"3"])
        out = []
        queued: list[list[bytes]] = []
        in_multi = False
        for cmd in seq:
            try:
                reply = conn.call(cmd)
            except (ConnectionError, OSError) as e:
                out.append(f"connection lost: {e}")
                break
            name = cmd[0].upper()
            if name == b"MULTI" and reply == "OK":
                in_multi, queued = True, []
            elif in_multi and name == b"EXEC":
                if isinstance(reply, list) and len(reply) == len(queued):
                    reply = [normalize(q, r, True) for q, r in zip(queued, reply, strict=True)]
                in_multi = False
            elif in_multi and name == b"DISCARD":
                in_multi = False
            elif in_multi and reply == "QUEUED":
                queued.append(cmd)
            else:
                reply = normalize(cmd, reply)
            out.append(reply)
        out.append(("notifications", notifications(port, sub)))
        return out
    finally:
        conn.close()
        sub.close()


def classify(cmd: list[bytes], ours: Any, redis: Any) -> tuple[str, str]:
    """('kept'|'unfixed'|'new', id)."""
    kid = known.kept_difference(cmd, ours, redis)
    if kid:
        return "kept", kid
    kid = known.diff_unfixed(cmd, ours, redis)
    if kid:
        return "unfixed", kid
    return "new", " ".join(a.decode("latin-1") for a in cmd)[:80]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ping(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server on port {port} exited with {proc.returncode}")
        try:
            c = Conn(port)
            try:
                if c.call([b"PING"]) == "PONG":
                    return
            finally:
                c.close()
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"server on port {port} did not answer PING")


def start_servers(workdir: Path, redis_port: int, ic_port: int) -> list[subprocess.Popen[bytes]]:
    redis = subprocess.Popen(
        [os.environ.get("REDIS_SERVER", "redis-server"), "--port", str(redis_port), "--bind",
         "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=workdir)
    env = dict(os.environ, PYTHONPATH=str(SRC))
    ironcache = subprocess.Popen(
        [sys.executable, "-m", "ironcache", "serve", "--port", str(ic_port), "--bind",
         "127.0.0.1", "--dir", str(workdir)],
        stdout=open(workdir / "ironcache.log", "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115
        env=env, cwd=workdir)
    procs = [redis, ironcache]
    try:
        wait_ping(redis_port, redis)
        wait_ping(ic_port, ironcache)
    except BaseException:
        stop(procs)
        raise
    return procs


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--redis-port", type=int, default=0)
    ap.add_argument("--ironcache-port", type=int, default=0)
    ap.add_argument("--out", default="", help="write a JSON summary here")
    args = ap.parse_args()
    if shutil.which(os.environ.get("REDIS_SERVER", "redis-server")) is None:
        print("differential: redis-server is not installed", file=sys.stderr)
        return 2
    redis_port = args.redis_port or free_port()
    ic_port = args.ironcache_port or free_port()
    workdir = Path(tempfile.mkdtemp(prefix="ironcache-differential-"))
    procs = start_servers(workdir, redis_port, ic_port)
    counts: Counter[str] = Counter()
    new: list[str] = []
    commands = 0
    try:
        for protocol, seq in sequences(args.seed, args.cases):
            seq = [c for c in seq if not known.command_skip(c)]
            ours = run_sequence(ic_port, protocol, seq)
            theirs = run_sequence(redis_port, protocol, seq)
            commands += len(seq)
            for cmd, mine, ref in zip([*seq, [b"(notifications)"]], ours, theirs, strict=False):
                if mine != ref:
                    verdict, kid = classify(cmd, mine, ref)
                    counts[f"{verdict}:{kid}"] += 1
                    if verdict == "new":
                        new.append(f"RESP{protocol} {cmd!r}: IronCache {mine!r} != Redis "
                                   f"{ref!r}\n  sequence: {seq!r}")
                    break
            if len(ours) != len(theirs):
                counts["new:connection"] += 1
                new.append(f"RESP{protocol} replies {len(ours)} != {len(theirs)}: {seq!r}")
            if procs[1].poll() is not None:
                new.append(f"IronCache exited with {procs[1].returncode} after {seq!r}")
                break
    finally:
        stop(procs)
        shutil.rmtree(workdir, ignore_errors=True)
    summary = {"cases": args.cases, "commands": commands, "differences": dict(counts),
               "new": new}
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=1))
    print(f"differential: {args.cases} sequences, {commands} commands, "
          f"{sum(counts.values())} differences")
    for key, n in sorted(counts.items()):
        print(f"  {n:5d}  {key}")
    for line in new[:20]:
        print("NEW " + line)
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main())
