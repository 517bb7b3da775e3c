"""What test_apps.py's workers ran: one line per run, in the file APPS_LOG names (outside
the server, so a lost dataset cannot hide a lost or repeated run)."""

from __future__ import annotations

import os


def ran(line: str) -> None:
    # One write of a short line with O_APPEND: whole lines even from several processes.
    fd = os.open(os.environ["APPS_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)
