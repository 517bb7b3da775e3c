"""Server commands: INFO, CONFIG, TIME, COMMAND, SHUTDOWN, ROLE."""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import resource
import stat
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ironcache._version import __version__
from ironcache.commands import (
    REDIS_COMPAT_VERSION,
    TABLE,
    Command,
    CommandError,
    command,
    subcommand,
    subcommands,
)
from ironcache.config import DIRECTIVES, TLS_NAMES
from ironcache.glob import matcher
from ironcache.keyspace import now_ms
from ironcache.log import log
from ironcache.protocol import OK, Status, bulk, bulk_array, encode, integer, string2ll
from ironcache.redis_table import KEY_SPECS, SUBCOMMANDS

if TYPE_CHECKING:
    from ironcache.client import Client
    from ironcache.context import Host

    Server = Host[Client]  # the server as commands see it: see context.Host


# ------------------------------------------------------------------ INFO
def _human(n: float) -> str:
    for unit in ("B", "K", "M", "G", "T"):
        if abs(n) < 1024 or unit == "T":
            return f"{n:.2f}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1024
    return str(n)


def _rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def section_server(srv: Server) -> dict[str, Any]:
    cfg = srv.config
    tcp = [x for x in srv.listeners if x.kind == "tcp"]
    uptime = int(time.time() - srv.started)
    return {
        "redis_version": REDIS_COMPAT_VERSION,
        "ironcache_version": __version__,
        "redis_mode": "standalone",
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "arch_bits": 64 if sys.maxsize > 2**32 else 32,
        "multiplexing_api": srv.event_loop_name,
        "python_version": platform.python_version(),
        "process_id": os.getpid(),
        "run_id": srv.run_id,
        "tcp_port": tcp[0].port if tcp else 0,
        "server_time_usec": int(time.time() * 1_000_000),
        "uptime_in_seconds": uptime,
        "uptime_in_days": uptime // 86400,
        "hz": cfg["hz"],
        "executable": os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else "",
        "config_file": cfg.file,
        "socket_activated": int(srv.socket_activated),
        "listeners_inherited": sum(1 for x in srv.listeners if x.inherited),
        "listeners_bound": sum(1 for x in srv.listeners if not x.inherited),
        "listeners": ",".join(x.describe() for x in srv.listeners),
        "startup_ms": int(srv.exec_to_ready_ms),
    }


def section_clients(srv: Server) -> dict[str, Any]:
    return {
        "connected_clients": len(srv.clients),
        "maxclients": srv.config["maxclients"],
        "blocked_clients": srv.blocking.count,
        "tracking_clients": srv.tracking.count,
        "clients_in_timeout_table": 0,
    }


def section_memory(srv: Server) -> dict[str, Any]:
    ks = srv.keyspace
    used = ks.used
    srv.peak_memory = max(srv.peak_memory, used)
    rss = _rss()
    return {
        "used_memory": used,
        "used_memory_human": _human(used),
        "used_memory_rss": rss,
        "used_memory_rss_human": _human(rss),
        "used_memory_peak": srv.peak_memory,
        "used_memory_peak_human": _human(srv.peak_memory),
        "used_memory_dataset": used,
        "maxmemory": srv.maxmemory,
        "maxmemory_human": _human(srv.maxmemory),
        "maxmemory_policy": srv.config["maxmemory-policy"],
        "maxmemory_configured": srv.config["maxmemory"],
        "mem_fragmentation_ratio": round(rss / used, 2) if used else 0,
        "mem_allocator": "pymalloc",
        "lazyfree_pending_objects": len(ks.lazy),
        "gc_frozen_objects": gc.get_freeze_count(),  # out of the cyclic GC's full passes
    }


def section_persistence(srv: Server) -> dict[str, Any]:
    return {
        "loading": 0,
        "async_loading": 0,
        "rdb_changes_since_last_save": srv.keyspace.dirty,
        "rdb_bgsave_in_progress": 0,
        "rdb_last_save_time": srv.last_save,
        "rdb_last_bgsave_status": srv.last_save_status,
        "aof_enabled": 0,
        "aof_rewrite_in_progress": 0,
    }


def section_stats(srv: Server) -> dict[str, Any]:
    ks = srv.keyspace
    return {
        **srv.stats,
        "instantaneous_ops_per_sec": 0,
        "expired_keys": ks.expired_keys,
        "evicted_keys": ks.evicted_keys,
        "lazyfreed_objects": ks.lazyfreed_objects,
        "keyspace_hits": ks.hits,
        "keyspace_misses": ks.misses,
        "pubsub_channels": len(srv.pubsub.channels),
        "pubsub_patterns": len(srv.pubsub.patterns),
        "migrate_cached_sockets": 0,  # no MIGRATE: never a cached connection
        **srv.tracking.info(),
        "total_connections_accepted": sum(x.accepted for x in srv.listeners),
    }


def section_replication(srv: Server) -> dict[str, Any]:
    return {
        "role": "master",
        "connected_slaves": 0,
        "master_failover_state": "no-failover",
        "master_replid": srv.run_id,
        "master_repl_offset": 0,
    }


def section_cpu(srv: Server) -> dict[str, Any]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"used_cpu_sys": round(ru.ru_stime, 6), "used_cpu_user": round(ru.ru_utime, 6)}


def section_handover(srv: Server) -> dict[str, Any]:
    return srv.handover.info()


def section_keyspace(srv: Server) -> dict[str, Any]:
    out: dict[str, Any] = {}
    t = now_ms()
    for db in srv.keyspace.dbs:
        if db.data:
            ttls = [w - t for w in db.expires.values() if w > t]
            avg = sum(ttls) // len(ttls) if ttls else 0
            out[f"db{db.index}"] = f"keys={len(db.data)},expires={len(db.expires)},avg_ttl={avg}"
    return out


def section_errorstats(srv: Server) -> dict[str, Any]:
    return {f"errorstat_{code}": f"count={n}" for code, n in srv.errorstats.items()}


def _stat_line(cmd: Command) -> str:
    usec = int(cmd.secs * 1_000_000)
    per = usec / cmd.calls if cmd.calls else 0.0
    return (
        f"calls={cmd.calls},usec={usec},usec_per_call={per:.2f},"
        f"rejected_calls={cmd.rejected_calls},failed_calls={cmd.failed_calls}"
    )


def section_commandstats(srv: Server) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for cmd in TABLE.values():
        for x in (cmd, *(cmd.subcommands or {}).values()):
            if x.calls or x.rejected_calls or x.failed_calls:
                out[f"cmdstat_{x.name}"] = _stat_line(x)
    return out


SECTIONS = {
    "server": section_server,
    "clients": section_clients,
    "memory": section_memory,
    "persistence": section_persistence,
    "stats": section_stats,
    "replication": section_replication,
    "cpu": section_cpu,
    "handover": section_handover,
    "errorstats": section_errorstats,
    "keyspace": section_keyspace,
    "commandstats": section_commandstats,
}
# INFO and INFO default leave these out, as Redis does; INFO all / everything list them.
NOT_DEFAULT = frozenset(("commandstats",))
TITLES = {"cpu": "CPU"}


def info_text(srv: Server, wanted: list[str]) -> str:
    names = {w.lower() for w in wanted} or {"default"}
    every = bool(names & {"all", "everything"})
    default = "default" in names
    chosen = [n for n in SECTIONS if n in names or every or (default and n not in NOT_DEFAULT)]
    lines: list[str] = []
    for name in chosen:
        if lines:
            lines.append("")
        lines.append(f"# {TITLES.get(name, name.capitalize())}")
        lines += [f"{k}:{v}" for k, v in SECTIONS[name](srv).items()]
    return "\r\n".join(lines) + "\r\n"


@command("info", -1, "stale", group="server", summary="Returns information about the server.")
def info(c: Client, argv: list[bytes]) -> bytes:
    text = info_text(c.server, [a.decode(errors="replace") for a in argv[1:]])
    return bulk(text.encode())


# ------------------------------------------------------------------ CONFIG
CONFIG_HELP = [
    "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET <pattern>",
    "    Return parameters matching the glob-like <pattern> and their values.",
    "SET <directive> <value> [<directive> <value> ...]",
    "    Set the configuration parameters.",
    "RESETSTAT",
    "    Reset statistics reported by the INFO command.",
    "REWRITE",
    "    Not supported: the configuration file is managed by Ansible.",
    "HELP",
    "    Print this help.",
]


@command("config", -2, "admin noscript loading stale", group="server", summary="Configuration.")
def config(c: Client, argv: list[bytes]) -> bytes:
    sub = subcommand(argv, CONFIG_ARITY)
    srv = c.server
    if sub == b"get":
        found = srv.config.get_matching(a.decode(errors="replace") for a in argv[2:])
        return encode(found, c.resp)
    if sub == b"set":
        if len(argv) % 2:
            raise CommandError("ERR wrong number of arguments for 'config|set' command")
        config_set(srv, argv[2:], c)
        return OK
    if sub == b"resetstat":
        srv.reset_stats()
        return OK
    if sub == b"rewrite":
        raise CommandError(
            "ERR CONFIG REWRITE is not supported: the configuration file is managed by "
            "the deployment (Ansible role ironcache.ironcache.ironcache)"
        )
    return encode([Status(line) for line in CONFIG_HELP], c.resp)


CONFIG_ARITY = {b"get": -3, b"set": -4, b"resetstat": 2, b"rewrite": 2, b"help": 2}


LISTENER_DIRECTIVES = {
    "port": ("tcp",),
    "bind": ("tcp", "tls"),
    "unixsocket": ("unix",),
    "tls-port": ("tls",),
}
# Redis's words when a listener cannot be re-opened (IronCache's reason follows in brackets).
REBIND_FAILED = {
    "port": "Unable to listen on this port. Check server logs.",
    "bind": "Failed to bind to specified addresses.",
    "unixsocket": "Unable to listen on this unix socket.",
    "tls-port": "Unable to listen on this port. Check server logs.",
}
# IronCache's own start-time settings: Redis has none of them, so a client that sets every
# setting CONFIG GET lists to the value it read (Redis's suite does) is answered OK when the
# value does not change; any other value is refused as immutable.
OWN_IMMUTABLE = frozenset(("reuseport", "handover", "tls-bind"))


def _unchanged(srv: Server, d: Any, raw: str) -> bool:
    try:
        return bool(d.parse(raw.split() if d.name == "tls-bind" else [raw]) == srv.config[d.name])
    except ValueError:
        return False


def set_failed(name: str, why: str) -> CommandError:
    return CommandError(f"ERR CONFIG SET failed (possibly related to argument '{name}') - {why}")


def config_set(srv: Server, args: list[bytes], c: Client) -> None:
    """Validate every pair first, then apply them all: a bad pair changes nothing."""
    allow = srv.config["enable-protected-configs"]
    parsed: dict[str, Any] = {}
    given: set[str] = set()
    for i in range(0, len(args), 2):
        name = args[i].decode(errors="replace").lower()
        raw = args[i + 1].decode(errors="replace")
        d = DIRECTIVES.get(name)
        if d is None:
            raise CommandError(
                f"ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
            )
        if name in given:
            raise set_failed(name, "duplicate parameter")
        given.add(name)
        name = d.name  # an alias (hash-max-ziplist-entries) sets the setting it names: last wins
        if not d.mutable and not (name in OWN_IMMUTABLE and _unchanged(srv, d, raw)):
            raise set_failed(name, "can't set immutable config")
        if d.protected and (allow == "no" or (allow == "local" and not c.is_local())):
            raise set_failed(name, "can't set protected config")
        try:
            parsed[name] = d.parse(raw.split() if name in ("bind", "tls-bind") else [raw])
        except ValueError as e:
            raise set_failed(name, str(e)) from None
        if d.merge is not None:
            parsed[name] = d.merge(srv.config[name], parsed[name])
        if name == "dir":
            why = _not_a_directory(parsed[name])
            if why:
                raise set_failed(name, why)
    cfg = srv.config
    before = dict(cfg.values)
    cfg.values.update(parsed)
    # Any TLS setting set (even to its value: a renewed file at the same path) reads the
    # certificate, key and CA files again; new connections get them.
    tls_set = [n for n in parsed if n in TLS_NAMES and not DIRECTIVES[n].no_effect]
    if tls_set:
        from ironcache.tls import TLSError  # ssl only when TLS is configured (start-up time)

        try:
            srv.reload_tls()
        except TLSError as e:
            cfg.values = before
            log.warning(f"CONFIG SET {', '.join(tls_set)}: TLS configuration refused: {e}")
            raise set_failed(
                tls_set[0], f"Unable to update TLS configuration. Check server logs. ({e})"
            ) from None
    changed = {n for n in parsed if n in LISTENER_DIRECTIVES and parsed[n] != before[n]}
    kinds = {kind for n in changed for kind in LISTENER_DIRECTIVES[n]}
    for kind in sorted(kinds):
        try:
            srv.rebind(kind, cfg["bind"], cfg["port"], cfg["unixsocket"])
        except CommandError as e:
            cfg.values = before
            name = next(n for n in changed if kind in LISTENER_DIRECTIVES[n])
            if tls_set:
                with contextlib.suppress(Exception):  # tls.TLSError: keep the current one
                    srv.reload_tls()  # back to the context of the settings restored
            why = e.message.removeprefix("ERR ")
            raise set_failed(name, f"{REBIND_FAILED[name]} ({why})") from None
    srv.config_changed()
    if parsed.keys() & {"maxmemory", "maxmemory-policy", "lfu-log-factor", "lfu-decay-time"}:
        srv.update_maxmemory()
        ks = srv.keyspace
        ks.evict(srv.maxmemory, cfg["maxmemory-policy"], cfg["maxmemory-samples"])
    if "requirepass" in parsed:
        srv.acl.set_password(cfg["requirepass"])  # the default user's, as in Redis
    if "loglevel" in parsed:
        log.configure(cfg["loglevel"], "")
    if "proto-max-bulk-len" in parsed:
        for cl in srv.clients.values():
            cl.parser.max_bulk_len = cfg["proto-max-bulk-len"]
    # names only: values (requirepass) never reach the log
    log.notice("CONFIG SET " + ", ".join(parsed))
    for n in parsed:
        if DIRECTIVES[n].no_effect and n not in NO_EFFECT_LOGGED:
            NO_EFFECT_LOGGED.add(n)
            log.notice(f"CONFIG SET {n}: accepted for Redis compatibility, no effect in IronCache")


# Settings whose "no effect" line was logged already (once per setting and process).
NO_EFFECT_LOGGED: set[str] = set()


def _not_a_directory(path: str) -> str:
    """Why `path` cannot be `dir` (strerror wording, as Redis's chdir() reports), or ""."""
    try:
        st = os.stat(path)
    except OSError as e:
        return e.strerror or "No such file or directory"
    return "" if stat.S_ISDIR(st.st_mode) else "Not a directory"


# ------------------------------------------------------------------ COMMAND
# ACL categories as Redis derives them: from the command's group and from its flags.
GROUP_CATEGORY = {
    "string": "string",
    "generic": "keyspace",
    "list": "list",
    "hash": "hash",
    "set": "set",
    "sorted_set": "sortedset",
    "transactions": "transaction",
    "connection": "connection",
    "scripting": "scripting",
    "pubsub": "pubsub",
    "bitmap": "bitmap",
    "hyperloglog": "hyperloglog",
    "stream": "stream",
    "geo": "geo",
}
ACL_CATEGORIES = frozenset(
    (*GROUP_CATEGORY.values(), "read", "write", "admin", "fast", "slow", "blocking", "dangerous")
)


# Where Redis's command table gives other categories than the group and flags imply: "+cat"
# adds, "-cat" removes; "name|*" is every subcommand of name.
CATEGORY_CHANGES = {
    "info": "+dangerous",
    "config": "-admin -dangerous",
    "command": "+connection",
    "command|*": "+connection",
    "lastsave": "+admin +dangerous",
    "role": "+admin +dangerous",
    "client": "-connection",
    "restore": "+dangerous",
    "swapdb": "+keyspace +dangerous",
    "object": "-keyspace -read",
    "sort": "-keyspace +set +sortedset +list +dangerous",
    "sort_ro": "-keyspace +set +sortedset +list +dangerous",
    "keys": "+dangerous",
    "dbsize": "+keyspace",
    "flushdb": "+keyspace +dangerous",
    "flushall": "+keyspace +dangerous",
    "pubsub": "-pubsub",
    "pubsub|help": "-pubsub",
    "eval_ro": "-read",
    "evalsha_ro": "-read",
    "fcall_ro": "-read",
    "script": "-scripting",
    "function": "-scripting",
}


def categories(cmd: Command) -> list[str]:
    out = _categories(cmd)
    parent = cmd.parent.name + "|*" if cmd.parent is not None else ""
    changes = f"{CATEGORY_CHANGES.get(cmd.name, '')} {CATEGORY_CHANGES.get(parent, '')}"
    for change in changes.split():
        if change[0] == "+" and change[1:] not in out:
            out.append(change[1:])
        elif change[0] == "-" and change[1:] in out:
            out.remove(change[1:])
    return out


def _categories(cmd: Command) -> list[str]:
    fl = cmd.flags
    out = []
    group = GROUP_CATEGORY.get(cmd.group)
    if group:
        out.append(group)
    if "write" in fl:
        out.append("write")
    if "readonly" in fl:
        out.append("read")
    if "admin" in fl:
        out += ["admin", "dangerous"]
    if "blocking" in fl:
        out.append("blocking")
    out.append("fast" if "fast" in fl else "slow")
    return out


def _numkeys(at: int, before: int = 0) -> Callable[[list[bytes]], list[bytes]]:
    """Keys counted by a numkeys argument at `at` (after `before` fixed keys: a destination)."""

    def keys(argv: list[bytes]) -> list[bytes]:
        try:
            n = int(argv[at])
        except (ValueError, IndexError):
            raise CommandError("ERR Invalid arguments specified for command") from None
        if n < 0 or at + 1 + n > len(argv):
            raise CommandError("ERR Invalid arguments specified for command")
        return argv[1 : 1 + before] + argv[at + 1 : at + 1 + n]

    return keys


def _streams_keys(argv: list[bytes]) -> list[bytes]:
    for i, a in enumerate(argv):
        if a.lower() == b"streams":
            rest = argv[i + 1 :]
            if not rest or len(rest) % 2:
                raise CommandError("ERR Invalid arguments specified for command")
            return rest[: len(rest) // 2]
    raise CommandError("ERR Invalid arguments specified for command")


# Commands whose keys are found by parsing their arguments (Redis's getkeys procedures,
# flagged `movablekeys`), by name; a family may instead give its command `find_keys` (SORT).
MOVABLE_KEYS: dict[str, Callable[[list[bytes]], list[bytes]]] = {
    **{n: _numkeys(2, 1) for n in ("zunionstore", "zinterstore", "zdiffstore")},
    **{n: _numkeys(1) for n in ("zunion", "zinter", "zdiff", "zintercard", "sintercard")},
    **{n: _numkeys(1) for n in ("lmpop", "zmpop")},
    **{n: _numkeys(2) for n in ("blmpop", "bzmpop")},
    **{n: _numkeys(2) for n in ("eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro")},
    "xread": _streams_keys,
    "xreadgroup": _streams_keys,
}


# The key permissions a command needs, as Redis's key specs give them (R: the spec's ACCESS
# flag, W: INSERT, DELETE or UPDATE, RW both, "-" neither): one word per spec, the last for
# every further key; "" for keys that are not keys (shard channels). Commands not named need R
# when read-only, W when they write.
KEY_ACCESS = {
    **dict.fromkeys(("hlen", "hstrlen", "hexists", "exists", "touch", "type", "llen"), "-"),
    **dict.fromkeys(("sismember", "scard", "strlen", "zcard", "watch"), "-"),
    **dict.fromkeys(("ssubscribe", "sunsubscribe", "spublish"), ""),
    **dict.fromkeys(("setbit", "bitfield", "hincrby", "hincrbyfloat", "move", "set"), "RW"),
    **dict.fromkeys(("lpop", "rpop", "lmpop", "blpop", "brpop", "blmpop", "spop"), "RW"),
    **dict.fromkeys(("eval", "evalsha", "fcall", "getset", "getdel", "getex"), "RW"),
    **dict.fromkeys(("incr", "decr", "incrby", "decrby", "incrbyfloat", "zincrby"), "RW"),
    **dict.fromkeys(("zpopmin", "zpopmax", "zmpop", "bzpopmin", "bzpopmax", "bzmpop"), "RW"),
    **dict.fromkeys(("bitop", "sinterstore", "sunionstore", "sdiffstore", "zrangestore"), "W R"),
    **dict.fromkeys(("zunionstore", "zinterstore", "zdiffstore"), "W R"),
    **dict.fromkeys(("rename", "renamenx", "lmove", "rpoplpush", "blmove", "brpoplpush"), "RW W"),
    "smove": "RW W",
    "pfmerge": "RW R",
    "copy": "R W",
    "sort": "R W",
}
_ACCESS_BITS = {"R": 1, "W": 2, "RW": 3, "-": 0}


def _set_access(argv: list[bytes]) -> list[tuple[bytes, int]]:
    """SET reads the key only with GET (Redis's VARIABLE_FLAGS spec)."""
    return [(argv[1], 3 if any(a.lower() == b"get" for a in argv[3:]) else 2)]


def _bitfield_access(argv: list[bytes]) -> list[tuple[bytes, int]]:
    """BITFIELD writes only with SET or INCRBY."""
    writes = any(a.lower() in (b"set", b"incrby") for a in argv[2:])
    return [(argv[1], 3 if writes else 1)]


def _second_arg(argv: list[bytes]) -> list[tuple[bytes, int]]:
    return [(argv[2], 0)] if len(argv) > 2 else []


# Keys whose permission depends on the arguments, or of subcommands (MEMORY USAGE key).
ACCESS_FINDERS: dict[str, Callable[[list[bytes]], list[tuple[bytes, int]]]] = {
    "set": _set_access,
    "bitfield": _bitfield_access,
    "memory|usage": _second_arg,
    "memory": lambda argv: _second_arg(argv) if argv[1].lower() == b"usage" else [],
    **{f"object|{x}": _second_arg for x in ("encoding", "freq", "idletime", "refcount")},
}


def key_access(cmd: Command) -> Callable[[list[bytes]], list[tuple[bytes, int]]] | None:
    """What ACL checks of a command's keys: (key, 1 read | 2 write) for each, or None."""
    if cmd.name in ACCESS_FINDERS:
        return ACCESS_FINDERS[cmd.name]
    finder = cmd.find_keys or cmd.key_finder or MOVABLE_KEYS.get(cmd.name)
    if finder is None and not cmd.first_key:
        return None
    words = KEY_ACCESS.get(cmd.name)
    if words == "":
        return None
    if words is None:
        words = "R" if "readonly" in cmd.flags else "W" if "write" in cmd.flags else "-"
    need = [_ACCESS_BITS[w] for w in words.split()]
    last = len(need) - 1
    find = finder if finder is not None else cmd.keys

    def keys(argv: list[bytes]) -> list[tuple[bytes, int]]:
        return [(k, need[min(i, last)]) for i, k in enumerate(find(argv))]

    return keys


def command_flags(cmd: Command) -> list[Status]:
    flags = sorted(cmd.flags)
    if cmd.name in MOVABLE_KEYS or cmd.find_keys is not None:
        flags.append("movablekeys")
    return [Status(f) for f in flags]


def command_info(cmd: Command | None) -> list[Any] | None:
    if cmd is None:
        return None
    return [
        cmd.name,
        cmd.arity,
        command_flags(cmd),
        cmd.first_key,
        cmd.last_key,
        cmd.step,
        [Status(f"@{x}") for x in categories(cmd)],
        [],
        [_spec_info(x) for x in KEY_SPECS.get(cmd.name, ())],
        [command_info(x) for x in (cmd.subcommands or {}).values()],
    ]


def command_docs(cmd: Command) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "summary": cmd.summary,
        "since": cmd.since,
        "group": cmd.group,
        "complexity": "",
    }
    if cmd.subcommands:
        doc["subcommands"] = {x.name: command_docs(x) for x in cmd.subcommands.values()}
    return doc


def lookup_fullname(name: bytes) -> Command | None:
    """`get`, `config|get` (Redis's lookupCommandBySds(): one level, strict)."""
    parts = name.lower().split(b"|")
    cmd = TABLE.get(parts[0])
    if cmd is None or len(parts) > 2:
        return None
    if len(parts) == 1:
        return cmd
    return (cmd.subcommands or {}).get(parts[1])


def all_commands() -> list[Command]:
    out = []
    for cmd in TABLE.values():
        out.append(cmd)
        out += (cmd.subcommands or {}).values()
    return out


def _spec_info(spec: tuple[Any, ...]) -> dict[str, Any]:
    """A key specification as COMMAND INFO shows it (Redis's addReplyCommandKeySpecs)."""
    flags, begin, find = spec
    if begin[0] == "index":
        bs: dict[str, Any] = {"type": "index", "spec": {"index": begin[1]}}
    elif begin[0] == "keyword":
        bs = {"type": "keyword", "spec": {"keyword": begin[1], "startfrom": begin[2]}}
    else:
        bs = {"type": "unknown", "spec": {}}
    if find[0] == "range":
        fk: dict[str, Any] = {
            "type": "range",
            "spec": {"lastkey": find[1], "keystep": find[2], "limit": find[3]},
        }
    elif find[0] == "keynum":
        spec = {"keynumidx": find[1], "firstkey": find[2], "keystep": find[3]}
        fk = {"type": "keynum", "spec": spec}
    else:
        fk = {"type": "unknown", "spec": {}}
    return {"flags": [Status(f) for f in flags], "begin_search": bs, "find_keys": fk}


def spec_keys(name: str, argv: list[bytes]) -> list[tuple[int, tuple[str, ...]]] | None:
    """(position, flags) of the keys Redis's key specs find (getKeysUsingKeySpecs); None
    when a spec cannot be followed (a syntax error in the command)."""
    argc = len(argv)
    out: list[tuple[int, tuple[str, ...]]] = []
    for flags, begin, find in KEY_SPECS.get(name, ()):
        if begin[0] == "index":
            first = begin[1]
        elif begin[0] == "keyword":
            kw, start = begin[1].encode().lower(), begin[2]
            stop, step = (argc, 1) if start > 0 else (0, -1)
            first = 0
            for i in range(start if start > 0 else argc + start, stop, step):
                if argv[i].lower() == kw:
                    first = i + 1
                    break
            if not first:
                continue
        else:
            continue
        if find[0] == "range":
            step = find[2]
            if find[1] >= 0:
                last = first + find[1]
            elif not find[3]:
                last = argc + find[1]
            else:
                last = first + ((argc - first) // find[3] + find[1])
        elif find[0] == "keynum":
            if find[1] >= argc - first:
                return None
            numkeys = string2ll(argv[first + find[1]])
            if numkeys is None or numkeys < 0:
                return None
            step = find[3]
            first += find[2]
            last = first + numkeys - 1
        else:
            continue
        if last >= argc or last < first or first >= argc:
            return None
        out += [(i, flags) for i in range(first, last + 1, step)]
    return out


def _set_key_flags(argv: list[bytes]) -> tuple[str, ...]:
    """setGetKeys: SET overwrites its key, unless GET reads it first."""
    if any(a.lower() == b"get" for a in argv[3:]):
        return ("RW", "access", "update")
    return ("OW", "update")


def _bitfield_key_flags(argv: list[bytes]) -> tuple[str, ...]:
    """bitfieldGetKeys: read-only when only GET and OVERFLOW operations are given whole."""
    i, argc = 2, len(argv)
    while i < argc:
        op, rest = argv[i].lower(), argc - i - 1
        if op == b"get" and rest >= 2:
            i += 3
        elif op == b"overflow" and rest >= 1:
            i += 2
        else:  # SET, INCRBY or a syntax error: not read-only
            return ("RW", "access", "update")
    return ("RO", "access")


# Key specs flagged variable_flags: their getkeys procedures say the flags of a command.
VARIABLE_FLAGS: dict[str, Callable[[list[bytes]], tuple[str, ...]]] = {
    "set": _set_key_flags,
    "bitfield": _bitfield_key_flags,
}


def _command_of(argv: list[bytes]) -> Command:
    """The command (or subcommand) of a full command, checked as getKeysSubcommandImpl()."""
    cmd = TABLE.get(argv[0].lower())
    if cmd is not None and cmd.subcommands and len(argv) > 1:
        cmd = cmd.subcommands.get(argv[1].lower(), cmd)
    if cmd is None:
        raise CommandError("ERR Invalid command specified")
    finder = cmd.find_keys or MOVABLE_KEYS.get(cmd.name)
    if finder is None and not cmd.first_key and cmd.name not in KEY_SPECS:
        raise CommandError("ERR The command has no key arguments")
    if len(argv) != cmd.arity if cmd.arity > 0 else len(argv) < -cmd.arity:
        raise CommandError("ERR Invalid number of arguments specified for command")
    return cmd


def command_keys(argv: list[bytes]) -> list[bytes]:
    """COMMAND GETKEYS: the keys of a full command, as Redis's getKeysSubcommandImpl()."""
    return [k for k, _flags in command_keys_and_flags(argv)]


def command_keys_and_flags(argv: list[bytes]) -> list[tuple[bytes, tuple[str, ...]]]:
    """COMMAND GETKEYSANDFLAGS. A command whose keys its own finder reads (SORT's STORE)
    gives the keys at a key spec's position that spec's flags, the others those of its
    last spec that cannot say where its keys are (as Redis's getkeys procedures do)."""
    cmd = _command_of(argv)
    try:
        return _keys_and_flags(cmd, argv)
    except CommandError:
        # no keys found: an empty answer for a command whose keys are optional (EVAL)
        if "no_mandatory_keys" in cmd.flags:
            return []
        raise


def _keys_and_flags(cmd: Command, argv: list[bytes]) -> list[tuple[bytes, tuple[str, ...]]]:
    finder = cmd.find_keys or MOVABLE_KEYS.get(cmd.name)
    specs = KEY_SPECS.get(cmd.name, ())
    if finder is None:
        found = spec_keys(cmd.name, argv) if specs else None
        if found is None and not specs:
            return [(k, ()) for k in cmd.keys(argv)]
        if not found:
            raise CommandError("ERR Invalid arguments specified for command")
        vary = VARIABLE_FLAGS.get(cmd.name)
        return [(argv[i], vary(argv) if vary else flags) for i, flags in found]
    keys = finder(argv)
    by_key = {argv[i]: flags for i, flags in spec_keys(cmd.name, argv) or []}
    rest = [f for f, b, _k in specs if b[0] == "unknown"] or [f for f, _b, _k in specs[-1:]]
    fallback = rest[-1] if rest else ()
    out = []
    for k in keys:
        out.append((k, by_key.pop(k, fallback)))
    return out


@command("command", -1, "loading stale", group="server", summary="Returns details about commands.")
def command_(c: Client, argv: list[bytes]) -> bytes:
    if len(argv) == 1:
        return encode([command_info(x) for x in TABLE.values()], c.resp)
    sub = subcommand(argv, COMMAND_ARITY)
    if sub == b"count":
        return integer(len(TABLE))
    if sub == b"info":
        if len(argv) == 2:
            return encode([command_info(x) for x in TABLE.values()], c.resp)
        return encode([command_info(lookup_fullname(n)) for n in argv[2:]], c.resp)
    if sub == b"docs":
        if len(argv) == 2:
            return encode({x.name: command_docs(x) for x in TABLE.values()}, c.resp)
        found = [x for x in (lookup_fullname(n) for n in argv[2:]) if x is not None]
        return encode({x.name: command_docs(x) for x in found}, c.resp)
    if sub == b"list":
        return bulk_array([x.name.encode() for x in _command_list(argv)])
    if sub == b"getkeys":
        return bulk_array(command_keys(argv[2:]))
    if sub == b"getkeysandflags":
        return encode(
            [[k, [Status(f) for f in flags]] for k, flags in command_keys_and_flags(argv[2:])],
            c.resp,
        )
    return encode([Status(line) for line in COMMAND_HELP], c.resp)


def _command_list(argv: list[bytes]) -> list[Command]:
    """COMMAND LIST [FILTERBY MODULE name|ACLCAT category|PATTERN pattern]."""
    if len(argv) == 2:
        return all_commands()
    if len(argv) != 5 or argv[2].lower() != b"filterby":
        raise CommandError("ERR syntax error")
    kind, arg = argv[3].lower(), argv[4]
    if kind == b"module":
        return []  # no modules
    if kind == b"aclcat":
        cat = arg.decode(errors="replace").lower()
        if cat not in ACL_CATEGORIES:
            return []
        return [x for x in all_commands() if cat in categories(x)]
    if kind == b"pattern":
        match = matcher(arg, nocase=True)
        return [x for x in all_commands() if match(x.name.encode())]
    raise CommandError("ERR syntax error")


COMMAND_ARITY = {
    b"count": 2,
    b"info": -2,
    b"docs": -2,
    b"list": -2,
    b"getkeys": -4,
    b"getkeysandflags": -4,
    b"help": 2,
}
COMMAND_HELP = [
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)",
    "    Return details about all commands.",
    "COUNT",
    "    Return the total number of commands in this server.",
    "LIST",
    "    Return a list of all commands in this server.",
    "INFO [<command-name> ...]",
    "    Return details about multiple commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "GETKEYS <full-command>",
    "    Return the keys from a full command.",
    "GETKEYSANDFLAGS <full-command>",
    "    Return the keys and the access flags from a full command.",
    "HELP",
    "    Print this help.",
]
subcommands("command", COMMAND_ARITY, {})


@command("cluster", -2, "", group="cluster", summary="A container for Redis Cluster commands.")
def cluster(c: Client, argv: list[bytes]) -> bytes:
    """IronCache is never a cluster node: Redis's answer when cluster-enabled is no."""
    raise CommandError("ERR This instance has cluster support disabled")


subcommands("cluster", {k.encode(): v[0] for k, v in SUBCOMMANDS["cluster"].items()})
subcommands("config", CONFIG_ARITY, {b"help": "loading stale"})


# ------------------------------------------------------------------ misc
@command("time", 1, "loading stale fast", group="server", summary="Returns the server time.")
def time_(c: Client, argv: list[bytes]) -> bytes:
    t = time.time_ns() // 1000
    return bulk_array([b"%d" % (t // 1_000_000), b"%d" % (t % 1_000_000)])


@command("lastsave", 1, "loading stale fast", group="server", summary="Last save time.")
def lastsave(c: Client, argv: list[bytes]) -> bytes:
    return integer(c.server.last_save)


@command("save", 1, "admin noscript no_multi", group="server", summary="Writes the dataset.")
def save(c: Client, argv: list[bytes]) -> bytes:
    try:
        c.server.save()
    except OSError as e:
        log.warning(f"SAVE failed: {e}")
        raise CommandError(f"ERR {e}") from None
    return OK


@command(
    "monitor",
    1,
    "admin noscript loading stale",
    group="server",
    summary="Lists commands the server runs, as they run.",
    batched=False,
)
def monitor(c: Client, argv: list[bytes]) -> bytes:
    if c in c.server.monitors:
        return b""  # a second MONITOR is ignored, without a reply (as in Redis)
    c.server.monitors.add(c)
    return OK


@command("role", 1, "noscript loading stale fast", group="server", summary="Replication role.")
def role(c: Client, argv: list[bytes]) -> bytes:
    return encode([b"master", 0, []], c.resp)


@command(
    "shutdown",
    -1,
    "admin noscript loading stale no_multi",
    group="server",
    summary="Stops the server after answering requests already received.",
)
def shutdown(c: Client, argv: list[bytes]) -> bytes:
    opts = {a.lower() for a in argv[1:]}
    if opts - {b"nosave", b"save", b"now", b"force", b"abort"}:
        raise CommandError("ERR syntax error")
    if b"abort" in opts:
        raise CommandError("ERR No shutdown in progress.")
    if b"save" in opts and b"nosave" in opts:
        raise CommandError("ERR syntax error")
    if b"save" in opts or b"nosave" in opts:
        c.server.shutdown_save = b"save" in opts
    log.notice(f"SHUTDOWN requested by client id={c.id} addr={c.addr}")
    c.server.request_stop("SHUTDOWN command")
    c.closing = True
    return b""
