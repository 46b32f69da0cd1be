"""The key-pair lifecycle end to end: the real CLI against the emulator over HTTP.

Imports from public keys, tag updates in place, adoption, pruning and destroy,
and the guards around deletes (expectedFingerprint, preventDestroy,
--max-deletes). Out-of-band changes are made with plain boto3.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from base64 import b64decode
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from reconciler.emulator import Emulator, EmulatorConfig
from reconciler.keys import GeneratedKey, generate_rsa
from tests.conftest import lightsail_client
from tests.helpers import assert_no_leak, run_cli, same_public_key, state_entries, write_manifest

SCHEMAS = Path(__file__).resolve().parents[2] / "reconciler" / "schemas"
MUTATING = ("CreateKeyPair", "ImportKeyPair", "DeleteKeyPair", "TagResource", "UntagResource")


@pytest.fixture
def emu() -> Iterator[Emulator]:
    # Pre-generated keys: no test here measures RSA generation.
    with Emulator(EmulatorConfig(key_pool=8)) as emulator:
        yield emulator


@pytest.fixture
def client(emu: Emulator) -> Any:
    return lightsail_client(emu.url)


def cli(project: Path, emu: Emulator, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=project, endpoint=emu.url)


def ok(result: subprocess.CompletedProcess[str], code: int = 0) -> str:
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout + result.stderr


def live_tags(client: Any, name: str) -> dict[str, str | None]:
    tags = client.get_key_pair(keyPairName=name)["keyPair"]["tags"]
    return {t["key"]: t.get("value") for t in tags}


def live_names(client: Any) -> set[str]:
    return {kp["name"] for kp in client.get_key_pairs()["keyPairs"]}


def fingerprint_of(client: Any, name: str) -> str:
    return str(client.get_key_pair(keyPairName=name)["keyPair"]["fingerprint"])


def md5_fingerprint(openssh: str) -> str:
    digest = hashlib.md5(b64decode(openssh.split()[1]), usedforsecurity=False).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def no_writes(emu: Emulator) -> bool:
    return all(emu.calls[op] == 0 for op in MUTATING)


def replace_out_of_band(client: Any, name: str) -> str:
    """Delete and re-create ``name`` behind the tool's back; the new fingerprint."""
    client.delete_key_pair(keyPairName=name)
    return str(client.create_key_pair(keyPairName=name)["keyPair"]["fingerprint"])


# -- publicKey / publicKeyFile --------------------------------------------------


def _key_manifest(project: Path, ci: str, bastion_file: str = "keys/bastion.pub") -> None:
    write_manifest(
        project / "manifests" / "keys.yaml",
        "us-east-1",
        f"""
        - name: ci
          publicKey: "{ci}"
          tags: {{env: ci, owner: null}}
        - name: bastion
          publicKeyFile: {bastion_file}
        - name: gen
          generate: local
        """,
    )


def test_public_keys_are_imported_then_tagged_and_normalised_before_comparing(
    tmp_path: Path, emu: Emulator, client: Any
) -> None:
    ci, bastion = generate_rsa(), generate_rsa()
    key_file = tmp_path / "manifests" / "keys" / "bastion.pub"
    key_file.parent.mkdir(parents=True)
    key_file.write_text(f"{bastion.public_openssh} ops@laptop\n")
    _key_manifest(tmp_path, f"{ci.public_openssh} ci@example")

    first = cli(tmp_path, emu, "apply", "manifests", "--auto-approve")
    ok(first)
    assert emu.calls["ImportKeyPair"] == 3 and emu.calls["CreateKeyPair"] == 0
    assert emu.committed["TagResource"] == 1  # only ci has tags
    assert live_tags(client, "ci") == {"env": "ci", "owner": None}
    entries = state_entries(tmp_path / "reconciler.state.json")
    for name, key in (("ci", ci), ("bastion", bastion)):
        entry = entries[f"us-east-1/{name}"]
        assert entry["origin"] == "imported"
        assert "privateKey" not in entry and "privateKeySealed" not in entry
        assert (
            entry["fingerprint"]
            == fingerprint_of(client, name)
            == md5_fingerprint(key.public_openssh)
        )
    assert entries["us-east-1/ci"]["tags"] == {"env": "ci", "owner": None}
    # generate: local holds the private half of exactly the key Lightsail imported.
    gen = entries["us-east-1/gen"]
    assert gen["origin"] == "generated"
    assert same_public_key(gen["privateKey"], gen["publicKeyBase64"])
    assert fingerprint_of(client, "gen") == md5_fingerprint(gen["publicKeyBase64"])
    assert_no_leak([first.stdout, first.stderr], [gen["privateKey"]])

    # A new comment, trailing whitespace and blank lines are not key changes.
    _key_manifest(tmp_path, f"{ci.public_openssh}   someone-else@example  ")
    key_file.write_text(f"# rotated 2024\n{bastion.public_openssh} renamed@host   \n\n\n")
    emu.reset_counters()
    same = cli(tmp_path, emu, "plan", "manifests", "--detailed-exitcode")
    assert "No changes. 3 unchanged." in ok(same)

    # A real key change is a replace, shown as one, and carried out as delete + import.
    new_bastion = generate_rsa()
    key_file.write_text(new_bastion.public_openssh + "\n")
    # (apply prints the plan it carries out, as `plan` would)
    planned = ok(cli(tmp_path, emu, "apply", "manifests", "--auto-approve"))
    assert "-/+ us-east-1/bastion  (replace)" in planned
    assert "why: the public key changed" in planned and "replaced by: import" in planned
    assert f"expected fingerprint: {md5_fingerprint(bastion.public_openssh)}" in planned
    # A replace counts as Terraform counts it: one added, one destroyed.
    assert "Plan: 1 to add, 0 to change, 1 to destroy." in planned
    assert emu.committed["DeleteKeyPair"] == 1 and emu.committed["ImportKeyPair"] == 1
    assert fingerprint_of(client, "bastion") == md5_fingerprint(new_bastion.public_openssh)
    entry = state_entries(tmp_path / "reconciler.state.json")["us-east-1/bastion"]
    assert entry["importedPublicKey"] == " ".join(new_bastion.public_openssh.split()[:2])


# -- tags -------------------------------------------------------------------------


def test_tags_are_added_changed_removed_in_place_with_null_distinct_from_empty(
    tmp_path: Path, emu: Emulator, client: Any
) -> None:
    manifest = tmp_path / "web.yaml"
    write_manifest(
        manifest,
        "us-east-1",
        '- name: web\n  tags: {keep: "1", change: old, drop: x, empty: "", novalue: null}',
    )
    ok(cli(tmp_path, emu, "apply", "web.yaml", "--auto-approve"))
    fingerprint = fingerprint_of(client, "web")
    assert live_tags(client, "web") == {
        "keep": "1",
        "change": "old",
        "drop": "x",
        "empty": "",
        "novalue": None,
    }

    wanted = {"keep": "1", "change": "new", "empty": None, "novalue": "", "added": None}
    write_manifest(
        manifest,
        "us-east-1",
        '- name: web\n  tags: {keep: "1", change: new, empty: null, novalue: "", added: null}',
    )
    emu.reset_counters()
    as_json = json.loads(ok(cli(tmp_path, emu, "plan", "web.yaml", "--format", "json")))
    jsonschema.Draft202012Validator(
        json.loads((SCHEMAS / "plan.schema.json").read_text())
    ).validate(as_json)
    assert as_json["changes"][0]["tags"]["set"] == {
        "added": None,
        "change": "new",
        "empty": None,
        "novalue": "",
    }
    assert as_json["changes"][0]["tags"]["remove"] == ["drop"]

    planned = ok(cli(tmp_path, emu, "apply", "web.yaml", "--auto-approve"))
    assert "~ us-east-1/web  (update-tags)" in planned
    for line in (
        '~ tag change: "old" -> "new"',
        '~ tag empty: "" -> (no value)',
        '~ tag novalue: (no value) -> ""',
        "+ tag added: (no value)",
        "- tag drop",
    ):
        assert line in planned
    assert "tag keep" not in planned
    assert emu.committed["TagResource"] == 1 and emu.committed["UntagResource"] == 1
    assert emu.calls["CreateKeyPair"] == emu.calls["DeleteKeyPair"] == 0
    raw = client.get_key_pair(keyPairName="web")["keyPair"]["tags"]
    assert {"key": "empty"} in raw and {"key": "novalue", "value": ""} in raw
    assert live_tags(client, "web") == wanted
    assert fingerprint_of(client, "web") == fingerprint  # the same key pair, updated in place
    assert state_entries(tmp_path / "reconciler.state.json")["us-east-1/web"]["tags"] == wanted
    again = ok(cli(tmp_path, emu, "plan", "web.yaml", "--detailed-exitcode"))
    assert "No changes. 1 unchanged." in again


# -- adopting existing key pairs ------------------------------------------------------


def test_import_command_adopts_a_live_key_pair_then_manages_its_tags(
    tmp_path: Path, emu: Emulator, client: Any
) -> None:
    client.create_key_pair(keyPairName="legacy", tags=[{"key": "owner", "value": "ops"}])
    client.create_key_pair(keyPairName="legacy2")
    write_manifest(
        tmp_path / "m.yaml",
        "us-east-1",
        """
        - name: legacy
          tags: {owner: platform, env: prod}
        - name: legacy2
          tags: {env: dev}
        """,
    )
    emu.reset_counters()
    imported = cli(tmp_path, emu, "import", "us-east-1/legacy")
    assert "Imported us-east-1/legacy" in ok(imported)
    assert no_writes(emu)  # recording it in the state changes nothing in Lightsail
    entry = state_entries(tmp_path / "reconciler.state.json")["us-east-1/legacy"]
    assert entry["origin"] == "adopted" and "privateKey" not in entry
    assert entry["fingerprint"] == fingerprint_of(client, "legacy")
    assert entry["tags"] == {"owner": "ops"}

    twice = ok(cli(tmp_path, emu, "import", "us-east-1/legacy"), 1)
    assert "us-east-1/legacy is already in the state" in twice
    missing = ok(cli(tmp_path, emu, "import", "us-east-1/nothing-here"), 1)
    assert "us-east-1/nothing-here does not exist in Lightsail" in missing
    emu.reset_counters()
    assert "'moon-1' is not a region Lightsail serves" in ok(
        cli(tmp_path, emu, "import", "moon-1/x"), 1
    )
    assert sum(emu.calls.values()) == 0

    # --tags-from brings its tags in line with the manifests at import time.
    ok(cli(tmp_path, emu, "import", "us-east-1/legacy2", "--tags-from", "m.yaml"))
    assert live_tags(client, "legacy2") == {"env": "dev"}

    emu.reset_counters()
    planned = ok(cli(tmp_path, emu, "apply", "m.yaml", "--auto-approve"))
    assert "~ us-east-1/legacy  (update-tags)" in planned
    assert "Plan: 0 to add, 1 to change, 0 to destroy." in planned
    assert live_tags(client, "legacy") == {"owner": "platform", "env": "prod"}
    assert emu.calls["CreateKeyPair"] == emu.calls["DeleteKeyPair"] == 0
    entries = state_entries(tmp_path / "reconciler.state.json")
    assert entries["us-east-1/legacy"]["origin"] == "adopted"
    assert entries["us-east-1/legacy"]["tags"] == {"owner": "platform", "env": "prod"}


def test_import_keeps_the_key_of_a_local_generate_an_interrupted_run_left(
    tmp_path: Path, emu: Emulator, client: Any
) -> None:
    key = generate_rsa()
    # What a run killed between ImportKeyPair and recording its result leaves behind.
    state = tmp_path / "reconciler.state.json"
    pending = {
        "region": "us-east-1",
        "name": "gen",
        "intentId": "intent-1",
        "startedAt": 1.0,
        "operation": "generate",
        "privateKey": key.private_pem,
        "publicKey": key.public_openssh,
    }
    document = {"version": 1, "lineage": "l-1", "serial": 1, "keyPairs": [], "pending": [pending]}
    state.touch(mode=0o600)
    state.write_text(json.dumps(document))
    client.import_key_pair(keyPairName="gen", publicKeyBase64=key.public_openssh)
    write_manifest(tmp_path / "m.yaml", "us-east-1", "- name: gen\n  generate: local")

    drift = cli(tmp_path, emu, "drift", "m.yaml", "--format", "json")
    ok(drift, 2)
    findings = json.loads(drift.stdout)["findings"]
    assert [(f["kind"], f["name"]) for f in findings] == [("pending", "gen")]

    imported = ok(cli(tmp_path, emu, "import", "us-east-1/gen"))
    assert "origin generated, key kept" in imported and key.private_pem not in imported
    entry = state_entries(state)["us-east-1/gen"]
    assert entry["origin"] == "generated" and entry["privateKey"] == key.private_pem
    assert entry["fingerprint"] == md5_fingerprint(key.public_openssh)
    assert json.loads(state.read_text())["pending"] == []


def test_adopt_true_in_the_manifest_takes_over_a_live_key_pair(
    tmp_path: Path, emu: Emulator, client: Any
) -> None:
    client.create_key_pair(keyPairName="shared", tags=[{"key": "old", "value": "1"}])
    write_manifest(
        tmp_path / "m.yaml",
        "us-east-1",
        """
        - name: shared
          adopt: true
          tags: {team: infra}
        - name: fresh
          adopt: true
        """,
    )
    emu.reset_counters()
    planned = ok(cli(tmp_path, emu, "apply", "m.yaml", "--auto-approve"))
    assert "<= us-east-1/shared  (adopt)" in planned
    assert '+ tag team: "infra"' in planned and "- tag old" in planned
    # adopt: true only takes over what exists; a missing one is created as usual.
    assert "+ us-east-1/fresh  (create)" in planned
    assert emu.committed["CreateKeyPair"] == 1  # fresh only
    entries = state_entries(tmp_path / "reconciler.state.json")
    assert entries["us-east-1/shared"]["origin"] == "adopted"
    assert "privateKey" not in entries["us-east-1/shared"]
    assert entries["us-east-1/fresh"]["origin"] == "created"
    assert live_tags(client, "shared") == {"team": "infra"}
    again = ok(cli(tmp_path, emu, "plan", "m.yaml", "--detailed-exitcode"))
    assert "No changes. 2 unchanged." in again


# -- deletes and their guards ----------------------------------------------------------


def test_removed_key_pairs_are_deleted_only_with_prune_and_within_max_deletes(
    tmp_path: Path, emu: Emulator, client: Any
) -> None:
    manifest = tmp_path / "m.yaml"
    write_manifest(manifest, "us-east-1", "- name: keep\n- name: old-a\n- name: old-b")
    ok(cli(tmp_path, emu, "apply", "m.yaml", "--auto-approve"))
    client.create_key_pair(keyPairName="stranger")  # in neither state nor manifests
    recorded = state_entries(tmp_path / "reconciler.state.json")
    write_manifest(manifest, "us-east-1", "- name: keep")
    emu.reset_counters()

    kept = ok(cli(tmp_path, emu, "apply", "m.yaml", "--auto-approve"))
    assert "2 key pair(s) are in the state but no longer in the manifests" in kept
    assert "pass --prune" in kept and "No changes." in kept
    assert no_writes(emu)
    assert live_names(client) == {"keep", "old-a", "old-b", "stranger"}

    refused = cli(
        tmp_path, emu, "apply", "m.yaml", "--prune", "--max-deletes", "1", "--auto-approve"
    )
    planned = ok(refused, 1)  # the plan is shown, then refused before any change
    assert "- us-east-1/old-a  (delete)" in planned and "- us-east-1/old-b  (delete)" in planned
    expected = recorded["us-east-1/old-a"]["fingerprint"]
    assert f"expected fingerprint: {expected}" in planned
    assert "stranger" not in planned
    assert "deletes 2 key pairs, more than --max-deletes 1" in planned
    assert "--max-deletes 2" in refused.stderr
    assert no_writes(emu)

    ok(cli(tmp_path, emu, "apply", "m.yaml", "--prune", "--auto-approve"))
    assert emu.committed["DeleteKeyPair"] == 2
    assert live_names(client) == {"keep", "stranger"}
    assert set(state_entries(tmp_path / "reconciler.state.json")) == {"us-east-1/keep"}


def test_a_key_pair_deleted_outside_is_forgotten_not_deleted(
    tmp_path: Path, emu: Emulator, client: Any
) -> None:
    manifest = tmp_path / "m.yaml"
    write_manifest(manifest, "us-east-1", "- name: keep\n- name: gone")
    ok(cli(tmp_path, emu, "apply", "m.yaml", "--auto-approve"))
    client.delete_key_pair(keyPairName="gone")  # behind the tool's back
    write_manifest(manifest, "us-east-1", "- name: keep")
    emu.reset_counters()

    planned = ok(cli(tmp_path, emu, "plan", "m.yaml", "--prune", "--max-deletes", "0"))
    assert "  x us-east-1/gone  (forget)\n      why: gone live; forget it\n" in planned
    assert "Plan: 0 to add, 0 to change, 0 to destroy, 1 to forget." in planned
    as_json = cli(tmp_path, emu, "plan", "m.yaml", "--prune", "--format", "json")
    ok(as_json)
    data = json.loads(as_json.stdout)
    jsonschema.validate(data, json.loads((SCHEMAS / "plan.schema.json").read_text()))
    assert [(c["action"], c["reasonCode"]) for c in data["changes"]] == [("forget", "gone-live")]
    assert (data["summary"]["forget"], data["summary"]["delete"]) == (1, 0)

    # Not a delete: --max-deletes 0 lets it through, and Lightsail is not called.
    applied = ok(
        cli(tmp_path, emu, "apply", "m.yaml", "--prune", "--max-deletes", "0", "--auto-approve")
    )
    assert "0 destroyed, 1 forgotten" in applied
    assert no_writes(emu) and emu.calls["DeleteKeyPair"] == 0
    assert set(state_entries(tmp_path / "reconciler.state.json")) == {"us-east-1/keep"}
    assert "No changes." in ok(cli(tmp_path, emu, "plan", "m.yaml", "--prune"))


def test_delete_is_refused_for_a_key_pair_replaced_out_of_band(
    tmp_path: Path, emu: Emulator, client: Any
) -> None:
    manifest = tmp_path / "m.yaml"
    write_manifest(manifest, "us-east-1", "- name: rotating\n- name: steady\n- name: swapped")
    ok(cli(tmp_path, emu, "apply", "m.yaml", "--auto-approve"))
    recorded = state_entries(tmp_path / "reconciler.state.json")
    outside = replace_out_of_band(client, "rotating")
    swapped = replace_out_of_band(client, "swapped")
    assert outside != recorded["us-east-1/rotating"]["fingerprint"]
    write_manifest(manifest, "us-east-1", "- name: steady\n- name: swapped")
    emu.reset_counters()

    applied = cli(tmp_path, emu, "apply", "m.yaml", "--prune", "--auto-approve")
    out = ok(applied, 1)
    # Removed from the manifests: deleted only if it is still the one recorded.
    assert "- us-east-1/rotating  (delete)" in out
    assert "replaced outside the tool, so Lightsail will refuse to delete it" in out
    assert f"expected fingerprint: {recorded['us-east-1/rotating']['fingerprint']}" in out
    # Still declared: the out-of-band key is shown as a replace of exactly what is live.
    assert "-/+ us-east-1/swapped  (replace)" in out
    assert "key material was replaced outside" in out
    assert f"expected fingerprint: {swapped}" in out
    assert "deleting us-east-1/rotating: its key material was replaced outside the tool" in out
    assert "not deleted" in out and "Apply finished with errors" in out
    assert emu.calls["DeleteKeyPair"] == 2 and emu.committed["DeleteKeyPair"] == 1
    assert fingerprint_of(client, "rotating") == outside  # the other key pair is untouched
    entries = state_entries(tmp_path / "reconciler.state.json")
    assert entries["us-east-1/rotating"] == recorded["us-east-1/rotating"]
    # The replace went through, and its new private key is held.
    assert fingerprint_of(client, "swapped") not in (swapped, recorded["us-east-1/swapped"])
    assert entries["us-east-1/swapped"]["fingerprint"] == fingerprint_of(client, "swapped")
    assert "privateKey" in entries["us-east-1/swapped"]
    assert_no_leak([applied.stdout, applied.stderr], [entries["us-east-1/swapped"]["privateKey"]])


def test_prevent_destroy_fails_plans_that_would_replace_or_destroy(
    tmp_path: Path, emu: Emulator, client: Any
) -> None:
    first: GeneratedKey = generate_rsa()
    manifest = tmp_path / "m.yaml"

    def declare(key: str) -> None:
        write_manifest(
            manifest,
            "us-east-1",
            f'- name: guarded\n  publicKey: "{key}"\n  preventDestroy: true\n- name: free',
        )

    declare(first.public_openssh)
    ok(cli(tmp_path, emu, "apply", "m.yaml", "--auto-approve"))
    declare(generate_rsa().public_openssh)
    emu.reset_counters()

    planned = cli(tmp_path, emu, "plan", "m.yaml", "--out", "saved.json")
    assert "-/+ us-east-1/guarded  (replace)" in ok(planned, 1)
    assert "preventDestroy: us-east-1/guarded (replace)" in planned.stderr
    assert not (tmp_path / "saved.json").exists()

    declare(first.public_openssh)
    destroyed = ok(cli(tmp_path, emu, "destroy", "m.yaml", "--auto-approve"), 1)
    assert "preventDestroy: us-east-1/guarded (delete)" in destroyed
    assert no_writes(emu)
    assert live_names(client) == {"guarded", "free"}


def test_destroy_deletes_declared_key_pairs_in_state_and_nothing_else(
    tmp_path: Path, emu: Emulator, client: Any
) -> None:
    write_manifest(tmp_path / "a.yaml", "us-east-1", "- name: app-1\n- name: app-2")
    write_manifest(tmp_path / "b.yaml", "us-east-1", "- name: other")
    ok(cli(tmp_path, emu, "apply", "a.yaml", "b.yaml", "--auto-approve"))
    client.create_key_pair(keyPairName="stranger")
    emu.reset_counters()

    ok(cli(tmp_path, emu, "destroy", "a.yaml", "--auto-approve"))
    assert emu.committed["DeleteKeyPair"] == 2
    assert live_names(client) == {"other", "stranger"}
    assert set(state_entries(tmp_path / "reconciler.state.json")) == {"us-east-1/other"}


def test_renaming_a_tag_at_the_50_tag_limit_stays_within_it(
    tmp_path: Path, emu: Emulator, client: Any
) -> None:
    def declare(keys: list[str]) -> None:
        tags = ", ".join(f"{key}: v" for key in keys)
        write_manifest(tmp_path / "m.yaml", "us-east-1", f"- name: full\n  tags: {{{tags}}}")

    declare([f"t{i:02}" for i in range(50)])
    ok(cli(tmp_path, emu, "apply", "m.yaml", "--auto-approve"))
    renamed = [f"t{i:02}" for i in range(49)] + ["renamed"]
    declare(renamed)
    ok(cli(tmp_path, emu, "apply", "m.yaml", "--auto-approve"))
    assert set(live_tags(client, "full")) == set(renamed)
