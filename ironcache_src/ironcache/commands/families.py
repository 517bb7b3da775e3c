"""The command families the server loads: a new family is its own module plus a line here.

Families register their commands in TABLE when imported; none imports another (the
import-linter contracts in pyproject.toml), and this list is the only module that knows them all.
"""

from __future__ import annotations

from ironcache.commands import ALIASES, TABLE


def load_all() -> None:
    """Import every command family so their decorators fill TABLE and ALIASES."""
    from ironcache.commands import (  # noqa: F401
        acl,
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
    acl.build_catalog(admin.categories, admin.key_access)


def rename_commands(renames: list[tuple[str, str]], apply: bool) -> None:
    """`rename-command` directives: each command answers to its new name only ("" disables
    it); ACL rules and COMMAND INFO keep the original names, as in Redis. Raises ConfigError
    for a command that does not exist; `apply` False only checks."""
    from ironcache.config import ConfigError

    names = {k.decode("latin-1") for k in TABLE} | set(RENAMED)
    for old, new in renames:
        if old not in names:
            raise ConfigError(f"'rename-command': no such command '{old[:64]}'")
        names.discard(old)
        if new:
            if new.lower() in names:
                raise ConfigError(f"'rename-command': '{new[:64]}' is the name of a command")
            names.add(new.lower())
    if not apply:
        return
    for old, new in renames:
        if RENAMED.get(old) == new:
            continue  # a second server in this process (tests): the table has it already
        cmd = TABLE.pop(old.encode("latin-1"))
        for alias in [a for a, c in ALIASES.items() if c is cmd]:
            del ALIASES[alias]
        RENAMED[old] = new
        if new:
            raw = new.encode("utf-8", "surrogateescape")
            TABLE[raw.lower()] = cmd
            ALIASES[raw.lower()] = ALIASES[raw.upper()] = cmd


RENAMED: dict[str, str] = {}  # rename-command directives applied in this process
