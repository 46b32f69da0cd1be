"""Scoped runs: --target and --exclude on plan, apply, drift and destroy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator import Emulator
from reconciler.errors import UsageError
from reconciler.model import Address
from reconciler.planning.scope import Scope
from tests.helpers import run_cli, state_entries, write_manifest


def test_targets_and_excludes_match_whole_addresses_with_globs() -> None:
    scope = Scope.parse(["us-east-1/web-*", "eu-west-1/etl"], ["us-east-1/web-old"])
    assert scope.covers(Address("us-east-1", "web-1"))
    assert scope.covers(Address("eu-west-1", "etl"))
    assert not scope.covers(Address("us-east-1", "web-old"))
    assert not scope.covers(Address("us-east-1", "db"))
    assert not scope.covers(Address("us-west-2", "web-1"))
    assert not scope.covers(Address("eu-west-1", "etl-2"))
    only_excludes = Scope.parse([], ["*/tmp-*"])
    assert only_excludes.covers(Address("us-east-1", "web"))
    assert not only_excludes.covers(Address("us-east-1", "tmp-1"))
    assert not Scope() and Scope().covers(Address("us-east-1", "x"))


def test_a_pattern_without_a_region_is_refused() -> None:
    with pytest.raises(UsageError, match="--target 'web-1' is not a key pair address"):
        Scope.parse(["web-1"], [])


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write_manifest(
        tmp_path / "m" / "us.yaml",
        "us-east-1",
        """
        - name: web-1
        - name: web-2
        - name: db
        """,
    )
    write_manifest(tmp_path / "m" / "eu.yaml", "eu-west-1", "- name: etl")
    return tmp_path


def test_plan_and_apply_with_target_touch_only_the_target_and_say_what_was_left_out(
    project: Path, emulator: Emulator, lightsail: Any
) -> None:
    url = emulator.url
    plan = run_cli("plan", "m", "--target", "us-east-1/web-*", cwd=project, endpoint=url)
    assert plan.returncode == 0, plan.stderr
    assert "us-east-1/web-1" in plan.stdout and "us-east-1/web-2" in plan.stdout
    assert "(create)" in plan.stdout and "us-east-1/db  (" not in plan.stdout
    assert "Plan: 2 to add" in plan.stdout
    assert (
        "Scoped plan: 2 other key pair(s) with pending changes or findings were left out "
        "by --target/--exclude: eu-west-1/etl, us-east-1/db." in plan.stdout
    )
    as_json = run_cli(
        "plan", "m", "--target", "us-east-1/web-*", "--format", "json", cwd=project, endpoint=url
    )
    data = json.loads(as_json.stdout)
    assert data["leftOut"] == ["eu-west-1/etl", "us-east-1/db"]
    assert [c["address"] for c in data["changes"]] == ["us-east-1/web-1", "us-east-1/web-2"]

    applied = run_cli(
        "apply", "m", "--target", "us-east-1/web-*", "--auto-approve", cwd=project, endpoint=url
    )
    assert applied.returncode == 0, applied.stderr
    assert "2 added" in applied.stderr
    state = project / "reconciler.state.json"
    assert set(state_entries(state)) == {"us-east-1/web-1", "us-east-1/web-2"}
    live = {kp["name"] for kp in lightsail.get_key_pairs()["keyPairs"]}
    assert live == {"web-1", "web-2"}

    rest = run_cli(
        "apply", "m", "--exclude", "us-east-1/web-*", "--auto-approve", cwd=project, endpoint=url
    )
    assert rest.returncode == 0, rest.stderr
    assert "2 added" in rest.stderr and "Scoped plan" not in rest.stdout
    assert set(state_entries(state)) == {
        "us-east-1/web-1",
        "us-east-1/web-2",
        "us-east-1/db",
        "eu-west-1/etl",
    }


def test_drift_and_destroy_respect_the_scope(
    project: Path, emulator: Emulator, lightsail: Any
) -> None:
    url = emulator.url
    assert run_cli("apply", "m", "--auto-approve", cwd=project, endpoint=url).returncode == 0
    for name in ("web-1", "db"):
        emulator.store.set_tags("us-east-1", name, {"touched": "yes"})
    drift = run_cli(
        "drift", "m", "--target", "us-east-1/web-*", "--format", "json", cwd=project, endpoint=url
    )
    assert drift.returncode == 2, drift.stderr
    found = {f["address"] for f in json.loads(drift.stdout)["findings"]}
    assert found == {"us-east-1/web-1"}

    refreshed = run_cli(
        "drift", "m", "--exclude", "us-east-1/db", "--refresh", cwd=project, endpoint=url
    )
    assert refreshed.returncode == 2
    entries = state_entries(project / "reconciler.state.json")
    assert entries["us-east-1/web-1"]["tags"] == {"touched": "yes"}
    assert entries["us-east-1/db"]["tags"] == {}  # out of scope: left as it was

    destroyed = run_cli(
        "destroy",
        "m",
        "--target",
        "us-east-1/*",
        "--exclude",
        "us-east-1/db",
        "--auto-approve",
        cwd=project,
        endpoint=url,
    )
    assert destroyed.returncode == 0, destroyed.stderr
    assert "2 destroyed" in destroyed.stderr
    live = {kp["name"] for kp in lightsail.get_key_pairs()["keyPairs"]}
    assert live == {"db"}
    assert set(state_entries(project / "reconciler.state.json")) == {
        "us-east-1/db",
        "eu-west-1/etl",
    }


def test_a_saved_scoped_plan_applies_with_its_scope(project: Path, emulator: Emulator) -> None:
    url = emulator.url
    saved = run_cli(
        "plan", "m", "--target", "eu-west-1/etl", "--out", "p.plan", cwd=project, endpoint=url
    )
    assert saved.returncode == 0, saved.stderr
    applied = run_cli("apply", "p.plan", cwd=project, endpoint=url)
    assert applied.returncode == 0, applied.stderr
    assert set(state_entries(project / "reconciler.state.json")) == {"eu-west-1/etl"}


def test_a_malformed_target_is_one_line_and_changes_nothing(
    project: Path, emulator: Emulator
) -> None:
    bad = run_cli(
        "apply", "m", "--target", "web-1", "--auto-approve", cwd=project, endpoint=emulator.url
    )
    assert bad.returncode == 1
    assert "Error: --target 'web-1' is not a key pair address" in bad.stderr
    assert not (project / "reconciler.state.json").exists()


def test_a_target_that_matches_nothing_is_warned_about(project: Path, emulator: Emulator) -> None:
    result = run_cli("plan", "m", "--target", "us-east-1/wbe-*", cwd=project, endpoint=emulator.url)
    assert result.returncode == 0, result.stderr
    assert "--target us-east-1/wbe-* matches no key pair" in result.stderr
    assert "No changes. 0 unchanged." in result.stdout
    assert "4 other key pair(s) with pending changes or findings were left out" in result.stdout
