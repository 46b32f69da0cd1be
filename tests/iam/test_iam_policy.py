"""`reconciler iam-policy`: least-privilege policies for each role, linted by parliament."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from parliament import analyze_policy_string  # type: ignore[import-untyped]

from tests.helpers import run_cli, write_manifest

OWNED = "ownership: {tag: managed-by, value: lightsail-reconciler}\n"
S3 = "backend: {type: s3, bucket: team-state, key: lightsail/state.json}\n"


def _project(tmp_path: Path, yaml: str) -> Path:
    (tmp_path / ".git").mkdir()
    (tmp_path / "reconciler.yaml").write_text(yaml)
    write_manifest(tmp_path / "m" / "a.yaml", "us-east-1", "- name: web")
    write_manifest(tmp_path / "m" / "b.yaml", "eu-west-1", "- name: api")
    return tmp_path


def _policy(project: Path, *args: str) -> dict[str, Any]:
    result = run_cli("iam-policy", *args, cwd=project)
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    findings = analyze_policy_string(result.stdout).findings
    assert findings == [], [(f.issue, f.detail) for f in findings]
    return document


def _actions(document: dict[str, Any]) -> set[str]:
    return {a for s in document["Statement"] if s["Effect"] == "Allow" for a in s["Action"]}


STORES = ["state", "ssm:/ssh/{region}/{name}", "secretsmanager:lightsail/{region}/{name}"]


@pytest.mark.parametrize("store", STORES)
@pytest.mark.parametrize("role", ["plan", "apply", "key-reader"])
@pytest.mark.parametrize("yaml", [OWNED + S3, S3, OWNED], ids=["owned-s3", "s3", "owned-local"])
def test_every_generated_policy_passes_parliament(
    tmp_path: Path, store: str, role: str, yaml: str
) -> None:
    document = _policy(_project(tmp_path, yaml), "--role", role, "m", "--key-store", store)
    assert document["Version"] == "2012-10-17"


def test_plan_reads_and_never_writes_or_reads_a_secret(tmp_path: Path) -> None:
    project = _project(tmp_path, OWNED + S3)
    for store in STORES:
        actions = _actions(_policy(project, "--role", "plan", "m", "--key-store", store))
        assert "lightsail:GetKeyPairs" in actions and "s3:GetObject" in actions
        writes = {"Create", "Import", "Delete", "Tag", "Untag", "Put", "Label", "Update"}
        assert not [a for a in actions if any(a.split(":")[1].startswith(w) for w in writes)]
        assert not actions & {"ssm:GetParameter", "secretsmanager:GetSecretValue", "kms:Decrypt"}


def test_apply_creates_only_with_the_ownership_tag_and_changes_only_owned(tmp_path: Path) -> None:
    document = _policy(_project(tmp_path, OWNED + S3), "--role", "apply", "m")
    by_sid = {s["Sid"]: s for s in document["Statement"]}
    create = by_sid["CreateAndImportOwnedKeyPairs"]
    assert create["Condition"]["StringEquals"] == {
        "aws:RequestTag/managed-by": "lightsail-reconciler"
    }
    assert create["Condition"]["ForAnyValue:StringEquals"] == {"aws:TagKeys": ["managed-by"]}
    change = by_sid["ChangeOwnedKeyPairs"]
    assert change["Condition"] == {
        "StringEquals": {"aws:ResourceTag/managed-by": "lightsail-reconciler"}
    }
    assert change["Resource"] == [
        "arn:aws:lightsail:eu-west-1:*:KeyPair/*",
        "arn:aws:lightsail:us-east-1:*:KeyPair/*",
    ]
    keep = by_sid["KeepTheOwnershipTag"]
    assert keep["Effect"] == "Deny" and keep["Action"] == ["lightsail:UntagResource"]
    state = by_sid["StateObjects"]
    assert state["Resource"] == [
        "arn:aws:s3:::team-state/lightsail/state.json",
        "arn:aws:s3:::team-state/lightsail/state.json.*",
    ]


def test_key_reader_reads_the_stored_keys_and_nothing_else(tmp_path: Path) -> None:
    project = _project(tmp_path, S3)
    document = _policy(
        project,
        "--role",
        "key-reader",
        "--key-store",
        "ssm:/ssh/{region}/{name}",
        "--key-store-kms-key-id",
        "alias/ssh-keys",
    )
    assert _actions(document) == {
        "ssm:GetParameter",
        "ssm:GetParameters",
        "ssm:GetParameterHistory",
        "kms:Decrypt",
    }
    [keys] = [s for s in document["Statement"] if s["Sid"] == "StoredPrivateKeys"]
    assert keys["Resource"] == ["arn:aws:ssm:*:*:parameter/ssh*"]
    # Keys held in the state: the reader reads the state object, and only that.
    held = _policy(project, "--role", "key-reader")
    assert _actions(held) == {"s3:GetObject", "s3:ListBucket"}


def test_a_bad_ownership_section_is_an_error_with_its_place(tmp_path: Path) -> None:
    project = _project(tmp_path, "ownership: {tag: 'aws:x', value: y, extra: 1}\n")
    result = run_cli("iam-policy", "--role", "plan", cwd=project)
    assert result.returncode == 1
    assert "reconciler.yaml:1:37: unknown field 'ownership.extra'" in result.stderr
    assert "aws:" in result.stderr
