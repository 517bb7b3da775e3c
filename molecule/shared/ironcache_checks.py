"""Checks shared by the molecule scenarios (testinfra), run on the controller.

The scenarios' tests import this module (molecule.yml puts molecule/shared on PYTHONPATH).
Everything runs inside the instance through testinfra's ``host``: redis-cli, ss, systemctl and
the probe client (plugins/module_utils/ironcache_probe.py, copied into the instance).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PROBE_SOURCE = ROOT / "plugins" / "module_utils" / "ironcache_probe.py"
PROBE_PATH = "/root/ironcache_probe.py"
OUTPUT_DIR = ROOT / "tests" / "output"

CONF = "/etc/ironcache/ironcache.conf"
SERVICE = "ironcache.service"
SOCKET = "ironcache.socket"


def record(name: str, figures: dict[str, Any]) -> None:
    """Print figures (the verifier runs pytest -s) and keep them in tests/output/."""
    line = json.dumps(figures, sort_keys=True)
    print(f"\nIRONCACHE-FIGURES {name}: {line}")
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    with open(OUTPUT_DIR / f"{name}.json", "w", encoding="utf-8") as fh:
        fh.write(line + "\n")


def redis_cli(host, *args: str, port: int = 6379) -> str:
    quoted = " ".join(shlex.quote(a) for a in args)
    return host.check_output(f"redis-cli -h 127.0.0.1 -p {port} {quoted}")


def info_server(host, port: int = 6379) -> dict[str, str]:
    text = redis_cli(host, "INFO", "server", port=port)
    out = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            key, value = line.split(":", 1)
            out[key.strip()] = value.strip()
    return out


def somaxconn(host) -> int:
    return int(host.file("/proc/sys/net/core/somaxconn").content_string.strip())


def listen_lines(host, port: int = 6379) -> list[str]:
    """`ss -ltnp` lines of the TCP listeners on port."""
    out = host.check_output(f"ss -Hltnp 'sport = :{port}'")
    return [line for line in out.splitlines() if line.strip()]


def send_q(line: str) -> int:
    """Send-Q of a LISTEN line of `ss -ltn`: the listen backlog."""
    fields = line.split()
    # State Recv-Q Send-Q Local Peer [Process]
    return int(fields[2])


def main_pid(host, unit: str = SERVICE) -> int:
    return int(host.check_output(f"systemctl show -p MainPID --value {unit}").strip() or 0)


def security_exposure(host, unit: str = SERVICE) -> float:
    """The overall exposure of `systemd-analyze security UNIT` (0 best, 10 worst)."""
    out = host.run(f"systemd-analyze security --no-pager {unit}")
    match = re.search(r"Overall exposure level for \S+:\s*([0-9.]+)", out.stdout + out.stderr)
    assert match, f"no exposure level in: {out.stdout[-500:]} {out.stderr[-500:]}"
    return float(match.group(1))


def wait_serving(host, port: int = 6379, seconds: float = 30.0) -> None:
    """Wait (bounded) until the service is active and answers PING."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        active = host.run(f"systemctl is-active {SERVICE}").stdout.strip()
        ping = host.run(f"redis-cli -h 127.0.0.1 -p {port} PING").stdout.strip()
        if active == "active" and ping == "PONG":
            return
        time.sleep(0.2)
    raise AssertionError(f"{SERVICE} not serving on port {port} after {seconds}s")


def install_probe(host) -> None:
    """Copy the probe into the instance (through the command channel: works on any backend)."""
    data = base64.b64encode(PROBE_SOURCE.read_bytes()).decode("ascii")
    host.check_output(f"printf %s {data} | base64 -d > {PROBE_PATH}")


def restart_under_probe(host, port: int = 6379, restarts: int = 3,
                        max_seconds: float = 60.0) -> dict[str, Any]:
    """Restart ironcache.service `restarts` times while the probe connects in a tight loop.

    The probe runs inside the instance in the background (nohup, bounded by --seconds and
    --max-attempts and by `timeout`). Returns the probe's figures plus the main PIDs seen, so the
    caller can check that every restart really replaced the process.
    """
    install_probe(host)
    stop_file, out_file = "/root/probe.stop", "/root/probe.json"
    host.check_output(f"rm -f {stop_file} {out_file}")
    host.check_output(
        f"nohup timeout {int(max_seconds) + 15} python3 {PROBE_PATH} --host 127.0.0.1"
        f" --port {port} --seconds {max_seconds} --max-attempts 150000 --connect-timeout 3"
        f" --until-file {stop_file} --json >{out_file} 2>/root/probe.err </dev/null &"
    )
    pids = [main_pid(host)]
    time.sleep(0.5)  # the probe is warm before the first restart
    for _ in range(restarts):
        host.check_output(f"systemctl restart {SERVICE}")
        wait_serving(host, port)
        pids.append(main_pid(host))
        time.sleep(0.3)
    host.check_output(f"touch {stop_file}")
    deadline = time.monotonic() + max_seconds + 20
    text = ""
    while time.monotonic() < deadline:
        text = host.file(out_file).content_string if host.file(out_file).exists else ""
        if text.strip():
            break
        time.sleep(0.2)
    assert text.strip(), "the probe wrote nothing: " + host.run("cat /root/probe.err").stdout
    figures = json.loads(text)
    figures["restarts"] = restarts
    figures["main_pids"] = pids
    return figures


def expected_backlog(host) -> tuple[int, int, int]:
    """(requested, somaxconn, expected Backlog=) for this scenario.

    The requested backlog comes from the scenario (IRONCACHE_REQUESTED_BACKLOG, default the role's
    default 4096); the role clamps it to the instance's net.core.somaxconn.
    """
    requested = int(os.environ.get("IRONCACHE_REQUESTED_BACKLOG", "4096"))
    limit = somaxconn(host)
    return requested, limit, min(requested, limit)
