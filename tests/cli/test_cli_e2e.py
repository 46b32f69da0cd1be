"""plan -> apply -> plan through the real CLI against the emulator over HTTP."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from reconciler.emulator import Emulator, EmulatorConfig
from reconciler.keys import generate_rsa
from reconciler.state.document import FORMAT_VERSION
from tests.conftest import lightsail_client
from tests.helpers import (
    assert_no_leak,
    created_fingerprint,
    load_state,
    run_cli,
    same_public_key,
    state_entries,
    write_manifest,
)

SCHEMAS = Path(__file__).resolve().parents[2] / "reconciler" / "schemas"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write_manifest(
        tmp_path / "manifests" / "web.yaml",
        "us-east-1",
        """
        - name: web-prod
          tags: {env: prod, cost-center: null}
        - name: web-dev
        """,
        defaults="{team: platform}",
    )
    write_manifest(
        tmp_path / "manifests" / "eu.yaml",
        "eu-west-1",
        """
        - name: etl
          tags: {env: ""}
        """,
    )
    return tmp_path


def test_plan_apply_plan_converges_and_records_everything(
    project: Path, emulator: Emulator, lightsail: Any
) -> None:
    url = emulator.url
    first = run_cli("plan", "manifests", "--detailed-exitcode", cwd=project, endpoint=url)
    assert first.returncode == 2, first.stderr
    assert "us-east-1/web-prod" in first.stdout and "(create)" in first.stdout
    assert 'env = "prod"' in first.stdout and "cost-center (no value)" in first.stdout
    assert "Plan: 3 to add" in first.stdout
    assert not (project / "reconciler.state.json").exists()  # plan writes nothing

    applied = run_cli("apply", "manifests", "--auto-approve", cwd=project, endpoint=url)
    assert applied.returncode == 0, applied.stderr
    assert "Apply complete! Resources: 3 added, 0 changed, 0 destroyed." in applied.stderr

    state_path = project / "reconciler.state.json"
    assert stat.S_IMODE(state_path.stat().st_mode) == 0o600
    document = load_state(state_path)
    assert document["version"] == FORMAT_VERSION and document["serial"] >= 1 and document["lineage"]
    entries = state_entries(state_path)
    assert set(entries) == {"us-east-1/web-prod", "us-east-1/web-dev", "eu-west-1/etl"}
    web = entries["us-east-1/web-prod"]
    live = lightsail.get_key_pair(keyPairName="web-prod")["keyPair"]
    assert web["arn"] == live["arn"] and web["fingerprint"] == live["fingerprint"]
    assert web["origin"] == "created" and web["supportCode"] == live["supportCode"]
    assert web["location"]["regionName"] == "us-east-1" and web["resourceType"] == "KeyPair"
    assert web["operation"]["operationType"] == "CreateKeyPair"
    assert web["tags"] == {"team": "platform", "env": "prod", "cost-center": None}
    # The stored private key is the one Lightsail holds the public half of.
    assert created_fingerprint(web["privateKey"]) == live["fingerprint"]
    assert same_public_key(web["privateKey"], web["publicKeyBase64"])
    eu = lightsail_client(url, "eu-west-1").get_key_pair(keyPairName="etl")["keyPair"]
    assert eu["tags"] == [{"key": "env", "value": ""}]

    again = run_cli("plan", "manifests", "--detailed-exitcode", cwd=project, endpoint=url)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "No changes. 3 unchanged." in again.stdout

    pems = [e["privateKey"] for e in entries.values()]
    assert_no_leak([first.stdout, first.stderr, applied.stdout, applied.stderr, again.stdout], pems)


def test_plan_reads_with_paginated_get_key_pairs_only(project: Path) -> None:
    with Emulator(EmulatorConfig(page_size=2, key_pool=4)) as emu:
        client = lightsail_client(emu.url)
        for i in range(7):
            client.create_key_pair(keyPairName=f"other-{i}")
        emu.reset_counters()
        result = run_cli("plan", "manifests", cwd=project, endpoint=emu.url)
        assert result.returncode == 0, result.stderr
        # 8 key pairs in us-east-1 at 2 per page -> 4 calls; eu-west-1 empty -> 1.
        assert emu.calls["GetKeyPairs"] == 5
        assert emu.calls["GetKeyPair"] == 0


def test_json_plan_matches_its_schema(project: Path, emulator: Emulator) -> None:
    result = run_cli("plan", "manifests", "--format", "json", cwd=project, endpoint=emulator.url)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    schema = json.loads((SCHEMAS / "plan.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(plan)
    assert plan["summary"]["create"] == 3
    assert [c["address"] for c in plan["changes"]] == sorted(c["address"] for c in plan["changes"])


def test_existing_key_pair_not_in_state_is_a_conflict(
    project: Path, emulator: Emulator, lightsail: Any
) -> None:
    lightsail.create_key_pair(keyPairName="web-dev")
    result = run_cli("apply", "manifests", "--auto-approve", cwd=project, endpoint=emulator.url)
    assert result.returncode == 1
    assert "us-east-1/web-dev already exists in Lightsail but is not in the state" in result.stdout
    assert "reconciler import us-east-1/web-dev" in result.stdout
    # The others were still created; the conflicting one was not touched.
    assert set(state_entries(project / "reconciler.state.json")) == {
        "us-east-1/web-prod",
        "eu-west-1/etl",
    }
    assert emulator.calls["CreateKeyPair"] == 3  # one by the test, two by apply


def test_apply_without_terminal_or_auto_approve_changes_nothing(
    project: Path, emulator: Emulator
) -> None:
    result = run_cli("apply", "manifests", cwd=project, endpoint=emulator.url, input="yes\n")
    assert result.returncode == 1
    assert "needs confirmation" in result.stderr and "--auto-approve" in result.stderr
    assert emulator.calls["CreateKeyPair"] == 0
    assert not (project / "reconciler.state.json").exists()


def test_invalid_manifests_stop_plan_before_any_lightsail_call(
    tmp_path: Path, emulator: Emulator
) -> None:
    write_manifest(tmp_path / "bad.yaml", "us-east-1", "- name: -bad-")
    result = run_cli("plan", "bad.yaml", cwd=tmp_path, endpoint=emulator.url)
    assert result.returncode == 1
    assert "bad.yaml:" in result.stderr
    assert sum(emulator.calls.values()) == 0
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        ("AccessDeniedException", "permission"),
        ("UnauthenticatedException", "credentials"),
    ],
)
def test_service_errors_become_one_line_with_a_hint(
    project: Path, emulator: Emulator, code: str, hint: str
) -> None:
    emulator.force_error = code
    result = run_cli("plan", "manifests", cwd=project, endpoint=emulator.url)
    assert result.returncode == 1
    assert code in result.stdout + result.stderr
    assert hint in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_missing_credentials_is_a_clear_error(project: Path, emulator: Emulator) -> None:
    env = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    result = run_cli("plan", "manifests", cwd=project, endpoint=emulator.url, env=env)
    assert result.returncode == 1
    assert "no AWS credentials found" in result.stderr
    assert "Traceback" not in result.stderr


def test_state_show_hides_the_key_and_key_get_reveals_it(project: Path, emulator: Emulator) -> None:
    url = emulator.url
    assert (
        run_cli("apply", "manifests", "--auto-approve", cwd=project, endpoint=url).returncode == 0
    )
    pem = state_entries(project / "reconciler.state.json")["us-east-1/web-prod"]["privateKey"]

    listed = run_cli("state", "list", cwd=project)
    assert "us-east-1/web-prod\tcreated" in listed.stdout and "private-key:held" in listed.stdout
    shown = run_cli("state", "show", "us-east-1/web-prod", cwd=project)
    assert json.loads(shown.stdout)["privateKey"].startswith("(sensitive")
    assert_no_leak([listed.stdout, shown.stdout, shown.stderr], [pem])

    revealed = run_cli("state", "show", "us-east-1/web-prod", "--reveal", cwd=project)
    assert json.loads(revealed.stdout)["privateKey"] == pem
    got = run_cli("key", "get", "us-east-1/web-prod", cwd=project)
    assert got.returncode == 0 and got.stdout.strip() == pem.strip()
    public = run_cli("key", "get", "us-east-1/web-prod", "--public", cwd=project)
    assert same_public_key(pem, public.stdout)
    missing = run_cli("key", "get", "us-east-1/nope", cwd=project)
    assert missing.returncode == 1 and "not in the state" in missing.stderr


def test_verbose_output_never_shows_key_material(project: Path, emulator: Emulator) -> None:
    result = run_cli(
        "apply", "manifests", "--auto-approve", "-vv", cwd=project, endpoint=emulator.url
    )
    assert result.returncode == 0, result.stderr
    pems = [e["privateKey"] for e in state_entries(project / "reconciler.state.json").values()]
    assert_no_leak([result.stdout, result.stderr], pems)


def test_local_flag_runs_the_whole_flow_without_an_account(project: Path) -> None:
    env = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    applied = run_cli("apply", "manifests", "--local", "--auto-approve", cwd=project, env=env)
    assert applied.returncode == 0, applied.stderr
    state = project / ".reconciler" / "local.state.json"
    assert len(state_entries(state)) == 3
    again = run_cli("plan", "manifests", "--local", "--detailed-exitcode", cwd=project, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o600


SERVICE_ERRORS = [
    "AccessDeniedException",
    "AccountSetupInProgressException",
    "InvalidInputException",
    "NotFoundException",
    "OperationFailureException",
    "RegionSetupInProgressException",
    "ServiceException",
    "UnauthenticatedException",
]


@pytest.mark.parametrize("code", SERVICE_ERRORS)
def test_a_failing_create_names_the_key_pair_and_keeps_what_succeeded(
    tmp_path: Path, code: str
) -> None:
    key = generate_rsa()
    write_manifest(
        tmp_path / "m.yaml",
        "us-east-1",
        f"""
        - name: imported
          publicKey: "{key.public_openssh}"
        - name: web
        """,
    )
    with Emulator(EmulatorConfig(key_pool=1)) as emu:
        emu.operation_errors["CreateKeyPair"] = code
        result = run_cli("apply", "m.yaml", "--auto-approve", cwd=tmp_path, endpoint=emu.url)
        assert result.returncode == 1
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1, result.stderr
        assert errors[0].startswith("Error: creating us-east-1/web: ") and code in errors[0]
        hint = result.stderr.splitlines()[result.stderr.splitlines().index(errors[0]) + 1]
        assert hint.startswith("  -> ") and len(hint) > 20
        # The import went through and is recorded; the failed create left nothing behind.
        assert set(state_entries(tmp_path / "reconciler.state.json")) == {"us-east-1/imported"}
        assert emu.committed["CreateKeyPair"] == 0
