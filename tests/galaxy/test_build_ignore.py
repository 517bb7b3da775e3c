# Copyright (c) 2026, IronCache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Galaxy tarball ships the collection and nothing a working tree accumulates.

A copy of the checkout (its git files) is seeded with the leftovers of typical use: Terraform
state, variables, lock file and the generated inventory of the example, virtualenvs, caches, test
output. `ansible-galaxy collection build` must leave every one of them out and keep the content.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TF_EXAMPLE = "terraform/examples/aws"
# the one next to this interpreter (the project's .venv), else the one on PATH
_HERE = str(Path(sys.executable).parent)
ANSIBLE_GALAXY = shutil.which("ansible-galaxy", path=_HERE) or "ansible-galaxy"

# what using the checkout leaves behind (path -> content)
LEFTOVERS = {
    f"{TF_EXAMPLE}/terraform.tfstate": '{"version": 4, "outputs": {"pass": "s3cret"}}',
    f"{TF_EXAMPLE}/terraform.tfstate.backup": "{}",
    f"{TF_EXAMPLE}/terraform.tfvars": 'requirepass = "s3cret"\n',
    f"{TF_EXAMPLE}/prod.auto.tfvars": 'requirepass = "s3cret"\n',
    f"{TF_EXAMPLE}/vars.tfvars.json": "{}",
    f"{TF_EXAMPLE}/plan.tfplan": "plan",
    f"{TF_EXAMPLE}/.terraform.lock.hcl": "# lock\n",
    f"{TF_EXAMPLE}/.terraform/providers/registry.terraform.io/hashicorp/aws/p": "binary",
    f"{TF_EXAMPLE}/.terraform/terraform.tfstate": "{}",
    f"{TF_EXAMPLE}/inventory.yml": "ironcache:\n  vars:\n    ironcache_requirepass: s3cret\n",
    f"{TF_EXAMPLE}/crash.log": "panic",
    "terraform/modules/userdata/.terraform.lock.hcl": "# lock\n",
    "terraform/modules/userdata/terraform.tfstate": "{}",
    ".venv/bin/python": "",
    ".venv-bench/bin/python": "",
    ".venv-galaxy/bin/python": "",
    "venv/pyvenv.cfg": "",
    "ironcache_src/.venv/pyvenv.cfg": "",
    ".matrix/venv/2.16/pyvenv.cfg": "",
    ".tox/py311/pyvenv.cfg": "",
    ".collections/ansible_collections/ironcache/README.md": "",
    ".cache/ironcache/wheels/cp311-x86_64/uvloop.whl": "",
    ".ansible/collections/x": "",
    ".pytest_cache/v/cache/lastfailed": "{}",
    ".ruff_cache/CACHEDIR.TAG": "",
    ".mypy_cache/3.11/x.json": "{}",
    ".hypothesis/examples/x": "",
    "ironcache_src/.hypothesis/examples/x": "",
    "ironcache_src/ironcache/__pycache__/server.cpython-311.pyc": "",
    "plugins/modules/__pycache__/rolling_restart.cpython-311.pyc": "",
    "ironcache_src/ironcache.egg-info/PKG-INFO": "",
    "ironcache_src/build/lib/ironcache/__init__.py": "",
    "ironcache_src/dist/ironcache-1.0.0.tar.gz": "",
    "tests/output/junit.xml": "",
    "bench/out/restart.json": "{}",
    "changelogs/.plugin-cache.yaml": "plugins: {}\n",
    "ironcache-ironcache-0.9.0.tar.gz": "",
    "site.retry": "host\n",
    ".idea/workspace.xml": "",
    ".vscode/settings.json": "{}",
    "roles/ironcache/tasks/.main.yml.swp": "",
    ".DS_Store": "",
    "roles/.DS_Store": "",
}

# what the development tree has that users don't need
NOT_SHIPPED = [
    ".ansible-lint", "ruff.toml", "pytest.ini", "Makefile", "requirements-dev.txt", ".gitignore",
    "inventory/hosts.yml", "docs/restart.png", "molecule/default/molecule.yml",
    "tests/sanity.sh", "bench/restart.py", "ironcache_src/tests/conftest.py",
]

# what must ship (a control: the build sees the tree)
SHIPPED = [
    "README.md", "LICENSE", "meta/runtime.yml", "site.yml", "playbooks/site.yml",
    "roles/ironcache/tasks/main.yml", "roles/ironcache/files/pack_source.py",
    "plugins/modules/rolling_restart.py", "ironcache_src/ironcache/__main__.py",
    "terraform/modules/userdata/main.tf", f"{TF_EXAMPLE}/main.tf",
    f"{TF_EXAMPLE}/terraform.tfvars.example", "changelogs/changelog.yaml",
]


@functools.cache
def git_files() -> tuple[str, ...]:
    out = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True, capture_output=True,
    ).stdout
    return tuple(p for p in out.decode().split("\0") if p and (REPO / p).is_file())


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    tree = tmp_path_factory.mktemp("tree") / "ironcache"
    for rel in git_files():
        dest = tree / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest)
    for rel, content in LEFTOVERS.items():
        dest = tree / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(content)
    # a new file the tree does not know yet ships like any other (the seeding reaches the build)
    (tree / "roles/ironcache/files/seeded.txt").write_text("seeded\n")
    out = tree.parent / "dist"
    subprocess.run(
        [ANSIBLE_GALAXY, "collection", "build", "--output-path", str(out), str(tree)],
        check=True, capture_output=True, text=True,
    )
    (tarball,) = out.glob("ironcache-ironcache-*.tar.gz")
    with tarfile.open(tarball) as tar:
        return {m.name.removeprefix("./") for m in tar.getmembers()}


def test_seeded_content_reaches_the_build(shipped: set[str]) -> None:
    assert "roles/ironcache/files/seeded.txt" in shipped


@pytest.mark.parametrize("rel", SHIPPED)
def test_the_collection_ships(shipped: set[str], rel: str) -> None:
    assert rel in shipped


@pytest.mark.parametrize("rel", sorted(LEFTOVERS))
def test_no_leftover_ships(shipped: set[str], rel: str) -> None:
    # neither the file nor a directory that only the leftover created (an empty .venv/, .terraform/)
    known_dirs = {str(d) for p in git_files() for d in Path(p).parents}
    parts = rel.split("/")
    parents = ["/".join(parts[:i]) for i in range(1, len(parts))]
    created = [d for d in parents if d not in known_dirs]
    assert rel not in shipped
    assert not [d for d in created if d in shipped]


@pytest.mark.parametrize("rel", NOT_SHIPPED)
def test_development_files_do_not_ship(shipped: set[str], rel: str) -> None:
    assert rel not in shipped


def test_no_terraform_state_or_variables_anywhere(shipped: set[str]) -> None:
    bad = [m for m in shipped if m.startswith("terraform/") and (
        ".tfstate" in m or "/.terraform" in m
        or m.endswith((".tfvars", ".tfvars.json", ".tfplan", ".tftest.hcl", "inventory.yml")))]
    assert not bad, bad


def test_tarball_is_small(shipped: set[str]) -> None:
    # the big items of a working tree (images, virtualenvs) stay out: at most the code and docs
    assert not [m for m in shipped if m.endswith((".png", ".whl", ".so"))]
