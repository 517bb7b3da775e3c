"""End to end: the rendered user-data boots a host into socket-activated IronCache.

A systemd container of the cloud-init image (tests/setup/build-cloudinit-image.sh) boots with a
NoCloud seed holding the user-data the userdata module renders. It has no network: the collection
comes from a path on the "image" (the tarball built from this checkout, bind-mounted), Ansible
is already in the image. The tests run in file order against the same host:
  1. first boot: cloud-init done, the socket listening (held by systemd), the service serving
     through the inherited fd, Backlog=, PING/SET/GET (the checks of molecule/default);
  2. second boot (docker restart): nothing changed, runcmd did not run again, still serving;
  3. the bootstrap run again by hand: the play changes nothing;
  4. the inventory module, pointed at this host and a fresh systemd container, drives site.yml
     (the booted host's units, configuration and release stay as they are) and the rolling
     upgrade to a release stamped 1.0.1.
Figures (boot times) go to tests/output/terraform-e2e.json.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tfsupport import (
    REPO,
    SYSTEMD_DOCKER_FLAGS,
    SYSTEMD_IMAGE,
    Rendered,
    container_name,
    render,
    run,
    tool,
)

PORT = 6390
BACKLOG = 8192
SEED_DIR = "/var/lib/cloud/seed/nocloud"
COLLECTION_DIR_ON_IMAGE = "/srv/ironcache"
FIGURES = REPO / "tests/output/terraform-e2e.json"
SNAPSHOT = r"""
set -e
cd /
for f in etc/systemd/system/ironcache.socket etc/systemd/system/ironcache.service \
         etc/ironcache/ironcache.conf etc/sysctl.d/90-ironcache-somaxconn.conf \
         etc/ironcache-bootstrap/vars.yml etc/ironcache-bootstrap/site.yml; do
    echo "$f $(sha256sum <"$f" | cut -c1-64) $(stat -c %Y "$f")"
done
echo "current $(readlink opt/ironcache/current)"
echo "releases $(ls opt/ironcache/releases | tr '\n' ' ')"
echo "enabled $(systemctl is-enabled ironcache.socket ironcache.service | tr '\n' ' ')"
echo "instances $(ls var/lib/cloud/instances | tr '\n' ' ')"
echo "bootstrap-runs $(grep -c '^ironcache-bootstrap: done' var/log/cloud-init-output.log || true)"
"""


def record(key: str, value: Any) -> None:
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    data[key] = value
    FIGURES.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def dexec(name: str, *argv: str, timeout: float = 120, check: bool = True) -> str:
    return run(["docker", "exec", name, *argv], timeout=timeout, check=check).stdout


def sh(name: str, script: str, timeout: float = 120, check: bool = True) -> str:
    return dexec(name, "sh", "-c", script, timeout=timeout, check=check)


def redis_cli(name: str, *args: str) -> str:
    return dexec(name, "redis-cli", "-h", "127.0.0.1", "-p", str(PORT), *args).strip()


def info_server(name: str) -> dict[str, str]:
    text = redis_cli(name, "INFO", "server")
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def cloud_init_log(name: str) -> str:
    return sh(name, "tail -n 80 /var/log/cloud-init-output.log", check=False)


def wait_cloud_init(name: str) -> str:
    """Wait until cloud-init finished this boot; return `cloud-init status --long`."""
    run(["docker", "exec", name, "cloud-init", "status", "--wait"], timeout=900, check=False)
    return sh(name, "cloud-init status --long", check=False)


def wait_system_running(name: str, seconds: float = 180) -> str:
    """Poll `systemctl is-system-running` until it settles (bounded); return the last state."""
    state = ""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        proc = run(["docker", "exec", name, "systemctl", "is-system-running"], check=False)
        state = proc.stdout.strip()
        if state in ("running", "degraded", "maintenance", "stopping"):
            break
        time.sleep(1)
    return state


def start_container(name: str, image: str, extra: list[str]) -> None:
    run(["docker", "rm", "-f", name], check=False)
    run(
        ["docker", "run", "-d", "--name", name, "--hostname", name, "--network", "none",
         "--sysctl", f"net.core.somaxconn={BACKLOG}", *SYSTEMD_DOCKER_FLAGS, *extra,
         image, "/lib/systemd/systemd"],
        timeout=120,
    )  # fmt: skip


def assert_serving(name: str, version: str = "1.0.0") -> dict[str, str]:
    """The checks of molecule/default: socket, inherited fd, Backlog, PING/SET/GET."""
    assert redis_cli(name, "PING") == "PONG"
    enabled = sh(name, "systemctl is-enabled ironcache.socket ironcache.service").split()
    assert enabled == ["enabled", "enabled"], enabled
    active = sh(name, "systemctl is-active ironcache.socket ironcache.service").split()
    assert active == ["active", "active"], active
    listen = sh(name, f"ss -ltnpH 'sport = :{PORT}'").strip().splitlines()
    assert listen, f"nothing listens on {PORT}"
    for line in listen:
        assert '("systemd",pid=1,' in line, f"systemd does not hold the listener: {line}"
        assert int(line.split()[2]) == BACKLOG, f"Send-Q (backlog) is not {BACKLOG}: {line}"
    assert sh(name, "systemctl show -p Backlog --value ironcache.socket").strip() == str(BACKLOG)
    info = info_server(name)
    assert info["socket_activated"] == "1", info
    assert int(info["listeners_inherited"]) >= 1, info
    assert info["listeners_bound"] == "0", info
    assert info["ironcache_version"] == version, info
    main_pid = sh(name, "systemctl show -p MainPID --value ironcache.service").strip()
    assert info["process_id"] == main_pid, (info["process_id"], main_pid)
    key = f"tf:e2e:{time.monotonic_ns()}"
    assert redis_cli(name, "SET", key, "v1") == "OK"
    assert redis_cli(name, "GET", key) == "v1"
    return info


@dataclass
class Host:
    name: str
    first_boot_seconds: float
    status: str
    snapshots: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def userdata(collection_tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    variables = {
        "collection_source": {
            "type": "path",
            "path": f"{COLLECTION_DIR_ON_IMAGE}/{collection_tarball.name}",
        },
        "bind": ["127.0.0.1"],
        "port": PORT,
        "backlog": BACKLOG,
        "maxmemory": "64mb",
    }
    return render("userdata", variables, tmp_path_factory.mktemp("e2e-userdata"))


@pytest.fixture(scope="module")
def booted(
    cloudinit_image: str,
    userdata: Rendered,
    collection_tarball: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Host]:
    name = container_name("cloudinit")
    seed = tmp_path_factory.mktemp("seed")
    (seed / "user-data").write_text(userdata["user_data"])
    (seed / "meta-data").write_text(f"instance-id: {name}\nlocal-hostname: {name}\n")
    start = time.monotonic()
    start_container(
        name,
        cloudinit_image,
        [
            "-v", f"{seed / 'user-data'}:{SEED_DIR}/user-data:ro",
            "-v", f"{seed / 'meta-data'}:{SEED_DIR}/meta-data:ro",
            "-v", f"{collection_tarball}:{COLLECTION_DIR_ON_IMAGE}/{collection_tarball.name}:ro",
        ],
    )  # fmt: skip
    try:
        status = wait_cloud_init(name)
        host = Host(name, round(time.monotonic() - start, 1), status)
        record("first_boot_seconds", host.first_boot_seconds)
        yield host
    finally:
        run(["docker", "rm", "-f", name], check=False)


@pytest.fixture(scope="module")
def fresh_host() -> Iterator[str]:
    """A systemd container that no user-data touched (a host provisioned some other way)."""
    name = container_name("fresh")
    start_container(name, SYSTEMD_IMAGE, [])
    try:
        assert wait_system_running(name) in ("running", "degraded")
        yield name
    finally:
        run(["docker", "rm", "-f", name], check=False)


def test_first_boot_serves_socket_activated(booted: Host) -> None:
    assert "status: done" in booted.status, f"{booted.status}\n{cloud_init_log(booted.name)}"
    assert wait_system_running(booted.name) == "running", sh(booted.name, "systemctl --failed")
    assert_serving(booted.name)
    # the units come from the role's templates, not from the user-data
    unit = sh(booted.name, "cat /etc/systemd/system/ironcache.socket")
    assert "Ansible managed" in unit
    assert f"Backlog={BACKLOG}" in unit
    assert sh(booted.name, "cat /proc/sys/net/core/somaxconn").strip() == str(BACKLOG)
    assert sh(booted.name, "cat /etc/sysctl.d/90-ironcache-somaxconn.conf").endswith(
        f"net.core.somaxconn = {BACKLOG}\n"
    )
    booted.snapshots.append(sh(booted.name, SNAPSHOT))
    assert "bootstrap-runs 1" in booted.snapshots[0]


def test_second_boot_changes_nothing(booted: Host) -> None:
    assert booted.snapshots, "the first-boot test did not run"
    start = time.monotonic()
    run(["docker", "restart", "-t", "30", booted.name], timeout=120)
    status = wait_cloud_init(booted.name)
    state = wait_system_running(booted.name)
    record("second_boot_seconds", round(time.monotonic() - start, 1))
    assert "status: done" in status, f"{status}\n{cloud_init_log(booted.name)}"
    assert state == "running", sh(booted.name, "systemctl --failed")
    after = sh(booted.name, SNAPSHOT)
    assert after == booted.snapshots[0], f"before:\n{booted.snapshots[0]}\nafter:\n{after}"
    assert_serving(booted.name)


def test_bootstrap_again_changes_nothing(booted: Host) -> None:
    """Safe on re-run: the whole bootstrap again, the play reports no change."""
    start = time.monotonic()
    proc = run(
        ["docker", "exec", booted.name, "/usr/local/sbin/ironcache-bootstrap"],
        timeout=900,
        check=False,
    )
    record("bootstrap_rerun_seconds", round(time.monotonic() - start, 1))
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-6000:]
    recap = re.search(r"localhost\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0", text)
    assert recap, text[-6000:]
    assert recap.group(1) == "0", text[-6000:]
    assert_serving(booted.name)


def _recap(text: str) -> dict[str, dict[str, int]]:
    hosts: dict[str, dict[str, int]] = {}
    for m in re.finditer(r"^(\S+)\s*:\s*((?:\w+=\d+\s*)+)$", text, re.M):
        hosts[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return hosts


def test_inventory_drives_site_and_upgrade(
    booted: Host, fresh_host: str, userdata: Rendered, tmp_path: Path
) -> None:
    hosts = [
        {
            "name": name,
            "address": name,
            "vars": {
                "ansible_connection": "community.docker.docker",
                "ansible_python_interpreter": "/usr/bin/python3",
            },
        }
        for name in (booted.name, fresh_host)
    ]
    inventory = render("inventory", {"hosts": hosts, "group_vars": userdata["role_vars"]}, tmp_path)
    inventory_file = tmp_path / "inventory.yml"
    inventory_file.write_text(inventory["yaml"])
    # the collection (for the upgrade playbook's module) from this checkout
    link = tmp_path / "collections/ansible_collections/ironcache/ironcache"
    link.parent.mkdir(parents=True)
    link.symlink_to(REPO)
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(tmp_path / "collections"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
    }

    def playbook(*args: str) -> str:
        proc = run(
            [tool("ansible-playbook"), "-i", str(inventory_file), *args],
            timeout=1800, check=False, env=env, cwd=REPO,
        )  # fmt: skip
        text = proc.stdout + proc.stderr
        assert proc.returncode == 0, text[-8000:]
        return text

    before = sh(booted.name, SNAPSHOT)
    start = time.monotonic()
    site = playbook(str(REPO / "site.yml"))
    record("site_seconds", round(time.monotonic() - start, 1))
    recap = _recap(site)
    assert recap[booted.name]["failed"] == 0 and recap[fresh_host]["failed"] == 0, recap
    record("site_changed_on_booted_host", recap[booted.name]["changed"])
    # The user-data applied the same role with the same variables: the units, the
    # configuration, the sysctl file and the release link are exactly as the first boot left
    # them (same content, not rewritten).
    after = sh(booted.name, SNAPSHOT)
    assert after == before, f"site.yml changed the booted host:\n{before}\n{after}"
    for name in (booted.name, fresh_host):
        assert_serving(name)

    # rolling upgrade onto the same source stamped 1.0.1
    source = tmp_path / "src"
    shutil.copytree(
        REPO / "ironcache_src/ironcache",
        source / "ironcache",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    (source / "ironcache/_version.py").write_text('__version__ = "1.0.1"\n')
    # Zero refused connections is asserted below (systemd holds the socket throughout). The
    # playbook's own fail-on-any-reset check stays off here: resets under a restart are the
    # subject of molecule/upgrade; this test is about the inventory driving the playbook.
    start = time.monotonic()
    upgrade = playbook(
        str(REPO / "playbooks/upgrade.yml"),
        "-e", "ironcache_version=1.0.1",
        "-e", f"ironcache_source_dir={source}",
        "-e", "ironcache_upgrade_fail_on_refused=false",
    )  # fmt: skip
    record("upgrade_seconds", round(time.monotonic() - start, 1))
    # summary rows: host old new restart_ms attempts refused reset max_ms kept_conn kept_keys path
    rows = {
        m.group(1): m.groups()[1:]
        for m in re.finditer(r'"(tf-[\w-]+)' + r"\s+(\S+)" * 10 + r'\s*"', upgrade)
    }
    record("upgrade_summary", rows)
    for name in (booted.name, fresh_host):
        assert name in rows, upgrade[-6000:]
        old, new, _ms, attempts, refused, _reset, _max_ms, kept_conn, kept_keys, path = rows[name]
        assert (old, new) == ("1.0.0", "1.0.1"), rows[name]
        assert path == "reload", rows[name]  # the playbook's default: the no-blackout path
        assert int(attempts) > 0 and refused == "0", rows[name]
        assert int(kept_conn) >= 0 and int(kept_keys) >= 0, rows[name]  # the handover's figures
    for name in (booted.name, fresh_host):
        assert_serving(name, version="1.0.1")
        assert sh(name, "readlink /opt/ironcache/current").strip() == "releases/1.0.1"
