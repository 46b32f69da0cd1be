"""preventDestroy is recorded in the state and outlives the manifest entry."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator import Emulator, EmulatorConfig
from reconciler.emulator.ratelimit import RateLimit
from reconciler.errors import StateError
from reconciler.model import Address, StateEntry
from reconciler.state import LocalBackend, StateDocument
from reconciler.state.document import FORMAT_VERSION, dumps, loads
from tests.forkrun import ForkedCLI
from tests.helpers import CLI_OUTPUTS, run_cli, state_entries, wait_for_results, write_manifest


def _entry(name: str, protected: bool) -> StateEntry:
    return StateEntry(
        Address("us-east-1", name), "adopted", "arn", "fp", 1.0, {}, prevent_destroy=protected
    )


def test_protection_round_trips_and_old_states_read_unprotected() -> None:
    doc = StateDocument.new()
    for name, protected in (("db", True), ("web", False)):
        doc.entries[Address("us-east-1", name)] = _entry(name, protected)
    data = doc.to_json()
    assert data["version"] == FORMAT_VERSION
    assert [e.get("preventDestroy") for e in data["keyPairs"]] == [True, None]
    again = loads(dumps(doc), source="s.json")
    assert again.entries[Address("us-east-1", "db")].prevent_destroy
    assert not again.entries[Address("us-east-1", "web")].prevent_destroy

    old = loads(
        dumps(doc).replace(f'"version": {FORMAT_VERSION}'.encode(), b'"version": 1'),
        source="old.json",
    )
    assert old.version == FORMAT_VERSION and old.entries == again.entries
    bad = dumps(doc).replace(b'"preventDestroy": true', b'"preventDestroy": "yes"')
    with pytest.raises(StateError, match="'preventDestroy' must be true or false"):
        loads(bad, source="bad.json")


def test_a_protected_key_pair_removed_from_the_manifests_is_still_refused_by_prune(
    tmp_path: Path, emulator: Emulator, lightsail: Any
) -> None:
    url = emulator.url
    manifest = write_manifest(
        tmp_path / "m.yaml", "us-east-1", "- name: db\n  preventDestroy: true\n- name: web"
    )
    applied = run_cli("apply", "m.yaml", "--auto-approve", cwd=tmp_path, endpoint=url)
    assert applied.returncode == 0, applied.stderr
    # Recorded with the key pair it protects: no separate write to report.
    assert "Recorded preventDestroy" not in applied.stderr
    state = tmp_path / "reconciler.state.json"
    assert state_entries(state)["us-east-1/db"]["preventDestroy"] is True
    assert "preventDestroy" not in state_entries(state)["us-east-1/web"]

    write_manifest(manifest, "us-east-1", "- name: web")
    refused = run_cli("apply", "m.yaml", "--prune", "--auto-approve", cwd=tmp_path, endpoint=url)
    assert refused.returncode == 1
    assert "would destroy key pairs marked preventDestroy: us-east-1/db (delete)" in refused.stderr
    assert "reconciler state unprotect" in refused.stderr
    assert emulator.calls["DeleteKeyPair"] == 0
    plan = run_cli("plan", "m.yaml", "--prune", cwd=tmp_path, endpoint=url)
    assert plan.returncode == 1 and "preventDestroy" in plan.stderr

    unprotect = run_cli("state", "unprotect", "us-east-1/db", cwd=tmp_path, endpoint=url)
    assert unprotect.returncode == 0, unprotect.stderr
    assert "no longer protected" in unprotect.stderr
    assert "preventDestroy" not in state_entries(state)["us-east-1/db"]
    pruned = run_cli("apply", "m.yaml", "--prune", "--auto-approve", cwd=tmp_path, endpoint=url)
    assert pruned.returncode == 0, pruned.stderr
    assert {kp["name"] for kp in lightsail.get_key_pairs()["keyPairs"]} == {"web"}


def test_protection_added_later_is_recorded_even_when_nothing_else_changes(
    tmp_path: Path, emulator: Emulator
) -> None:
    url = emulator.url
    manifest = write_manifest(tmp_path / "m.yaml", "us-east-1", "- name: web")
    assert run_cli("apply", "m.yaml", "--auto-approve", cwd=tmp_path, endpoint=url).returncode == 0
    write_manifest(manifest, "us-east-1", "- name: web\n  preventDestroy: true")
    again = run_cli("apply", "m.yaml", "--auto-approve", cwd=tmp_path, endpoint=url)
    assert again.returncode == 0, again.stderr
    assert "Recorded preventDestroy of 1 key pair(s)" in again.stderr
    assert state_entries(tmp_path / "reconciler.state.json")["us-east-1/web"]["preventDestroy"]
    # Removing the flag from a still-declared key pair is the manifest's to say.
    write_manifest(manifest, "us-east-1", "- name: web")
    assert run_cli("apply", "m.yaml", "--auto-approve", cwd=tmp_path, endpoint=url).returncode == 0
    entry = state_entries(tmp_path / "reconciler.state.json")["us-east-1/web"]
    assert "preventDestroy" not in entry

    missing = run_cli("state", "unprotect", "us-east-1/nope", cwd=tmp_path, endpoint=url)
    assert missing.returncode == 1 and "us-east-1/nope is not in the state" in missing.stderr


def test_protection_is_reported_once_and_only_for_key_pairs_already_recorded(
    tmp_path: Path, emulator: Emulator
) -> None:
    url = emulator.url
    manifest = write_manifest(tmp_path / "m.yaml", "us-east-1", "- name: web")
    assert run_cli("apply", "m.yaml", "--auto-approve", cwd=tmp_path, endpoint=url).returncode == 0
    # web gains protection and a tag in the same run that creates a protected db.
    write_manifest(
        manifest,
        "us-east-1",
        "- name: web\n  preventDestroy: true\n  tags: {team: ops}\n"
        "- name: db\n  preventDestroy: true",
    )
    again = run_cli("apply", "m.yaml", "--auto-approve", cwd=tmp_path, endpoint=url)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("Recorded preventDestroy") == 1
    assert "Recorded preventDestroy of 1 key pair(s)" in again.stderr
    entries = state_entries(tmp_path / "reconciler.state.json")
    assert entries["us-east-1/web"]["preventDestroy"] and entries["us-east-1/db"]["preventDestroy"]
    assert entries["us-east-1/web"]["tags"] == {"team": "ops"}


def test_a_protected_key_pair_is_protected_by_the_record_that_makes_its_key_durable(
    tmp_path: Path,
) -> None:
    # One CreateKeyPair token, the next in 100 s: the second create is throttled while
    # the first is journaled, and the run is killed before anything is committed.
    config = EmulatorConfig(rate_limits=(RateLimit.parse("CreateKeyPair=0.01:1"),))
    with Emulator(config) as emu:
        manifest = write_manifest(
            tmp_path / "m.yaml", "us-east-1", "- name: a-db\n  preventDestroy: true\n- name: b-web"
        )
        env = dict(os.environ, AWS_ENDPOINT_URL_LIGHTSAIL=emu.url, RECONCILER_BACKOFF_SCALE="1")
        argv = ["apply", "m.yaml", "--auto-approve", "--parallelism", "1"]
        proc = ForkedCLI(argv, cwd=tmp_path, env=env)
        wait_for_results(tmp_path / "reconciler.state.json.journal", 1)
        proc.kill()
        CLI_OUTPUTS.extend(proc.communicate(timeout=30))
        assert proc.returncode == -9, "the apply ended before it was killed"
        assert emu.committed["CreateKeyPair"] == 1

        db = Address("us-east-1", "a-db")
        doc = LocalBackend(tmp_path / "reconciler.state.json").read()  # state + journal
        assert doc.entries[db].private_key is not None
        assert doc.entries[db].prevent_destroy

        write_manifest(manifest, "us-east-1", "- name: b-web")
        refused = run_cli(
            "apply", "m.yaml", "--prune", "--auto-approve", cwd=tmp_path, endpoint=emu.url
        )
        assert refused.returncode == 1
        assert "would destroy key pairs marked preventDestroy: us-east-1/a-db" in refused.stderr
        assert emu.calls["DeleteKeyPair"] == 0


def test_a_protected_key_pair_may_be_rotated_but_not_replaced(tmp_path: Path) -> None:
    """preventDestroy guards key material: a rotation keeps the old private key as a
    generation, so rotate: and --rotate go ahead; --replace (which keeps nothing of a
    created key) is refused."""
    write_manifest(
        tmp_path / "m.yaml",
        "us-east-1",
        "- name: db\n  preventDestroy: true\n  rotate: {after: 90d, keep: 1}",
    )
    env = {"RECONCILER_LOCAL_DIR": str(tmp_path / "local")}
    done = run_cli("apply", "m.yaml", "--local", "--auto-approve", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    replaced = run_cli(
        "plan", "m.yaml", "--local", "--replace", "us-east-1/db", cwd=tmp_path, env=env
    )
    assert replaced.returncode == 1
    assert "marked preventDestroy: us-east-1/db (replace)" in replaced.stderr
    rotated = run_cli(
        "apply", "m.yaml", "--local", "--auto-approve", "--rotate", "us-east-1/db",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert rotated.returncode == 0, rotated.stderr
    kept = run_cli(
        "key", "get", "us-east-1/db", "--generation", "1", "--local", cwd=tmp_path, env=env
    )
    assert kept.returncode == 0 and "PRIVATE KEY" in kept.stdout


def test_rotate_on_an_imported_key_pair_says_how_imported_keys_are_rotated(
    tmp_path: Path,
) -> None:
    from reconciler.keys import generate_rsa

    public = generate_rsa().public_openssh
    write_manifest(tmp_path / "m.yaml", "us-east-1", f"- name: ci\n  publicKey: '{public}'")
    env = {"RECONCILER_LOCAL_DIR": str(tmp_path / "local")}
    assert (
        run_cli("apply", "m.yaml", "--local", "--auto-approve", cwd=tmp_path, env=env).returncode
        == 0
    )
    refused = run_cli(
        "apply", "m.yaml", "--local", "--auto-approve", "--rotate", "us-east-1/ci",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert refused.returncode == 1
    assert "--rotate us-east-1/ci: it is imported (publicKey)" in refused.stderr
    assert "giving the manifest its new publicKey" in refused.stderr
    assert "DeleteKeyPair" not in refused.stdout + refused.stderr
