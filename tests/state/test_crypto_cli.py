"""Encryption at rest through the real CLI: apply, key get, state encrypt/decrypt, the warning."""

from __future__ import annotations

from pathlib import Path

import pyrage
import pytest

from reconciler.emulator import Emulator
from tests.conftest import aws_client
from tests.helpers import assert_no_leak, load_state, run_cli, state_entries, write_manifest


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write_manifest(
        tmp_path / "manifests" / "web.yaml",
        "us-east-1",
        """
        - name: web
        - name: gen
          generate: local
        """,
    )
    return tmp_path


def age_identity(tmp_path: Path) -> tuple[str, Path]:
    identity = pyrage.x25519.Identity.generate()
    path = tmp_path / "age.txt"
    path.write_text(f"{identity}\n")
    path.chmod(0o600)
    return str(identity.to_public()), path


def test_age_encryption_end_to_end(project: Path, emulator: Emulator) -> None:
    recipient, identity = age_identity(project)
    url = emulator.url
    applied = run_cli(
        "apply",
        "manifests",
        "--auto-approve",
        f"--encrypt-with=age:{recipient}",
        cwd=project,
        endpoint=url,
    )
    assert applied.returncode == 0, applied.stderr
    assert "in clear" not in applied.stderr
    state = load_state(project / "reconciler.state.json")
    assert state["encryption"] == [{"type": "age", "recipient": recipient}]
    for entry in state["keyPairs"]:
        assert "privateKey" not in entry and entry["privateKeySealed"]["recipients"]
    raw = (project / "reconciler.state.json").read_text()
    assert "PRIVATE KEY" not in raw
    # key get needs the identity, and says how to give it.
    refused = run_cli("key", "get", "us-east-1/web", cwd=project, endpoint=url)
    assert refused.returncode == 1 and "--age-identity FILE" in refused.stderr
    got = run_cli("key", "get", "us-east-1/web", "--age-identity", str(identity), cwd=project)
    assert got.returncode == 0 and got.stdout.startswith("-----BEGIN RSA PRIVATE KEY-----")
    gen = run_cli("key", "get", "us-east-1/gen", "--age-identity", str(identity), cwd=project)
    assert gen.returncode == 0 and "PRIVATE KEY" in gen.stdout
    # The setting is remembered: a later apply seals new keys without the flag.
    write_manifest(project / "manifests" / "more.yaml", "us-east-1", "- name: later\n")
    again = run_cli("apply", "manifests", "--auto-approve", cwd=project, endpoint=url)
    assert again.returncode == 0, again.stderr
    assert "privateKeySealed" in state_entries(project / "reconciler.state.json")["us-east-1/later"]
    assert_no_leak([applied.stdout, applied.stderr, again.stdout, again.stderr], [got.stdout])
    # Decrypt, and the warning comes back on apply.
    plain = run_cli("state", "decrypt", "--age-identity", str(identity), cwd=project)
    assert plain.returncode == 0, plain.stderr
    third = run_cli("apply", "manifests", "--auto-approve", cwd=project, endpoint=url)
    assert third.returncode == 0
    [warning] = [line for line in third.stderr.splitlines() if line.startswith("Warning:")]
    assert "holds 3 private keys in clear" in warning and "--encrypt-with kms:KEY_ID" in warning
    backup = project / "reconciler.state.json.backup"
    sealed = run_cli("state", "encrypt", f"--encrypt-with=age:{recipient}", cwd=project)
    assert sealed.returncode == 0, sealed.stderr
    assert "Encrypted 3 private key(s)" in sealed.stderr
    assert "PRIVATE KEY" not in (project / "reconciler.state.json").read_text()
    assert not backup.exists() or "PRIVATE KEY" not in backup.read_text()


def test_kms_encryption_end_to_end(project: Path, emulator: Emulator, moto_url: str) -> None:
    key = aws_client("kms", moto_url).create_key()["KeyMetadata"]["Arn"]
    env = {"AWS_ENDPOINT_URL_KMS": moto_url}
    applied = run_cli(
        "apply",
        "manifests",
        "--auto-approve",
        f"--encrypt-with=kms:{key}",
        cwd=project,
        endpoint=emulator.url,
        env=env,
    )
    assert applied.returncode == 0, applied.stderr
    web = state_entries(project / "reconciler.state.json")["us-east-1/web"]
    assert web["privateKeySealed"]["recipients"][0]["keyId"] == key
    got = run_cli("key", "get", "us-east-1/web", cwd=project, env=env)
    assert got.returncode == 0 and "PRIVATE KEY" in got.stdout
    shown = run_cli("state", "show", "us-east-1/web", "--reveal", cwd=project, env=env)
    assert shown.returncode == 0 and "PRIVATE KEY" in shown.stdout
    hidden = run_cli("state", "show", "us-east-1/web", cwd=project, env=env)
    assert "PRIVATE KEY" not in hidden.stdout and "wrappedKey" not in hidden.stdout
    assert_no_leak([applied.stdout, applied.stderr, hidden.stdout], [got.stdout])
