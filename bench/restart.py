"""Restart benchmark: what a client in a tight loop sees while the server restarts.

In one systemd container (the project's test image, no network) it restarts, N times each:

  a. IronCache, socket-activated: ironcache.socket holds the listener, `systemctl restart
     ironcache.service` (the socket is never restarted);
  b. IronCache, self-bound: the service binds its own port;
  c. Debian's redis-server under Debian's own redis-server.service.

A client (plugins/module_utils/ironcache_probe.py) connects, PINGs, reads the reply and closes in
a tight loop inside the container during all restarts of a case. Printed per case: refused
connections, the longest gap without a successful reply, p50/p99/max connect+PING latency, and
the server's exec-to-first-reply time (from the new main process's exec, as systemd records it,
to the first reply the client got). `--json` prints everything as JSON; a PNG with the latency
of every attempt over time (restarts marked, one panel per case) goes to bench/out/restart.png.

redis-server is installed from .deb files fetched on the host (`apt-get download`, only Debian's
archive is needed) and `dpkg -i` inside the container, which has no network.

    python3 bench/restart.py                 # 20 restarts per case (about 1-2 minutes)
    python3 bench/restart.py --restarts 5 --json
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTAINER = "upg-bench"
IMAGE = os.environ.get("IRONCACHE_TEST_IMAGE", "ironcache-systemd:bookworm")
DEBS = ("redis-server", "redis-tools", "lsb-base")
CASES = {
    "a": {"title": "IronCache, socket-activated", "unit": "ironcache.service", "port": 6379},
    "b": {"title": "IronCache, self-bound", "unit": "ironcache-selfbind.service", "port": 6380},
    "c": {"title": "redis-server (Debian unit)", "unit": "redis-server.service", "port": 6381},
}

SOCKET_UNIT = """\
[Unit]
Description=IronCache listening socket (benchmark)

[Socket]
ListenStream=127.0.0.1:6379
FileDescriptorName=ironcache
Backlog=4096

[Install]
WantedBy=sockets.target
"""

SERVICE_UNIT = """\
[Unit]
Description=IronCache (benchmark, {mode})
{requires}
# 20 restarts in a row are the point here, not a crash loop
StartLimitIntervalSec=0

[Service]
Type=notify
NotifyAccess=main
Environment=PYTHONPATH=/opt/ironcache/src
ExecStart=/usr/bin/python3 -m ironcache serve /etc/ironcache/{name}.conf
Restart=on-failure
RestartSec=1
TimeoutStopSec=30
{sandbox}
[Install]
WantedBy=multi-user.target
"""

# The sandbox of the role's unit (its set-up is part of every start, as it is for Debian's redis
# unit), minus PrivateUsers=, which a container cannot set up. --no-sandbox leaves it out.
SANDBOX = """\
ReadWritePaths=/var/lib/ironcache
UMask=0077
NoNewPrivileges=true
ProtectSystem=strict
ProtectHome=true
PrivateTmp=true
PrivateDevices=true
DevicePolicy=closed
CapabilityBoundingSet=
AmbientCapabilities=
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
ProtectKernelTunables=true
ProtectKernelModules=true
ProtectKernelLogs=true
ProtectControlGroups=true
ProtectClock=true
ProtectHostname=true
ProtectProc=invisible
ProcSubset=pid
RestrictNamespaces=true
RestrictRealtime=true
RestrictSUIDSGID=true
LockPersonality=true
MemoryDenyWriteExecute=true
RemoveIPC=true
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
"""

CONFIG = """\
bind 127.0.0.1
port {port}
dir /var/lib/ironcache
maxmemory 64mb
"""


# ----------------------------------------------------------------------------- in the container


def resp(port: int, *args: str, timeout: float = 2.0) -> bytes:
    parts = [b"$%d\r\n%s\r\n" % (len(a), a.encode()) for a in args]
    req = b"".join([b"*%d\r\n" % len(args)] + parts)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(req)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            if data.startswith(b"+") and data.endswith(b"\r\n"):
                break
            if data.startswith(b"$"):
                head, dummy, rest = data.partition(b"\r\n")
                if len(rest) >= int(head[1:]) + 2:
                    break
        return data


def show(unit: str, prop: str) -> str:
    out = subprocess.run(["systemctl", "show", unit, "-p", prop, "--value"],
                         capture_output=True, text=True, check=True).stdout
    return out.strip()


def wait_ping(port: int, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if resp(port, "PING").startswith(b"+PONG"):
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"nothing answers PING on port {port} after {seconds:.0f} s")


def driver(args: argparse.Namespace) -> int:
    """Runs inside the container: N restarts of one unit under the probe; prints JSON."""
    sys.path.insert(0, "/opt/bench")
    from ironcache_probe import Prober  # noqa: PLC0415 (copied next to this script)

    case = CASES[args.case]
    unit, port = case["unit"], case["port"]
    wait_ping(port)
    prober = Prober(port=port, max_seconds=args.restarts * (args.spacing + 10) + 30,
                    max_attempts=20_000_000, pause=0.0, keep_samples=True)
    prober.start()
    base = prober.started_at
    time.sleep(args.spacing)
    restarts = []
    for _dummy in range(args.restarts):
        old_pid = show(unit, "MainPID")
        t_cmd = time.monotonic()
        subprocess.run(["systemctl", "restart", unit], check=True)
        t_done = time.monotonic()
        exec_us = int(show(unit, "ExecMainStartTimestampMonotonic") or 0)
        startup_ms = None
        if args.case in ("a", "b"):
            try:
                info = resp(port, "INFO", "server").decode(errors="replace")
                for line in info.splitlines():
                    if line.startswith("startup_ms:"):
                        startup_ms = int(line.split(":", 1)[1])
            except OSError:
                pass
        restarts.append({"cmd_s": round(t_cmd - base, 4), "done_s": round(t_done - base, 4),
                         "exec_s": round(exec_us / 1e6 - base, 4) if exec_us else None,
                         "old_pid": old_pid, "new_pid": show(unit, "MainPID"),
                         "startup_ms": startup_ms})
        time.sleep(args.spacing)
    figures = prober.stop()
    samples = figures.pop("samples", [])
    # per restart: the worst latency of the attempts started between this restart and the next
    bounds = [r["cmd_s"] for r in restarts[1:]] + [float("inf")]
    for r, end in zip(restarts, bounds, strict=True):
        lats = [lat for t0, lat, outcome in samples if r["cmd_s"] - 0.01 <= t0 < end - 0.01]
        r["max_ms"] = round(max(lats), 2) if lats else None
    # exec-to-first-reply: from the new process's exec to the first reply completed after it
    for r in restarts:
        r["exec_to_first_reply_ms"] = None
        if r["exec_s"] is None:
            continue
        for t0, lat, outcome in samples:
            done = t0 + lat / 1000.0
            if outcome == "ok" and done > r["exec_s"]:
                r["exec_to_first_reply_ms"] = round((done - r["exec_s"]) * 1000.0, 1)
                break
    print(json.dumps({"case": args.case, "figures": figures, "restarts": restarts,
                      "samples": samples}))
    return 0


# ----------------------------------------------------------------------------- on the host


def sh(*argv: str, check: bool = True, capture: bool = False, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=check, text=True,
                          capture_output=capture, **kw)


def dexec(*argv: str, check: bool = True, capture: bool = False) -> subprocess.CompletedProcess:
    return sh("docker", "exec", CONTAINER, *argv, check=check, capture=capture)


def put(content: str, dest: str) -> None:
    sh("docker", "exec", "-i", CONTAINER, "sh", "-c", f"mkdir -p $(dirname {dest}) && cat > {dest}",
       input=content)


def fetch_debs(cache: Path) -> list[Path]:
    """redis-server and the packages it needs that the image lacks, as .deb files."""
    cache.mkdir(parents=True, exist_ok=True)
    found = {name: sorted(cache.glob(f"{name}_*.deb")) for name in DEBS}
    missing = [name for name, files in found.items() if not files]
    if missing:
        r = sh("apt-get", "download", *missing, check=False, capture=True, cwd=cache)
        if r.returncode != 0:
            # offline: fall back to apt's own cache
            for name in missing:
                for f in glob.glob(f"/var/cache/apt/archives/{name}_*.deb"):
                    shutil.copy(f, cache)
        found = {name: sorted(cache.glob(f"{name}_*.deb")) for name in DEBS}
    missing = [name for name, files in found.items() if not files]
    if missing:
        raise SystemExit(f"cannot get .deb files for {', '.join(missing)} (apt-get download "
                         f"failed and /var/cache/apt/archives has none)")
    return [files[-1] for files in found.values()]


def setup_container(debs: list[Path], log, sandbox: bool = True) -> None:
    sh(str(ROOT / "tests/setup/docker-engine.sh"))
    sh(str(ROOT / "tests/setup/build-image.sh"), IMAGE)
    sh("docker", "rm", "-f", CONTAINER, check=False, capture=True)
    sh("docker", "run", "-d", "--name", CONTAINER, "--hostname", CONTAINER, "--network", "none",
       "--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN",
       "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
       "--cgroupns=host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
       "--tmpfs", "/run", "--tmpfs", "/run/lock", IMAGE, "/lib/systemd/systemd", capture=True)
    for _dummy in range(100):
        r = dexec("systemctl", "is-system-running", check=False, capture=True)
        if r.stdout.strip() in ("running", "degraded"):
            break
        time.sleep(0.2)
    log("container up; installing IronCache and redis-server")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "ironcache"
        shutil.copytree(ROOT / "ironcache_src" / "ironcache", src,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        dexec("mkdir", "-p", "/opt/ironcache/src", "/opt/bench", "/var/lib/ironcache",
              "/etc/ironcache", "/tmp/debs")
        sh("docker", "cp", str(src), f"{CONTAINER}:/opt/ironcache/src/")
    sh("docker", "cp", str(ROOT / "plugins/module_utils/ironcache_probe.py"),
       f"{CONTAINER}:/opt/bench/ironcache_probe.py")
    sh("docker", "cp", str(Path(__file__).resolve()), f"{CONTAINER}:/opt/bench/restart.py")
    for deb in debs:
        sh("docker", "cp", str(deb), f"{CONTAINER}:/tmp/debs/{deb.name}")
    dexec("python3", "-m", "compileall", "-q", "/opt/ironcache/src", capture=True)
    put(CONFIG.format(port=6379), "/etc/ironcache/a.conf")
    put(CONFIG.format(port=6380), "/etc/ironcache/b.conf")
    put(SOCKET_UNIT, "/etc/systemd/system/ironcache.socket")
    box = SANDBOX if sandbox else ""
    put(SERVICE_UNIT.format(mode="socket-activated", name="a", sandbox=box,
                            requires="Requires=ironcache.socket\nAfter=ironcache.socket"),
        "/etc/systemd/system/ironcache.service")
    put(SERVICE_UNIT.format(mode="self-bound", name="b", requires="", sandbox=box),
        "/etc/systemd/system/ironcache-selfbind.service")
    dexec("systemctl", "daemon-reload")
    if debs:
        r = dexec("sh", "-c", "dpkg -i /tmp/debs/*.deb", check=False, capture=True)
        if r.returncode != 0:
            raise SystemExit(f"dpkg -i failed:\n{r.stdout}\n{r.stderr}")
        # Debian's configuration and unit, on its own port; the container cannot create user
        # namespaces, so the unit's PrivateUsers= is turned off; StartLimitIntervalSec=0 as for
        # IronCache (20 restarts in a row); nothing else changes
        dexec("sed", "-i", "s/^port 6379$/port 6381/", "/etc/redis/redis.conf")
        put("[Unit]\nStartLimitIntervalSec=0\n[Service]\nPrivateUsers=false\n",
            "/etc/systemd/system/redis-server.service.d/bench-container.conf")
        dexec("systemctl", "daemon-reload")
        dexec("systemctl", "restart", "redis-server.service")
    dexec("systemctl", "enable", "--now", "ironcache.socket", "ironcache.service",
          "ironcache-selfbind.service", capture=True)


def summarise(run: dict) -> dict:
    fig = run["figures"]
    e2r = [r["exec_to_first_reply_ms"] for r in run["restarts"]
           if r["exec_to_first_reply_ms"] is not None]
    startup = [r["startup_ms"] for r in run["restarts"] if r["startup_ms"] is not None]
    restart_ms = [(r["done_s"] - r["cmd_s"]) * 1000 for r in run["restarts"]]
    ratios = [r["max_ms"] / r["exec_to_first_reply_ms"] for r in run["restarts"]
              if r.get("max_ms") and r.get("exec_to_first_reply_ms")]
    out = {
        "case": run["case"], "title": CASES[run["case"]]["title"],
        "restarts": len(run["restarts"]),
        "attempts": fig["attempts"], "ok": fig["ok"], "refused": fig["refused"],
        "reset": fig["reset"], "timeouts": fig["timeouts"], "other_errors": fig["other_errors"],
        "refused_per_restart": round(fig["refused"] / max(1, len(run["restarts"])), 1),
        "longest_gap_ms": fig["longest_gap_ms"], "p50_ms": fig["p50_ms"],
        "p99_ms": fig["p99_ms"], "max_ms": fig["max_ms"],
        "exec_to_first_reply_ms_median": round(statistics.median(e2r), 1) if e2r else None,
        "exec_to_first_reply_ms_max": max(e2r) if e2r else None,
        "startup_ms_median": statistics.median(startup) if startup else None,
        "systemctl_restart_ms_median": round(statistics.median(restart_ms), 1),
        # per restart: worst latency around it / its exec-to-first-reply (worst restart)
        "max_over_exec_to_first_reply": round(max(ratios), 2) if ratios else None,
        "first_error": fig.get("first_error"),
    }
    return out


def table(rows: list[dict]) -> str:
    cols = [("case", "case"), ("restarts", "restarts"), ("attempts", "attempts"),
            ("refused", "refused"), ("reset", "reset"), ("longest_gap_ms", "gap ms"),
            ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"), ("max_ms", "max ms"),
            ("exec_to_first_reply_ms_median", "exec->reply ms"),
            ("startup_ms_median", "startup ms")]
    lines = ["  ".join(f"{h:>14}" if i else f"{h:<30}" for i, (dummy, h) in enumerate(cols))]
    for r in rows:
        cells = []
        for i, (k, _dummy) in enumerate(cols):
            v = r[k] if k != "case" else f"({r['case']}) {r['title']}"
            v = "-" if v is None else v
            cells.append(f"{v:>14}" if i else f"{v:<30}")
        lines.append("  ".join(cells))
    return "\n".join(lines)


def plot(runs: list[dict], path: Path) -> bool:
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return False
    fig, axes = plt.subplots(len(runs), 1, figsize=(11, 3.1 * len(runs)), squeeze=False)
    for ax, run in zip(axes[:, 0], runs, strict=True):
        s = summarise(run)
        ok = [(t, lat) for t, lat, o in run["samples"] if o == "ok"]
        bad = [(t, lat, o) for t, lat, o in run["samples"] if o != "ok"]
        if ok:
            ax.scatter([t for t, lat in ok], [max(lat, 0.01) for t, lat in ok], s=2,
                       color="tab:blue", label="reply (connect+PING)", rasterized=True)
        refused = [(t, lat) for t, lat, o in bad if o == "refused"]
        other = [(t, lat) for t, lat, o in bad if o != "refused"]
        if refused:
            ax.scatter([t for t, lat in refused], [max(lat, 0.01) for t, lat in refused], s=6,
                       marker="x", color="tab:red", label=f"refused ({len(refused)})")
        if other:
            ax.scatter([t for t, lat in other], [max(lat, 0.01) for t, lat in other], s=6,
                       marker="^", color="tab:orange", label=f"reset/timeout ({len(other)})")
        for i, r in enumerate(run["restarts"]):
            ax.axvline(r["exec_s"] if r["exec_s"] is not None else r["cmd_s"], color="grey",
                       linewidth=0.6, alpha=0.6, label="restart (exec)" if i == 0 else None)
        ax.set_yscale("log")
        ax.set_ylabel("latency (ms)")
        ax.set_title(f"({run['case']}) {s['title']}: {s['refused']} refused, max "
                     f"{s['max_ms']} ms, longest gap {s['longest_gap_ms']} ms, "
                     f"exec->first reply {s['exec_to_first_reply_ms_median']} ms (median)",
                     fontsize=9)
        ax.legend(loc="upper right", fontsize=7, markerscale=2)
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("--restarts", type=int, default=20, help="restarts per case (default 20)")
    ap.add_argument("--spacing", type=float, default=0.5,
                    help="seconds between a restart's end and the next one (default 0.5)")
    ap.add_argument("--cases", default="abc", help="subset of a, b, c (default abc)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--samples", action="store_true", help="include every attempt in --json")
    ap.add_argument("--png", default=str(ROOT / "bench/out/restart.png"),
                    help="where to write the picture ('' for none)")
    ap.add_argument("--keep", action="store_true", help="leave the container running")
    ap.add_argument("--no-sandbox", dest="sandbox", action="store_false",
                    help="IronCache units without the role's sandboxing (redis keeps Debian's)")
    ap.add_argument("--driver", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--case", default="a", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.driver:
        return driver(args)
    if not 1 <= args.restarts <= 500:
        ap.error("--restarts must be between 1 and 500")

    def log(msg: str) -> None:
        print(f"restart-bench: {msg}", file=sys.stderr, flush=True)

    debs = fetch_debs(ROOT / ".cache" / "bench-debs") if "c" in args.cases else []
    setup_container(debs, log, sandbox=args.sandbox)
    runs = []
    try:
        for case in args.cases:
            log(f"case ({case}) {CASES[case]['title']}: {args.restarts} restarts")
            r = dexec("python3", "/opt/bench/restart.py", "--driver", "--case", case,
                      "--restarts", str(args.restarts), "--spacing", str(args.spacing),
                      capture=True, check=False)
            if r.returncode != 0:
                raise SystemExit(f"case ({case}) failed (rc={r.returncode}):\n{r.stderr[-2000:]}")
            runs.append(json.loads(r.stdout))
    finally:
        if not args.keep:
            sh("docker", "rm", "-f", CONTAINER, check=False, capture=True)
    rows = [summarise(r) for r in runs]
    png = Path(args.png) if args.png else None
    wrote = plot(runs, png) if png else False
    a = next((r for r in rows if r["case"] == "a"), None)
    goal = None
    if a and a["max_over_exec_to_first_reply"] is not None:
        goal = {"zero_refused": a["refused"] == 0 and a["reset"] == 0,
                "max_over_exec_to_first_reply": a["max_over_exec_to_first_reply"]}
        goal["met"] = goal["zero_refused"] and goal["max_over_exec_to_first_reply"] <= 2.0
    if args.json:
        out = {"restarts_per_case": args.restarts, "cases": rows, "goal": goal,
               "png": str(png) if wrote else None}
        if args.samples:
            out["runs"] = runs
        print(json.dumps(out, indent=2))
    else:
        print(table(rows))
        if goal:
            print(f"\n(a) goal: zero refused: {'yes' if goal['zero_refused'] else 'NO'}; worst "
                  f"restart's max latency / its exec-to-first-reply = "
                  f"{goal['max_over_exec_to_first_reply']} (goal <= 2): "
                  f"{'met' if goal['met'] else 'NOT met'}")
        if wrote:
            print(f"picture: {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
