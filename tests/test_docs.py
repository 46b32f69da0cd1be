"""The documents: every relative link and anchor resolves, and the IAM page shows what the
tool writes today."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from tests.helpers import run_cli

ROOT = Path(__file__).resolve().parent.parent
PAGES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "examples/gitops/README.md",
]
MD = MarkdownIt("commonmark")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    tokens = MD.parse(page.read_text())
    return {
        _slug(tokens[i + 1].content)
        for i, token in enumerate(tokens)
        if token.type == "heading_open"
    }


def _links(page: Path) -> list[str]:
    found: list[str] = []
    for token in MD.parse(page.read_text()):
        for child in token.children or ():
            if child.type in ("link_open", "image"):
                found.append(str(child.attrs.get("href") or child.attrs.get("src")))
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    broken = []
    for link in _links(page):
        if re.match(r"^[a-z]+:", link):
            continue  # https:, mailto:
        target, _, anchor = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        if not path.exists() or (anchor and path.suffix == ".md" and anchor not in _anchors(path)):
            broken.append(link)
    assert broken == []


def test_the_readme_is_a_front_page() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    linked = {Path(link).name for link in _links(ROOT / "README.md")}
    assert {p.name for p in (ROOT / "docs").glob("*.md")} <= linked  # every page reachable


def test_the_iam_page_shows_what_the_tool_writes(tmp_path: Path) -> None:
    page = (ROOT / "docs" / "iam.md").read_text()
    setup = re.search(r"this `reconciler.yaml`:\n\n```yaml\n(.*?)```", page, re.S)
    assert setup is not None
    (tmp_path / ".git").mkdir()
    (tmp_path / "reconciler.yaml").write_text(setup.group(1))
    shutil.copytree(ROOT / "examples" / "manifests", tmp_path / "manifests")
    shown = re.findall(r"--role ([a-z-]+) examples/manifests`\n\n```json\n(.*?)```", page, re.S)
    assert [role for role, _ in shown] == ["plan", "apply", "key-reader"]
    for role, text in shown:
        written = run_cli("iam-policy", "--role", role, "manifests", cwd=tmp_path)
        assert written.returncode == 0, written.stderr
        assert json.loads(text) == json.loads(written.stdout), role
