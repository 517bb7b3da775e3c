# Copyright (c) 2026, IronCache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the collection claims is what `make matrix` tests: requires_ansible, the rows of
tests/matrix/run.sh and the ansible-core range the Terraform user-data installs agree."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def minors(spec: str) -> list[str]:
    """Minor releases in '>=2.16.0,<2.22' (only this shape is claimed)."""
    low = re.search(r">=\s*2\.(\d+)", spec)
    high = re.search(r"<\s*2\.(\d+)", spec)
    assert low and high, spec
    return [f"2.{m}" for m in range(int(low.group(1)), int(high.group(1)))]


def matrix_rows() -> dict[str, str]:
    text = (REPO / "tests/matrix/run.sh").read_text()
    return dict(re.findall(r'^\s+"(2\.\d+) (2\.\d+\.\d+) ', text, re.M))


def test_requires_ansible_is_the_tested_rows() -> None:
    spec = yaml.safe_load((REPO / "meta/runtime.yml").read_text())["requires_ansible"]
    assert minors(spec) == list(matrix_rows()), (spec, matrix_rows())


def test_rows_pin_a_patch_release_of_their_minor() -> None:
    for minor, pin in matrix_rows().items():
        assert pin.startswith(minor + "."), (minor, pin)


def test_terraform_installs_the_tested_range() -> None:
    tf = (REPO / "terraform/modules/userdata/variables.tf").read_text()
    default = re.search(r'pip_spec\s*=\s*optional\(string,\s*"ansible-core([^"]+)"\)', tf)
    assert default, "no pip_spec default in variables.tf"
    assert minors(default.group(1)) == list(matrix_rows())


def test_role_minimum_is_the_oldest_row() -> None:
    meta = yaml.safe_load((REPO / "roles/ironcache/meta/main.yml").read_text())
    assert str(meta["galaxy_info"]["min_ansible_version"]) == next(iter(matrix_rows()))
