"""Exec a program with inherited fds from 3 on, the way systemd passes them.

usage: python launcher.py FDS LISTEN_PID FDNAMES -- PROGRAM ARGS...
  FDS         the fd numbers in this process (inherited from the caller), comma-separated;
              they become 3, 4, ... in that order
  LISTEN_PID  "self" (this process: os.execve keeps the pid) or a number (another process)
  FDNAMES     value for LISTEN_FDNAMES, names separated by ':' ("" = unset)
"""

from __future__ import annotations

import fcntl
import os
import sys


def main(argv: list[str]) -> int:
    if len(argv) < 6 or argv[4] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    fds = [int(x) for x in argv[1].split(",") if x]
    listen_pid, names, program = argv[2], argv[3], argv[5:]
    # Out of the way first (above every source and target), so no placement overwrites another.
    base = max([*fds, 2 + len(fds)]) + 1
    parked = [fcntl.fcntl(fd, fcntl.F_DUPFD, base) for fd in fds]
    for fd in fds:
        os.close(fd)
    for i, fd in enumerate(parked):
        os.dup2(fd, 3 + i, inheritable=True)
        os.close(fd)
    env = dict(os.environ)
    env["LISTEN_FDS"] = str(len(fds))
    env["LISTEN_PID"] = str(os.getpid()) if listen_pid == "self" else listen_pid
    if names:
        env["LISTEN_FDNAMES"] = names
    else:
        env.pop("LISTEN_FDNAMES", None)
    os.execve(program[0], program, env)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv))
