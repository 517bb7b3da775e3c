"""The rendered user-data passes `cloud-init schema`, run inside the cloud-init test image.

cloud-init is not installed on the host (it would enable its units there); the image built by
tests/setup/build-cloudinit-image.sh carries Debian's cloud-init.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tfsupport import render, run

VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "path-tarball": {
        "collection_source": {"type": "path", "path": "/srv/ironcache-ironcache-1.0.0.tar.gz"},
        "ansible_install": {"method": "preinstalled"},
    },
    "url-apt": {
        "collection_source": {"type": "url", "url": "https://example.org/ic-1.0.0.tar.gz"},
        "ansible_install": {"method": "apt"},
    },
    "everything": {
        "socket_activation": False,
        "bind": ["0.0.0.0", "-::"],
        "port": 16379,
        "backlog": 65535,
        "somaxconn": 65535,
        "maxmemory": "4gb",
        "maxclients": 50000,
        "requirepass": "p'w\"d: #not-a-comment",
        "accelerators": True,
        "extra_role_vars": {"ironcache_extra_config": {"hz": 20}, "ironcache_loglevel": "debug"},
    },
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Each variant's user-data as <dir>/<variant>.yaml."""
    seeds = tmp_path_factory.mktemp("user-data")
    work = tmp_path_factory.mktemp("userdata-module")
    for name, variables in VARIANTS.items():
        (seeds / f"{name}.yaml").write_text(render("userdata", variables, work)["user_data"])
    return seeds


def test_rendered_user_data_passes_cloud_init_schema(cloudinit_image: str, rendered: Path) -> None:
    script = (
        'rc=0; for f in /seeds/*.yaml; do echo "== $f"; '
        'cloud-init schema --config-file "$f" || rc=1; done; exit $rc'
    )
    proc = run(
        ["docker", "run", "--rm", "--network", "none", "-v", f"{rendered}:/seeds:ro",
         cloudinit_image, "sh", "-c", script],
        timeout=300, check=False,
    )  # fmt: skip
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text
    for name in VARIANTS:
        assert f"Valid cloud-config: /seeds/{name}.yaml" in text, text


def test_schema_check_rejects_a_broken_config(cloudinit_image: str, tmp_path: Path) -> None:
    """The check above can fail: a user-data with a wrong type is refused."""
    (tmp_path / "broken.yaml").write_text("#cloud-config\nruncmd: 5\n")
    proc = run(
        ["docker", "run", "--rm", "--network", "none", "-v", f"{tmp_path}:/seeds:ro",
         cloudinit_image, "cloud-init", "schema", "--config-file", "/seeds/broken.yaml"],
        timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "runcmd" in proc.stdout + proc.stderr
