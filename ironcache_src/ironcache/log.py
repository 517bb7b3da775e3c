"""Logging for a service: one line per event, with a syslog priority prefix for journald."""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

LEVELS = {"debug": 0, "verbose": 1, "notice": 2, "warning": 3, "nothing": 9}
# journald reads "<N>" at the start of a line as the syslog priority.
_PRIORITY = {0: 7, 1: 6, 2: 5, 3: 4}
_MARK = {0: ".", 1: "-", 2: "*", 3: "#"}


class Log:
    def __init__(self) -> None:
        self.level = LEVELS["notice"]
        self.stream: TextIO = sys.stderr
        self.journal = bool(os.environ.get("JOURNAL_STREAM"))

    def configure(self, level: str, logfile: str) -> None:
        self.level = LEVELS[level]
        if logfile:
            self.stream = open(logfile, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
            self.journal = False

    def _write(self, lvl: int, msg: str) -> None:
        if lvl < self.level:
            return
        if self.journal:
            line = f"<{_PRIORITY[lvl]}>{msg}\n"
        else:
            t = time.time()
            stamp = time.strftime("%d %b %Y %H:%M:%S", time.localtime(t))
            line = f"{os.getpid()}:M {stamp}.{int(t * 1000) % 1000:03d} {_MARK[lvl]} {msg}\n"
        try:
            self.stream.write(line)
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def debug(self, msg: str) -> None:
        self._write(0, msg)

    def verbose(self, msg: str) -> None:
        self._write(1, msg)

    def notice(self, msg: str) -> None:
        self._write(2, msg)

    def warning(self, msg: str) -> None:
        self._write(3, msg)


log = Log()
