"""Saved plans: `plan --out FILE` then `apply FILE`, refused when the world moved."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator import Emulator, EmulatorConfig
from reconciler.errors import UsageError
from reconciler.keys import generate_rsa
from reconciler.planning import savedplan
from tests.conftest import lightsail_client
from tests.helpers import (
    PEM_BODY,
    load_state,
    private_key_secrets,
    run_cli,
    state_entries,
    write_manifest,
)

MUTATING = ("CreateKeyPair", "ImportKeyPair", "DeleteKeyPair", "TagResource", "UntagResource")
R = "us-east-1"
OURS = generate_rsa().public_openssh
ATTACKER = generate_rsa().public_openssh


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(key_pool=8)) as emulator:
        yield emulator


@pytest.fixture
def project(tmp_path: Path, emu: Emulator) -> Path:
    """Three key pairs applied, then manifests that add, retag and drop one each."""
    write_manifest(tmp_path / "m.yaml", R, "- name: web\n- name: db\n- name: old")
    applied = cli(tmp_path, emu, "apply", "m.yaml", "--auto-approve")
    assert applied.returncode == 0, applied.stderr
    write_manifest(
        tmp_path / "m.yaml", R, "- name: web\n  tags: {env: prod}\n- name: db\n- name: new"
    )
    emu.reset_counters()
    return tmp_path


def cli(project: Path, emu: Emulator, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=project, endpoint=emu.url)


def save(project: Path, emu: Emulator, *extra: str) -> dict[str, object]:
    result = cli(project, emu, "plan", "m.yaml", "--out", "tf.plan", *extra)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "apply it with `reconciler apply tf.plan`" in result.stderr
    data: dict[str, object] = json.loads((project / "tf.plan").read_text())
    return data


def refused(result: subprocess.CompletedProcess[str], emu: Emulator, why: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Error: Saved plan is stale: " in result.stderr and why in result.stderr
    assert "run `reconciler plan --out FILE` again" in result.stderr
    assert all(emu.calls[op] == 0 for op in MUTATING)


def test_a_saved_plan_is_bound_to_the_state_and_applied_as_saved(
    project: Path, emu: Emulator
) -> None:
    state = load_state(project / "reconciler.state.json")
    saved = save(project, emu, "--prune")
    assert saved["lineage"] == state["lineage"] and saved["serial"] == state["serial"]
    assert str(saved["liveDigest"]).startswith("sha256:")
    assert stat.S_IMODE(os.stat(project / "tf.plan").st_mode) == 0o600
    # No private key material, though the state it was planned against holds three.
    text = (project / "tf.plan").read_text()
    assert not PEM_BODY.search(text) and "privateKey" not in text
    pems = [e["privateKey"] for e in state_entries(project / "reconciler.state.json").values()]
    assert all(secret not in text for secret in private_key_secrets(pems))

    # The manifests may change after planning: the saved plan is what is applied.
    write_manifest(project / "m.yaml", R, "- name: something-else")
    applied = cli(project, emu, "apply", "tf.plan")  # no --auto-approve: the plan was reviewed
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert emu.committed["CreateKeyPair"] == 1 and emu.committed["DeleteKeyPair"] == 1
    assert emu.committed["TagResource"] == 1
    assert set(state_entries(project / "reconciler.state.json")) == {
        f"{R}/web",
        f"{R}/db",
        f"{R}/new",
    }

    # Applying it a second time (or after any other run wrote the state): the
    # state it was made for has moved on.
    emu.reset_counters()
    again = cli(project, emu, "apply", "tf.plan")
    refused(again, emu, f"the state changed since tf.plan was made (serial {saved['serial']}")


def test_a_saved_plan_is_stale_for_a_state_of_another_lineage(project: Path, emu: Emulator) -> None:
    save(project, emu)
    path = project / "reconciler.state.json"
    document = load_state(path)
    document["lineage"] = str(uuid.uuid4())
    path.write_text(json.dumps(document))
    refused(cli(project, emu, "apply", "tf.plan"), emu, "was made for a different state")


def test_a_saved_plan_is_stale_when_lightsail_changed(project: Path, emu: Emulator) -> None:
    save(project, emu)
    lightsail_client(emu.url).tag_resource(
        resourceName="db", tags=[{"key": "touched", "value": "by-hand"}]
    )
    emu.reset_counters()
    refused(
        cli(project, emu, "apply", "tf.plan"),
        emu,
        "the key pairs in Lightsail changed since tf.plan was made",
    )


def test_a_saved_plan_made_before_any_state_applies_once(tmp_path: Path, emu: Emulator) -> None:
    write_manifest(tmp_path / "m.yaml", R, "- name: first")
    save(tmp_path, emu)
    assert not (tmp_path / "reconciler.state.json").exists()
    applied = cli(tmp_path, emu, "apply", "tf.plan")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert set(state_entries(tmp_path / "reconciler.state.json")) == {f"{R}/first"}


def test_a_damaged_saved_plan_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "tf.plan"
    damaged: dict[str, object] = {"kind": savedplan.KIND, "version": 2, "desired": [{}]}
    damaged["binding"] = savedplan._binding(damaged)
    path.write_text(json.dumps(damaged))
    with pytest.raises(UsageError, match="the saved plan is damaged"):
        savedplan.load_if_saved([str(path)])
    path.write_text('{"kind": "reconciler.lightsail/saved-plan", "version": 2, "desired": []}')
    with pytest.raises(UsageError, match="the saved plan was changed after it was made"):
        savedplan.load_if_saved([str(path)])
    path.write_text('{"kind": "reconciler.lightsail/saved-plan", "version": 99}')
    with pytest.raises(UsageError, match="saved plan format 99 is not supported"):
        savedplan.load_if_saved([str(path)])
    # Manifests are not mistaken for saved plans.
    write_manifest(tmp_path / "m.yaml", R, "- name: web")
    assert savedplan.load_if_saved([str(tmp_path / "m.yaml")]) is None
    assert savedplan.load_if_saved([str(path), str(tmp_path / "m.yaml")]) is None


def _edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


EDITS: dict[str, Callable[[dict[str, Any]], None]] = {
    "an imported public key": lambda d: d["desired"][0].update(publicKey=ATTACKER),
    "a desired tag": lambda d: d["desired"][1]["tags"].update(env="dev"),
    "a key pair added": lambda d: d["desired"].append({**d["desired"][0], "name": "evil"}),
    "prune": lambda d: d["options"].update(prune=True),
    "max deletes": lambda d: d["options"].update(maxDeletes=99),
    "allow in use": lambda d: d["options"].update(allowInUse=True),
    "a target": lambda d: d["options"].update(target=["us-east-1/*"]),
    "the place": lambda d: d["where"].update(endpoint="http://127.0.0.1:1"),
    "the state": lambda d: d.update(state="s3://elsewhere/state.json"),
    "the serial": lambda d: d.update(serial=int(d["serial"]) + 1),
    "the live digest": lambda d: d.update(liveDigest="sha256:0"),
    "the changes digest": lambda d: d.update(changesDigest="sha256:0"),
    "what it saw": lambda d: d["seen"].update(x={"live": None}),
}


@pytest.mark.parametrize("what", sorted(EDITS))
def test_a_saved_plan_edited_in_anything_apply_uses_is_refused_before_any_call(
    tmp_path: Path, emu: Emulator, what: str
) -> None:
    write_manifest(
        tmp_path / "m.yaml", R, f"- name: ci\n  publicKey: '{OURS}'\n- name: web\n  tags: {{a: b}}"
    )
    save(tmp_path, emu)
    emu.reset_counters()
    _edit(tmp_path / "tf.plan", EDITS[what])
    applied = cli(tmp_path, emu, "apply", "tf.plan")
    assert applied.returncode == 1, applied.stdout + applied.stderr
    assert "the saved plan was changed after it was made" in applied.stderr
    assert sum(emu.calls.values()) == 0  # not even a read


def test_a_stale_saved_plan_names_what_moved(project: Path, emu: Emulator) -> None:
    save(project, emu)
    lightsail_client(emu.url).tag_resource(
        resourceName="db", tags=[{"key": "owner", "value": "eve"}]
    )
    emu.reset_counters()
    result = cli(project, emu, "apply", "tf.plan")
    refused(result, emu, "the key pairs in Lightsail changed")
    assert f'  {R}/db in Lightsail: tags.owner (none) -> "eve"' in result.stderr


def test_a_plan_made_with_local_is_applied_there(tmp_path: Path) -> None:
    write_manifest(tmp_path / "m.yaml", R, "- name: web")
    env = {"RECONCILER_LOCAL_DIR": str(tmp_path / "local")}
    planned = run_cli("plan", "m.yaml", "--local", "--out", "p", cwd=tmp_path, env=env)
    assert planned.returncode == 0, planned.stderr
    applied = run_cli("apply", "p", cwd=tmp_path, env=env)  # no --local: it goes where planned
    assert applied.returncode == 0, applied.stderr
    assert (tmp_path / "local" / "local.state.json").exists()
    assert not (tmp_path / "reconciler.state.json").exists()
    again = run_cli("plan", "m.yaml", "--local", "--out", "q", cwd=tmp_path, env=env)
    assert again.returncode == 0
    elsewhere = run_cli("apply", "q", "--endpoint-url", "http://127.0.0.1:9", cwd=tmp_path, env=env)
    assert elsewhere.returncode == 1
    assert "was planned against the embedded endpoint (--local)" in elsewhere.stderr


def test_show_prints_a_saved_plan_as_plan_printed_it(project: Path, emu: Emulator) -> None:
    shown = {}
    for fmt in ("text", "json", "markdown"):
        planned = cli(project, emu, "plan", "m.yaml", "--format", fmt, "--out", f"p.{fmt}")
        assert planned.returncode == 0, planned.stderr
        calls = sum(emu.calls.values())
        result = run_cli("show", f"p.{fmt}", "--format", fmt, cwd=project)  # no endpoint needed
        assert sum(emu.calls.values()) == calls  # show calls nothing
        assert result.returncode == 0, result.stderr
        assert result.stdout == planned.stdout
        shown[fmt] = result.stdout
    assert f"+ {R}/new  (create)" in shown["text"]
    assert [c["address"] for c in json.loads(shown["json"])["changes"]] == [f"{R}/new", f"{R}/web"]
    assert shown["markdown"].startswith("<!-- lightsail-reconciler:plan -->")
    _edit(project / "p.text", lambda d: d["shown"].update(text="Plan: 0 to add.\n"))
    edited = run_cli("show", "p.text", cwd=project)
    assert edited.returncode == 1 and "changed after it was made" in edited.stderr
    (project / "m.txt").write_text("not a plan")
    assert run_cli("show", "m.txt", cwd=project).returncode == 1
