"""The command families the server loads: a new family is its own module plus a line here.

Families register their commands in TABLE when imported; none imports another (the
import-linter contracts in pyproject.toml), and this list is the only module that knows them all.
"""

from __future__ import annotations

from ironcache.commands import ALIASES, TABLE


def load_all() -> None:
    """Import every command family so their decorators fill TABLE and ALIASES."""
    from ironcache.commands import (  # noqa: F401
        admin,
        bitops,
        connection,
        geo,
        hashes,
        hll,
        keyops,
        keys,
        lists,
        memory,
        pubsub,
        scripting,
        sets,
        streams,
        strings,
        transactions,
        zsets,
    )

    ALIASES.update(TABLE)
    ALIASES.update({name.upper(): cmd for name, cmd in TABLE.items()})
