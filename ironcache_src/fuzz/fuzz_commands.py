"""atheris target: the command layer, on a real Server and Client in this process (no sockets).

The input decodes into a few commands (a name from the server's command table, arguments from
a small vocabulary or raw bytes); they are encoded as a client sends them and given to
Client.process(), the function a connection's data_received() calls. Invariants:
- no exception escapes process();
- no command ends in the dispatcher's safety net (`ERR internal error`: a Python exception in
  a handler), unless known.py lists it;
- the replies are well-formed RESP (RESP2, or RESP3 after HELLO 3), one per command run
  (none or one while CLIENT REPLY OFF/SKIP mutes them, or for a repeated MONITOR).

  python fuzz/fuzz_commands.py [libFuzzer options] [corpus dirs]
"""

from __future__ import annotations

import os
import resource
import sys
from collections import deque

import atheris

with atheris.instrument_imports():
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from fuzz import known, stats
    from fuzz.common import UNSAFE_CONFIG, InProcess, parse_replies
    from ironcache.commands import TABLE
    from ironcache.commands.families import load_all

    load_all()  # the families, imported here so that they are instrumented
    from ironcache.log import LEVELS, log
    from ironcache.rdb import dump, encode_zset, seal

    PAYLOADS = [dump(b"v"), dump(deque([b"a", b"1"])), dump({b"1", b"2"}), dump({b"f": b"v"}),
                seal(encode_zset([(b"m", 1.5)])), dump(b"v")[:-1] + b"\x00"]

AS_LIMIT = 4 << 30
# SAVE writes a file, SHUTDOWN and QUIT end things: none of them is a parsing or reply concern
SKIP = {b"save", b"shutdown"}
NAMES = sorted(n for n in TABLE if n not in SKIP) + [b"nosuchcommand"]
WORDS = [
    b"a", b"b", b"c", b"f", b"g", b"", b"0", b"1", b"-1", b"2", b"10", b"100", b"-100",
    b"1.5", b"-0.5", b"1e3", b"1e308", b"-1e308", b"5e-324", b"inf", b"-inf", b"nan", b"0x10",
    b"9223372036854775807",
    b"-9223372036854775808", b"9223372036854775808", b"4294967296", b"2147483648", b"+1",
    b" 1", b"01", b"x", b"*", b"?", b"[a-c]", b"[z-a]", b"[^a]", b"\\", b"NX", b"XX", b"GT",
    b"LT", b"EX", b"PX", b"EXAT", b"PXAT", b"KEEPTTL", b"GET", b"PERSIST", b"COUNT",
    b"MATCH", b"TYPE", b"string", b"hash", b"list", b"set", b"LEFT", b"RIGHT", b"WITHVALUES",
    b"GET", b"SET", b"LIST", b"ID", b"INFO", b"SETNAME", b"GETNAME", b"KILL", b"NO-EVICT",
    b"REPLY", b"ON", b"OFF", b"maxmemory", b"maxmemory-policy", b"allkeys-lru", b"hz",
    b"timeout", b"requirepass", b"3", b"2", b"AUTH", b"default", b"SETNAME", b"ASYNC",
    b"SYNC", b"a\r\nb", b"x\n", b"\x00", b"\xff", b"all", b"everything", b"default",
    # sorted sets
    b"WITHSCORES", b"BYSCORE", b"BYLEX", b"REV", b"LIMIT", b"(1", b"(", b"[a", b"(a", b"-",
    b"+", b"MIN", b"MAX", b"WEIGHTS", b"AGGREGATE", b"SUM", b"INCR", b"CH", b"-0", b"zset",
    # COPY, MOVE, SWAPDB, OBJECT, SORT, RESTORE
    b"DB", b"REPLACE", b"ABSTTL", b"IDLETIME", b"FREQ", b"BY", b"LIMIT", b"ALPHA", b"DESC",
    b"ASC", b"STORE", b"ENCODING", b"REFCOUNT", b"HELP", b"nosort", b"#", b"*->f", b"a*->",
    b"allkeys-lfu", b"15", b"16",
    # DUMP payloads: valid ones (a string, a list, an intset, a hash, a sorted set), a bad CRC
    *PAYLOADS,
    b"BEFORE", b"AFTER", b"RANK", b"MAXLEN", b"USAGE", b"SAMPLES",
    b"SKIP", b"SKIPME", b"yes", b"no", b"USER", b"ADDR", b"LADDR", b"normal", b"pubsub",
    b"GETKEYS", b"DOCS", b"FILTERBY", b"ACLCAT", b"PATTERN", b"MODULE", b"client|list",
    b"get|key", b"commandstats", b"errorstats", b"cpu", b"maxmemory-clients", b"10%", b"200%",
    # scripting: EVAL bodies, a library for FUNCTION LOAD and its function for FCALL
    b"return 1", b"return redis.call('get', KEYS[1])", b"return {1, {2}, false, 'x'}",
    b"return redis.pcall('incr', 'a')", b"return cjson.decode(ARGV[1])",
    b"#!lua name=lib\nredis.register_function('f', function(k, a) return #k end)", b"f",
    b"LOAD", b"FLUSH", b"EXISTS", b"REPLACE", b"DUMP", b"STATS",
]


class Harness:
    def __init__(self) -> None:
        self.ip = InProcess()
        self.defaults = dict(self.ip.server.config.values)
        self.caught: list[BaseException] = []
        srv = self.ip.server
        original = srv._internal_error

        def internal_error(cmd, e):  # type: ignore[no-untyped-def]
            self.caught.append(e)
            return original(cmd, e)

        srv._internal_error = internal_error  # type: ignore[method-assign]

    def reset(self) -> None:
        self.ip.server.config.values.update(self.defaults)
        self.ip.server.update_maxmemory()
        self.ip.reset()
        self.caught.clear()


H: Harness | None = None


def encode(argv: list[bytes]) -> bytes:
    return b"*%d\r\n" % len(argv) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in argv)


def decode(fdp: atheris.FuzzedDataProvider) -> list[list[bytes]]:
    cmds = []
    for _ in range(fdp.ConsumeIntInRange(1, 8)):
        argv = [NAMES[fdp.ConsumeIntInRange(0, len(NAMES) - 1)]]
        for _ in range(fdp.ConsumeIntInRange(0, 6)):
            if fdp.ConsumeIntInRange(0, 4):
                argv.append(WORDS[fdp.ConsumeIntInRange(0, len(WORDS) - 1)])
            else:
                argv.append(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 24)))
        if fdp.ConsumeIntInRange(0, 7) == 0:
            argv[0] = argv[0].upper()
        cmds.append(argv)
    return cmds


def safe(argv: list[bytes]) -> bool:
    # CONFIG SET of a path or a listener would bind sockets or move files; of requirepass,
    # lock the harness's next client out (AUTH is fuzzed without a password)
    return not (argv[0].lower() == b"config"
                and any(a.lower() in UNSAFE_CONFIG | {b"requirepass"} for a in argv[2:]))


SUBSCRIBING = frozenset(
    (b"subscribe", b"psubscribe", b"ssubscribe", b"unsubscribe", b"punsubscribe")
    + (b"sunsubscribe",)
)


def one_input(data: bytes) -> None:
    assert H is not None
    H.reset()
    fdp = atheris.FuzzedDataProvider(data)
    cmds = decode(fdp)
    c = H.ip.client
    ran = 0
    for argv in cmds:
        if not safe(argv):
            stats.count("skipped", "unsafe")
            continue
        kid = known.command_skip(argv)
        if kid:
            stats.count("known", kid)
            continue
        resp = c.resp
        before = len(H.caught)
        quiet = bool(c.reply_off) or (argv[0].lower() == b"monitor" and c in c.server.monitors)
        out = c.process(encode(argv))
        quiet = quiet or bool(c.reply_off)
        ran += 1
        if len(H.caught) > before:
            kid = known.known_crash(argv)
            if kid is None:
                raise AssertionError(f"{argv!r}: internal error") from H.caught[-1]
            stats.count("known", kid)
        try:
            replies = parse_replies(out)
        except Exception as e:
            raise AssertionError(f"{argv!r} (RESP{resp}): malformed reply {out[:300]!r}") from e
        if c.closing:
            break
        if argv[0].lower() in SUBSCRIBING and len(replies) >= 1:
            continue  # one reply per channel or pattern named (or subscribed)
        if len(replies) != 1 and not (quiet and not replies):
            raise AssertionError(f"{argv!r}: {len(replies)} replies: {out[:300]!r}")
    stats.count("cases", "commands")
    stats.count("cases", "commands-run", ran)


def main() -> None:
    global H
    resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))
    log.level = LEVELS["nothing"]  # internal errors are recorded here instead
    H = Harness()
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
