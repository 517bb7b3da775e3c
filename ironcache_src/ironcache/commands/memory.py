"""MEMORY: the memory a key takes, as the keyspace accounts it (Redis's suite reads it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ironcache.commands import SYNTAX, CommandError, command, subcommand, subcommands, to_int
from ironcache.keyspace import KEY_OVERHEAD
from ironcache.protocol import Status, encode, integer, null

if TYPE_CHECKING:
    from ironcache.client import Client

MEMORY_ARITY = {b"usage": -3, b"help": 2}
MEMORY_HELP = [
    "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "USAGE <key> [SAMPLES <count>]",
    "    Return memory in bytes used by <key> and its value. IronCache accounts every",
    "    element, so SAMPLES is checked but not needed.",
    "HELP",
    "    Print this help.",
]


@command("memory", -2, "", group="server", summary="Memory diagnostics.", since="4.0.0")
def memory(c: Client, argv: list[bytes]) -> bytes:
    sub = subcommand(argv, MEMORY_ARITY)
    if sub == b"help":
        return encode([Status(line) for line in MEMORY_HELP], c.resp)
    j = 3
    while j < len(argv):
        if argv[j].lower() != b"samples" or j + 1 >= len(argv):
            raise CommandError(SYNTAX)
        if to_int(argv[j + 1]) < 0:
            raise CommandError(SYNTAX)
        j += 2
    e = c.db.data.get(argv[2])  # as Redis: the entry as stored, no expiry check
    if e is None:
        return null(c.resp)
    return integer(e.size + len(argv[2]) + KEY_OVERHEAD)


subcommands("memory", MEMORY_ARITY)
