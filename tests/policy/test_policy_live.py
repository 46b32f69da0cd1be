"""max-key-age against live createdAt, and plan / drift findings as SARIF, through the CLI.

Key pairs are backdated in the emulator (``Store.set_created_at``), never by
sleeping; every SARIF log is checked against the official 2.1.0 schema.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import referencing

from reconciler.emulator import Emulator, EmulatorConfig
from tests.conftest import lightsail_client
from tests.helpers import run_cli, write_manifest
from tests.sarif_helpers import results, valid_sarif

R = "us-east-1"
DAY = 86_400
SCHEMAS = Path(__file__).resolve().parents[2] / "reconciler" / "schemas"
POLICY = """\
policy:
  rules:
    - id: max-key-age
      days: 90
    - id: required-tags
      severity: warning
      keys: {owner: null}
"""


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(key_pool=4)) as emulator:
        yield emulator


def cli(project: Path, emu: Emulator, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=project, endpoint=emu.url)


def schema_valid(name: str, data: Any) -> None:
    """``data`` against schemas/NAME.schema.json, with the finding schema it refers to."""
    resources = [
        (
            json.loads(path.read_text())["$id"],
            referencing.Resource.from_contents(json.loads(path.read_text())),
        )
        for path in SCHEMAS.glob("*.schema.json")
    ]
    registry: Any = referencing.Registry().with_resources(resources)
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator(schema, registry=registry).validate(data)


def test_max_key_age_fails_plan_and_drift_only_for_old_key_pairs(
    tmp_path: Path, emu: Emulator
) -> None:
    (tmp_path / "reconciler.yaml").write_text(POLICY)
    manifest = "- name: old\n  tags: {owner: ana}\n- name: young\n  tags: {owner: bo}\n"
    write_manifest(
        tmp_path / "m.yaml",
        R,
        manifest
        + "- name: excused\n"
        + (
            "  tags: {owner: cy}\n"
            "  policyExceptions:\n"
            "    - {rule: max-key-age, reason: rotated by hand, expires: 2999-12-31}"
        ),
    )
    applied = cli(tmp_path, emu, "apply", "m.yaml", "--auto-approve")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert cli(tmp_path, emu, "plan", "m.yaml").returncode == 0  # all young

    now = time.time()
    emu.store.set_created_at(R, "old", now - 200 * DAY)
    emu.store.set_created_at(R, "excused", now - 400 * DAY)
    emu.store.set_created_at(R, "young", now - 89 * DAY)

    plan = cli(tmp_path, emu, "plan", "m.yaml", "--format", "json")
    assert plan.returncode == 1, plan.stdout + plan.stderr
    data = json.loads(plan.stdout)
    schema_valid("plan", data)
    assert [(f["rule"], f["address"], f["severity"]) for f in data["policy"]] == [
        ("max-key-age", "us-east-1/old", "error")
    ]
    assert data["policy"][0]["message"] == "key pair us-east-1/old is 200 days old; at most 90"
    assert (data["policy"][0]["file"], data["policy"][0]["line"]) == ("m.yaml", 5)

    text = cli(tmp_path, emu, "plan", "m.yaml")
    assert text.returncode == 1
    assert "m.yaml:5:5: key pair us-east-1/old is 200 days old; at most 90 [max-key-age]" in (
        text.stdout
    )

    drift = cli(tmp_path, emu, "drift", "m.yaml", "--format", "json")
    assert drift.returncode == 1, drift.stdout + drift.stderr
    report = json.loads(drift.stdout)
    schema_valid("drift", report)
    assert report["inSync"] is True
    assert [f["address"] for f in report["policy"]] == ["us-east-1/old"]

    # As a warning, an old key pair is reported and fails nothing.
    (tmp_path / "reconciler.yaml").write_text(
        POLICY.replace("days: 90", "days: 90\n      severity: warning")
    )
    assert cli(tmp_path, emu, "plan", "m.yaml").returncode == 0
    sarif = cli(tmp_path, emu, "drift", "m.yaml", "--format", "sarif")
    assert sarif.returncode == 0, sarif.stderr
    assert results(valid_sarif(sarif.stdout)) == [("max-key-age", "warning", "m.yaml", 5, 5)]


def test_plan_findings_and_drift_as_sarif(tmp_path: Path, emu: Emulator) -> None:
    (tmp_path / "reconciler.yaml").write_text(POLICY)
    write_manifest(tmp_path / "m.yaml", R, "- name: web\n- name: api\n  tags: {owner: ana}")
    lightsail_client(emu.url).create_key_pair(keyPairName="web")  # exists, not in the state

    plan = cli(tmp_path, emu, "plan", "m.yaml", "--format", "sarif")
    assert plan.returncode == 1, plan.stderr
    log = valid_sarif(plan.stdout)
    assert results(log) == [
        ("conflict", "error", "m.yaml", 5, 5),
        ("required-tags", "warning", "m.yaml", 5, 5),
        ("planned-change", "note", "m.yaml", 6, 5),  # api is to be created, where it is declared
    ]
    conflict = log["runs"][0]["results"][0]
    assert conflict["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == "us-east-1/web"

    applied = cli(tmp_path, emu, "apply", "m.yaml", "--auto-approve")
    assert applied.returncode == 1  # the conflict stays; api is created
    lightsail_client(emu.url).tag_resource(resourceName="api", tags=[{"key": "who", "value": "x"}])
    drift = cli(tmp_path, emu, "drift", "m.yaml", "--format", "sarif")
    assert drift.returncode == 2, drift.stderr
    found = results(valid_sarif(drift.stdout))
    assert ("tags-changed", "warning", "m.yaml", 6, 5) in found
    assert ("required-tags", "warning", "m.yaml", 5, 5) in found


def test_apply_refuses_manifests_that_break_the_policy_and_changes_nothing(
    tmp_path: Path, emu: Emulator
) -> None:
    (tmp_path / "reconciler.yaml").write_text(
        'policy:\n  rules:\n    - id: name-pattern\n      pattern: "^[a-z][a-z0-9-]*$"\n'
    )
    write_manifest(tmp_path / "m.yaml", R, "- name: ok\n- name: Bad_Name\n")
    refused = cli(tmp_path, emu, "apply", "m.yaml", "--auto-approve")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "m.yaml:6:" in refused.stderr and "[name-pattern]" in refused.stderr
    assert "nothing was changed" in refused.stderr
    assert emu.store.names(R) == []

    write_manifest(tmp_path / "m.yaml", R, "- name: ok\n- name: fine\n")
    applied = cli(tmp_path, emu, "apply", "m.yaml", "--auto-approve")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert emu.store.names(R) == ["fine", "ok"]


def test_an_old_key_pair_does_not_block_apply(tmp_path: Path, emu: Emulator) -> None:
    (tmp_path / "reconciler.yaml").write_text(POLICY)
    write_manifest(tmp_path / "m.yaml", R, "- name: old\n  tags: {owner: ana}\n")
    assert cli(tmp_path, emu, "apply", "m.yaml", "--auto-approve").returncode == 0
    emu.store.set_created_at(R, "old", time.time() - 200 * DAY)
    write_manifest(tmp_path / "m.yaml", R, "- name: old\n  tags: {owner: bo}\n")
    applied = cli(tmp_path, emu, "apply", "m.yaml", "--auto-approve")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    tags = lightsail_client(emu.url).get_key_pair(keyPairName="old")["keyPair"]["tags"]
    assert tags == [{"key": "owner", "value": "bo"}]
