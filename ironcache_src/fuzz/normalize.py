"""What two servers may answer differently and still agree: the reply forms compared by the
differential fuzzer (fuzz/differential.py) and the differential tests (tests/test_differential.py).

Standard library only (the tests import it without the server). Command names are upper case;
they match whether a command is given as str or bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Replies whose order is unspecified (hash and set iteration order differs between servers).
UNORDERED = {"HKEYS", "HVALS", "SMEMBERS", "KEYS", "SRANDMEMBER"}
# Field/value pairs in unspecified order (a flat array in RESP2, a map in RESP3).
PAIRS = {"HGETALL"}
# Remaining times: equal only in sign (a non-negative count depends on the clock).
TIME_DEPENDENT = {"TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME"}
# Cursor iterations: the elements of a step (unordered) and whether the iteration ended.
SCANS = {"SCAN", "SSCAN", "HSCAN", "ZSCAN"}
PAIRED_SCANS = {"HSCAN", "ZSCAN"}


def command_name(cmd: Sequence[str | bytes]) -> str:
    name = cmd[0]
    return (name.decode("latin-1") if isinstance(name, bytes) else name).upper()


def normalize(cmd: Sequence[str | bytes], reply: Any, error: type = Exception) -> Any:
    """`reply` to `cmd` in a form equal for both servers when they agree. Replies of class
    `error` (each caller's error reply type) are compared as they are."""
    name = command_name(cmd)
    if isinstance(reply, error):
        return reply
    if name in TIME_DEPENDENT and isinstance(reply, int):
        return reply if reply < 0 else "positive"
    if name in UNORDERED and isinstance(reply, list | set):
        return sorted(reply, key=repr)
    if name in PAIRS and isinstance(reply, list):
        return sorted(zip(reply[0::2], reply[1::2], strict=False), key=repr)
    if name in PAIRS and isinstance(reply, dict):
        return sorted(reply.items(), key=repr)
    if name in SCANS and isinstance(reply, list) and len(reply) == 2:
        items = reply[1]
        if name in PAIRED_SCANS and isinstance(items, list):
            items = sorted(zip(items[0::2], items[1::2], strict=False), key=repr)
        elif isinstance(items, list):
            items = sorted(items, key=repr)
        return ["0" if reply[0] in (b"0", "0") else "cursor", items]
    return reply
