"""Command line: `ironcache serve`, `ironcache check-config`, `ironcache --version`.

Start-up time is a restart's downtime, so this module imports only what the chosen command
needs, and the event loop accelerator (uvloop) only when serving.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING

from ironcache._version import __version__

if TYPE_CHECKING:
    from ironcache.config import Config

USAGE = """\
usage: ironcache serve [CONFIG] [--directive value ...]
       ironcache check-config CONFIG [--directive value ...]
       ironcache reload --pid PID [--timeout S] [--expect-version V] [--restart]
       ironcache --version

Directives use redis.conf's names (bind, port, unixsocket, maxmemory, requirepass, ...).
"""


def _split(args: list[str]) -> tuple[str | None, list[str]]:
    if args and not args[0].startswith("--"):
        return args[0], args[1:]
    return None, args


def check_users(config: Config) -> None:
    """What the server checks at start beyond the values: ACL users, rename-command."""
    from ironcache.commands import acl
    from ironcache.commands.families import load_all, rename_commands

    load_all()
    rename_commands(config["rename-command"], apply=False)
    acl.from_config(config)


def check_config(args: list[str]) -> int:
    from ironcache.config import ConfigError, load, probe_addresses

    path, overrides = _split(args)
    if path is None:
        print("ironcache: check-config needs a CONFIG file", file=sys.stderr)
        return 2
    try:
        # What serve would find at start: the file and values, then the addresses.
        config = load(path, overrides)
        probe_addresses(config)
        check_users(config)
    except ConfigError as e:
        where = e.where or path
        print(f"ironcache: {where}: {e.message}", file=sys.stderr)
        return 1
    print(f"ironcache: {path}: configuration OK")
    return 0


def serve(args: list[str], exec_time: float) -> int:
    from ironcache.config import ConfigError, load
    from ironcache.log import log

    path, overrides = _split(args)
    try:
        config = load(path, overrides)
    except ConfigError as e:
        print(f"ironcache: {e.where or path or 'configuration'}: {e.message}", file=sys.stderr)
        return 1
    try:
        log.configure(config["loglevel"], config["logfile"])
    except OSError as e:
        print(f"ironcache: cannot open logfile: {e}", file=sys.stderr)
        return 1

    for name in config.secrets_on_command_line:
        log.warning(
            f"{name} was given on the command line, where every user of this host can read it "
            "(ps, /proc): put it in the configuration file (readable by the server only)"
        )

    import asyncio

    from ironcache.listener import ListenError
    from ironcache.server import Server

    try:
        server = Server(config)  # the ACL users and rename-command are checked here
    except ConfigError as e:
        log.warning(f"cannot start: {e}")
        return 1
    server.reloader.serve_args = [os.path.abspath(path), *overrides] if path else overrides
    try:
        server.open_listeners()
    except ListenError as e:
        log.warning(f"cannot start: {e}")
        return 1  # as redis-server does
    if not config["maxmemory"]:
        log.notice(
            f"maxmemory is 0: the dataset is limited to {server.maxmemory} bytes "
            "(half of the memory available to this process)"
        )
    try:
        import uvloop

        runner = uvloop.run
        server.event_loop_name = "uvloop"
    except ImportError:
        runner = asyncio.run
    try:
        code = runner(server.serve(exec_time))
    except KeyboardInterrupt:
        return 0
    if server.handover.handovers_done or server.reloaded_to:
        # Everything is in systemd's hands: skip freeing the dataset object by object, which
        # would only delay the next process (systemd starts it once this one is gone).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def reload(args: list[str]) -> int:
    """Ask the server `--pid` to start this release beside itself and hand over (reload.py);
    exit 0 once the new process serves, 1 when the reload failed (the old one serves on)."""
    import json

    from ironcache.reload import ReloadError, request, wait_serving

    opts: dict[str, str] = {}
    flags = {"--restart"}
    i = 0
    while i < len(args):
        if args[i] in flags:
            opts[args[i]] = "1"
            i += 1
        elif args[i] in ("--pid", "--timeout", "--expect-version") and i + 1 < len(args):
            opts[args[i]] = args[i + 1]
            i += 2
        else:
            print(f"ironcache: reload: unexpected argument {args[i]!r}\n{USAGE}", file=sys.stderr)
            return 2
    pid = opts.get("--pid") or os.environ.get("MAINPID", "")
    if not pid.isdigit():
        print("ironcache: reload needs --pid PID (ExecReload= passes $MAINPID)", file=sys.stderr)
        return 2
    timeout = float(opts.get("--timeout", "600"))
    req = {
        "cmd": "reload",
        "version": opts.get("--expect-version", __version__),
        "python": sys.executable,
        "isolated": bool(sys.flags.isolated),
        "pythonpath": "" if sys.flags.isolated else os.environ.get("PYTHONPATH", ""),
        "path": "restart" if "--restart" in opts else "reload",
        "timeout": max(timeout - 5, 1.0),  # the server gives up first, and says why
    }
    try:
        result = request(int(pid), req, timeout)
        if result.get("ok") and result.get("path") == "restart":
            # The stop-start fallback: the old process is gone; the new one loads now.
            wait_serving(int(result["pid"]), timeout)
    except (OSError, ValueError, ReloadError) as e:
        result = {
            "ok": False,
            "error": f"{type(e).__name__}: {e}" if isinstance(e, OSError) else str(e),
        }
    print(json.dumps(result))
    if not result.get("ok"):
        print(f"ironcache: reload failed: {result.get('error')}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    exec_time = _process_start_time()
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="", file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    if args[0] in ("-v", "--version", "version"):
        print(f"ironcache {__version__}")
        return 0
    if args[0] == "serve":
        return serve(args[1:], exec_time)
    if args[0] == "reload":
        return reload(args[1:])
    if args[0] == "check-config":
        return check_config(args[1:])
    print(f"ironcache: unknown command '{args[0]}'\n{USAGE}", end="", file=sys.stderr)
    return 2


def _process_start_time() -> float:
    """When this process started (wall clock), so start-up cost includes the interpreter.

    /proc/self/stat gives the start in clock ticks since boot; CLOCK_BOOTTIME is the same
    clock, and only /proc/self is needed (ProcSubset=pid hides /proc/stat).
    """
    try:
        import os

        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
        return time.time() - max(age, 0.0)
    except (OSError, ValueError, IndexError, AttributeError):
        return time.time()
