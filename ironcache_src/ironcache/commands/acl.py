"""ACL: the ACL command, and the permission check every restricted request goes through.

The rules themselves live in `ironcache.acl` (a lower layer); this family gives it the command
table as ACL sees it (`build_catalog`, from the metadata COMMAND INFO reports) and answers with
Redis 7.0's words.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ironcache import acl as rules
from ironcache.atomicfile import write_atomic
from ironcache.commands import (
    TABLE,
    Command,
    CommandError,
    command,
    subcommand,
    subcommands,
    to_int,
)
from ironcache.config import Config, ConfigError
from ironcache.log import log
from ironcache.protocol import OK, Status, bulk, bulk_array, encode, integer, null

if TYPE_CHECKING:
    from ironcache.client import Client

CATALOG = rules.Catalog(())  # filled by build_catalog() once every family has registered


def _all_args(argv: list[bytes]) -> list[tuple[bytes, bool]]:
    return [(a, False) for a in argv[1:]]


def _all_patterns(argv: list[bytes]) -> list[tuple[bytes, bool]]:
    return [(a, True) for a in argv[1:]]


def _first_arg(argv: list[bytes]) -> list[tuple[bytes, bool]]:
    return [(argv[1], False)] if len(argv) > 1 else []


# The channels a command subscribes or publishes to (Redis's channel specs; unsubscribing is
# never refused).
CHANNELS: dict[str, Callable[[list[bytes]], list[tuple[bytes, bool]]]] = {
    "subscribe": _all_args,
    "ssubscribe": _all_args,
    "psubscribe": _all_patterns,
    "publish": _first_arg,
    "spublish": _first_arg,
}


def build_catalog(
    categories: Callable[[Command], list[str]],
    key_access: Callable[[Command], Callable[[list[bytes]], list[tuple[bytes, int]]] | None],
) -> rules.Catalog:
    """The command table as ACL rules see it: called by families.load_all() with the metadata
    COMMAND INFO serves (categories, key specs)."""
    global CATALOG

    def spec(cmd: Command, parent: rules.Spec | None) -> rules.Spec:
        s = rules.Spec(
            cmd.name,
            frozenset(categories(cmd)),
            cmd.noauth,
            parent,
            keys=key_access(cmd),
            channels=CHANNELS.get(cmd.name),
        )
        s.subs = [spec(x, s) for x in (cmd.subcommands or {}).values()]
        return s

    CATALOG = rules.Catalog(spec(cmd, None) for cmd in TABLE.values())
    return CATALOG


# ------------------------------------------------------------------ checks
def denied_reply(result: int, name: str) -> str:
    """processCommand()'s NOPERM replies."""
    if result == rules.DENIED_CMD:
        return f"NOPERM this user has no permissions to run the '{name}' command"
    if result == rules.DENIED_KEY:
        return "NOPERM this user has no permissions to access one of the keys used as arguments"
    return "NOPERM this user has no permissions to access one of the channels used as arguments"


# getAclErrorMessage(): scripts and EXEC name the reason so.
DENIED_REASON = {
    rules.DENIED_CMD: "can't run this command or subcommand",
    rules.DENIED_KEY: "can't access at least one of the keys mentioned in the command arguments",
    rules.DENIED_CHANNEL: "can't publish to the channel mentioned in the command",
}
EXEC_REASON = {
    rules.DENIED_CMD: "no permission to execute the command or subcommand",
    rules.DENIED_KEY: "no permission to touch the specified keys",
    rules.DENIED_CHANNEL: "no permission to access one of the channels used as arguments",
}


def check(c: Client, cmd: Command, argv: list[bytes], context: str) -> tuple[int, str]:
    """Whether the connection's user may run `cmd` (the subcommand when there is one) with
    these arguments: (rules.OK, "") or the refusal, logged in ACL LOG."""
    spec = CATALOG.by_name.get(cmd.name)
    if spec is None:
        return rules.OK, ""
    result, obj = c.user.check(spec, argv)
    if result == rules.OK:
        return result, ""
    c.server.acl.add_log(
        result,
        context,
        spec.name.encode() if result == rules.DENIED_CMD else obj,
        c.user.name,
        c.info_line(),
    )
    return result, spec.name


# ------------------------------------------------------------------ ACL
ACL_ARITY = {
    b"cat": -2,
    b"deluser": -3,
    b"dryrun": -4,
    b"genpass": -2,
    b"getuser": 3,
    b"help": 2,
    b"list": 2,
    b"load": 2,
    b"log": -2,
    b"save": 2,
    b"setuser": -3,
    b"users": 2,
    b"whoami": 2,
}
ACL_HELP = [
    "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CAT [<category>]",
    "    List all commands that belong to <category>, or all command categories",
    "    when no category is specified.",
    "DELUSER <username> [<username> ...]",
    "    Delete a list of users.",
    "DRYRUN <username> <command> [<arg> ...]",
    "    Returns whether the user can execute the given command without executing the command.",
    "GETUSER <username>",
    "    Get the user's details.",
    "GENPASS [<bits>]",
    "    Generate a secure 256-bit user password. The optional `bits` argument can",
    "    be used to specify a different size.",
    "LIST",
    "    Show users details in config file format.",
    "LOAD",
    "    Reload users from the ACL file.",
    "LOG [<count> | RESET]",
    "    Show the ACL log entries.",
    "SAVE",
    "    Save the current config to the ACL file.",
    "SETUSER <username> <attribute> [<attribute> ...]",
    "    Create or modify a user with the specified attributes.",
    "USERS",
    "    List all the registered usernames.",
    "WHOAMI",
    "    Return the current connection username.",
    "HELP",
    "    Print this help.",
]
NO_ACLFILE = (
    "ERR This Redis instance is not configured to use an ACL file. You may want to specify "
    "users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a "
    "Redis configuration file set) in order to store users in the Redis configuration."
)


@command("acl", -2, "", group="server", summary="A container for ACL commands.", batched=False)
def acl(c: Client, argv: list[bytes]) -> bytes:
    sub = subcommand(argv, ACL_ARITY)
    srv = c.server
    reg: rules.Acl = srv.acl
    if sub == b"setuser":
        try:
            user = reg.set_user(argv[2], argv[3:])
        except rules.AclError as e:
            raise CommandError("ERR " + e.message) from None
        kill_pubsub_if_needed(c, user)
        journal(c, argv)
        return OK
    if sub == b"deluser":
        if b"default" in argv[2:]:
            raise CommandError("ERR The 'default' user cannot be removed")
        deleted = 0
        for name in argv[2:]:
            user = reg.users.pop(name, None)
            if user is not None:
                deleted += 1
                disconnect(c, user)
        journal(c, argv)
        return integer(deleted)
    if sub == b"getuser":
        user = reg.users.get(argv[2])
        if user is None:
            return null(c.resp)
        return encode(getuser(user), c.resp)
    if sub == b"list":
        return bulk_array(reg.list_lines())
    if sub == b"users":
        return bulk_array(sorted(reg.users))
    if sub == b"whoami":
        return bulk(c.user.name)
    if sub in (b"load", b"save") and not srv.config["aclfile"]:
        raise CommandError(NO_ACLFILE)
    if sub == b"load":
        path = aclfile_path(srv.config)
        try:
            users = reg.load_lines(read_aclfile(path), path)
        except (rules.AclError, OSError) as e:
            msg = e.message if isinstance(e, rules.AclError) else _open_error(path, e)
            raise CommandError("ERR " + msg) from None
        for gone in reg.replace_users(users):
            disconnect(c, gone)
        journal(c, argv)
        return OK
    if sub == b"save":
        try:
            save_aclfile(aclfile_path(srv.config), reg.list_lines())
        except OSError as e:
            log.warning(f"ACL SAVE: {e}")
            raise CommandError(
                "ERR There was an error trying to save the ACLs. Please check the server logs "
                "for more information"
            ) from None
        return OK
    if sub == b"cat":
        if len(argv) == 2:
            return bulk_array([x.encode() for x in rules.CATEGORIES])
        if len(argv) > 3:
            raise CommandError(_syntax(argv))
        cat = argv[2].decode("latin-1").lower()
        if cat not in CATALOG.members:
            raise CommandError(f"ERR Unknown category '{argv[2][:128].decode('latin-1')}'")
        return bulk_array([x.name.encode() for x in CATALOG.walk if cat in x.categories])
    if sub == b"genpass":
        if len(argv) > 3:
            raise CommandError(_syntax(argv))
        bits = to_int(argv[2]) if len(argv) == 3 else 256
        if not 0 < bits <= 4096:
            raise CommandError(
                "ERR ACL GENPASS argument must be the number of bits for the output password, "
                "a positive number up to 4096"
            )
        chars = (bits + 3) // 4
        return bulk(secrets.token_hex((chars + 1) // 2)[:chars].encode())
    if sub == b"log":
        return acl_log(c, argv)
    if sub == b"dryrun":
        return dryrun(c, argv)
    return encode([Status(line) for line in ACL_HELP], c.resp)


def _syntax(argv: list[bytes]) -> str:
    sub = argv[1].decode("latin-1")
    return f"ERR unknown subcommand or wrong number of arguments for '{sub}'. Try ACL HELP."


def getuser(user: rules.User) -> dict[str, object]:
    def selector(s: rules.Selector) -> dict[str, object]:
        return {
            "commands": s.describe_commands(CATALOG),
            "keys": " ".join(s.key_patterns()),
            "channels": " ".join(s.channel_patterns()),
        }

    return {
        "flags": user.flags(),
        "passwords": list(user.passwords),
        **selector(user.root),
        "selectors": [selector(s) for s in user.selectors[1:]],
    }


def acl_log(c: Client, argv: list[bytes]) -> bytes:
    reg: rules.Acl = c.server.acl
    count = 10
    if len(argv) > 3:
        raise CommandError(_syntax(argv))
    if len(argv) == 3:
        if argv[2].lower() == b"reset":
            reg.log.clear()
            return OK
        count = max(to_int(argv[2]), 0)
    now = time.time() * 1000
    out = []
    for e in reg.log[:count]:
        out.append(
            {
                "count": e.count,
                "reason": rules.REASONS.get(e.reason, "unknown"),
                "context": e.context,
                "object": e.obj,
                "username": e.username,
                "age-seconds": (now - e.ctime) / 1000,
                "client-info": e.cinfo,
            }
        )
    return encode(out, c.resp)


def dryrun(c: Client, argv: list[bytes]) -> bytes:
    reg: rules.Acl = c.server.acl
    user = reg.users.get(argv[2])
    if user is None:
        raise CommandError(f"ERR User '{argv[2].decode('latin-1')}' not found")
    args = argv[3:]
    cmd = TABLE.get(args[0].lower())
    if cmd is not None and cmd.subcommands is not None and len(args) > 1:
        cmd = cmd.subcommands.get(args[1].lower())
    if cmd is None:
        raise CommandError(f"ERR Command '{args[0].decode('latin-1')}' not found")
    if len(args) != cmd.arity if cmd.arity > 0 else len(args) < -cmd.arity:
        raise CommandError(f"ERR wrong number of arguments for '{cmd.name}' command")
    spec = CATALOG.by_name.get(cmd.name)
    result, obj = user.check(spec, args) if spec is not None else (rules.OK, b"")
    if result == rules.OK:
        return OK
    if result == rules.DENIED_CMD:
        text = f"This user has no permissions to run the '{cmd.name}' command"
    else:
        what = "key" if result == rules.DENIED_KEY else "channel"
        text = f"This user has no permissions to access the '{obj.decode('latin-1')}' {what}"
    return bulk(text.encode("latin-1"))


subcommands(
    "acl",
    ACL_ARITY,
    {
        b"cat": "noscript loading stale",
        b"genpass": "noscript loading stale",
        b"whoami": "noscript loading stale",
        b"help": "loading stale",
        **{
            x: "admin noscript loading stale"
            for x in (b"deluser", b"dryrun", b"getuser", b"list", b"load", b"log")
            + (b"save", b"setuser", b"users")
        },
    },
)


# ------------------------------------------------------------------ connections
def disconnect(c: Client, user: rules.User) -> None:
    """The connections of a deleted (or replaced) user close, this one after its reply."""
    default = c.server.acl.default
    for x in list(c.server.clients.values()):
        if x.user is user:
            x.user = default
            x.authenticated = x.parser.authenticated = False
            if x is c:
                c.closing = True
            else:
                x.close()


def kill_pubsub_if_needed(c: Client, user: rules.User) -> None:
    """Subscribers of `user` lose their connection when a channel they hold is no longer
    allowed (Redis's ACLKillPubsubClientsIfNeeded)."""
    if any(s.allchannels for s in user.selectors):
        return
    for x in list(c.server.clients.values()):
        if x.user is not user:
            continue
        held = [(ch, False) for ch in (*x.channels, *x.schannels)]
        held += [(p, True) for p in x.patterns]
        if any(not any(s.check_channel(ch, pat) for s in user.selectors) for ch, pat in held):
            if x is c:
                c.closing = True
            else:
                x.close()


def journal(c: Client, argv: list[bytes]) -> None:
    """ACL changes go to the crash journal like writes (replayed as the server's own)."""
    if c.id and c.server.config["handover"]:
        c.server.handover.wrote(c.db.index, argv)


# ------------------------------------------------------------------ the ACL file
def aclfile_path(config: Config) -> str:
    """`aclfile`, a relative path being in `dir` (Redis reads it after chdir to `dir`)."""
    path = config["aclfile"]
    return os.path.join(config["dir"], path) if path else ""


ACLFILE_MAX = 16 * 1024 * 1024


def read_aclfile(path: str) -> list[bytes]:
    """The lines of an ACL file (a regular file; anything else is refused with a reason)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not (st.st_mode & 0o170000 == 0o100000):
            raise rules.AclError(f"Error loading ACLs, opening file '{path}': not a regular file")
        if st.st_size > ACLFILE_MAX:
            raise rules.AclError(f"Error loading ACLs, opening file '{path}': file too big")
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).split(b"\n")


def _open_error(path: str, e: OSError) -> str:
    return f"Error loading ACLs, opening file '{path}': {e.strerror or e}"


def save_aclfile(path: str, lines: list[bytes]) -> None:
    """ACL SAVE: the file replaced whole, mode 0600 (it holds password hashes)."""
    write_atomic(path, b"".join(line + b"\n" for line in lines))


# ------------------------------------------------------------------ start
def from_config(config: Config) -> rules.Acl:
    """The users a server starts with: the default user (requirepass its password), then the
    `user` lines or the ACL file (not both, as Redis refuses). Problems raise ConfigError with
    Redis's reason, so `check-config` and the start name them without a traceback."""
    reg = rules.Acl(CATALOG, config["acl-pubsub-default"] == "allchannels")
    reg.log_max = config["acllog-max-len"]
    reg.set_password(config["requirepass"])
    entries = [[a.encode("utf-8", "surrogateescape") for a in x] for x in config["user"]]
    path = aclfile_path(config)
    if path and entries:
        raise ConfigError(
            "users defined in the configuration ('user' lines) and an ACL file ('aclfile') at "
            "the same time: define users in one place only"
        )
    try:
        reg.load_config_users(entries)
    except rules.AclError as e:
        raise ConfigError(f"'user': {e.message}") from None
    if path:
        try:
            users = reg.load_lines(read_aclfile(path), path)
        except OSError as e:
            raise ConfigError(f"'aclfile': {_open_error(path, e)}") from None
        except rules.AclError as e:
            raise ConfigError(f"'aclfile': {e.message}") from None
        reg.replace_users(users)
    return reg
