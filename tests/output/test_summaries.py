"""Plan, apply and destroy count with Terraform's words, and agree with each other."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from reconciler.emulator import Emulator
from tests.helpers import run_cli, write_manifest

R = "us-east-1"


def test_a_mixed_plan_and_its_apply_count_alike_and_destroy_says_what_it_destroyed(
    tmp_path: Path, emulator: Emulator, lightsail: Any
) -> None:
    def cli(*args: str) -> Any:
        return run_cli(*args, cwd=tmp_path, endpoint=emulator.url)

    write_manifest(tmp_path / "m.yaml", R, "- name: ka\n- name: kb\n- name: kc\n- name: kd")
    assert cli("apply", "m.yaml", "--auto-approve").returncode == 0
    lightsail.create_key_pair(keyPairName="kx")
    write_manifest(
        tmp_path / "m.yaml",
        R,
        "- name: kx\n  adopt: true\n- name: ke\n- name: kd\n- name: kc\n"
        "- name: ka\n  tags: {t: '1'}",
    )
    args = ("m.yaml", "--prune", "--replace", f"{R}/kc")
    planned = cli("plan", *args)
    assert planned.returncode == 0, planned.stderr
    summary = "1 to import, 2 to add, 1 to change, 2 to destroy"
    assert f"Plan: {summary}." in planned.stdout
    listed = re.findall(rf"^  \S+ {R}/(\w+)  \(", planned.stdout, re.M)
    assert listed == ["ka", "kb", "kc", "ke", "kx"]  # address order, each with its symbol
    applied = cli("apply", *args, "--auto-approve")
    assert applied.returncode == 0, applied.stderr
    assert (
        "Apply complete! Resources: 1 imported, 2 added, 1 changed, 2 destroyed." in applied.stderr
    )
    destroyed = cli("destroy", "m.yaml", "--auto-approve")
    assert destroyed.returncode == 0, destroyed.stderr
    assert "Destroy complete! Resources: 5 destroyed." in destroyed.stderr


def test_a_plan_with_errors_never_says_no_changes(
    tmp_path: Path, emulator: Emulator, lightsail: Any
) -> None:
    lightsail.create_key_pair(keyPairName="taken")  # live, not in the state: a conflict
    write_manifest(tmp_path / "m.yaml", R, "- name: taken")
    planned = run_cli("plan", "m.yaml", cwd=tmp_path, endpoint=emulator.url)
    assert planned.returncode == 1
    assert "No changes" not in planned.stdout
    assert "Plan: 0 to add, 0 to change, 0 to destroy. 1 error above to resolve first." in (
        planned.stdout
    )
    markdown = run_cli(
        "plan", "m.yaml", "--format", "markdown", cwd=tmp_path, endpoint=emulator.url
    )
    assert "No changes" not in markdown.stdout
