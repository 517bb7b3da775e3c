"""Pub/sub: who listens to what, and the messages they are sent.

A subscriber is any object with `resp` (2 or 3), `push(data)` (bytes written outside a
request's reply, accounted as the handover counts them) and the sets `channels`,
`patterns` and `schannels` it is subscribed to. Channels keep their subscribers in
subscription order (a dict), as Redis delivers in that order.
"""

from __future__ import annotations

from typing import Any

from ironcache.glob import matcher


def _bulk(v: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(v), v)


def message(resp: int, kind: bytes, *parts: bytes) -> bytes:
    """A pub/sub array (a push in RESP3): kind, then the parts as bulk strings."""
    head = b">" if resp == 3 else b"*"
    return b"%s%d\r\n" % (head, len(parts) + 1) + _bulk(kind) + b"".join(map(_bulk, parts))


class PubSub:
    def __init__(self) -> None:
        self.channels: dict[bytes, dict[Any, None]] = {}
        self.patterns: dict[bytes, dict[Any, None]] = {}
        self.pattern_match: dict[bytes, Any] = {}  # pattern -> compiled matcher
        self.schannels: dict[bytes, dict[Any, None]] = {}

    # ----------------------------------------------------------- subscriptions
    def subscribe(self, c: Any, channel: bytes, shard: bool = False) -> bool:
        mine = c.schannels if shard else c.channels
        if channel in mine:
            return False
        mine.add(channel)
        (self.schannels if shard else self.channels).setdefault(channel, {})[c] = None
        return True

    def unsubscribe(self, c: Any, channel: bytes, shard: bool = False) -> bool:
        mine = c.schannels if shard else c.channels
        if channel not in mine:
            return False
        mine.discard(channel)
        table = self.schannels if shard else self.channels
        subs = table.get(channel)
        if subs is not None:
            subs.pop(c, None)
            if not subs:
                del table[channel]
        return True

    def psubscribe(self, c: Any, pattern: bytes) -> bool:
        if pattern in c.patterns:
            return False
        c.patterns.add(pattern)
        if pattern not in self.patterns:
            self.patterns[pattern] = {}
            self.pattern_match[pattern] = matcher(pattern)
        self.patterns[pattern][c] = None
        return True

    def punsubscribe(self, c: Any, pattern: bytes) -> bool:
        if pattern not in c.patterns:
            return False
        c.patterns.discard(pattern)
        subs = self.patterns.get(pattern)
        if subs is not None:
            subs.pop(c, None)
            if not subs:
                del self.patterns[pattern]
                self.pattern_match.pop(pattern, None)
        return True

    def drop(self, c: Any) -> None:
        """A closing connection (or RESET) leaves everything, silently."""
        for ch in list(c.channels):
            self.unsubscribe(c, ch)
        for ch in list(c.schannels):
            self.unsubscribe(c, ch, True)
        for p in list(c.patterns):
            self.punsubscribe(c, p)

    # ----------------------------------------------------------- messages
    def publish(self, channel: bytes, payload: bytes, shard: bool = False) -> int:
        """Send to the channel's subscribers, then to matching patterns'; the receivers."""
        n = 0
        subs = (self.schannels if shard else self.channels).get(channel)
        if subs:
            kind = b"smessage" if shard else b"message"
            cache: dict[int, bytes] = {}
            for c in list(subs):
                data = cache.get(c.resp)
                if data is None:
                    data = cache[c.resp] = message(c.resp, kind, channel, payload)
                c.push(data)
                n += 1
        if not shard and self.patterns:
            for pattern, subs in list(self.patterns.items()):
                if not self.pattern_match[pattern](channel):
                    continue
                for c in list(subs):
                    c.push(message(c.resp, b"pmessage", pattern, channel, payload))
                    n += 1
        return n

    def active_channels(self, pattern: bytes | None, shard: bool = False) -> list[bytes]:
        table = self.schannels if shard else self.channels
        if pattern is None:
            return list(table)
        match = matcher(pattern)
        return [ch for ch in table if match(ch)]

    def numsub(self, channel: bytes, shard: bool = False) -> int:
        return len((self.schannels if shard else self.channels).get(channel, ()))
