"""Restart ironcache.service in a container while the probe connects in a tight loop.

Used by `make demo`. Runs the probe (plugins/module_utils/ironcache_probe.py) inside the
container through all restarts, which follow each other with no pause (the unit's start limit
counts only crash restarts), and prints one row per restart and the probe's total. Exit status 0
when every restart succeeded, no connection was refused or reset, both units are active and the
persistent connection lost nothing.
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


def restart_back_to_back(container: str, port: int, restarts: int) -> tuple[dict, list[str]]:
    """`restarts` x `systemctl restart ironcache.service` in one loop inside the container, no
    pause between them, while the probe connects in a tight loop; returns the probe's figures and
    one line per restart (exit status, main PID before and after)."""
    docker_exec(container, "rm", "-f", "/root/demo.stop", "/root/demo.json")
    docker_exec(container, "sh", "-c",
                f"nohup timeout 300 python3 {PROBE} --host 127.0.0.1 --port {port} --seconds 240"
                " --connect-timeout 10 --until-file /root/demo.stop --json >/root/demo.json"
                " 2>/root/demo.err </dev/null &")
    time.sleep(0.5)  # the probe is warm before the first restart
    loop = (f"for i in $(seq {restarts}); do"
            " old=$(systemctl show -p MainPID --value ironcache.service);"
            " systemctl restart ironcache.service; rc=$?;"
            " echo \"$rc $old $(systemctl show -p MainPID --value ironcache.service)\"; done")
    lines = docker_exec(container, "timeout", "240", "sh", "-c", loop).splitlines()
    wait_serving(container)
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
    return json.loads(text), lines


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
    parser.add_argument("--restarts", type=int, default=10)
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
    figures, lines = restart_back_to_back(args.container, args.port, args.restarts)
    persistent = stop_persistent(args.container)
    units = docker_exec(args.container, "systemctl", "is-active", "ironcache.socket",
                        "ironcache.service", check=False).split()
    print()
    print("restart  systemctl rc  main pid")
    failed_restarts = 0
    for number, line in enumerate(lines, 1):
        rc, old, new = (line.split() + ["?", "?", "?"])[:3]
        failed_restarts += rc != "0"
        print(f"{number:>7}  {rc:>12}  {old} -> {new}")
    print()
    print(f"{args.restarts} restarts back to back (no pause): {figures['attempts']} connection "
          f"attempts, {figures['ok']} ok, {figures['refused']} refused, {figures['reset']} reset, "
          f"{figures['timeouts']} timeouts, max {figures['max_ms'] or 0:.1f} ms, longest gap "
          f"{figures['longest_gap_ms'] or 0:.1f} ms")
    print(f"afterwards: ironcache.socket {units[0] if units else '?'}, ironcache.service "
          f"{units[1] if len(units) > 1 else '?'}")
    print(f"one persistent connection: {persistent['requests']} INCRs, "
          f"{persistent['errors']} errors, client id {persistent['client_id_before']} -> "
          f"{persistent.get('client_id_after', '-')}, counter {persistent.get('counter', '-')}, "
          f"longest wait {persistent['max_ms']:.1f} ms")
    total = figures
    if failed_restarts or units != ["active", "active"]:
        print(f"demo: FAILED: {failed_restarts} restarts failed; units: {units}")
        return 1
    if total["refused"] or total["reset"]:
        print(f"demo: FAILED: {total['refused']} refused and {total['reset']} reset connections")
        return 1
    if persistent["errors"] or persistent.get("counter") != persistent["requests"]:
        print(f"demo: FAILED: the persistent connection broke or lost writes: {persistent}")
        return 1
    print(f"demo: {args.restarts} restarts back to back, {total['attempts']} connection attempts, "
          "0 refused, 0 reset: the listener stayed open in systemd's hands, and no restart hit "
          "systemd's start limit;")
    print("demo: and the persistent connection, its client id and every INCR survived each "
          "restart (live handover).")
    print(f"demo: the container keeps running: docker exec -it {args.container} redis-cli"
          f"   (remove it: docker rm -f {args.container})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
