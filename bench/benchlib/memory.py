"""Memory of a server loaded with keys: INFO used_memory and the process RSS, empty and loaded."""

from __future__ import annotations

from typing import Any

from benchlib.common import BenchError
from benchlib.resp import Resp, encode_command, parse_info
from benchlib.servers import Server


def measure_memory(srv: Server, keys: int, value_size: int) -> dict[str, Any]:
    with Resp(srv.port, timeout=60) as c:
        c.call("FLUSHALL")
        before_used = int(parse_info(c.call("INFO", "memory")).get("used_memory", "0"))
        before_rss = srv.rss_bytes()
        batch = 1000
        for start in range(0, keys, batch):
            cmds = [
                encode_command(b"SET", b"mem:%010d" % i, (b"%0*d" % (value_size, i))[:value_size])
                for i in range(start, min(start + batch, keys))
            ]
            for r in c.pipeline(cmds):
                if r != "OK":
                    raise BenchError(f"{srv.name}: SET during load -> {r!r}")
        dbsize = c.call("DBSIZE")
        if dbsize != keys:
            raise BenchError(f"{srv.name}: DBSIZE {dbsize} after loading {keys} keys")
        after_used = int(parse_info(c.call("INFO", "memory")).get("used_memory", "0"))
        after_rss = srv.rss_bytes()
        c.call("FLUSHALL")
    return {
        "keys": keys,
        "value_size": value_size,
        "used_memory_empty": before_used,
        "used_memory": after_used,
        "rss_empty": before_rss,
        "rss": after_rss,
        "used_memory_per_key": (after_used - before_used) / keys if keys else None,
        "rss_per_key": (
            (after_rss - before_rss) / keys if keys and after_rss and before_rss else None
        ),
    }


def measure_zset_memory(srv: Server, members: int) -> dict[str, Any]:
    """One sorted set of `members` members (`member:%010d`, score i): bytes per member."""
    with Resp(srv.port, timeout=60) as c:
        c.call("FLUSHALL")
        before_used = int(parse_info(c.call("INFO", "memory")).get("used_memory", "0"))
        before_rss = srv.rss_bytes()
        batch = 100  # members per ZADD
        cmds = []
        for start in range(0, members, batch):
            args: list[bytes] = [b"ZADD", b"mem:zset"]
            for i in range(start, min(start + batch, members)):
                args += [b"%d" % i, b"member:%010d" % i]
            cmds.append(encode_command(*args))
        for at in range(0, len(cmds), 100):
            for r in c.pipeline(cmds[at : at + 100]):
                if not isinstance(r, int):
                    raise BenchError(f"{srv.name}: ZADD during load -> {r!r}")
        if c.call("ZCARD", "mem:zset") != members:
            raise BenchError(f"{srv.name}: ZCARD is not {members} after the load")
        after_used = int(parse_info(c.call("INFO", "memory")).get("used_memory", "0"))
        after_rss = srv.rss_bytes()
        c.call("FLUSHALL")
    return {
        "members": members,
        "used_memory_per_member": (after_used - before_used) / members if members else None,
        "rss_per_member": (
            (after_rss - before_rss) / members if members and after_rss and before_rss else None
        ),
    }
