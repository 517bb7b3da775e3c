"""ACL users as Redis 7.0 has them: rules, their description, permission checks and the log.

A lower layer: it knows commands only through the `Catalog` the command families build for it
(names, categories, how to find keys and channels), never the server. Rules are applied and
described as Redis's acl.c does (`ACLSetUser`, `ACLSetSelector`, `ACLDescribeUser`), so ACL
LIST, GETUSER and SAVE read as Redis writes them and a file moves between the two.

The check costs nothing for a user with every permission (`User.unrestricted`): the server
tests that flag once per batch of requests and checks nothing more.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ironcache.glob import matcher

# Redis's ACLCommandCategories, in its order (ACL CAT lists them so; descriptions try them so).
CATEGORIES = (
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
)
READ = 1  # key permissions: %R~, %W~, ~ (both)
WRITE = 2
ALL = READ | WRITE
# Check results, in Redis's order of relevance (the last key or channel wins among equals).
OK = 0
DENIED_CMD = 1
DENIED_KEY = 2
DENIED_AUTH = 3
DENIED_CHANNEL = 4
LOG_MAX_SCAN = 10
LOG_GROUP_MS = 60000

KeyFinder = Callable[[list[bytes]], list[tuple[bytes, int]]]  # (key, READ/WRITE needed)
ChannelFinder = Callable[[list[bytes]], list[tuple[bytes, bool]]]  # (channel, is a pattern)


class AclError(Exception):
    """A rule that cannot be applied: `message` is Redis's wording (ACLSetUserStringError)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


UNKNOWN = "Unknown command or category name in ACL"
SYNTAX = "Syntax error"
ERRORS = {
    "allkeys": "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and "
    "does not have any effect. Try 'resetkeys' to start with an empty list of patterns",
    "allchannels": "Adding a pattern after the * pattern (or the 'allchannels' flag) is not "
    "valid and does not have any effect. Try 'resetchannels' to start with an empty list of "
    "channels",
    "nopass": "The password you are trying to remove from the user does not exist",
    "hash": "The password hash must be exactly 64 characters and contain only lowercase "
    "hexadecimal characters",
    "child": "Allowing first-arg of a subcommand is not supported",
}


@dataclass(slots=True, eq=False)
class Spec:
    """What ACL needs to know of one command or subcommand."""

    name: str  # full name, lower case: "get", "config|get"
    categories: frozenset[str]
    noauth: bool = False
    parent: Spec | None = None
    subs: list[Spec] = field(default_factory=list)
    keys: KeyFinder | None = None
    channels: ChannelFinder | None = None


class Catalog:
    """The commands as ACL rules name them, in the order descriptions walk them."""

    def __init__(self, commands: Iterable[Spec]) -> None:
        self.commands = list(commands)
        self.by_name: dict[str, Spec] = {}
        self.walk: list[Spec] = []
        for cmd in self.commands:
            self.by_name[cmd.name] = cmd
            self.walk.append(cmd)
            for sub in cmd.subs:
                self.by_name[sub.name] = sub
                self.walk.append(sub)
        self.names = frozenset(x.name for x in self.walk)
        self.members = {
            cat: frozenset(x.name for x in self.walk if cat in x.categories) for cat in CATEGORIES
        }

    def lookup(self, name: str) -> Spec | None:
        """Redis's ACLLookupCommand(): `cmd` or `cmd|sub`, case-insensitive."""
        parts = name.lower().split("|")
        if len(parts) > 2:
            return None
        cmd = self.by_name.get(parts[0])
        if cmd is None or cmd.parent is not None:
            return None
        if len(parts) == 1:
            return cmd
        if not cmd.subs:
            return None
        return self.by_name.get(name.lower())


def hash_password(password: bytes) -> str:
    return hashlib.sha256(password).hexdigest()


def _valid_hash(h: str) -> bool:
    return len(h) == 64 and all(ch in "0123456789abcdef" for ch in h)


def _has_spaces(s: bytes) -> bool:
    return any(ch in b" \t\r\n\0\x0b\x0c" for ch in s)


class Selector:
    """One set of permissions: the user's root one, or a `( ... )` selector."""

    __slots__ = (
        "root",
        "allowed",
        "future",
        "allcommands",
        "firstargs",
        "allkeys",
        "patterns",
        "allchannels",
        "channels",
        "_matchers",
    )

    def __init__(self, root: bool, allchannels: bool) -> None:
        self.root = root
        self.allowed: set[str] = set()
        self.future = False  # +@all: commands added later are allowed too
        self.allcommands = False
        self.firstargs: dict[str, list[bytes]] = {}
        self.allkeys = False
        self.patterns: list[list] = []  # [pattern, READ|WRITE]
        self.allchannels = allchannels
        self.channels: list[bytes] = []
        self._matchers: list[tuple[Callable[[bytes], bool], int]] | None = None

    def copy(self) -> Selector:
        s = Selector(self.root, self.allchannels)
        s.allowed = set(self.allowed)
        s.future = self.future
        s.allcommands = self.allcommands
        s.firstargs = {k: list(v) for k, v in self.firstargs.items()}
        s.allkeys = self.allkeys
        s.patterns = [list(p) for p in self.patterns]
        s.channels = list(self.channels)
        return s

    # ---------------------------------------------------------------- rules
    def change(self, cmd: Spec, allow: bool) -> None:
        """ACLChangeSelectorPerm(): the command and its subcommands."""
        for x in (cmd, *cmd.subs):
            if allow:
                self.allowed.add(x.name)
            else:
                self.allowed.discard(x.name)
                self.allcommands = False
        self.firstargs.pop(cmd.name, None)

    def set_category(self, catalog: Catalog, cat: str, allow: bool) -> None:
        for x in catalog.walk:
            if cat in x.categories:
                self.change(x, allow)

    def apply(self, catalog: Catalog, op: bytes) -> None:
        """ACLSetSelector()."""
        low = op.lower()
        if low in (b"allkeys", b"~*"):
            self.allkeys = True
            self.patterns = []
        elif low == b"resetkeys":
            self.allkeys = False
            self.patterns = []
        elif low in (b"allchannels", b"&*"):
            self.allchannels = True
            self.channels = []
        elif low == b"resetchannels":
            self.allchannels = False
            self.channels = []
        elif low in (b"allcommands", b"+@all"):
            self.allowed = set(catalog.names)
            self.future = self.allcommands = True
            self.firstargs = {}
        elif low in (b"nocommands", b"-@all"):
            self.allowed = set()
            self.future = self.allcommands = False
            self.firstargs = {}
        elif op[:1] in (b"~", b"%"):
            self._add_key_pattern(op)
        elif op[:1] == b"&":
            if self.allchannels:
                raise AclError(ERRORS["allchannels"])
            if _has_spaces(op[1:]):
                raise AclError(SYNTAX)
            if op[1:] not in self.channels:
                self.channels.append(op[1:])
            self.allchannels = False
        elif op[:1] in (b"+", b"-") and op[1:2] != b"@":
            self._command_rule(catalog, op)
        elif op[:1] in (b"+", b"-"):
            cat = op[2:].decode("latin-1").lower()
            if cat not in catalog.members:
                raise AclError(UNKNOWN)
            self.set_category(catalog, cat, op[:1] == b"+")
        else:
            raise AclError(SYNTAX)
        self._matchers = None

    def _add_key_pattern(self, op: bytes) -> None:
        if self.allkeys:
            raise AclError(ERRORS["allkeys"])
        flags = 0
        offset = 1
        if op[:1] == b"%":
            ok = True
            while offset < len(op):
                ch = op[offset : offset + 1].upper()
                if ch == b"R" and not flags & READ:
                    flags |= READ
                elif ch == b"W" and not flags & WRITE:
                    flags |= WRITE
                elif ch == b"~":
                    offset += 1
                    break
                else:
                    ok = False
                    break
                offset += 1
            if not flags or not ok:
                raise AclError(SYNTAX)
        else:
            flags = ALL
        pattern = op[offset:]
        if _has_spaces(pattern):
            raise AclError(SYNTAX)
        for p in self.patterns:
            if p[0] == pattern:
                p[1] |= flags
                break
        else:
            self.patterns.append([pattern, flags])
        self.allkeys = False

    def _command_rule(self, catalog: Catalog, op: bytes) -> None:
        name = op[1:].decode("latin-1")
        if op[:1] == b"-" or "|" not in name:
            cmd = catalog.lookup(name)
            if cmd is None:
                raise AclError(UNKNOWN)
            self.change(cmd, op[:1] == b"+")
            return
        base, sub = name.rsplit("|", 1)
        cmd = catalog.lookup(base)
        if cmd is None:
            raise AclError(UNKNOWN)
        if cmd.parent is not None:
            raise AclError(ERRORS["child"])
        if not sub:
            raise AclError(SYNTAX)
        if cmd.subs:
            found = catalog.lookup(name)
            if found is None:
                raise AclError(UNKNOWN)
            self.change(found, True)
            return
        # SELECT|0: a first argument of an otherwise denied command (deprecated in Redis).
        allowed = self.firstargs.setdefault(cmd.name, [])
        if sub.lower().encode("latin-1") not in (a.lower() for a in allowed):
            allowed.append(sub.encode("latin-1"))

    # ---------------------------------------------------------------- description
    def describe_commands(self, catalog: Catalog) -> str:
        """ACLDescribeSelectorCommandRules(): +@all or -@all, the categories that fit best,
        then single commands, as Redis emits them."""
        additive = not self.future
        rules = ["-@all" if additive else "+@all"]
        fake = Selector(False, False)
        fake.apply(catalog, rules[0].encode())
        temp = set(self.allowed)
        applied: set[str] = set()
        while True:
            best = None
            mindiff, maxsame = 1 << 31, 0
            for cat in CATEGORIES:
                if cat in applied:
                    continue
                members = catalog.members[cat]
                on = len(members & temp)
                off = len(members) - on
                diff, same = (off, on) if additive else (on, off)
                if same > diff and (diff < mindiff or (diff == mindiff and same > maxsame)):
                    best, mindiff, maxsame = cat, diff, same
            if best is None:
                break
            rules.append(("+@" if additive else "-@") + best)
            fake.set_category(catalog, best, additive)
            if additive:
                temp -= catalog.members[best]
            else:
                temp |= catalog.members[best]
            applied.add(best)
        for cmd in catalog.commands:
            self._describe_single(cmd, fake, rules)
        return " ".join(rules)

    def _describe_single(self, cmd: Spec, fake: Selector, rules: list[str]) -> None:
        mine = cmd.name in self.allowed
        if mine != (cmd.name in fake.allowed):
            rules.append(("+" if mine else "-") + cmd.name)
            fake.change(cmd, mine)
        for sub in cmd.subs:
            self._describe_single(sub, fake, rules)
        if not mine:
            for arg in self.firstargs.get(cmd.name, ()):
                rules.append(f"+{cmd.name}|{arg.decode('latin-1')}")

    def key_patterns(self) -> list[str]:
        if self.allkeys:
            return ["~*"]
        out = []
        for pattern, flags in self.patterns:
            prefix = "~" if flags == ALL else "%R~" if flags == READ else "%W~"
            out.append(prefix + pattern.decode("latin-1"))
        return out

    def channel_patterns(self) -> list[str]:
        if self.allchannels:
            return ["&*"]
        return ["&" + c.decode("latin-1") for c in self.channels]

    def describe(self, catalog: Catalog) -> str:
        """ACLDescribeSelector()."""
        parts = self.key_patterns()
        parts += ["&*"] if self.allchannels else ["resetchannels", *self.channel_patterns()]
        parts.append(self.describe_commands(catalog))
        return " ".join(parts)

    # ---------------------------------------------------------------- checks
    def check_key(self, key: bytes, need: int) -> bool:
        if self.allkeys:
            return True
        matchers = self._matchers
        if matchers is None:
            matchers = self._matchers = [(matcher(p), f) for p, f in self.patterns]
        return any(flags & need == need and match(key) for match, flags in matchers)

    def check_channel(self, channel: bytes, is_pattern: bool) -> bool:
        if self.allchannels:
            return True
        for pattern in self.channels:
            if (pattern == channel) if is_pattern else matcher(pattern)(channel):
                return True
        return False

    def check(
        self, cmd: Spec, argv: list[bytes], keys: list[tuple[bytes, int]] | None
    ) -> tuple[int, bytes, list[tuple[bytes, int]] | None]:
        """ACLSelectorCheckCmd(): (result, the key or channel refused, the keys found)."""
        if not self.allcommands and not cmd.noauth and cmd.name not in self.allowed:
            allowed = self.firstargs.get(cmd.name)
            at = 2 if cmd.parent is not None else 1
            if not allowed or len(argv) <= at:
                return DENIED_CMD, b"", keys
            arg = argv[at].lower()
            if not any(arg == a.lower() for a in allowed):
                return DENIED_CMD, b"", keys
        if not self.allkeys and cmd.keys is not None:
            if keys is None:
                try:
                    keys = cmd.keys(argv)
                except Exception:  # arguments the finder cannot read: no keys, as Redis
                    keys = []
            for key, need in keys:
                if not self.check_key(key, need):
                    return DENIED_KEY, key, keys
        if not self.allchannels and cmd.channels is not None:
            for channel, is_pattern in cmd.channels(argv):
                if not self.check_channel(channel, is_pattern):
                    return DENIED_CHANNEL, channel, keys
        return OK, b"", keys


class User:
    __slots__ = ("name", "enabled", "nopass", "sanitize", "passwords", "selectors", "unrestricted")

    def __init__(self, name: bytes, allchannels: bool) -> None:
        self.name = name
        self.enabled = False
        self.nopass = False
        # sanitize-payload / skip-sanitize-payload / neither given (RESTORE checks payloads
        # whatever it says)
        self.sanitize: bool | None = None
        self.passwords: list[str] = []
        self.selectors = [Selector(True, allchannels)]
        self.unrestricted = False

    @property
    def root(self) -> Selector:
        return self.selectors[0]

    def copy_from(self, other: User) -> None:
        """ACLCopyUser(): the rules of `other`, this user's name."""
        self.enabled = other.enabled
        self.nopass = other.nopass
        self.sanitize = other.sanitize
        self.passwords = list(other.passwords)
        self.selectors = [s.copy() for s in other.selectors]
        self.refresh()

    def refresh(self) -> None:
        """Whether every command, key and channel is allowed: no check is needed then."""
        r = self.root
        self.unrestricted = r.allcommands and r.allkeys and r.allchannels

    def apply(self, acl: Acl, op: bytes) -> None:
        """ACLSetUser()."""
        low = op.lower()
        if not op:
            return
        if low == b"on":
            self.enabled = True
        elif low == b"off":
            self.enabled = False
        elif low == b"skip-sanitize-payload":
            self.sanitize = False
        elif low == b"sanitize-payload":
            self.sanitize = True
        elif low == b"nopass":
            self.nopass = True
            self.passwords = []
        elif low == b"resetpass":
            self.nopass = False
            self.passwords = []
        elif op[:1] in (b">", b"#"):
            h = hash_password(op[1:]) if op[:1] == b">" else op[1:].decode("latin-1")
            if op[:1] == b"#" and not _valid_hash(h):
                raise AclError(ERRORS["hash"])
            if h not in self.passwords:
                self.passwords.append(h)
            self.nopass = False
        elif op[:1] in (b"<", b"!"):
            h = hash_password(op[1:]) if op[:1] == b"<" else op[1:].decode("latin-1")
            if op[:1] == b"!" and not _valid_hash(h):
                raise AclError(ERRORS["hash"])
            if h not in self.passwords:
                raise AclError(ERRORS["nopass"])
            self.passwords.remove(h)
        elif op[:1] == b"(" and op[-1:] == b")":
            sel = Selector(False, acl.pubsub_default_all)
            for part in split_args(op[1:-1]):
                sel.apply(acl.catalog, part)
            self.selectors.append(sel)
        elif low == b"clearselectors":
            del self.selectors[1:]
        elif low == b"reset":
            self.apply(acl, b"resetpass")
            self.apply(acl, b"resetkeys")
            self.apply(acl, b"resetchannels")
            if acl.pubsub_default_all:
                self.apply(acl, b"allchannels")
            self.apply(acl, b"off")
            self.apply(acl, b"sanitize-payload")
            self.apply(acl, b"clearselectors")
            self.apply(acl, b"-@all")
        else:
            self.root.apply(acl.catalog, op)
        self.refresh()

    def flags(self) -> list[str]:
        out = ["on" if self.enabled else "off"]
        if self.nopass:
            out.append("nopass")
        if self.sanitize is not None:
            out.append("sanitize-payload" if self.sanitize else "skip-sanitize-payload")
        return out

    def describe(self, catalog: Catalog) -> str:
        """ACLDescribeUser(): the rules that make this user, as ACL LIST and SAVE write them."""
        parts = self.flags() + ["#" + h for h in self.passwords]
        parts.append(self.root.describe(catalog))
        parts += [f"({s.describe(catalog)})" for s in self.selectors[1:]]
        return " ".join(parts)

    def check_password(self, password: bytes) -> bool:
        if not self.enabled:
            return False
        if self.nopass:
            return True
        h = hash_password(password)
        return any(hmac.compare_digest(h, p) for p in self.passwords)

    def check(self, cmd: Spec, argv: list[bytes]) -> tuple[int, bytes]:
        """ACLCheckAllUserCommandPerm(): OK when one selector allows it all, else the most
        relevant refusal (a key or channel before the command, the last position among equals)."""
        result, obj, last = DENIED_CMD, b"", -1
        keys = None
        for sel in self.selectors:
            r, what, keys = sel.check(cmd, argv, keys)
            if r == OK:
                return OK, b""
            pos = _position(argv, what) if what else 0
            if r > result or (r == result and pos > last):
                result, obj, last = r, what, pos
        return result, obj


def _position(argv: list[bytes], what: bytes) -> int:
    for i in range(len(argv) - 1, -1, -1):
        if argv[i] is what:
            return i
    return 0


def split_args(text: bytes) -> list[bytes]:
    """The rules inside a selector, split on spaces (sdssplitargs without quotes)."""
    return [p for p in text.replace(b"\t", b" ").split(b" ") if p]


def merge_selectors(args: list[bytes]) -> list[bytes]:
    """ACLMergeSelectorArguments(): `(`...`)` given as several arguments become one."""
    out: list[bytes] = []
    opened: bytes | None = None
    start = b""
    for op in args:
        if opened is None and op[:1] == b"(" and op[-1:] != b")":
            opened, start = op, op
            continue
        if opened is not None:
            opened += b" " + op
            if op[-1:] == b")":
                out.append(opened)
                opened = None
            continue
        out.append(op)
    if opened is not None:
        raise AclError(
            f"Unmatched parenthesis in acl selector starting at '{start.decode('latin-1')}'."
        )
    return out


@dataclass(slots=True)
class LogEntry:
    count: int
    reason: int
    context: str
    obj: bytes
    username: bytes
    ctime: int  # ms
    cinfo: str


REASONS = {DENIED_CMD: "command", DENIED_KEY: "key", DENIED_CHANNEL: "channel", DENIED_AUTH: "auth"}


class Acl:
    """The users, by name, and the ACL log."""

    def __init__(self, catalog: Catalog, pubsub_default_all: bool = False) -> None:
        self.catalog = catalog
        self.pubsub_default_all = pubsub_default_all
        self.default = self.new_default()
        self.users: dict[bytes, User] = {b"default": self.default}
        self.log: list[LogEntry] = []
        self.log_max = 128
        # Internal clients (the journal's replay) run as this user: never checked.
        self.superuser = self.new_default()

    def new_default(self) -> User:
        u = User(b"default", self.pubsub_default_all)
        for op in (b"+@all", b"~*", b"&*", b"on", b"nopass"):
            u.apply(self, op)
        return u

    def set_password(self, password: str) -> None:
        """requirepass: the default user's only password (empty: nopass)."""
        self.default.apply(self, b"resetpass")
        if password:
            self.default.apply(self, b">" + password.encode("utf-8", "surrogateescape"))
        else:
            self.default.apply(self, b"nopass")

    def staged(self, name: bytes, ops: list[bytes], base: User | None) -> User:
        """The user `base` (or a new one) with `ops` applied: raises AclError naming the
        rule that failed, as ACL SETUSER answers; nothing is changed then."""
        temp = User(name, self.pubsub_default_all)
        if base is not None:
            temp.copy_from(base)
        for op in merge_selectors(ops):
            try:
                temp.apply(self, op)
            except AclError as e:
                raise AclError(
                    f"Error in ACL SETUSER modifier '{op.decode('latin-1')}': {e.message}"
                ) from None
        return temp

    def set_user(self, name: bytes, ops: list[bytes]) -> User:
        """ACL SETUSER: create or change `name` (all the rules apply, or none)."""
        if _has_spaces(name):
            raise AclError("Usernames can't contain spaces or null characters")
        user = self.users.get(name)
        temp = self.staged(name, ops, user)
        if user is None:
            user = self.users[name] = User(name, self.pubsub_default_all)
        user.copy_from(temp)
        return user

    def list_lines(self) -> list[bytes]:
        return [
            b"user " + name + b" " + self.users[name].describe(self.catalog).encode("latin-1")
            for name in sorted(self.users)
        ]

    def load_lines(self, lines: list[bytes], where: str) -> dict[bytes, User]:
        """ACLLoadFromFile()'s parsing: every line `user <name> rules...`; errors of every line
        are collected (Redis's wording) and raised together, leaving nothing changed."""
        errors: list[str] = []
        users: dict[bytes, User] = {}
        for no, raw in enumerate(lines, 1):
            line = raw.strip(b" \t\r\n")
            if not line:
                continue
            argv = [a for a in line.split(b" ") if a]
            if not argv:
                continue
            if argv[0] != b"user" or len(argv) < 2:
                errors.append(
                    f"{where}:{no} should start with user keyword followed by the username."
                )
                continue
            name = argv[1]
            if _has_spaces(name):
                bad = name.decode("latin-1")
                errors.append(f"'{where}:{no}: username '{bad}' contains invalid characters.")
                continue
            if name in users:
                errors.append(
                    f"WARNING: Duplicate user '{name.decode('latin-1')}' found on line {no}."
                )
                continue
            user = users[name] = User(name, self.pubsub_default_all)
            try:
                ops = merge_selectors(argv[2:])
            except AclError:
                errors.append(f"{where}:{no}: Unmatched parenthesis in selector definition.")
                continue
            syntax = False
            for op in ops:
                try:
                    user.apply(self, op.strip(b"\t\r\n"))
                except AclError as e:
                    if e.message == UNKNOWN:
                        errors.append(
                            f"{where}:{no}: Error in applying operation "
                            f"'{op.decode('latin-1')}': {e.message}."
                        )
                    elif not syntax:
                        errors.append(f"{where}:{no}: {e.message}.")
                        syntax = True
        if errors:
            raise AclError(" ".join(errors))
        return users

    def replace_users(self, users: dict[bytes, User]) -> list[User]:
        """Install a loaded set of users; the default user object stays (connections hold it).
        Returns the users replaced, whose connections must go (as Redis's ACL LOAD)."""
        new_default = users.pop(b"default", None)
        self.default.copy_from(new_default if new_default is not None else self.new_default())
        gone = [u for n, u in self.users.items() if n != b"default"]
        self.users = {b"default": self.default, **users}
        return gone

    def load_config_users(self, entries: list[list[bytes]]) -> None:
        """`user` directives of the configuration (ACLLoadConfiguredUsers)."""
        seen: set[bytes] = set()
        for argv in entries:
            name = argv[0]
            if name in seen:
                raise AclError(
                    f"'{name.decode('latin-1')}': Duplicate user found. A user can only be "
                    "defined once in config files"
                )
            seen.add(name)
            if _has_spaces(name):
                raise AclError("Spaces not allowed in ACL usernames")
            user = self.users.get(name)
            if user is None:
                user = self.users[name] = User(name, self.pubsub_default_all)
            else:
                user.apply(self, b"reset")
            for op in merge_selectors(argv[1:]):
                try:
                    user.apply(self, op)
                except AclError as e:
                    raise AclError(
                        f"Error loading ACL rule '{op.decode('latin-1')}' for the user named "
                        f"'{name.decode('latin-1')}': {e.message}"
                    ) from None

    def add_log(self, reason: int, context: str, obj: bytes, username: bytes, cinfo: str) -> None:
        """addACLLogEntry(): a repeat of a recent entry bumps its count instead."""
        now = int(time.time() * 1000)
        for i, e in enumerate(self.log[:LOG_MAX_SCAN]):
            if (
                e.reason == reason
                and e.context == context
                and abs(e.ctime - now) <= LOG_GROUP_MS
                and e.obj == obj
                and e.username == username
            ):
                e.count += 1
                e.ctime = now
                e.cinfo = cinfo
                del self.log[i]
                self.log.insert(0, e)
                return
        self.log.insert(0, LogEntry(1, reason, context, obj, username, now, cinfo))
        del self.log[self.log_max :]
