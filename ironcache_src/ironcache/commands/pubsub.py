"""Pub/sub commands: (P|S)SUBSCRIBE, (P|S)UNSUBSCRIBE, (S)PUBLISH, PUBSUB.

The registry is `ironcache.pubsub.PubSub` (Server.pubsub); messages reach subscribers through
Client.push, which counts them as the handover counts bytes written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ironcache.commands import CommandError, command, subcommand, subcommands
from ironcache.protocol import Status, bulk, bulk_array, encode, integer

if TYPE_CHECKING:
    from ironcache.client import Client

FLAGS = "pubsub noscript loading stale"


def _count(c: Client, shard: bool) -> int:
    return len(c.schannels) if shard else len(c.channels) + len(c.patterns)


def _deny(c: Client, name: str) -> None:
    if c.transport is None:  # a script's client: Redis's CLIENT_DENY_BLOCKING
        raise CommandError(f"ERR {name} isn't allowed for a DENY BLOCKING client")


def _nil_reply(c: Client, kind: bytes, shard: bool) -> bytes:
    head = b">3\r\n" if c.resp == 3 else b"*3\r\n"
    nil = b"_\r\n" if c.resp == 3 else b"$-1\r\n"
    return head + bulk(kind) + nil + integer(_count(c, shard))


def _subscribe(c: Client, argv: list[bytes], shard: bool) -> bytes:
    _deny(c, argv[0].decode(errors="replace").upper())
    ps = c.server.pubsub
    out = []
    kind = b"ssubscribe" if shard else b"subscribe"
    for ch in argv[1:]:
        ps.subscribe(c, ch, shard)
        out.append(_with_count(c, kind, ch, shard))
    return b"".join(out)


def _with_count(c: Client, kind: bytes, name: bytes, shard: bool) -> bytes:
    head = b">3\r\n" if c.resp == 3 else b"*3\r\n"
    return head + bulk(kind) + bulk(name) + integer(_count(c, shard))


def _unsubscribe(c: Client, argv: list[bytes], shard: bool) -> bytes:
    ps = c.server.pubsub
    kind = b"sunsubscribe" if shard else b"unsubscribe"
    mine = c.schannels if shard else c.channels
    names = argv[1:] or list(mine)
    if not names:
        return _nil_reply(c, kind, shard)
    out = []
    for ch in names:
        ps.unsubscribe(c, ch, shard)
        out.append(_with_count(c, kind, ch, shard))
    return b"".join(out)


@command("subscribe", -2, FLAGS, group="pubsub", since="2.0.0", batched=False, client_state=True)
def subscribe(c: Client, argv: list[bytes]) -> bytes:
    """Listens for messages published to channels."""
    return _subscribe(c, argv, False)


@command("ssubscribe", -2, FLAGS, (1, -1, 1), "pubsub", since="7.0.0", batched=False,
         client_state=True)
def ssubscribe(c: Client, argv: list[bytes]) -> bytes:
    """Listens for messages published to shard channels."""
    return _subscribe(c, argv, True)


@command("unsubscribe", -1, FLAGS, group="pubsub", since="2.0.0", batched=False,
         client_state=True)
def unsubscribe(c: Client, argv: list[bytes]) -> bytes:
    """Stops listening to messages posted to channels."""
    return _unsubscribe(c, argv, False)


@command("sunsubscribe", -1, FLAGS, (1, -1, 1), "pubsub", since="7.0.0", batched=False,
         client_state=True)
def sunsubscribe(c: Client, argv: list[bytes]) -> bytes:
    """Stops listening to messages posted to shard channels."""
    return _unsubscribe(c, argv, True)


@command("psubscribe", -2, FLAGS, group="pubsub", since="2.0.0", batched=False,
         client_state=True)
def psubscribe(c: Client, argv: list[bytes]) -> bytes:
    """Listens for messages published to channels that match patterns."""
    _deny(c, "PSUBSCRIBE")
    ps = c.server.pubsub
    out = []
    for p in argv[1:]:
        ps.psubscribe(c, p)
        out.append(_with_count(c, b"psubscribe", p, False))
    return b"".join(out)


@command("punsubscribe", -1, FLAGS, group="pubsub", since="2.0.0", batched=False,
         client_state=True)
def punsubscribe(c: Client, argv: list[bytes]) -> bytes:
    """Stops listening to messages published to channels that match patterns."""
    ps = c.server.pubsub
    names = argv[1:] or list(c.patterns)
    if not names:
        return _nil_reply(c, b"punsubscribe", False)
    out = []
    for p in names:
        ps.punsubscribe(c, p)
        out.append(_with_count(c, b"punsubscribe", p, False))
    return b"".join(out)


@command("publish", 3, "pubsub loading stale fast", group="pubsub", since="2.0.0")
def publish(c: Client, argv: list[bytes]) -> bytes:
    """Posts a message to a channel."""
    return integer(c.server.pubsub.publish(argv[1], argv[2]))


@command("spublish", 3, "pubsub loading stale fast", (1, 1, 1), "pubsub", since="7.0.0")
def spublish(c: Client, argv: list[bytes]) -> bytes:
    """Posts a message to a shard channel."""
    return integer(c.server.pubsub.publish(argv[1], argv[2], True))


PUBSUB_HELP = [
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
    "HELP",
    "    Prints this help.",
]
PUBSUB_ARITY = {
    b"channels": -2,
    b"numpat": 2,
    b"numsub": -2,
    b"shardchannels": -2,
    b"shardnumsub": -2,
    b"help": 2,
}


@command("pubsub", -2, "", group="pubsub", since="2.8.0")
def pubsub(c: Client, argv: list[bytes]) -> bytes:
    """A container for pub/sub commands."""
    sub = subcommand(argv, PUBSUB_ARITY)
    ps = c.server.pubsub
    if sub in (b"channels", b"shardchannels"):
        if len(argv) > 3:
            raise CommandError(
                f"ERR wrong number of arguments for 'pubsub|{sub.decode()}' command"
            )
        pattern = argv[2] if len(argv) == 3 else None
        return bulk_array(ps.active_channels(pattern, sub == b"shardchannels"))
    if sub in (b"numsub", b"shardnumsub"):
        shard = sub == b"shardnumsub"
        parts = [b"*%d\r\n" % (2 * (len(argv) - 2))]
        for ch in argv[2:]:
            parts.append(bulk(ch) + integer(ps.numsub(ch, shard)))
        return b"".join(parts)
    if sub == b"numpat":
        return integer(len(ps.patterns))
    return encode([Status(line) for line in PUBSUB_HELP], c.resp)


subcommands(
    "pubsub",
    PUBSUB_ARITY,
    {
        b"channels": "pubsub loading stale",
        b"numpat": "pubsub loading stale",
        b"numsub": "pubsub loading stale",
        b"shardchannels": "pubsub loading stale",
        b"shardnumsub": "pubsub loading stale",
        b"help": "loading stale",
    },
)
