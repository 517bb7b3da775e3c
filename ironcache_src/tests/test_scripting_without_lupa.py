"""Scripting on an interpreter without lupa: the server runs, scripting says why it cannot."""

from __future__ import annotations

import subprocess

import pytest
import redis

from support import IS_REDIS, Server

STDLIB_PYTHON = "/usr/bin/python3"


@pytest.mark.skipif(IS_REDIS, reason="IronCache-specific")
def test_without_lupa_scripting_says_so_and_all_else_runs(stdlib_server: Server) -> None:
    """The host's python3 has no lupa (the role installs it in the release's venv): the
    server still starts, and scripting commands answer why they cannot run."""
    probe = subprocess.run([STDLIB_PYTHON, "-c", "import lupa"], capture_output=True, check=False)
    if probe.returncode == 0:
        pytest.skip(f"{STDLIB_PYTHON} has lupa")
    c = stdlib_server.client()
    with pytest.raises(redis.ResponseError, match="the lupa package is not installed"):
        c.eval("return 1", 0)
    with pytest.raises(redis.ResponseError, match="the lupa package is not installed"):
        c.function_list()
    assert c.set("still", "serving") and c.get("still") == "serving"
