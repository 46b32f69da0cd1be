"""`reconciler drift`: every finding kind, produced by changing Lightsail out of band.

End to end through the CLI against the emulator over HTTP, plus the pure
``find_drift`` for what the CLI cannot reach cheaply.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from reconciler.emulator import Emulator, EmulatorConfig
from reconciler.model import (
    Address,
    DesiredKeyPair,
    DesiredSet,
    LiveKeyPair,
    LiveSnapshot,
    Source,
    StateEntry,
)
from reconciler.output.jsondoc import drift_json
from reconciler.output.markdown import DRIFT_MARKER, MARKDOWN_LIMIT, drift_markdown
from reconciler.output.text import drift_text
from reconciler.planning import explain
from reconciler.planning.drift import DriftFinding, DriftKind, find_drift
from tests.conftest import lightsail_client
from tests.helpers import load_state, run_cli, state_entries, write_manifest

SCHEMA = json.loads(
    (
        Path(__file__).resolve().parents[2] / "reconciler" / "schemas" / "drift.schema.json"
    ).read_text()
)
MUTATING = ("CreateKeyPair", "ImportKeyPair", "DeleteKeyPair", "TagResource", "UntagResource")
R = "us-east-1"


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(key_pool=8)) as emulator:
        yield emulator


def cli(project: Path, emu: Emulator, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=project, endpoint=emu.url)


def report(result: subprocess.CompletedProcess[str], code: int) -> dict[str, Any]:
    assert result.returncode == code, result.stdout + result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    jsonschema.Draft202012Validator(SCHEMA).validate(data)
    return data


def kinds(data: dict[str, Any]) -> set[tuple[str, str]]:
    return {(f["name"], f["kind"]) for f in data["findings"]}


def test_each_out_of_band_change_is_reported_with_its_kind(tmp_path: Path, emu: Emulator) -> None:
    client = lightsail_client(emu.url)
    manifest = tmp_path / "m.yaml"
    body = "- name: gone\n- name: tagged\n- name: swapped\n- name: retagged\n- name: same"
    write_manifest(manifest, R, body)
    applied = cli(tmp_path, emu, "apply", "m.yaml", "--auto-approve")
    assert applied.returncode == 0, applied.stderr
    in_sync = cli(tmp_path, emu, "drift", "m.yaml")
    assert in_sync.returncode == 0, in_sync.stdout + in_sync.stderr
    assert "No drift" in in_sync.stdout

    # A create whose response is lost after Lightsail committed it: its key is lost.
    write_manifest(manifest, R, body + "\n- name: lost")
    emu.faults.commit_then_fail_rate = 1.0
    failed = cli(tmp_path, emu, "apply", "m.yaml", "--auto-approve")
    assert failed.returncode == 1 and "key material lost" in failed.stderr
    emu.faults.commit_then_fail_rate = 0.0

    recorded = state_entries(tmp_path / "reconciler.state.json")
    client.delete_key_pair(keyPairName="gone")
    client.tag_resource(resourceName="tagged", tags=[{"key": "who", "value": "console"}])
    client.delete_key_pair(keyPairName="swapped")
    new_fingerprint = client.create_key_pair(keyPairName="swapped")["keyPair"]["fingerprint"]
    client.create_key_pair(keyPairName="stranger")
    write_manifest(
        manifest, R, body.replace("retagged", "retagged\n  tags: {env: prod}") + "\n- name: new"
    )
    state_before = (tmp_path / "reconciler.state.json").read_bytes()
    emu.reset_counters()

    data = report(
        cli(tmp_path, emu, "drift", "m.yaml", "--format", "json", "--include-unmanaged"), 2
    )
    assert kinds(data) == {
        ("gone", "deleted"),
        ("tagged", "tags-changed"),
        ("swapped", "fingerprint-changed"),
        ("retagged", "pending"),
        ("new", "pending"),
        ("lost", "lost-key"),
        ("stranger", "unmanaged"),
    }
    assert not data["inSync"] and data["regions"] == [R]
    assert data["summary"] == {
        "deleted": 1,
        "tags-changed": 1,
        "fingerprint-changed": 1,
        "pending": 2,
        "lost-key": 1,
        "unmanaged": 1,
        "key-missing": 0,
        "key-fingerprint-changed": 0,
        "unused": 0,
        "unmanaged-key-in-use": 0,
    }
    by_kind = {f["kind"]: f for f in data["findings"]}
    assert by_kind["fingerprint-changed"]["expected"] == recorded[f"{R}/swapped"]["fingerprint"]
    assert by_kind["fingerprint-changed"]["actual"] == new_fingerprint
    assert by_kind["tags-changed"]["expected"] == {}
    assert by_kind["tags-changed"]["actual"] == {"who": "console"}
    # The findings come in a stable order: by address, then kind.
    assert [f["address"] for f in data["findings"]] == sorted(
        f["address"] for f in data["findings"]
    )

    # Without --include-unmanaged, key pairs in neither state nor manifests are not drift.
    text = cli(tmp_path, emu, "drift", "m.yaml")
    assert text.returncode == 2
    assert "deleted" in text.stdout and f"{R}/gone" in text.stdout
    assert "Drift: 6 finding(s)." in text.stdout and "stranger" not in text.stdout
    markdown = cli(tmp_path, emu, "drift", "m.yaml", "--format", "markdown")
    assert markdown.returncode == 2
    lines = markdown.stdout.splitlines()
    assert lines[0] == DRIFT_MARKER
    assert lines[1] == "### Lightsail key pairs: 6 drift finding(s)"  # unmanaged not asked
    assert f"| `fingerprint-changed` | `{R}/swapped` |" in markdown.stdout
    assert "<details>" in markdown.stdout and "</details>" in markdown.stdout

    # Reading drift changes nothing anywhere.
    assert all(emu.calls[op] == 0 for op in MUTATING)
    assert (tmp_path / "reconciler.state.json").read_bytes() == state_before

    # --refresh takes what is live into the state, without touching Lightsail.
    refreshed = cli(tmp_path, emu, "drift", "m.yaml", "--refresh")
    assert refreshed.returncode == 2 and "State refreshed" in refreshed.stderr
    assert all(emu.calls[op] == 0 for op in MUTATING)
    entries = state_entries(tmp_path / "reconciler.state.json")
    assert f"{R}/gone" not in entries
    assert entries[f"{R}/tagged"]["tags"] == {"who": "console"}
    # A replaced key is not quietly accepted: its fingerprint stays the recorded one.
    assert entries[f"{R}/swapped"]["fingerprint"] == recorded[f"{R}/swapped"]["fingerprint"]
    assert load_state(tmp_path / "reconciler.state.json")["pending"]  # the lost key stays known
    after = report(cli(tmp_path, emu, "drift", "m.yaml", "--format", "json"), 2)
    assert kinds(after) == {
        ("gone", "pending"),  # declared, no longer in state: an apply creates it again
        ("tagged", "pending"),  # the state now has the console tag the manifest lacks
        ("swapped", "fingerprint-changed"),
        ("retagged", "pending"),
        ("new", "pending"),
        ("lost", "lost-key"),
    }


def test_drift_exit_code_is_1_on_errors(tmp_path: Path, emu: Emulator) -> None:
    write_manifest(tmp_path / "m.yaml", R, "- name: web")
    emu.force_error = "AccessDeniedException"
    result = cli(tmp_path, emu, "drift", "m.yaml", "--format", "json")
    assert result.returncode == 1
    assert "AccessDeniedException" in result.stderr and "Traceback" not in result.stderr


# -- the pure part -------------------------------------------------------------------


SRC = Source("m.yaml", 1, 1)


def _want(name: str, **kw: Any) -> DesiredKeyPair:
    return DesiredKeyPair(Address(R, name), kw.pop("tags", {}), SRC, **kw)


def _entry(name: str, **kw: Any) -> StateEntry:
    base: dict[str, Any] = {
        "origin": "created",
        "arn": f"arn:{name}",
        "fingerprint": "aa",
        "created_at": 1.0,
        "tags": {},
    }
    base.update(kw)
    return StateEntry(Address(R, name), **base)


def _live(name: str, fingerprint: str = "aa", **tags: str | None) -> LiveKeyPair:
    return LiveKeyPair(Address(R, name), f"arn:{name}", fingerprint, 1.0, tags)


def _snap(*kps: LiveKeyPair, regions: tuple[str, ...] = (R,)) -> LiveSnapshot:
    return LiveSnapshot({kp.address: kp for kp in kps}, regions)


def _drift(wants: list[DesiredKeyPair], entries: list[StateEntry], snap: LiveSnapshot) -> Any:
    return find_drift(
        DesiredSet({w.address: w for w in wants}),
        {e.address: e for e in entries},
        {},
        snap,
        include_unmanaged=True,
    )


def test_null_and_empty_tag_values_are_different_drift() -> None:
    found = _drift([_want("a", tags={"t": None})], [_entry("a", tags={"t": None})], _snap())
    assert [f.kind for f in found] == [DriftKind.DELETED]
    found = _drift(
        [_want("a", tags={"t": None})],
        [_entry("a", tags={"t": None})],
        _snap(_live("a", t="")),
    )
    assert [(f.kind, f.expected, f.actual) for f in found] == [
        (DriftKind.TAGS_CHANGED, {"t": None}, {"t": ""})
    ]


def test_the_manifest_public_key_of_an_adopted_key_pair_is_not_perpetual_drift() -> None:
    # The planner never replaces an adopted key pair for its public key, so
    # drift must not report an apply as due either.
    wanted = _want("a", public_key="ssh-ed25519 AAAA", adopt=True)
    found = _drift([wanted], [_entry("a", origin="adopted")], _snap(_live("a")))
    assert found == []


def test_a_manifest_asking_for_another_kind_of_key_is_pending() -> None:
    found = _drift([_want("a", generate_local=True)], [_entry("a")], _snap(_live("a")))
    assert [f.kind for f in found] == [DriftKind.PENDING]


def test_regions_not_read_are_not_reported() -> None:
    other = StateEntry(Address("eu-west-1", "x"), "created", "arn", "aa", 1.0, {})
    found = find_drift(
        DesiredSet({}), {other.address: other}, {}, _snap(regions=(R,)), include_unmanaged=True
    )
    assert found == []


def test_the_json_report_of_every_kind_matches_its_schema() -> None:
    findings = [
        DriftFinding(kind, Address(R, f"kp-{i}"), "detail", {"t": None}, "aa:bb")
        for i, kind in enumerate(DriftKind)
    ]
    snap = LiveSnapshot({}, (R,), {"eu-west-1": "throttled"})
    data = drift_json(findings, snap)
    jsonschema.Draft202012Validator(SCHEMA).validate(data)
    assert data["summary"] == {kind.value: 1 for kind in DriftKind}
    assert data["failedRegions"] == {"eu-west-1": "throttled"}
    empty = drift_json([], _snap())
    jsonschema.Draft202012Validator(SCHEMA).validate(empty)
    assert empty["inSync"] is True


def test_the_markdown_report_is_capped_and_keeps_its_marker() -> None:
    findings = [
        DriftFinding(DriftKind.UNMANAGED, Address(R, f"key-pair-{i:05}"), "in neither")
        for i in range(3000)
    ]
    text = drift_markdown(findings, _snap())
    assert len(text) <= MARKDOWN_LIMIT
    assert text.splitlines()[0] == DRIFT_MARKER
    assert "truncated" in text.splitlines()[-1]
    assert text.count("```") % 2 == 0
    assert drift_markdown([], _snap()).splitlines() == [
        DRIFT_MARKER,
        "### Lightsail key pairs: no drift",
    ]


def test_a_region_that_could_not_be_read_is_never_reported_in_sync() -> None:
    snap = LiveSnapshot({}, (R,), {"eu-west-1": "reading key pairs in eu-west-1: throttled"})
    assert drift_json([], snap)["inSync"] is False
    assert "could not be checked" in drift_text([], snap)
    markdown = drift_markdown([], snap).splitlines()
    assert markdown[:2] == [DRIFT_MARKER, "### Lightsail key pairs: no drift in the regions read"]
    assert "eu-west-1 could not be read" in markdown[-1]


def test_drift_says_per_tag_and_per_field_what_differs() -> None:
    state_tags = {"env": "prod", "team": "web", "cost": None}
    found = _drift(
        [_want("a", tags=state_tags)],
        [_entry("a", tags=state_tags)],
        _snap(_live("a", fingerprint="bb", env="dev", team="web", cost="", owner="ana")),
    )
    [tags, fingerprint] = found
    assert [d.to_json() for d in explain.of_finding(tags)] == [
        {"change": "changed", "path": "tags.cost", "before": None, "after": ""},
        {"change": "changed", "path": "tags.env", "before": "prod", "after": "dev"},
        {"change": "added", "path": "tags.owner", "before": None, "after": "ana"},
    ]
    assert [d.to_json() for d in explain.of_finding(fingerprint)] == [
        {"change": "changed", "path": "fingerprint", "before": "aa", "after": "bb"}
    ]
    text = drift_text(found, _snap()).splitlines()
    assert '~ tags.env: "prod" -> "dev"' in " ".join(text)
    assert '+ tags.owner: "ana"' in " ".join(text)
    data = drift_json(found, _snap())
    assert data["findings"][0]["differences"][1]["path"] == "tags.env"
    removed = _drift(
        [_want("b", tags={"x": "1"})], [_entry("b", tags={"x": "1"})], _snap(_live("b"))
    )
    assert [d.to_json() for d in explain.of_finding(removed[0])] == [
        {"change": "removed", "path": "tags.x", "before": "1", "after": None}
    ]
