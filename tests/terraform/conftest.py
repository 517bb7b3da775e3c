"""Fixtures of the Terraform tests: an offline Terraform environment, Docker, the images."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from tfsupport import CLOUDINIT_IMAGE, REPO, docker_available, run, tool


@pytest.fixture(scope="session", autouse=True)
def _terraform_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No CLI configuration, no checkpoint calls, no prompts: Terraform stays offline."""
    config = tmp_path_factory.mktemp("terraform-cli") / "terraformrc"
    config.write_text("")
    wanted = {
        "TF_CLI_CONFIG_FILE": str(config),
        "CHECKPOINT_DISABLE": "1",
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
    }
    saved = {key: os.environ.get(key) for key in wanted}
    os.environ.update(wanted)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """Start the Docker engine (tests/setup/docker-engine.sh) or skip when docker is absent."""
    if shutil.which("docker") is None and shutil.which("dockerd") is None:
        pytest.skip("docker is not installed: the cloud-init and end-to-end tests need it")
    run([str(REPO / "tests/setup/docker-engine.sh")], timeout=300)
    if not docker_available():
        pytest.skip("docker info fails after tests/setup/docker-engine.sh")


@pytest.fixture(scope="session")
def cloudinit_image(docker_engine: None) -> str:
    """The cloud-init image (built once by tests/setup/build-cloudinit-image.sh)."""
    run([str(REPO / "tests/setup/build-cloudinit-image.sh"), CLOUDINIT_IMAGE], timeout=1200)
    return CLOUDINIT_IMAGE


@pytest.fixture(scope="session")
def collection_tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The collection built from this checkout (ansible-galaxy collection build)."""
    out = tmp_path_factory.mktemp("collection")
    run([tool("ansible-galaxy"), "collection", "build", "--output-path", str(out), str(REPO)])
    tarballs = sorted(out.glob("ironcache-ironcache-*.tar.gz"))
    assert len(tarballs) == 1, tarballs
    return tarballs[0]
