"""The GitOps example stays runnable: its manifests validate, its commands parse."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.cli.app import build_parser
from reconciler.manifests.load import load_desired
from reconciler.output.markdown import COMMENT_MARKER, DRIFT_MARKER

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gitops"
WORKFLOW = EXAMPLE / ".github" / "workflows" / "lightsail-keypairs.yml"
SHELL_ENDS = {">", "2>", ">>", "|", "||", "&&", ";"}


def _workflow() -> dict[Any, Any]:
    data: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    return data


def _commands() -> list[list[str]]:
    found: list[list[str]] = []
    for job in _workflow()["jobs"].values():
        for step in job["steps"]:
            for line in str(step.get("run", "")).splitlines():
                words = shlex.split(line.strip())
                if words[:1] != ["reconciler"]:
                    continue
                end = next((i for i, w in enumerate(words) if w in SHELL_ENDS), len(words))
                found.append(words[1:end])
    return found


def test_the_example_manifests_are_valid() -> None:
    desired = load_desired([EXAMPLE / "manifests"], root=EXAMPLE)
    assert len(desired.key_pairs) == 3


def test_the_workflow_runs_validate_and_plan_on_pull_requests_and_drift_nightly() -> None:
    workflow = _workflow()
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as a boolean
    assert {"pull_request", "schedule", "push"} <= set(triggers)
    used = {command[0] for command in _commands()}
    assert {"validate", "plan", "apply", "drift"} <= used
    text = WORKFLOW.read_text()
    assert COMMENT_MARKER in text and DRIFT_MARKER in text


@pytest.mark.parametrize("command", _commands(), ids=lambda c: " ".join(c[:2]))
def test_every_reconciler_command_in_the_workflow_parses(command: list[str]) -> None:
    build_parser().parse_args(command)


def test_the_example_policy_holds_for_the_example_manifests(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from reconciler.cli.app import main

    monkeypatch.chdir(EXAMPLE)
    assert main(["validate", "manifests"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["policy", "list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed[0] == "required-tags" and listed[-1] == "max-key-age"
