"""Connection commands: PING, ECHO, QUIT, SELECT, AUTH, HELLO, CLIENT, RESET."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ironcache._version import __version__
from ironcache.acl import DENIED_AUTH
from ironcache.client import REPLY_OFF, REPLY_SKIP_NEXT
from ironcache.commands import (
    REDIS_COMPAT_VERSION,
    SYNTAX,
    CommandError,
    command,
    subcommand,
    subcommands,
    to_int,
)
from ironcache.protocol import OK, PONG, Status, bulk, encode, integer, null
from ironcache.tracking import BCAST, BROKEN_REDIR, CACHING, NOLOOP, ON, OPTIN, OPTOUT

if TYPE_CHECKING:
    from ironcache.client import Client

WRONGPASS = "WRONGPASS invalid username-password pair or user is disabled."


@command("ping", -1, "fast stale", group="connection", summary="Returns the server's liveliness.")
def ping(c: Client, argv: list[bytes]) -> bytes:
    if len(argv) > 2:
        raise CommandError("ERR wrong number of arguments for 'ping' command")
    if c.resp == 2 and (c.channels or c.patterns or c.schannels):  # Redis's subscribed form
        return b"*2\r\n$4\r\npong\r\n" + bulk(argv[1] if len(argv) == 2 else b"")
    return PONG if len(argv) == 1 else bulk(argv[1])


@command("echo", 2, "fast stale", group="connection", summary="Returns the given string.")
def echo(c: Client, argv: list[bytes]) -> bytes:
    return bulk(argv[1])


@command("quit", -1, "noauth fast stale", group="connection", summary="Closes the connection.")
def quit_(c: Client, argv: list[bytes]) -> bytes:
    c.closing = True
    return OK


@command("select", 2, "fast stale", group="connection", summary="Changes the selected database.")
def select(c: Client, argv: list[bytes]) -> bytes:
    index = to_int(argv[1])
    if not -(2**31) <= index < 2**31:  # getIntFromObjectOrReply(), as in Redis
        raise CommandError(
            "ERR value is out of range, value must between -2147483648 and 2147483647"
        )
    dbs = c.server.keyspace.dbs
    if not 0 <= index < len(dbs):
        raise CommandError("ERR DB index is out of range")
    c.db = dbs[index]
    return OK


def check_password(c: Client, username: bytes, password: bytes, argv: list[bytes]) -> None:
    """ACLAuthenticateUser(): the connection becomes `username`'s, or WRONGPASS (logged)."""
    user = c.server.acl.users.get(username)
    if user is None or not user.check_password(password):
        context = "multi" if c.multi is not None else "toplevel"
        c.server.acl.add_log(DENIED_AUTH, context, argv[0], username, c.info_line())
        raise CommandError(WRONGPASS)
    c.authenticate(user)


@command(
    "auth", -2, "noauth fast stale", group="connection", summary="Authenticates the connection."
)
def auth(c: Client, argv: list[bytes]) -> bytes:
    if len(argv) > 3:
        raise CommandError(SYNTAX)
    if len(argv) == 2 and c.server.acl.default.nopass:
        raise CommandError(
            "ERR AUTH <password> called without any password configured for the default user. "
            "Are you sure your configuration is correct?"
        )
    user, password = (b"default", argv[1]) if len(argv) == 2 else (argv[1], argv[2])
    check_password(c, user, password, argv)
    return OK


@command(
    "hello", -1, "noauth fast stale", group="connection", summary="Handshakes with the server."
)
def hello(c: Client, argv: list[bytes]) -> bytes:
    proto = c.resp
    i = 1
    if len(argv) > 1:
        try:
            proto = to_int(argv[1])
        except CommandError:
            raise CommandError("ERR Protocol version is not an integer or out of range") from None
        if proto not in (2, 3):
            raise CommandError("NOPROTO unsupported protocol version")
        i = 2
    name: bytes | None = None
    while i < len(argv):
        opt = argv[i].lower()
        if opt == b"auth" and i + 2 < len(argv):
            check_password(c, argv[i + 1], argv[i + 2], argv)
            i += 3
        elif opt == b"setname" and i + 1 < len(argv):
            name = _valid_name(argv[i + 1])
            i += 2
        else:
            raise CommandError(
                f"ERR Syntax error in HELLO option '{argv[i].decode(errors='replace')}'"
            )
    if not c.authenticated:
        raise CommandError(
            "NOAUTH HELLO must be called with the client already authenticated, "
            "otherwise the HELLO <proto> AUTH <user> <pass> option can be used to "
            "authenticate the client and select the RESP protocol version at the "
            "same time"
        )
    if name is not None:
        c.name = name
    c.resp = proto
    return encode(
        {
            "server": "redis",
            "version": REDIS_COMPAT_VERSION,
            "proto": proto,
            "id": c.id,
            "mode": "standalone",
            "role": "master",
            "modules": [],
        },
        proto,
    )


@command("reset", 1, "noauth fast stale", group="connection", summary="Resets the connection.")
def reset(c: Client, argv: list[bytes]) -> bytes:
    c.end_transaction()
    c.db = c.server.keyspace.dbs[0]
    c.resp = 2
    c.name = b""
    c.reply_off = 0
    c.server.monitors.discard(c)
    c.server.pubsub.drop(c)
    if c.tracking:
        c.server.tracking.disable(c)
    default = c.server.acl.default  # clientSetDefaultAuth(), as Redis's RESET
    c.user = default
    c.authenticated = c.parser.authenticated = default.nopass and default.enabled
    return b"+RESET\r\n"


def _valid_name(name: bytes) -> bytes:
    if any(ch <= 32 or ch > 126 for ch in name):
        raise CommandError(
            "ERR Client names cannot contain spaces, newlines or special characters."
        )
    return name


CLIENT_HELP = [
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ID",
    "    Return the ID of the current connection.",
    "GETNAME",
    "    Return the name of the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "SETINFO <LIB-NAME|LIB-VER> <value>",
    "    Set client library name or version.",
    "LIST [TYPE NORMAL] [ID id ...]",
    "    Return information about client connections.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are: ID <client-id>, ADDR <ip:port>, LADDR <ip:port>,",
    "    TYPE (NORMAL|MASTER|REPLICA|PUBSUB), USER <username>, SKIPME (YES|NO).",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]",
    "    Unblock the specified blocked client.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "NO-EVICT (ON|OFF)",
    "    Accepted for compatibility (IronCache never evicts clients).",
    "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
    "         [OPTIN] [OPTOUT] [NOLOOP]",
    "    Control server assisted client side caching.",
    "CACHING (YES|NO)",
    "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
    "GETREDIR",
    "    Return the client ID we are redirecting to when tracking is enabled.",
    "TRACKINGINFO",
    "    Report tracking status for the current connection.",
    "HELP",
    "    Print this help.",
]


@command("client", -2, "stale", group="connection", summary="A container for client commands.")
def client(c: Client, argv: list[bytes]) -> bytes:
    sub = subcommand(argv, CLIENT_ARITY)
    n = len(argv)
    srv = c.server
    if sub == b"id":
        return integer(c.id)
    if sub == b"getname":
        return bulk(c.name) if c.name else null(c.resp)
    if sub == b"setname":
        c.name = _valid_name(argv[2])
        return OK
    if sub == b"setinfo":
        attr = argv[2].lower()
        value = _valid_name(argv[3])
        if attr == b"lib-name":
            c.lib_name = value
        elif attr == b"lib-ver":
            c.lib_ver = value
        else:
            raise CommandError(f"ERR Unrecognized option '{argv[2].decode(errors='replace')}'")
        return OK
    if sub == b"info":
        return bulk(c.info_line(argv).encode() + b"\n")
    if sub == b"list":
        chosen = list(srv.clients.values())
        if n >= 4 and argv[2].lower() == b"id":
            ids = {to_int(x, "ERR Invalid client ID") for x in argv[3:]}
            chosen = [x for x in chosen if x.id in ids]
        elif n == 4 and argv[2].lower() == b"type":
            _client_type(argv[3])
            kind = argv[3].lower()
            if kind in (b"normal", b"pubsub"):
                chosen = [
                    x
                    for x in chosen
                    if bool(x.channels or x.patterns or x.schannels) == (kind == b"pubsub")
                ]
            else:
                chosen = []
        elif n != 2:
            raise CommandError(SYNTAX)
        return bulk("".join(x.info_line(argv if x is c else None) + "\n" for x in chosen).encode())
    if sub == b"kill":
        return _kill(c, argv)
    if sub == b"unblock":
        target = srv.clients.get(to_int(argv[2]))
        how = argv[3].lower() if n == 4 else b"timeout"
        if how not in (b"timeout", b"error") or n > 4:
            raise CommandError("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")
        if target is None or not srv.blocking.unblock(target, how == b"error"):
            return integer(0)
        return integer(1)
    if sub == b"reply":
        mode = argv[2].lower()
        if mode == b"on":
            c.reply_off = 0
            return OK
        if mode == b"off":
            c.reply_off = REPLY_OFF
        elif mode == b"skip":
            if c.reply_off != REPLY_OFF:
                c.reply_off = REPLY_SKIP_NEXT
        else:
            raise CommandError(SYNTAX)
        return b""  # no reply: Server.execute_batch() mutes it and steps SKIP along
    if sub == b"no-evict":
        if argv[2].lower() not in (b"on", b"off"):
            raise CommandError(SYNTAX)
        return OK
    if sub == b"tracking":
        return _tracking(c, argv)
    if sub == b"caching":
        return _caching(c, argv[2].lower())
    if sub == b"getredir":
        return integer(c.tracking_redir if c.tracking else -1)
    if sub == b"trackinginfo":
        return _trackinginfo(c)
    return encode([Status(line) for line in CLIENT_HELP], c.resp)


CLIENT_ARITY = {
    b"id": 2,
    b"getname": 2,
    b"setname": 3,
    b"setinfo": 4,
    b"info": 2,
    b"list": -2,
    b"kill": -3,
    b"unblock": -3,
    b"reply": 3,
    b"no-evict": 3,
    b"tracking": -3,
    b"caching": 3,
    b"getredir": 2,
    b"trackinginfo": 2,
    b"help": 2,
}
subcommands(
    "client",
    CLIENT_ARITY,
    {
        b"id": "noscript loading stale",
        b"getname": "noscript loading stale",
        b"setname": "noscript loading stale",
        b"setinfo": "noscript loading stale",
        b"info": "noscript loading stale",
        b"list": "admin noscript loading stale",
        b"kill": "admin noscript loading stale",
        b"unblock": "admin noscript loading stale",
        b"reply": "noscript loading stale",
        b"no-evict": "admin noscript loading stale",
        b"tracking": "noscript loading stale",
        b"caching": "noscript loading stale",
        b"getredir": "noscript loading stale",
        b"trackinginfo": "noscript loading stale",
        b"help": "loading stale",
    },
)
CLIENT_TYPES = (b"normal", b"master", b"replica", b"slave", b"pubsub")


def _client_type(name: bytes) -> bytes:
    if name.lower() not in CLIENT_TYPES:
        raise CommandError(f"ERR Unknown client type '{name.decode(errors='replace')}'")
    return name.lower()


def _kill(c: Client, argv: list[bytes]) -> bytes:
    """CLIENT KILL, as Redis's clientCommand(): the old form `addr` kills every client with
    that address (itself included) and answers OK; the new form answers the count, and a
    client that kills itself (SKIPME no) gets that count before its connection closes."""
    srv = c.server
    victims = list(srv.clients.values())
    old_form = len(argv) == 3
    skipme = not old_form
    if old_form:
        victims = [x for x in victims if x.addr.encode() == argv[2]]
    i = 2
    while not old_form and i < len(argv):
        opt = argv[i].lower()
        if i + 1 >= len(argv):
            raise CommandError(SYNTAX)
        val = argv[i + 1]
        if opt == b"id":
            cid = to_int(val, "ERR client-id should be greater than 0")
            if cid < 1:
                raise CommandError("ERR client-id should be greater than 0")
            victims = [x for x in victims if x.id == cid]
        elif opt == b"addr":
            victims = [x for x in victims if x.addr.encode() == val]
        elif opt == b"laddr":
            victims = [x for x in victims if x.laddr.encode() == val]
        elif opt == b"type":
            kind = _client_type(val)
            if kind in (b"normal", b"pubsub"):  # a subscribed client is of type pubsub
                victims = [
                    x for x in victims
                    if bool(x.channels or x.patterns or x.schannels) == (kind == b"pubsub")
                ]
            else:
                victims = []
        elif opt == b"user":
            user = c.server.acl.users.get(val)
            if user is None:
                raise CommandError(f"ERR No such user '{val.decode(errors='replace')}'")
            victims = [x for x in victims if x.user is user]
        elif opt == b"skipme":
            if val.lower() not in (b"yes", b"no"):
                raise CommandError(SYNTAX)
            skipme = val.lower() == b"yes"
        else:
            raise CommandError(SYNTAX)
        i += 2
    if skipme:
        victims = [x for x in victims if x is not c]
    for x in victims:
        if x is c:
            c.closing = True  # after this reply
        else:
            x.close()
    if old_form:
        if not victims:
            raise CommandError("ERR No such client")
        return OK
    return integer(len(victims))


__all__ = ["REDIS_COMPAT_VERSION", "__version__"]


_TRACKING_OPTIONS = {b"bcast": BCAST, b"optin": OPTIN, b"optout": OPTOUT, b"noloop": NOLOOP}
_SWITCH = (
    "before disabling tracking for this client, and then re-enabling it with a different mode."
)


def _tracking(c: Client, argv: list[bytes]) -> bytes:
    """CLIENT TRACKING ON|OFF [REDIRECT id] [BCAST] [PREFIX p]... [OPTIN] [OPTOUT] [NOLOOP],
    with Redis's checks in Redis's order (networking.c clientCommand)."""
    redirect = 0
    options = 0
    prefixes: list[bytes] = []
    j = 3
    while j < len(argv):
        opt = argv[j].lower()
        more = j + 1 < len(argv)
        if opt == b"redirect" and more:
            j += 1
            if redirect:
                raise CommandError("ERR A client can only redirect to a single other client")
            redirect = to_int(argv[j])
            if redirect not in c.server.clients:
                raise CommandError("ERR The client ID you want redirect to does not exist")
        elif opt in _TRACKING_OPTIONS:
            options |= _TRACKING_OPTIONS[opt]
        elif opt == b"prefix" and more:
            j += 1
            prefixes.append(argv[j])
        else:
            raise CommandError(SYNTAX)
        j += 1
    mode = argv[2].lower()
    trk = c.server.tracking
    if mode == b"off":
        if c.tracking:
            trk.disable(c)
        return OK
    if mode != b"on":
        raise CommandError(SYNTAX)
    if prefixes and not options & BCAST:
        raise CommandError("ERR PREFIX option requires BCAST mode to be enabled")
    if c.tracking & ON and bool(c.tracking & BCAST) != bool(options & BCAST):
        raise CommandError(f"ERR You can't switch BCAST mode on/off {_SWITCH}")
    if options & BCAST and options & (OPTIN | OPTOUT):
        raise CommandError("ERR OPTIN and OPTOUT are not compatible with BCAST")
    if options & OPTIN and options & OPTOUT:
        raise CommandError("ERR You can't specify both OPTIN mode and OPTOUT mode")
    if (options & OPTIN and c.tracking & OPTOUT) or (options & OPTOUT and c.tracking & OPTIN):
        raise CommandError(f"ERR You can't switch OPTIN/OPTOUT mode {_SWITCH}")
    if options & BCAST:
        _check_prefixes(c.tracking_prefixes, prefixes)
    trk.enable(c, redirect, options, prefixes)
    return OK


def _check_prefixes(existing: list[bytes], new: list[bytes]) -> None:
    """checkPrefixCollisionsOrReply(): no prefix of a client may start another."""
    for i, p in enumerate(new):
        for old in existing:
            if old.startswith(p) or p.startswith(old):
                raise CommandError(
                    f"ERR Prefix '{_text(p)}' overlaps with an existing prefix '{_text(old)}'. "
                    "Prefixes for a single client must not overlap."
                )
        for q in new[i + 1 :]:
            if q.startswith(p) or p.startswith(q):
                raise CommandError(
                    f"ERR Prefix '{_text(p)}' overlaps with another provided prefix "
                    f"'{_text(q)}'. Prefixes for a single client must not overlap."
                )


def _text(b: bytes) -> str:
    return b.decode(errors="replace")


def _caching(c: Client, opt: bytes) -> bytes:
    if not c.tracking & ON:
        raise CommandError(
            "ERR CLIENT CACHING can be called only when the client is in tracking mode with "
            "OPTIN or OPTOUT mode enabled"
        )
    if opt == b"yes":
        if not c.tracking & OPTIN:
            raise CommandError(
                "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode."
            )
    elif opt == b"no":
        if not c.tracking & OPTOUT:
            raise CommandError(
                "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode."
            )
    else:
        raise CommandError(SYNTAX)
    c.tracking |= CACHING
    return OK


def _trackinginfo(c: Client) -> bytes:
    t = c.tracking
    flags = ["on" if t & ON else "off"]
    if t & BCAST:
        flags.append("bcast")
    if t & OPTIN:
        flags.append("optin")
        if t & CACHING:
            flags.append("caching-yes")
    if t & OPTOUT:
        flags.append("optout")
        if t & CACHING:
            flags.append("caching-no")
    if t & NOLOOP:
        flags.append("noloop")
    if t & BROKEN_REDIR:
        flags.append("broken_redirect")
    resp3 = c.resp == 3
    # A set in Redis's order (encode() would not keep the order of a Python set).
    head = b"%3\r\n" if resp3 else b"*6\r\n"
    return (
        head
        + bulk(b"flags")
        + (b"~%d\r\n" if resp3 else b"*%d\r\n") % len(flags)
        + b"".join(bulk(f.encode()) for f in flags)
        + bulk(b"redirect")
        + integer(c.tracking_redir if t & ON else -1)
        + bulk(b"prefixes")
        + encode(list(c.tracking_prefixes), c.resp)
    )
