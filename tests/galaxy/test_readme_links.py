# Copyright (c) 2026, IronCache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The READMEs that ship render on Galaxy's page: links and images are absolute URLs (a relative
one resolves against galaxy.ansible.com, not the repository), or anchors of a heading in the same
file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
READMES = [GALAXY["readme"], "roles/ironcache/README.md"]
# [text](target) and ![alt](target); reference-style definitions "[x]: target"
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)")
DEFINITION = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.M)


def anchors(text: str) -> set[str]:
    """GitHub-style heading anchors."""
    out = set()
    for title in re.findall(r"^#+\s+(.+?)\s*$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", title.lower().replace("`", "")).replace(" ", "-")
        out.add(slug)
    return out


def targets(text: str) -> list[str]:
    # fenced code is not rendered as links
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    return LINK.findall(text) + DEFINITION.findall(text)


@pytest.mark.parametrize("readme", READMES)
def test_links_are_absolute_or_anchors(readme: str) -> None:
    text = (REPO / readme).read_text()
    found = targets(text)
    bad = [t for t in found if not t.startswith(("https://", "http://", "mailto:", "#"))]
    assert not bad, f"{readme}: relative links do not resolve on Galaxy: {bad}"
    missing = [t for t in found if t.startswith("#") and t[1:] not in anchors(text)]
    assert not missing, f"{readme}: anchors without a heading: {missing}"


@pytest.mark.parametrize("readme", READMES)
def test_repository_links_use_galaxy_yml_repository(readme: str) -> None:
    text = (REPO / readme).read_text()
    repo_path = GALAXY["repository"].removeprefix("https://github.com/")
    github = [t for t in targets(text) if "github" in t]
    assert all(repo_path in t for t in github), github


def test_the_check_sees_relative_links() -> None:
    # control: the pattern catches what Galaxy cannot render
    found = targets("see [x](docs/a.md) and ![i](docs/restart.png)")
    assert found == ["docs/a.md", "docs/restart.png"]
