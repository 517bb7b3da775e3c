"""IronCache as Redis's test harness starts a server of its own (`src/redis-server CONFIG
[--directive value ...]`), for the units that restart servers with configurations of their own
(unit/acl: `aclfile`, `user` lines). suite.py installs it as the IronCache lane's
src/redis-server for those units only.

The harness's configuration carries Redis directives IronCache does not have (pidfile,
notify-keyspace-events, enable-debug-command...): they are left out, and named on stdout. The
harness waits for " PID: <pid>" and "Ready to accept" in the server's stdout, where Redis
logs: both are written there, and the log goes to stdout too.
"""

from __future__ import annotations

import os
import sys

from ironcache import cli, sdnotify
from ironcache.config import DIRECTIVES, tokenize


def translate(path: str) -> str:
    kept, dropped = [], []
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            words = tokenize(line.strip()) if line.strip() and not line.startswith("#") else []
            if not words:
                continue
            (kept if words[0].lower() in DIRECTIVES else dropped).append(line.rstrip("\n"))
    if dropped:
        print("ironcache-server: left out: " + "; ".join(dropped), flush=True)
    out = path + ".ironcache"
    with open(out, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write("\n".join(kept) + "\n")
    return out


def main() -> int:
    args = sys.argv[1:]
    if args and not args[0].startswith("--"):
        args = [translate(args[0]), *args[1:]]
    os.dup2(1, 2)  # the log (stderr) goes where Redis's does with `logfile ""`
    print(f"ironcache-server: PID: {os.getpid()}", flush=True)
    ready = sdnotify.Notifier.ready

    def announce(self: sdnotify.Notifier, status: str) -> None:
        ready(self, status)
        print("Ready to accept connections", flush=True)

    sdnotify.Notifier.ready = announce  # type: ignore[method-assign]
    return cli.main(["serve", *args])


if __name__ == "__main__":
    sys.exit(main())
