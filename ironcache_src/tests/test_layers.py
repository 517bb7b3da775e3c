"""The interfaces between the server's layers hold against the real server.

Connections, command families and the handover see the server only through the protocols
of `ironcache.context` (import-linter, `make layers`, keeps them from importing
`ironcache.server`). Nothing checks a `typing.Protocol` at run time, so these tests hold
each one to the object that stands behind it; and every family module is in the list the
server loads.
"""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
from typing import Any, Protocol

import pytest

from support import IS_REDIS

pytestmark = pytest.mark.skipif(IS_REDIS, reason="IronCache's own module structure")

from ironcache import commands, context, handover  # noqa: E402
from ironcache.commands import families  # noqa: E402
from ironcache.config import Config  # noqa: E402
from ironcache.server import Server  # noqa: E402

TYPING_BASES = {"Protocol", "Generic", "object"}


def members(proto: type) -> set[str]:
    """Attributes, properties and methods a protocol (and its protocol bases) promises."""
    out: set[str] = set()
    for cls in proto.__mro__:
        if cls.__name__ in TYPING_BASES:
            continue
        out |= set(cls.__dict__.get("__annotations__", {}))
        out |= {
            name
            for name, value in vars(cls).items()
            if not name.startswith("_") and (callable(value) or isinstance(value, property))
        }
    return out


def missing(proto: type, obj: Any) -> list[str]:
    return sorted(name for name in members(proto) if not hasattr(obj, name))


@pytest.fixture
def server(tmp_path: Any) -> Server:
    config = Config()
    config.values["dir"] = str(tmp_path)
    return Server(config)


def test_the_server_is_what_connections_commands_and_the_handover_see(server: Server) -> None:
    assert missing(context.Host, server) == []
    assert missing(context.HandoverHost, server) == []
    assert missing(context.Journal, server.handover) == []
    assert missing(context.CrashSlots, handover.Slots) == []


def test_a_member_the_server_lacks_is_reported(server: Server) -> None:
    # Control: the check above would catch a protocol that promises too much.
    assert "next_client_id" in members(context.Host)
    assert "notifier" in members(context.HandoverHost)  # inherited members count too
    assert missing(context.Host, object()) == sorted(members(context.Host))

    class Wider(context.Host[Any], Protocol):
        not_on_the_server: int

    assert missing(Wider, server) == ["not_on_the_server"]


def test_every_command_family_is_loaded() -> None:
    # In a fresh interpreter: this one may have imported a family some other way.
    found = sorted(
        m.name
        for m in pkgutil.iter_modules(commands.__path__)
        if m.name != "families" and not m.name.startswith("_")
    )
    assert {"admin", "keys", "strings"} <= set(found)
    probe = (
        "import sys; from ironcache.commands.families import load_all; load_all(); "
        "print(' '.join(sorted(m.rpartition('.')[2] for m in sys.modules "
        "if m.startswith('ironcache.commands.'))))"
    )
    src = os.path.dirname(os.path.dirname(os.path.dirname(commands.__file__)))
    env = {**os.environ, "PYTHONPATH": src}
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=env,
    ).stdout.split()
    assert [f for f in found if f not in out] == []


def test_a_family_declares_batching_and_connection_state_in_its_own_file() -> None:
    # What NOT_BATCHED and handover.CLIENT_STATE_COMMANDS say for the first families, a new
    # family says in its decorators: no shared list to edit.
    def handler(c: Any, argv: list[bytes]) -> bytes:
        return b"+OK\r\n"

    try:
        commands.command("x-layers-plain", 1)(handler)
        commands.command("x-layers-state", 1, batched=False, client_state=True)(handler)
        plain = commands.TABLE[b"x-layers-plain"]
        state = commands.TABLE[b"x-layers-state"]
        assert plain.batched and not plain.client_state
        assert not state.batched and state.client_state
    finally:
        commands.TABLE.pop(b"x-layers-plain", None)
        commands.TABLE.pop(b"x-layers-state", None)
    families.load_all()
    assert commands.TABLE[b"multi"].batched is False  # the existing list still applies
