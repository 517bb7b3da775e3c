"""Configuration: redis.conf's directive format, command-line overrides, CONFIG GET/SET.

One table (`DIRECTIVES`) defines every directive: its parser, default, and whether CONFIG SET
may change it at runtime. The file, the command line and CONFIG SET all go through it.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ironcache.glob import matcher
from ironcache.keyspace import POLICIES, events_from_string, events_to_string


class ConfigError(Exception):
    """A bad directive or value; `where` is "file:line" or "command line" when known."""

    def __init__(self, message: str, where: str = "") -> None:
        if len(message) > 300:  # a value from a hostile file is not echoed whole
            message = message[:300] + "..."
        super().__init__(message)
        self.message = message
        self.where = where

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


_MEM = re.compile(r"^(\d{1,20})(b|k|kb|m|mb|g|gb)?$", re.IGNORECASE)
_UNITS = {
    None: 1,
    "b": 1,
    "k": 1000,
    "kb": 1024,
    "m": 1000**2,
    "mb": 1024**2,
    "g": 1000**3,
    "gb": 1024**3,
}


def parse_memory(text: str) -> int:
    m = _MEM.match(text.strip())
    if not m:
        raise ValueError(f"invalid memory size '{text[:64]}' (use e.g. 100mb, 1gb or bytes)")
    unit = m.group(2).lower() if m.group(2) else None
    return int(m.group(1)) * _UNITS[unit]


def _int(lo: int, hi: int) -> Callable[[list[str]], int]:
    def parse(args: list[str]) -> int:
        v = _one(args)
        if not re.fullmatch(r"-?\d{1,20}", v):
            if re.fullmatch(r"-?\d+", v):
                raise ValueError(f"argument must be between {lo} and {hi} inclusive")
            raise ValueError(f"argument must be an integer, got '{v[:64]}'")
        n = int(v)
        if not lo <= n <= hi:
            raise ValueError(f"argument must be between {lo} and {hi} inclusive, got {n}")
        return n

    return parse


def _memory(lo: int = 0) -> Callable[[list[str]], int]:
    def parse(args: list[str]) -> int:
        n = parse_memory(_one(args))
        if n < lo:
            raise ValueError(f"argument must be at least {lo} bytes")
        return n

    return parse


def _enum(*choices: str) -> Callable[[list[str]], str]:
    def parse(args: list[str]) -> str:
        v = _one(args).lower()
        if v not in choices:
            raise ValueError(f"argument must be one of {', '.join(choices)}, got '{v[:64]}'")
        return v

    return parse


def _bool(args: list[str]) -> bool:
    v = _one(args).lower()
    if v not in ("yes", "no"):
        raise ValueError(f"argument must be 'yes' or 'no', got '{v[:64]}'")
    return v == "yes"


def _string(args: list[str]) -> str:
    return _one(args)


def _filename(args: list[str]) -> str:
    name = _string(args)
    if not name or "/" in name or name in (".", ".."):
        raise ValueError("dbfilename can't be a path, just a filename")
    return name


def _octal(args: list[str]) -> int:
    v = _one(args)
    if not re.fullmatch(r"[0-7]{1,4}", v):
        raise ValueError(f"argument must be an octal mode like 0660, got '{v[:64]}'")
    return int(v, 8)


def _addresses(args: list[str]) -> list[str]:
    if not args:
        raise ValueError("at least one address is required")
    import ipaddress

    out = []
    for a in args:
        bare = a[1:] if a.startswith("-") else a
        if bare not in ("*", "::*"):
            try:
                ipaddress.ip_address(bare)
            except ValueError:
                raise ValueError(f"'{a[:64]}' is not an IP address (or * / ::*)") from None
        out.append(a)
    return out


def _words(args: list[str]) -> list[str]:
    """One directive's arguments as Redis splits them, given whole on the command line too
    (`--user "app on >pw ~app:* +get"`)."""
    return [w for a in args for w in (tokenize(a) if " " in a or "'" in a or '"' in a else [a])]


def _user(args: list[str]) -> list[list[str]]:
    args = _words(args)
    if not args or not args[0]:
        raise ValueError("a user needs a name")
    return [args]


def _rename(args: list[str]) -> list[tuple[str, str]]:
    args = _words(args)
    if len(args) != 2 or not args[0]:
        raise ValueError('rename-command needs a command name and its new name ("" disables it)')
    return [(args[0].lower(), args[1])]


def _append(old: list[Any], new: list[Any]) -> list[Any]:
    return [*old, *new]


def _addresses_or_none(args: list[str]) -> list[str]:
    if not args or args == [""]:
        return []
    return _addresses(args)


def _daemonize(args: list[str]) -> bool:
    if _bool(args):
        raise ValueError("daemonize yes is not supported: run IronCache under systemd")
    return False


def _one(args: list[str]) -> str:
    if len(args) != 1:
        raise ValueError("wrong number of arguments")
    return args[0]


OBUF_CLASSES = ("normal", "slave", "pubsub")
OBUF_DEFAULT = {
    # normal clients are never cut off for size by default: IronCache stops reading a client
    # whose replies pile up unread instead (see the README), so its buffer stays bounded.
    "normal": (0, 0, 0),
    "slave": (256 * 1024 * 1024, 64 * 1024 * 1024, 60),
    "pubsub": (32 * 1024 * 1024, 8 * 1024 * 1024, 60),
}


def _obuf_limits(args: list[str]) -> dict[str, tuple[int, int, int]]:
    """Redis's `<class> <hard> <soft> <soft seconds>` groups; only the classes given."""
    words = " ".join(args).split()
    if len(words) % 4:
        raise ValueError("Wrong number of arguments in buffer limit configuration.")
    out: dict[str, tuple[int, int, int]] = {}
    for i in range(0, len(words), 4):
        cls = words[i].lower()
        cls = "slave" if cls == "replica" else cls
        if cls not in OBUF_CLASSES:
            raise ValueError("Invalid client class specified in buffer limit configuration.")
        try:
            hard, soft = parse_memory(words[i + 1]), parse_memory(words[i + 2])
        except ValueError:
            hard = soft = -1
        secs = words[i + 3]
        if hard < 0 or soft < 0 or not re.fullmatch(r"\d{1,18}", secs):
            raise ValueError(
                "Error in hard, soft or soft_seconds setting in buffer limit configuration."
            )
        out[cls] = (hard, soft, int(secs))
    return out


def _merge_obuf(
    old: dict[str, tuple[int, int, int]], new: dict[str, tuple[int, int, int]]
) -> dict[str, tuple[int, int, int]]:
    return {**old, **new}


def _render_obuf(v: dict[str, tuple[int, int, int]]) -> str:
    return " ".join(f"{c} {v[c][0]} {v[c][1]} {v[c][2]}" for c in OBUF_CLASSES)


@dataclass(frozen=True)
class Directive:
    name: str
    parse: Callable[[list[str]], Any]
    default: Any
    mutable: bool = True
    render: Callable[[Any], str] = str
    secret: bool = False
    # A path setting: CONFIG SET may change it only as `enable-protected-configs` allows.
    protected: bool = False
    # How a new value combines with the current one (a setting given in parts); None: replaces.
    merge: Callable[[Any, Any], Any] | None = None
    # Accepted for Redis compatibility, changes nothing here (logged once when set).
    no_effect: bool = False
    # Left out of CONFIG GET patterns; named exactly, it answers (Redis's HIDDEN_CONFIG).
    hidden: bool = False


def _render_bool(v: bool) -> str:
    return "yes" if v else "no"


# ---- Redis settings that clients, tools and Redis's test suite set at connect time ----------
# Accepted by the file, the command line and CONFIG SET with Redis 7.0's validation, reported by
# CONFIG GET with its formatting and defaults, and without effect: IronCache has no periodic
# saves, AOF, compact encodings, Lua or lazy freeing (CONFIG SET logs that once per setting).


def _save(args: list[str]) -> str:
    """`save ""` or `save "3600 1 300 100"`: pairs of seconds and changes."""
    words = " ".join(args).split()
    if len(words) % 2 or not all(re.fullmatch(r"\d{1,18}", w) for w in words):
        raise ValueError("Invalid save parameters")
    return " ".join(str(int(w)) for w in words)


def _appendonly(args: list[str]) -> bool:
    if _bool(args):
        raise ValueError("appendonly yes is not supported: IronCache has no append only file")
    return False


_INT_MAX = 2**31 - 1
_LONG_MAX = 2**63 - 1


def _memory_or_percent(args: list[str]) -> int:
    """maxmemory-clients: bytes, or `N%` (kept negative, as Redis keeps it)."""
    v = _one(args)
    if v.endswith("%"):
        if not re.fullmatch(r"\d{1,18}%", v):
            raise ValueError("argument must be a memory or percent value")
        n = int(v[:-1])
        if n > 100:
            raise ValueError("percentage argument must be less or equal to 100")
        return -n
    try:
        return parse_memory(v)
    except ValueError:
        raise ValueError("argument must be a memory or percent value") from None


def _render_percent(v: int) -> str:
    return f"{-v}%" if v < 0 else str(v)


def _replicaof(args: list[str]) -> str:
    if " ".join(args).strip().lower() not in ("", "no one"):
        raise ValueError("IronCache does not replicate: replicaof must be empty")
    return ""


def _keyspace_events(args: list[str]) -> int:
    # An empty value ("") is allowed: notifications off (Redis's default).
    return events_from_string(_one(args))


def _compat_int(name: str, default: int, lo: int = 0, hi: int = _INT_MAX) -> Directive:
    return Directive(name, _int(lo, hi), default, no_effect=True)


def _compat_mem(name: str, default: int) -> Directive:
    return Directive(name, _memory(), default, no_effect=True)


def _compat_bool(name: str, default: bool) -> Directive:
    return Directive(name, _bool, default, render=_render_bool, no_effect=True)


REDIS_COMPAT = [
    Directive("save", _save, "", no_effect=True),
    Directive("appendonly", _appendonly, False, render=_render_bool, no_effect=True),
    Directive("appendfsync", _enum("always", "everysec", "no"), "everysec", no_effect=True),
    _compat_bool("aof-use-rdb-preamble", True),
    Directive("rdbcompression", _bool, True, render=_render_bool),
    _compat_bool("rdbchecksum", True),
    Directive("hash-max-listpack-entries", _int(0, _LONG_MAX), 512),
    Directive("hash-max-listpack-value", _memory(), 64),
    Directive("zset-max-listpack-entries", _int(0, _LONG_MAX), 128),
    Directive("zset-max-listpack-value", _memory(), 64),
    Directive("set-max-intset-entries", _int(0, _LONG_MAX), 512),
    Directive("list-max-listpack-size", _int(-(2**31), _INT_MAX), -2),
    _compat_int("list-compress-depth", 0),
    _compat_mem("stream-node-max-bytes", 4096),
    _compat_int("stream-node-max-entries", 100, 0, _LONG_MAX),
    _compat_bool("activerehashing", True),
    _compat_int("active-expire-effort", 1, 1, 10),
    _compat_bool("dynamic-hz", True),
    _compat_bool("lazyfree-lazy-eviction", False),
    _compat_bool("lazyfree-lazy-expire", False),
    _compat_bool("lazyfree-lazy-server-del", False),
    _compat_bool("lazyfree-lazy-user-del", False),
    _compat_bool("lazyfree-lazy-user-flush", False),
    Directive("lfu-log-factor", _int(0, _INT_MAX), 10),
    Directive("lfu-decay-time", _int(0, _INT_MAX), 1),
    Directive("repl-backlog-size", _memory(1), 1024 * 1024, no_effect=True),
    Directive(
        "maxmemory-clients", _memory_or_percent, 0, render=_render_percent, no_effect=True
    ),
    Directive("key-load-delay", _int(-(2**31), _INT_MAX), 0, no_effect=True, hidden=True),
    # No replication: only the empty value a primary has.
    Directive("replicaof", _replicaof, "", mutable=False),
]
ALIASES = {
    "hash-max-ziplist-entries": "hash-max-listpack-entries",
    "hash-max-ziplist-value": "hash-max-listpack-value",
    "zset-max-ziplist-entries": "zset-max-listpack-entries",
    "zset-max-ziplist-value": "zset-max-listpack-value",
    "list-max-ziplist-size": "list-max-listpack-size",
    "busy-reply-threshold": "lua-time-limit",
    "slaveof": "replicaof",
}
# ---- end of the Redis compatibility settings ------------------------------------------------


def _protocols(args: list[str]) -> str:
    from ironcache import tls  # ssl is imported only when TLS is configured (start-up time)

    text = " ".join(args)
    tls.parse_protocols(text)
    return text


# TLS as Redis 6+ reads it (tls.py builds the context). tls-port 0: no TLS listener.
TLS_DIRECTIVES = [
    Directive("tls-port", _int(0, 65535), 0),
    # IronCache's own: the addresses of tls-port when they differ from `bind` (e.g. plain TCP
    # on loopback only, TLS on every address); empty: `bind`'s.
    Directive("tls-bind", _addresses_or_none, [], render=" ".join, mutable=False),
    Directive("tls-cert-file", _string, ""),
    Directive("tls-key-file", _string, ""),
    Directive("tls-key-file-pass", _string, "", secret=True),
    Directive("tls-ca-cert-file", _string, ""),
    Directive("tls-ca-cert-dir", _string, ""),
    Directive("tls-dh-params-file", _string, ""),
    Directive("tls-auth-clients", _enum("no", "optional", "yes"), "yes"),
    Directive("tls-protocols", _protocols, ""),
    Directive("tls-ciphers", _string, ""),
    Directive("tls-ciphersuites", _string, ""),
    Directive("tls-prefer-server-ciphers", _bool, False, render=_render_bool),
    Directive("tls-session-caching", _bool, True, render=_render_bool),
    Directive("tls-session-cache-size", _int(0, _INT_MAX), 20 * 1024),
    Directive("tls-session-cache-timeout", _int(0, _INT_MAX), 300),
    # Outgoing TLS (replication, cluster bus): IronCache makes no outgoing connections.
    Directive("tls-client-cert-file", _string, "", no_effect=True),
    Directive("tls-client-key-file", _string, "", no_effect=True),
    Directive("tls-client-key-file-pass", _string, "", secret=True, no_effect=True),
    _compat_bool("tls-replication", False),
    _compat_bool("tls-cluster", False),
]
TLS_NAMES = frozenset(d.name for d in TLS_DIRECTIVES)


DIRECTIVES: dict[str, Directive] = {
    d.name: d
    for d in [
        Directive("bind", _addresses, ["127.0.0.1", "-::1"], render=" ".join),
        Directive("port", _int(0, 65535), 6379),
        # Immutable: a runtime change could bind over (and at shutdown remove) another path.
        Directive("unixsocket", _string, "", mutable=False),
        Directive("unixsocketperm", _octal, 0, mutable=False, render=lambda v: f"{v:o}"),
        Directive("tcp-backlog", _int(1, 65535), 511, mutable=False),
        Directive("maxmemory", _memory(), 0),
        Directive("maxmemory-policy", _enum(*POLICIES), "noeviction"),
        Directive("maxmemory-samples", _int(1, 64), 5),
        Directive("maxclients", _int(1, 1_000_000), 10000),
        Directive("requirepass", _string, "", secret=True),
        Directive("timeout", _int(0, 2**31 - 1), 0),
        # A script running longer (ms) gets other clients -BUSY and can be killed.
        Directive("lua-time-limit", _int(0, _LONG_MAX), 5000),
        Directive("tcp-keepalive", _int(0, 2**31 - 1), 300),
        Directive("databases", _int(1, 10000), 16, mutable=False),
        Directive("loglevel", _enum("debug", "verbose", "notice", "warning", "nothing"), "notice"),
        Directive("logfile", _string, "", mutable=False),
        Directive("dir", _string, ".", protected=True),
        Directive("dbfilename", _filename, "dump.ironcache", protected=True),
        # Who may CONFIG SET protected (path) settings: no one, any client, or loopback and
        # unix-socket clients only.
        Directive("enable-protected-configs", _enum("no", "yes", "local"), "no", mutable=False),
        # No password and a client from another host: answer -DENIED and close (Redis's
        # protected mode).
        Directive("protected-mode", _bool, True, render=_render_bool),
        # SO_REUSEPORT on self-bound TCP listeners: lets several processes share a port (they
        # split the connections). Off: a second server on a busy port fails to start.
        Directive("reuseport", _bool, False, mutable=False, render=_render_bool),
        # Write the dataset to dir/dbfilename when the server stops, and load it at start
        # when no live handover brought one.
        Directive("save-on-shutdown", _bool, False, render=_render_bool),
        # Hand connections and the dataset to the next process through systemd's fd store
        # (needs FileDescriptorStoreMax= in the unit).
        Directive("handover", _bool, False, mutable=False, render=_render_bool),
        # Memory a reload may count on for the second copy of the dataset (0: what the
        # cgroup, MemoryMax=, and the host leave); less than it needs: the stop-start handover.
        Directive("reload-memory-available", _memory(), 0),
        Directive("proto-max-bulk-len", _memory(1024 * 1024), 512 * 1024 * 1024),
        Directive("hll-sparse-max-bytes", _memory(), 3000),
        # CLIENT TRACKING's table: past this many keys, tracked keys are invalidated early.
        Directive("tracking-table-max-keys", _int(0, _LONG_MAX), 1_000_000),
        Directive("client-query-buffer-limit", _memory(1024 * 1024), 1024 * 1024 * 1024),
        Directive(
            "client-output-buffer-limit",
            _obuf_limits,
            dict(OBUF_DEFAULT),
            render=_render_obuf,
            merge=_merge_obuf,
        ),
        Directive("hz", _int(1, 500), 10),
        # Keyspace notifications published to __keyspace@<db>__:* and __keyevent@<db>__:*.
        Directive("notify-keyspace-events", _keyspace_events, 0, render=events_to_string),
        # ACL users: `user` lines (rules as ACL SETUSER), or an ACL file (ACL LOAD / SAVE).
        Directive(
            "user",
            _user,
            [],
            mutable=False,
            render=lambda v: "",
            secret=True,
            merge=_append,
            hidden=True,
        ),
        Directive("aclfile", _string, "", mutable=False),
        Directive("acllog-max-len", _int(0, _LONG_MAX), 128),
        Directive("acl-pubsub-default", _enum("resetchannels", "allchannels"), "resetchannels"),
        # `rename-command NAME NEW` (NEW "" disables NAME), as in redis.conf.
        Directive(
            "rename-command",
            _rename,
            [],
            mutable=False,
            render=lambda v: "",
            merge=_append,
            hidden=True,
        ),
        Directive("daemonize", _daemonize, False, mutable=False, render=_render_bool),
        *REDIS_COMPAT,
        *TLS_DIRECTIVES,
    ]
}
# Old names Redis 7 still accepts: same setting, both names answer CONFIG GET.
for _alias, _name in ALIASES.items():
    DIRECTIVES[_alias] = DIRECTIVES[_name]


class Config:
    """Current values, by directive name. `source` tells where each came from."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {d.name: d.default for d in DIRECTIVES.values()}
        self.file = ""
        self.secrets_on_command_line: list[str] = []  # visible to every user in `ps`

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def apply(self, name: str, args: list[str], where: str = "") -> None:
        name = name.lower()
        d = DIRECTIVES.get(name)
        if d is None:
            raise ConfigError(f"unknown directive '{name[:64]}'", where)
        try:
            value = d.parse(args)
        except ValueError as e:
            raise ConfigError(f"'{name}': {e}", where) from None
        self.values[d.name] = d.merge(self.values[d.name], value) if d.merge else value

    def render(self, name: str) -> str:
        d = DIRECTIVES[name]
        return d.render(self.values[d.name])

    def get_matching(self, patterns: Iterable[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for pat in patterns:
            match = matcher(pat.encode("utf-8", "surrogateescape"), nocase=True)
            exact = not any(ch in pat for ch in "[*?")
            for n, d in DIRECTIVES.items():
                if d.hidden and not exact:
                    continue
                if n not in out and match(n.encode()):
                    out[n] = self.render(n)
        return out


def tokenize(line: str) -> list[str]:
    """Split a config line like redis.conf does (double/single quotes, escapes)."""
    from ironcache.protocol import ProtocolError, split_inline

    try:
        return [a.decode("utf-8", "surrogateescape") for a in split_inline(line.encode())]
    except ProtocolError:
        raise ValueError("unbalanced quotes") from None


# A configuration is a page of text: anything bigger is a mistake (or /dev/zero).
CONFIG_FILE_MAX = 1024 * 1024


def read_file(path: str) -> str:
    """The text of a config file: a regular file, at most CONFIG_FILE_MAX bytes, UTF-8."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as e:
        raise ConfigError(f"cannot read config file: {e.strerror}", path) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
            raise ConfigError(f"cannot read config file: {kind}", path)
        chunks = []
        size = 0
        while size <= CONFIG_FILE_MAX:
            chunk = os.read(fd, CONFIG_FILE_MAX + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise ConfigError(f"cannot read config file: {e.strerror}", path) from None
    finally:
        os.close(fd)
    if size > CONFIG_FILE_MAX:
        raise ConfigError(
            f"config file is larger than {CONFIG_FILE_MAX} bytes: not an IronCache configuration",
            path,
        )
    data = b"".join(chunks)
    if b"\0" in data:
        line = data.count(b"\n", 0, data.index(b"\0")) + 1
        raise ConfigError("NUL byte: the config file is not text", f"{path}:{line}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ConfigError("the config file is not UTF-8 text", f"{path}:{line}") from None


def load_file(config: Config, path: str) -> None:
    lines = read_file(path).splitlines()
    config.file = os.path.abspath(path)
    for no, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path}:{no}"
        try:
            args = tokenize(line)
        except ValueError as e:
            raise ConfigError(str(e), where) from None
        if not args:
            continue
        if args[0].lower() == "include":
            raise ConfigError("'include' is not supported", where)
        config.apply(args[0], args[1:], where)


def apply_overrides(config: Config, argv: list[str]) -> None:
    """`--directive value [value...]` pairs from the command line."""
    i = 0
    while i < len(argv):
        opt = argv[i]
        if not opt.startswith("--") or len(opt) == 2:
            raise ConfigError(f"expected --directive, got '{opt[:64]}'", "command line")
        j = i + 1
        while j < len(argv) and not argv[j].startswith("--"):
            j += 1
        config.apply(opt[2:], argv[i + 1 : j], "command line")
        d = DIRECTIVES[opt[2:].lower()]
        if d.secret:
            config.secrets_on_command_line.append(d.name)
        i = j


def validate(config: Config) -> None:
    """Cross-directive checks that a single value cannot make (run by check-config too)."""
    if config["port"] == 0 and not config["unixsocket"] and not config["tls-port"]:
        raise ConfigError("no listener: port and tls-port are 0 and unixsocket is not set")
    if config["tls-port"]:
        from ironcache import tls

        if config["tls-port"] == config["port"]:
            raise ConfigError(f"'tls-port': {config['tls-port']} is also the plain TCP port")
        try:
            tls.make_context(config.values)
        except tls.TLSError as e:
            raise ConfigError(f"TLS: {e}") from None
    d = config["dir"]
    if not os.path.isdir(d):
        raise ConfigError(f"'dir': '{d}' is not a directory")
    logfile = config["logfile"]
    if logfile:
        logdir = os.path.dirname(os.path.abspath(logfile))
        if not os.path.isdir(logdir):
            raise ConfigError(f"'logfile': the directory of '{logfile}' does not exist")
        if os.path.isdir(logfile):
            raise ConfigError(f"'logfile': '{logfile}' is a directory")
        target = logfile if os.path.exists(logfile) else logdir
        if not os.access(target, os.W_OK):
            raise ConfigError(f"'logfile': '{target}' is not writable")
    unixsocket = config["unixsocket"]
    if unixsocket:
        sockdir = os.path.dirname(os.path.abspath(unixsocket))
        # systemd creates RuntimeDirectory= (and a socket unit's parent directories) at start
        # and names them here; the role tells check-config the same way.
        by_systemd = sockdir in os.environ.get("RUNTIME_DIRECTORY", "").split(":")
        if not os.path.isdir(sockdir) and not by_systemd:
            raise ConfigError(
                f"'unixsocket': the directory of '{unixsocket}' does not exist "
                "(and is not a RUNTIME_DIRECTORY systemd creates)"
            )


def probe_addresses(config: Config) -> None:
    """Every non-optional `bind` address must be one of this host's (check-config).

    A bind to port 0 on the address tells without touching the configured port, which the
    running server may hold.
    """
    if not config["port"] and not config["tls-port"]:
        return
    for raw in config["bind"] + config["tls-bind"]:
        if raw.startswith("-") or raw in ("*", "::*"):
            continue
        family = socket.AF_INET6 if ":" in raw else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.bind((raw, 0))
        except OSError as e:
            if e.errno == errno.EADDRNOTAVAIL:
                why = "it is not an address of this host"
            else:
                why = e.strerror or str(e)
            raise ConfigError(f"'bind': cannot listen on {raw}: {why}") from None


def load(path: str | None, overrides: list[str]) -> Config:
    config = Config()
    if path:
        load_file(config, path)
    apply_overrides(config, overrides)
    validate(config)
    return config
