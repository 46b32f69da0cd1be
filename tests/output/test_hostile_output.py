"""Hostile live values cannot make the output lie: no raw control byte in any format, and
markdown whose structure holds only what the tool wrote (parsed with a CommonMark parser)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from tests.aws.test_hostile_live import DataFile
from tests.conftest import lightsail_client
from tests.helpers import run_cli, write_manifest

R = "us-east-1"
HOSTILE = {
    "ansi": "\x1b[2J\x1b]0;pwned\x07red",
    "lines": "a\rb\nApply complete! Resources: 0 added.\u0085c\u2028d",
    "bidi": "\u202egnp.exe\u2066x\u2069",
    "md": "```\n# Heading\n[link](https://evil.example) ![img](x.png) <b>html</b> <!-- c -->",
    "marker": "<!-- lightsail-reconciler:plan -->",
    "mention": "@octocat and @org/team",
    "long": "x" * 256,
}
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
OWN_HTML = {
    "<!-- lightsail-reconciler:plan -->",
    "<!-- lightsail-reconciler:drift -->",
    "<details><summary>Details</summary>",
    "</details>",
}


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, DataFile]:
    data = DataFile(tmp_path / "lightsail.json")
    with data.running() as emu:
        lightsail_client(emu.url).create_key_pair(
            keyPairName="web", tags=[{"key": "team", "value": "a"}]
        )
    project = tmp_path / "p"
    project.mkdir()
    (project / ".git").mkdir()
    write_manifest(project / "m.yaml", R, "- name: web\n  adopt: true\n  tags: {team: a}")
    with data.running() as emu:
        adopted = run_cli("apply", "m.yaml", "--auto-approve", cwd=project, endpoint=emu.url)
    assert adopted.returncode == 0, adopted.stderr
    # Then someone else's tooling leaves values the API would refuse.
    tags = [{"key": k, "value": v} for k, v in HOSTILE.items()]
    data.set_wire("keyPairs", "web", {"tags": tags})
    return project, data


def _check_markdown(text: str) -> None:
    tokens = MarkdownIt("commonmark").parse(text)
    for token in tokens:
        if token.type == "heading_open":
            assert tokens[tokens.index(token) + 1].content.startswith("Lightsail key pairs")
        if token.type == "html_block":
            assert token.content.strip() in OWN_HTML, token.content
        for child in token.children or ():
            assert child.type not in ("link_open", "image", "html_inline"), child
            if child.type == "text":
                assert not re.search(r"@\w", child.content), child.content


@pytest.mark.parametrize("command", ["plan", "drift"])
@pytest.mark.parametrize("fmt", ["text", "github", "json", "markdown", "sarif"])
def test_no_format_lets_a_live_value_steer_the_terminal_or_the_markdown(
    project: tuple[Path, DataFile], command: str, fmt: str
) -> None:
    root, data = project
    with data.running() as emu:
        result = run_cli(command, "m.yaml", "--format", fmt, cwd=root, endpoint=emu.url)
    assert result.returncode in (0, 1, 2), result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    assert not RAW.search(result.stdout), repr(RAW.search(result.stdout))
    assert not RAW.search(result.stderr)
    # No value starts a line that could pass for the tool's own summary.
    assert not any(line.startswith("Apply complete!") for line in result.stdout.splitlines())
    if fmt == "markdown":
        _check_markdown(result.stdout)
        assert result.stdout.count("<!-- lightsail-reconciler:") == 1
    if fmt in ("json", "sarif"):
        json.loads(result.stdout)  # still one valid document
    if fmt == "text" and command == "drift":
        assert "\\u001b[2J" in result.stdout and "\\u202e" in result.stdout  # shown, escaped


def test_state_list_and_show_escape_what_the_state_took_from_live(
    project: tuple[Path, DataFile],
) -> None:
    root, data = project
    with data.running() as emu:
        refreshed = run_cli("drift", "m.yaml", "--refresh", cwd=root, endpoint=emu.url)
        assert refreshed.returncode == 2, refreshed.stderr
        for args in (("state", "list"), ("state", "show", f"{R}/web")):
            result = run_cli(*args, cwd=root, endpoint=emu.url)
            assert result.returncode == 0, result.stderr
            assert not RAW.search(result.stdout + result.stderr)
