"""Private keys in SSM Parameter Store and Secrets Manager, through the real CLI.

The reconciler runs as a subprocess against the emulator (Lightsail) and
moto in server mode (SSM, Secrets Manager, STS) over real HTTP; a recording
proxy in front of moto shows which operations each command called.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from reconciler.custody import key_fingerprint
from reconciler.emulator import Emulator
from reconciler.state.document import FORMAT_VERSION
from tests.aws_proxy import RecordingProxy, recording_proxy
from tests.conftest import aws_client, lightsail_client
from tests.helpers import (
    CLI_OUTPUTS,
    load_state,
    run_cli,
    state_entries,
    write_manifest,
)

# The whole tool end to end (faults, crashes, a browser, a terminal, real tools):
# `make test-fast` leaves these out.
pytestmark = pytest.mark.e2e

R = "us-east-1"
NAMES = ("web", "db", "gen")
SECRET_READS = {"GetParameter", "GetParameters", "GetParametersByPath", "GetSecretValue"}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write_manifest(
        tmp_path / "manifests" / "keys.yaml",
        R,
        """
        - name: web
        - name: db
        - name: gen
          generate: local
        """,
    )
    return tmp_path


def aws_env(url: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL_SSM": url,
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": url,
        "AWS_ENDPOINT_URL_STS": url,
        "AWS_ENDPOINT_URL_KMS": url,
    }


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def live_fingerprints(emulator: Emulator) -> dict[str, str]:
    pairs = lightsail_client(emulator.url).get_key_pairs()["keyPairs"]
    return {kp["name"]: kp["fingerprint"] for kp in pairs}


def no_private_key_text(root: Path) -> list[str]:
    """Files under ``root`` (state, backup, journal, anything) holding PEM text."""
    return [
        str(path)
        for path in root.rglob("*")
        if path.is_file() and "PRIVATE KEY" in path.read_text(errors="replace")
    ]


def key_get(project: Path, name: str, url: str, *extra: str) -> str:
    got = run_cli("key", "get", f"{R}/{name}", *extra, cwd=project, env=aws_env(url))
    assert got.returncode == 0, got.stderr
    return got.stdout


def origin_of(name: str) -> str:
    return "generated" if name == "gen" else "created"


@pytest.mark.parametrize(
    "store",
    [
        "ssm:/{prefix}/{{region}}/{{name}}",
        "secretsmanager:{prefix}/{{account}}/{{region}}/{{name}}",
    ],
)
def test_apply_keeps_keys_in_the_store_and_only_references_in_state(
    project: Path, emulator: Emulator, moto_url: str, store: str
) -> None:
    spec = store.format(prefix=unique("apply"))
    env = aws_env(moto_url)
    applied = run_cli(
        "apply",
        "manifests",
        "--auto-approve",
        f"--key-store={spec}",
        cwd=project,
        endpoint=emulator.url,
        env=env,
    )
    assert applied.returncode == 0, applied.stderr
    state = load_state(project / "reconciler.state.json")
    assert state["version"] == FORMAT_VERSION and state["keys"] == {"store": spec}
    live = live_fingerprints(emulator)
    for name in NAMES:
        entry = state_entries(project / "reconciler.state.json")[f"{R}/{name}"]
        assert "privateKey" not in entry and "privateKeySealed" not in entry
        ref = entry["privateKeyRef"]
        assert ref["store"] == spec and ref["fingerprint"] == live[name]
        if spec.startswith("ssm:"):
            assert ref["location"] == spec[4:].replace("{region}", R).replace("{name}", name)
        else:
            assert ref["location"].startswith("arn:aws:secretsmanager:us-east-1:123456789012:")
        # key get reads through the store and matches the live fingerprint.
        pem = key_get(project, name, moto_url)
        assert key_fingerprint(pem, origin_of(name)) == live[name]
    assert no_private_key_text(project) == []
    assert not (project / "reconciler.state.json.journal").exists()
    # Labels: fingerprint, region, name, lineage.
    labels = stored_labels(moto_url, spec, state_entries(project / "reconciler.state.json"))
    assert labels["web"] == {
        "reconciler:fingerprint": live["web"],
        "reconciler:region": R,
        "reconciler:name": "web",
        "reconciler:lineage": state["lineage"],
    }
    # Later runs need no flag: the store is recorded in the state.
    write_manifest(project / "manifests" / "more.yaml", R, "- name: later\n")
    again = run_cli(
        "apply", "manifests", "--auto-approve", cwd=project, endpoint=emulator.url, env=env
    )
    assert again.returncode == 0, again.stderr
    later = state_entries(project / "reconciler.state.json")[f"{R}/later"]
    assert later["privateKeyRef"]["store"] == spec
    assert no_private_key_text(project) == []
    # Forgetting a key pair leaves its stored key, and says where.
    forgot = run_cli("state", "rm", f"{R}/later", cwd=project, env=env)
    assert forgot.returncode == 0, forgot.stderr
    assert f"Its private key stays in {later['privateKeyRef']['location']}" in forgot.stderr
    assert stored_labels(moto_url, spec, {f"{R}/later": later})["later"]


def stored_labels(url: str, spec: str, entries: dict[str, Any]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for address, entry in entries.items():
        location = entry["privateKeyRef"]["location"]
        name = address.split("/", 1)[1]
        if spec.startswith("ssm:"):
            tags = aws_client("ssm", url).list_tags_for_resource(
                ResourceType="Parameter", ResourceId=location
            )["TagList"]
        else:
            tags = aws_client("secretsmanager", url).describe_secret(SecretId=location)["Tags"]
        out[name] = {t["Key"]: t["Value"] for t in tags}
    return out


@pytest.mark.parametrize("scheme", ["ssm", "secretsmanager"])
def test_plan_and_drift_check_the_store_by_metadata_alone(
    project: Path, emulator: Emulator, moto_url: str, scheme: str
) -> None:
    prefix = unique("meta")
    spec = (
        f"ssm:/{prefix}/{{region}}/{{name}}"
        if scheme == "ssm"
        else f"{scheme}:{prefix}/{{region}}/{{name}}"
    )
    applied = run_cli(
        "apply",
        "manifests",
        "--auto-approve",
        f"--key-store={spec}",
        cwd=project,
        endpoint=emulator.url,
        env=aws_env(moto_url),
    )
    assert applied.returncode == 0, applied.stderr
    with recording_proxy(moto_url) as proxy:
        # The plan-only role: every secret-reading call is refused.
        proxy.refused = set(SECRET_READS)
        env = aws_env(proxy.url)
        plan = run_cli("plan", "manifests", cwd=project, endpoint=emulator.url, env=env)
        assert plan.returncode == 0, plan.stderr
        assert "No changes" in plan.stdout
        drift = run_cli(
            "drift", "manifests", "--format=json", cwd=project, endpoint=emulator.url, env=env
        )
        assert drift.returncode == 0, drift.stdout + drift.stderr
        assert json.loads(drift.stdout)["inSync"] is True
        assert not SECRET_READS & set(proxy.calls)
        # The stored keys were really checked, in one call per command (bulk).
        listing = "DescribeParameters" if scheme == "ssm" else "ListSecrets"
        assert dict(proxy.calls) == {listing: 2}
        # The same role cannot read a key: key get needs the read permission.
        refused = run_cli("key", "get", f"{R}/web", cwd=project, env=env)
        assert refused.returncode == 1 and "AccessDenied" in refused.stderr
        assert "Traceback" not in refused.stderr

    # Out of band: one stored key deleted, another relabelled.
    entries = state_entries(project / "reconciler.state.json")
    web, db = entries[f"{R}/web"]["privateKeyRef"], entries[f"{R}/db"]["privateKeyRef"]
    if scheme == "ssm":
        ssm = aws_client("ssm", moto_url)
        ssm.delete_parameter(Name=web["location"])
        ssm.add_tags_to_resource(
            ResourceType="Parameter",
            ResourceId=db["location"],
            Tags=[{"Key": "reconciler:fingerprint", "Value": "00:11"}],
        )
    else:
        sm = aws_client("secretsmanager", moto_url)
        sm.delete_secret(SecretId=web["location"], ForceDeleteWithoutRecovery=True)
        sm.tag_resource(
            SecretId=db["location"], Tags=[{"Key": "reconciler:fingerprint", "Value": "00:11"}]
        )
    env = aws_env(moto_url)
    drift = run_cli(
        "drift", "manifests", "--format=json", cwd=project, endpoint=emulator.url, env=env
    )
    assert drift.returncode == 2, drift.stderr
    report = json.loads(drift.stdout)
    kinds = {(f["name"], f["kind"]) for f in report["findings"]}
    assert kinds == {("web", "key-missing"), ("db", "key-fingerprint-changed")}
    assert report["summary"]["key-missing"] == 1
    [relabelled] = [f for f in report["findings"] if f["name"] == "db"]
    assert relabelled["expected"] == db["fingerprint"] and relabelled["actual"] == "00:11"
    plan = run_cli(
        "plan", "manifests", "--format=json", cwd=project, endpoint=emulator.url, env=env
    )
    assert plan.returncode == 1
    findings = {(f["address"], f["kind"]) for f in json.loads(plan.stdout)["findings"]}
    assert findings == {(f"{R}/web", "lost-key"), (f"{R}/db", "conflict")}


def test_a_failed_store_write_keeps_the_key_in_state_and_the_next_apply_finishes_it(
    project: Path, emulator: Emulator, moto_url: str
) -> None:
    prefix = unique("conflict")
    spec = f"ssm:/{prefix}/{{region}}/{{name}}"
    ssm = aws_client("ssm", moto_url)
    squatter = f"/{prefix}/{R}/web"
    ssm.put_parameter(
        Name=squatter,
        Value="someone else's",
        Type="SecureString",
        Tags=[{"Key": "reconciler:fingerprint", "Value": "aa:bb"}],
    )
    env = aws_env(moto_url)
    applied = run_cli(
        "apply",
        "manifests",
        "--auto-approve",
        f"--key-store={spec}",
        cwd=project,
        endpoint=emulator.url,
        env=env,
    )
    assert applied.returncode == 1
    assert "already holds a different key" in applied.stderr and "not overwritten" in applied.stderr
    # Never overwritten; the key pair was created and its key is kept in the state.
    value = ssm.get_parameter(Name=squatter, WithDecryption=True)["Parameter"]["Value"]
    assert value == "someone else's"
    entries = state_entries(project / "reconciler.state.json")
    assert "privateKey" in entries[f"{R}/web"] and "privateKeyRef" not in entries[f"{R}/web"]
    assert "privateKeyRef" in entries[f"{R}/db"]
    ssm.delete_parameter(Name=squatter)
    again = run_cli(
        "apply", "manifests", "--auto-approve", cwd=project, endpoint=emulator.url, env=env
    )
    assert again.returncode == 0, again.stderr
    assert "Stored 1 private key(s) left in the state" in again.stderr
    web = state_entries(project / "reconciler.state.json")[f"{R}/web"]
    assert web["privateKeyRef"]["fingerprint"] == live_fingerprints(emulator)["web"]
    assert no_private_key_text(project) == []
    assert key_fingerprint(key_get(project, "web", moto_url), "created") == web["fingerprint"]


def test_project_file_chooses_the_store_and_a_bad_one_is_positioned(
    project: Path, emulator: Emulator, moto_url: str
) -> None:
    (project / "reconciler.yaml").write_text(
        "backend:\n  type: local\n  path: reconciler.state.json\n"
        "keys:\n  store: ssm:/lightsail/{name}\n"
    )
    bad = run_cli("plan", "manifests", cwd=project, endpoint=emulator.url)
    assert bad.returncode == 1
    assert (
        "reconciler.yaml:5:10: key store 'ssm:/lightsail/{name}': the location must "
        "contain {region} and {name}" in bad.stderr
    )
    assert not (project / "reconciler.state.json").exists()
    prefix = unique("yaml")
    (project / "reconciler.yaml").write_text(
        "backend:\n  type: local\n  path: reconciler.state.json\n"
        f"keys:\n  store: secretsmanager:{prefix}/{{region}}/{{name}}\n"
    )
    applied = run_cli(
        "apply",
        "manifests",
        "--auto-approve",
        cwd=project,
        endpoint=emulator.url,
        env=aws_env(moto_url),
    )
    assert applied.returncode == 0, applied.stderr
    state = load_state(project / "reconciler.state.json")
    assert state["keys"] == {"store": f"secretsmanager:{prefix}/{{region}}/{{name}}"}
    assert no_private_key_text(project) == []


def start_migrate(project: Path, target: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", "state", "migrate-keys", "--to", target],
        cwd=project,
        env=dict(os.environ, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def migrate(project: Path, target: str, url: str) -> None:
    moved = run_cli("state", "migrate-keys", "--to", target, cwd=project, env=aws_env(url))
    assert moved.returncode == 0, moved.stderr


def interrupted_migrate(project: Path, target: str, proxy: RecordingProxy, operation: str) -> None:
    """Migrate, killed while the second key's store write has taken effect unanswered."""
    proxy.hold_operation, proxy.hold_at = operation, proxy.calls[operation] + 2
    proc = start_migrate(project, target, aws_env(proxy.url))
    assert proxy.held.wait(60), "the migration never reached its second key"
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=30)
    CLI_OUTPUTS.extend((out, err))
    proxy.release.set()
    proxy.hold_operation = None


def stores_of(project: Path) -> set[str]:
    entries = state_entries(project / "reconciler.state.json")
    return {
        e["privateKeyRef"]["store"] if "privateKeyRef" in e else "state" for e in entries.values()
    }


def test_migrate_keys_round_trip_survives_an_interruption(
    project: Path, emulator: Emulator, moto_url: str
) -> None:
    applied = run_cli("apply", "manifests", "--auto-approve", cwd=project, endpoint=emulator.url)
    assert applied.returncode == 0, applied.stderr
    live = live_fingerprints(emulator)
    prefix = unique("migrate")
    ssm_spec = f"ssm:/{prefix}/{{region}}/{{name}}"
    sm_spec = f"secretsmanager:{prefix}/{{region}}/{{name}}"

    migrate(project, ssm_spec, moto_url)
    assert stores_of(project) == {ssm_spec}
    assert no_private_key_text(project) == []

    with recording_proxy(moto_url) as proxy:
        interrupted_migrate(project, sm_spec, proxy, "CreateSecret")
    # Cut short: some keys moved, the rest still in SSM; every one is readable.
    assert stores_of(project) <= {ssm_spec, sm_spec}
    for name in NAMES:
        assert key_fingerprint(key_get(project, name, moto_url), origin_of(name)) == live[name]
    migrate(project, sm_spec, moto_url)  # resumes
    assert stores_of(project) == {sm_spec}
    state = load_state(project / "reconciler.state.json")
    assert state["keys"] == {"store": sm_spec}
    # The source copies are gone, the interrupted one included.
    left = aws_client("ssm", moto_url).describe_parameters(
        ParameterFilters=[{"Key": "Name", "Option": "BeginsWith", "Values": [f"/{prefix}/"]}]
    )["Parameters"]
    assert left == []

    migrate(project, "state", moto_url)
    assert stores_of(project) == {"state"}
    secrets = aws_client("secretsmanager", moto_url).list_secrets(
        Filters=[{"Key": "name", "Values": [prefix]}]
    )["SecretList"]
    assert secrets == []
    for name in NAMES:
        assert key_fingerprint(key_get(project, name, moto_url), origin_of(name)) == live[name]
    plan = run_cli("plan", "manifests", cwd=project, endpoint=emulator.url)
    assert plan.returncode == 0 and "No changes" in plan.stdout


def test_sealed_journal_then_ssm_with_a_kms_key(
    project: Path, emulator: Emulator, moto_url: str
) -> None:
    from tests.state.test_crypto_cli import age_identity

    recipient, identity = age_identity(project)
    key_id = aws_client("kms", moto_url).create_key()["KeyMetadata"]["Arn"]
    prefix = unique("sealed")
    spec = f"ssm:/{prefix}/{{region}}/{{name}}"
    ssm = aws_client("ssm", moto_url)
    # web's store write fails (someone else's parameter is in the way).
    squatter = f"/{prefix}/{R}/web"
    ssm.put_parameter(Name=squatter, Value="other", Type="SecureString")
    env = aws_env(moto_url)
    applied = run_cli(
        "apply",
        "manifests",
        "--auto-approve",
        f"--encrypt-with=age:{recipient}",
        f"--key-store={spec}",
        f"--key-store-kms-key-id={key_id}",
        cwd=project,
        endpoint=emulator.url,
        env=env,
    )
    assert applied.returncode == 1 and "not overwritten" in applied.stderr
    state = load_state(project / "reconciler.state.json")
    assert state["keys"] == {"store": spec, "kmsKeyId": key_id}
    entries = state_entries(project / "reconciler.state.json")
    # Journaled sealed, so kept sealed: never in clear on disk.
    assert "privateKeySealed" in entries[f"{R}/web"] and "privateKey" not in entries[f"{R}/web"]
    assert no_private_key_text(project) == []
    ssm.delete_parameter(Name=squatter)
    # Storing it now needs the key opened: without the identity it stays sealed.
    refused = run_cli(
        "apply", "manifests", "--auto-approve", cwd=project, endpoint=emulator.url, env=env
    )
    assert refused.returncode == 1 and "--age-identity" in refused.stderr
    again = run_cli(
        "apply",
        "manifests",
        "--auto-approve",
        f"--age-identity={identity}",
        cwd=project,
        endpoint=emulator.url,
        env=env,
    )
    assert again.returncode == 0, again.stderr
    for entry in load_state(project / "reconciler.state.json")["keyPairs"]:
        assert "privateKeySealed" not in entry and "privateKey" not in entry
    [param] = ssm.describe_parameters(
        ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [squatter]}]
    )["Parameters"]
    assert param["KeyId"] == key_id
    # The store holds the key: no age identity needed to read it.
    pem = key_get(project, "web", moto_url)
    assert key_fingerprint(pem, "created") == live_fingerprints(emulator)["web"]
    assert no_private_key_text(project) == []


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("vault:/x/{region}/{name}", "unknown key store"),
        ("ssm:/x/{name}", "must contain {region} and {name}"),
        ("ssm:/x/{region}/{name}/{team}", "unknown placeholder {team}"),
        ("ssm:/x y/{region}/{name}", "not a valid SSM parameter name template"),
        ("secretsmanager:x/{region}/{name}!", "not a valid Secrets Manager name template"),
        ("state:/x", "takes no location"),
    ],
)
def test_a_bad_store_spec_is_one_clear_line(spec: str, problem: str) -> None:
    from reconciler.custody import spec_problem

    message = spec_problem(spec)
    assert message is not None and problem in message


def test_good_store_specs_are_accepted_offline() -> None:
    from reconciler.custody import spec_problem

    for spec in ("state", "ssm:/a/{account}/{region}/{name}", "secretsmanager:a/{region}/{name}"):
        assert spec_problem(spec) is None, spec
    assert spec_problem("state", "alias/k") is not None


def test_a_bad_key_store_flag_changes_nothing(project: Path, emulator: Emulator) -> None:
    bad = run_cli(
        "apply",
        "manifests",
        "--auto-approve",
        "--key-store=ssm:/x/{name}",
        cwd=project,
        endpoint=emulator.url,
    )
    assert bad.returncode == 1
    assert bad.stderr.startswith(
        "Error: --key-store: key store 'ssm:/x/{name}': "
        "the location must contain {region} and {name}"
    )
    assert not (project / "reconciler.state.json").exists()
    assert live_fingerprints(emulator) == {}
    moved = run_cli("state", "migrate-keys", "--to", "vault:x", cwd=project)
    assert moved.returncode == 1 and "--to: unknown key store 'vault:x'" in moved.stderr
    assert not (project / "reconciler.state.json").exists()


@pytest.mark.parametrize("scheme", ["ssm", "secretsmanager"])
def test_store_writes_are_idempotent_and_never_overwrite(moto_url: str, scheme: str) -> None:
    from reconciler.custody import KeyStoreConflict, StoreContext, open_store
    from reconciler.keys import generate_rsa
    from reconciler.model import Address, StateEntry

    prefix = unique("idem")
    spec = (
        f"ssm:/{prefix}/{{region}}/{{name}}"
        if scheme == "ssm"
        else f"{scheme}:{prefix}/{{region}}/{{name}}"
    )
    context = StoreContext(
        clients=lambda service: lambda region: aws_client(service, moto_url, region or R)
    )
    store = open_store(spec, context)
    entry = StateEntry(Address(R, "web"), "generated", "arn", "", 0.0, {})
    pem, other = generate_rsa().private_pem, generate_rsa().private_pem
    first = store.put(entry, pem, lineage="L")
    again = store.put(entry, pem, lineage="L")  # a retried write: success, same place
    assert first.private_key_ref == again.private_key_ref
    assert first.private_key_ref is not None
    assert first.private_key_ref["fingerprint"] == key_fingerprint(pem, "generated")
    with pytest.raises(KeyStoreConflict, match="already holds a different key"):
        store.put(entry, other, lineage="L")
    assert store.get(first) == pem  # not overwritten
    meta = store.describe(first)
    assert meta is not None and meta.labels["reconciler:lineage"] == "L"
    gone = store.delete(first)
    assert gone.private_key_ref is None and store.describe(first) is None
    store.delete(first)  # deleting what is gone is fine
