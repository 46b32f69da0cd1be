"""Rotation, generations and the instance guard end to end: the real CLI against the
emulator over HTTP. Key pairs are made old with the emulator's ``set_created_at``
hook; instances are launched with plain boto3."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from reconciler.custody import key_fingerprint
from reconciler.emulator import Emulator, EmulatorConfig
from tests.conftest import aws_client, lightsail_client
from tests.custody.test_keystore import aws_env, no_private_key_text, unique
from tests.emulator.test_emulator_instances import launch
from tests.emulator_helpers import ed25519_openssh
from tests.helpers import run_cli, state_entries, write_manifest

# The whole tool end to end (faults, crashes, a browser, a terminal, real tools):
# `make test-fast` leaves these out.
pytestmark = pytest.mark.e2e

SCHEMAS = Path(__file__).resolve().parents[2] / "reconciler" / "schemas"
DAY = 86400.0
MANIFEST = "- name: web\n  rotate: {after: 90d, keep: 1}\n- name: steady"


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(key_pool=8)) as emulator:
        yield emulator


@pytest.fixture
def client(emu: Emulator) -> Any:
    return lightsail_client(emu.url)


def cli(project: Path, emu: Emulator, *args: str, code: int = 0) -> str:
    result: subprocess.CompletedProcess[str] = run_cli(*args, cwd=project, endpoint=emu.url)
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout + result.stderr


def key(project: Path, emu: Emulator, *args: str) -> str:
    return cli(project, emu, "key", "get", "us-east-1/web", *args)


def age(emu: Emulator, name: str, days: float) -> None:
    emu.store.set_created_at("us-east-1", name, time.time() - days * DAY)


def fingerprint(client: Any, name: str) -> str:
    return str(client.get_key_pair(keyPairName=name)["keyPair"]["fingerprint"])


@pytest.fixture
def project(tmp_path: Path, emu: Emulator) -> Path:
    write_manifest(tmp_path / "m.yaml", "us-east-1", MANIFEST)
    emu.reset_counters()
    cli(tmp_path, emu, "apply", "m.yaml", "--auto-approve")
    # A plan that only creates reads no instances.
    assert emu.calls["GetInstances"] == 0 and emu.calls["CreateKeyPair"] == 2
    return tmp_path


def test_a_backdated_key_pair_rotates_and_keeps_its_old_key_as_generation_1(
    project: Path, emu: Emulator, client: Any
) -> None:
    first_key, first_fp = key(project, emu), fingerprint(client, "web")
    age(emu, "web", 97)
    age(emu, "steady", 400)  # no rotate: declared, so never rotated
    emu.reset_counters()

    planned = cli(project, emu, "plan", "m.yaml", "--format", "json")
    data = json.loads(planned[: planned.rindex("}") + 1])
    jsonschema.validate(data, json.loads((SCHEMAS / "plan.schema.json").read_text()))
    [change] = data["changes"]
    assert (change["action"], change["address"]) == ("rotate", "us-east-1/web")
    assert change["reasonCode"] == "rotation-due"
    assert change["reason"] == "created 97 days ago; rotate after 90 days"
    assert change["keep"] == 1 and change["instances"] == []
    assert emu.calls["GetInstances"] == 1  # the rotation's region, once

    out = cli(project, emu, "apply", "m.yaml", "--auto-approve")
    assert (
        "-/+ us-east-1/web  (rotate)" in out and "Plan: 1 to add, 0 to change, 1 to destroy." in out
    )
    assert fingerprint(client, "web") != first_fp
    assert emu.committed["DeleteKeyPair"] == 1 and emu.committed["CreateKeyPair"] == 1
    assert key(project, emu, "--generation", "1") == first_key
    assert key(project, emu) != first_key
    shown = json.loads(cli(project, emu, "state", "show", "us-east-1/web"))
    [generation] = shown["generations"]
    assert generation["generation"] == 1 and generation["fingerprint"] == first_fp
    assert generation["retiredAt"] >= generation["createdAt"] > 0
    assert generation["privateKey"].startswith("(sensitive")
    assert "No changes" in cli(project, emu, "plan", "m.yaml")

    # A second rotation keeps one earlier key (keep: 1): the first key is dropped.
    second_key, second_fp = key(project, emu), fingerprint(client, "web")
    cli(project, emu, "apply", "m.yaml", "--auto-approve", "--rotate", "us-east-1/web")
    assert key(project, emu, "--generation", "1") == second_key
    refused = cli(project, emu, "key", "get", "us-east-1/web", "--generation", "2", code=1)
    assert "keeps 1 earlier key; there is no generation 2" in refused
    entry = state_entries(project / "reconciler.state.json")["us-east-1/web"]
    assert [g["fingerprint"] for g in entry["generations"]] == [second_fp]


def test_an_instance_launched_with_the_key_pair_blocks_rotation_without_allow_in_use(
    project: Path, emu: Emulator, client: Any
) -> None:
    write_manifest(project / "m.yaml", "us-east-1", "- name: web\n  rotate: {after: 90d}")
    first_key = key(project, emu)
    launch(client, "vm-1", keyPairName="web")
    age(emu, "web", 120)
    emu.reset_counters()

    refused = cli(project, emu, "apply", "m.yaml", "--auto-approve", code=1)
    assert "refusing to rotate us-east-1/web: 1 instance(s) were launched with it (vm-1)" in refused
    assert "--allow-in-use" in refused
    assert emu.calls["DeleteKeyPair"] == 0 and emu.calls["CreateKeyPair"] == 0
    assert "launched with it (vm-1)" in cli(project, emu, "plan", "m.yaml", code=1)

    listed = cli(project, emu, "state", "list")
    assert "us-east-1/web\tcreated" in listed and "\tinstances:1" in listed

    out = cli(project, emu, "apply", "m.yaml", "--auto-approve", "--allow-in-use")
    assert "instances launched with it: vm-1" in out
    # keep is 0, but vm-1 still holds the old public key: its private key is kept.
    assert key(project, emu, "--generation", "1") == first_key
    assert "\tgenerations:1" in cli(project, emu, "state", "list")


@pytest.mark.parametrize(
    "store", ["ssm:/{prefix}/{{region}}/{{name}}", "secretsmanager:{prefix}/{{region}}/{{name}}"]
)
def test_rotation_keeps_generations_in_the_same_key_store(
    tmp_path: Path, emu: Emulator, client: Any, moto_url: str, store: str
) -> None:
    spec = store.format(prefix=unique("rotate"))
    env = aws_env(moto_url)

    def run(*args: str, code: int = 0) -> str:
        result = run_cli(*args, cwd=tmp_path, endpoint=emu.url, env=env)
        assert result.returncode == code, result.stdout + result.stderr
        return result.stdout + result.stderr

    write_manifest(tmp_path / "m.yaml", "us-east-1", "- name: web\n  rotate: {after: 30d, keep: 1}")
    run("apply", "m.yaml", "--auto-approve", f"--key-store={spec}")
    keys = [run("key", "get", "us-east-1/web")]
    for _ in range(2):
        age(emu, "web", 31)
        assert "(rotate)" in run("apply", "m.yaml", "--auto-approve")
        keys.insert(0, run("key", "get", "us-east-1/web"))
    assert len(set(keys)) == 3
    assert run("key", "get", "us-east-1/web", "--generation", "1") == keys[1]
    assert key_fingerprint(keys[0], "created") == fingerprint(client, "web")
    entry = state_entries(tmp_path / "reconciler.state.json")["us-east-1/web"]
    # References only, generations included.
    assert '"privateKey"' not in json.dumps(entry) and "PRIVATE KEY" not in json.dumps(entry)
    [generation] = entry["generations"]  # keep: 1; the first key was dropped from the store
    locations = {entry["privateKeyRef"]["location"], generation["privateKeyRef"]["location"]}
    assert len(locations) == 2
    assert no_private_key_text(tmp_path) == []
    assert stored_names(moto_url, spec) == locations

    # A kept generation gone from its store is drift, like a current key.
    old = generation["privateKeyRef"]["location"]
    if spec.startswith("ssm:"):
        aws_client("ssm", moto_url).delete_parameter(Name=old)
    else:
        secrets = aws_client("secretsmanager", moto_url)
        secrets.delete_secret(SecretId=old, ForceDeleteWithoutRecovery=True)
    drift = run("drift", "m.yaml", "--format", "json", code=2)
    [finding] = json.loads(drift[: drift.rindex("}") + 1])["findings"]
    assert finding["kind"] == "key-missing" and old in finding["detail"]


def stored_names(url: str, spec: str) -> set[str]:
    """The parameters (by name) or secrets (by ARN) under ``spec``'s prefix."""
    scheme, template = spec.split(":", 1)
    prefix = template.split("{", 1)[0]
    if scheme == "ssm":
        found = aws_client("ssm", url).describe_parameters(
            ParameterFilters=[{"Key": "Name", "Option": "BeginsWith", "Values": [prefix]}]
        )["Parameters"]
        return {p["Name"] for p in found}
    secrets = aws_client("secretsmanager", url).list_secrets(
        Filters=[{"Key": "name", "Values": [prefix]}]
    )["SecretList"]
    return {s["ARN"] for s in secrets}


def test_drift_with_instances_reports_unused_and_unmanaged_key_pairs_in_use(
    project: Path, emu: Emulator, client: Any
) -> None:
    client.import_key_pair(keyPairName="byhand", publicKeyBase64=ed25519_openssh())
    launch(client, "vm-web", keyPairName="web")
    launch(client, "vm-a", "vm-b", keyPairName="byhand")
    emu.reset_counters()
    plain = run_cli("drift", "m.yaml", "--format", "json", cwd=project, endpoint=emu.url)
    assert plain.returncode == 0, plain.stderr  # no instance reads, no instance kinds
    assert emu.calls["GetInstances"] == 0

    result = run_cli(
        "drift", "m.yaml", "--instances", "--format", "json", cwd=project, endpoint=emu.url
    )
    assert result.returncode == 2, result.stderr
    data = json.loads(result.stdout)
    jsonschema.validate(data, json.loads((SCHEMAS / "drift.schema.json").read_text()))
    found = {(f["kind"], f["address"]): f for f in data["findings"]}
    assert set(found) == {
        ("unused", "us-east-1/steady"),
        ("unmanaged-key-in-use", "us-east-1/byhand"),
    }
    assert found[("unmanaged-key-in-use", "us-east-1/byhand")]["actual"] == ["vm-a", "vm-b"]
    assert data["summary"]["unused"] == 1 and emu.calls["GetInstances"] == 1


def test_a_key_pair_deleted_with_allow_in_use_keeps_its_key_while_instances_name_it(
    project: Path, emu: Emulator, client: Any
) -> None:
    web_key = key(project, emu)
    launch(client, "vm-1", keyPairName="web")
    write_manifest(project / "m.yaml", "us-east-1", "- name: steady")
    refused = cli(project, emu, "apply", "m.yaml", "--prune", "--auto-approve", code=1)
    assert "refusing to delete or replace us-east-1/web: 1 instance(s)" in refused

    cli(project, emu, "apply", "m.yaml", "--prune", "--auto-approve", "--allow-in-use")
    assert "web" not in {kp["name"] for kp in client.get_key_pairs()["keyPairs"]}
    assert key(project, emu) == web_key  # vm-1 can still be reached

    client.delete_instance(instanceName="vm-1")
    cli(project, emu, "apply", "m.yaml", "--prune", "--auto-approve")
    assert "us-east-1/web" not in state_entries(project / "reconciler.state.json")


def test_a_saved_plan_with_rotate_applies_the_rotation_it_showed(
    project: Path, emu: Emulator, client: Any
) -> None:
    before = fingerprint(client, "steady")
    out = cli(project, emu, "plan", "m.yaml", "--rotate", "us-east-1/steady", "--out", "p.json")
    assert "rotation requested (--rotate)" in out
    cli(project, emu, "apply", "p.json")
    assert fingerprint(client, "steady") != before
    assert "No changes" in cli(project, emu, "plan", "m.yaml")
    typo = cli(project, emu, "plan", "m.yaml", "--rotate", "us-east-1/nope", code=1)
    assert "--rotate us-east-1/nope: no such key pair" in typo


def test_migrate_keys_moves_generations_too_and_back(
    project: Path, emu: Emulator, client: Any, moto_url: str
) -> None:
    env = aws_env(moto_url)
    first = key(project, emu)
    age(emu, "web", 97)
    cli(project, emu, "apply", "m.yaml", "--auto-approve")
    second = key(project, emu)
    spec = "ssm:/" + unique("migrate") + "/{region}/{name}"

    def migrate(to: str) -> None:
        moved = run_cli("state", "migrate-keys", "--to", to, cwd=project, env=env)
        assert moved.returncode == 0, moved.stderr

    def get(*extra: str) -> str:
        got = run_cli("key", "get", "us-east-1/web", *extra, cwd=project, env=env)
        assert got.returncode == 0, got.stderr
        return got.stdout

    migrate(spec)
    entry = state_entries(project / "reconciler.state.json")["us-east-1/web"]
    assert entry["generations"][0]["privateKeyRef"]["store"] == spec
    assert "PRIVATE KEY" not in (project / "reconciler.state.json").read_text()
    assert (get(), get("--generation", "1")) == (second, first)
    migrate("state")
    entry = state_entries(project / "reconciler.state.json")["us-east-1/web"]
    assert "privateKeyRef" not in entry["generations"][0]
    assert (get(), get("--generation", "1")) == (second, first)
    assert stored_names(moto_url, spec) == set()
