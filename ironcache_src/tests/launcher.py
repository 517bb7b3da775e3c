"""Exec a program with one inherited socket as fd 3, the way systemd passes it.

usage: python launcher.py FD LISTEN_PID FDNAMES -- PROGRAM ARGS...
  FD          the socket's fd number in this process (inherited from the caller)
  LISTEN_PID  "self" (this process: os.execve keeps the pid) or a number (another process)
  FDNAMES     value for LISTEN_FDNAMES ("" = unset)
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> int:
    if len(argv) < 6 or argv[4] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    fd, listen_pid, names, program = int(argv[1]), argv[2], argv[3], argv[5:]
    if fd != 3:
        os.dup2(fd, 3, inheritable=True)
        os.close(fd)
    else:
        os.set_inheritable(3, True)
    env = dict(os.environ)
    env["LISTEN_FDS"] = "1"
    env["LISTEN_PID"] = str(os.getpid()) if listen_pid == "self" else listen_pid
    if names:
        env["LISTEN_FDNAMES"] = names
    else:
        env.pop("LISTEN_FDNAMES", None)
    os.execve(program[0], program, env)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv))
