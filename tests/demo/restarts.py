"""Restart ironcache.service in a container while the probe connects in a tight loop.

Used by `make demo`. Runs the probe (plugins/module_utils/ironcache_probe.py) inside the
container, one probe per restart, and prints one row per restart and a total. Exit status 0 when
no connection was refused or reset.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

PROBE = "/root/ironcache_probe.py"
PERSISTENT = "/root/persistent.py"


def docker_exec(container: str, *cmd: str, check: bool = True) -> str:
    done = subprocess.run(["docker", "exec", container, *cmd], capture_output=True, text=True,
                          timeout=120, check=False)
    if check and done.returncode != 0:
        raise SystemExit(f"demo: {' '.join(cmd)} failed: {done.stderr.strip()}")
    return done.stdout


def main_pid(container: str) -> int:
    out = docker_exec(container, "systemctl", "show", "-p", "MainPID", "--value",
                      "ironcache.service")
    return int(out.strip() or 0)


def wait_serving(container: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        active = docker_exec(container, "systemctl", "is-active", "ironcache.service",
                             check=False).strip()
        pong = docker_exec(container, "redis-cli", "-h", "127.0.0.1", "-p", "6379", "PING",
                           check=False).strip()
        if active == "active" and pong == "PONG":
            return
        time.sleep(0.2)
    raise SystemExit("demo: ironcache.service is not serving")


# systemd refuses a 6th start within 10 s (DefaultStartLimitBurst=5, IntervalSec=10s); restarts
# this far apart never reach that limit, however fast the machine restarts the service.
RESTART_SPACING_S = 2.5


def restart_once(container: str, port: int, not_before: float) -> dict:
    docker_exec(container, "rm", "-f", "/root/demo.stop", "/root/demo.json")
    docker_exec(container, "sh", "-c",
                f"nohup timeout 60 python3 {PROBE} --host 127.0.0.1 --port {port} --seconds 45"
                " --until-file /root/demo.stop --json >/root/demo.json 2>/root/demo.err"
                " </dev/null &")
    before = main_pid(container)
    time.sleep(max(0.3, not_before - time.monotonic()))
    docker_exec(container, "systemctl", "restart", "ironcache.service")
    wait_serving(container)
    after = main_pid(container)
    time.sleep(0.3)
    docker_exec(container, "touch", "/root/demo.stop")
    text = ""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = docker_exec(container, "cat", "/root/demo.json", check=False)
        if text.strip():
            break
        time.sleep(0.2)
    if not text.strip():
        raise SystemExit("demo: the probe wrote nothing: "
                         + docker_exec(container, "cat", "/root/demo.err", check=False))
    figures = json.loads(text)
    figures["pids"] = f"{before} -> {after}"
    return figures


def stop_persistent(container: str) -> dict:
    docker_exec(container, "touch", "/root/persistent.stop")
    deadline = time.monotonic() + 30
    text = ""
    while time.monotonic() < deadline:
        text = docker_exec(container, "cat", "/root/persistent.json", check=False)
        if text.strip():
            return json.loads(text)
        time.sleep(0.2)
    raise SystemExit("demo: the persistent client wrote nothing: "
                     + docker_exec(container, "cat", "/root/persistent.err", check=False))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--container", default="ironcache-demo")
    parser.add_argument("--restarts", type=int, default=5)
    parser.add_argument("--port", type=int, default=6379)
    parser.add_argument("--probe", required=True, help="path of ironcache_probe.py")
    parser.add_argument("--persistent", required=True, help="path of persistent.py")
    args = parser.parse_args()

    subprocess.run(["docker", "cp", args.probe, f"{args.container}:{PROBE}"], check=True,
                   timeout=60)
    subprocess.run(["docker", "cp", args.persistent, f"{args.container}:{PERSISTENT}"],
                   check=True, timeout=60)
    # One client keeps a single connection open through every restart (the live handover).
    docker_exec(args.container, "rm", "-f", "/root/persistent.stop", "/root/persistent.json")
    docker_exec(args.container, "sh", "-c",
                f"nohup timeout 300 python3 {PERSISTENT} --port {args.port} --seconds 240"
                " --until-file /root/persistent.stop >/root/persistent.json"
                " 2>/root/persistent.err </dev/null &")
    rows = []
    not_before = time.monotonic() + RESTART_SPACING_S  # the deploy has just started the service
    for _ in range(args.restarts):
        rows.append(restart_once(args.container, args.port, not_before))
        not_before = time.monotonic() + RESTART_SPACING_S

    header = ("restart", "main pid", "attempts", "ok", "refused", "reset", "max ms")
    table = [header]
    for number, row in enumerate(rows, 1):
        table.append((str(number), row["pids"], str(row["attempts"]), str(row["ok"]),
                      str(row["refused"]), str(row["reset"]), f"{row['max_ms'] or 0:.1f}"))
    total = {key: sum(row[key] for row in rows) for key in ("attempts", "ok", "refused", "reset")}
    worst = max((row["max_ms"] or 0) for row in rows)
    table.append(("total", "", str(total["attempts"]), str(total["ok"]), str(total["refused"]),
                  str(total["reset"]), f"{worst:.1f}"))
    persistent = stop_persistent(args.container)
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    print()
    for line in table:
        print("  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)))
    print()
    print(f"one persistent connection: {persistent['requests']} INCRs, "
          f"{persistent['errors']} errors, client id {persistent['client_id_before']} -> "
          f"{persistent.get('client_id_after', '-')}, counter {persistent.get('counter', '-')}, "
          f"longest wait {persistent['max_ms']:.1f} ms")
    if total["refused"] or total["reset"]:
        print(f"demo: FAILED: {total['refused']} refused and {total['reset']} reset connections")
        return 1
    if persistent["errors"] or persistent.get("counter") != persistent["requests"]:
        print(f"demo: FAILED: the persistent connection broke or lost writes: {persistent}")
        return 1
    print(f"demo: {args.restarts} restarts, {total['attempts']} connection attempts, "
          "0 refused, 0 reset: the listener stayed open in systemd's hands;")
    print("demo: and the persistent connection, its client id and every INCR survived each "
          "restart (live handover).")
    print(f"demo: the container keeps running: docker exec -it {args.container} redis-cli"
          f"   (remove it: docker rm -f {args.container})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
