"""The output-format registry: every format renders validate's findings; --format comes from it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from reconciler.cli import app as cli
from reconciler.findings import Finding, Report
from reconciler.output import formats
from reconciler.output.base import Kind

BAD = Path(__file__).parents[1] / "data" / "manifests" / "bad"


def _format_choices(parser: argparse.ArgumentParser, command: str) -> list[str]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    option = next(a for a in sub.choices[command]._actions if "--format" in a.option_strings)
    return list(option.choices or [])


@pytest.mark.parametrize(
    ("command", "kind"), [("validate", Kind.CHECK), ("plan", Kind.PLAN), ("drift", Kind.DRIFT)]
)
def test_format_choices_are_the_registry(command: str, kind: Kind) -> None:
    assert _format_choices(cli.build_parser([command]), command) == formats.choices(kind)
    assert {"text", "github", "json", "markdown", "sarif"} <= set(formats.choices(kind))


@pytest.mark.parametrize("name", formats.choices(Kind.CHECK))
def test_every_format_renders_problems_and_fails_validate(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(BAD)
    assert cli.main(["validate", "--format", name, "name-pattern.yaml"]) == 1
    out = capsys.readouterr().out
    assert "name-pattern.yaml" in out and "-web" in out


def test_warnings_and_errors_per_format() -> None:
    report = Report("validate", key_pairs=2, files=1, root=Path.cwd())
    report.policy = [
        Finding("name-pattern", "name 'A' is odd", "warning", "m.yaml", 3, 5, "us-east-1/A"),
        Finding("max-key-age", "too old", "error", None, 1, 1, "us-east-1/B", "rotate it"),
    ]
    text = formats.get("text").check(report)
    assert text == (
        "m.yaml:3:5: warning: name 'A' is odd [name-pattern]\nus-east-1/B: too old [max-key-age]\n"
    )
    github = formats.get("github").check(report).splitlines()
    assert github == [
        "::warning file=m.yaml,line=3,col=5::name 'A' is odd [name-pattern]",
        "::error::us-east-1/B: too old [max-key-age]",
    ]
    data = json.loads(formats.get("json").check(report))
    assert (data["valid"], data["errors"], data["warnings"]) == (False, 1, 1)
    markdown = formats.get("markdown").check(report)
    assert ":warning:" in markdown and ":x:" in markdown
