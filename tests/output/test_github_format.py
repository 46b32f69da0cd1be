"""`--format github` carries the result: an annotation where each change or drift is declared,
findings without a place on reconciler.yaml, the markdown report in the job summary."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.emulator import Emulator, EmulatorConfig
from tests.conftest import lightsail_client
from tests.helpers import run_cli, write_manifest
from tests.sarif_helpers import results, valid_sarif

R = "us-east-1"
COMMAND = re.compile(r"^::(error|warning|notice)(?: file=([^,]*),line=(\d+),col=(\d+))?::(.*)$")


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(key_pool=4)) as emulator:
        yield emulator


def cli(
    project: Path, emu: Emulator, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=project, endpoint=emu.url, env=env)


def workflow_commands(text: str) -> list[tuple[str, str | None, int | None, str]]:
    """(level, file, line, message) of each workflow command, every line being one."""
    out: list[tuple[str, str | None, int | None, str]] = []
    for line in text.splitlines():
        match = COMMAND.match(line)
        assert match, f"not a workflow command: {line!r}"
        level, file, number, _, message = match.groups()
        out.append((level, file, int(number) if number else None, message))
    return out


def test_plan_annotates_each_change_at_its_manifest_line(tmp_path: Path, emu: Emulator) -> None:
    write_manifest(tmp_path / "m.yaml", R, "- name: web\n- name: api\n  tags: {owner: ana}")
    summary = tmp_path / "summary.md"
    plan = cli(
        tmp_path,
        emu,
        "plan",
        "m.yaml",
        "--format",
        "github",
        env={"GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert plan.returncode == 0, plan.stderr
    found = workflow_commands(plan.stdout)
    assert found[:2] == [
        ("notice", "m.yaml", 6, f"+ {R}/api (create): declared in the manifests"),
        ("notice", "m.yaml", 5, f"+ {R}/web (create): declared in the manifests"),
    ]
    assert found[-1] == (
        "notice",
        None,
        None,
        "Plan: 2 to add, 0 to change, 0 to destroy.",
    )
    # The job summary holds the markdown report, appended (an earlier step's stays).
    assert "<!-- lightsail-reconciler:plan -->" in summary.read_text()
    again = cli(
        tmp_path,
        emu,
        "plan",
        "m.yaml",
        "--format",
        "github",
        env={"GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert again.returncode == 0 and summary.read_text().count("lightsail-reconciler:plan") == 2


def test_findings_without_a_place_are_shown_once_on_reconciler_yaml(
    tmp_path: Path, emu: Emulator
) -> None:
    (tmp_path / "reconciler.yaml").write_text("policy: {rules: []}\n")
    write_manifest(tmp_path / "m.yaml", R, "- name: web")
    assert cli(tmp_path, emu, "apply", "m.yaml", "--auto-approve").returncode == 0
    write_manifest(tmp_path / "m.yaml", R, "- name: other")
    lightsail_client(emu.url).delete_key_pair(keyPairName="web")  # gone outside: drift
    drift = cli(tmp_path, emu, "drift", "m.yaml", "--format", "github")
    assert drift.returncode == 2, drift.stderr
    [deleted] = [a for a in workflow_commands(drift.stdout) if "deleted" in a[3]]
    assert deleted[1:3] == ("reconciler.yaml", 1)
    assert deleted[3].count(f"{R}/web") == 1, deleted  # the address is named once
    sarif = cli(tmp_path, emu, "drift", "m.yaml", "--format", "sarif")
    log = valid_sarif(sarif.stdout)  # every result has a physical location
    assert ("deleted", "warning", "reconciler.yaml", 1, 1) in results(log)
