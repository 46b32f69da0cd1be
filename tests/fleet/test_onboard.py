"""`reconciler import --all`: manifests for every live key pair, adopted in one run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.emulator import Emulator, EmulatorConfig
from reconciler.keys import generate_rsa
from tests.aws.test_hostile_live import DataFile
from tests.conftest import lightsail_client
from tests.helpers import load_state, run_cli, state_entries, write_manifest
from tests.output.test_terminal import run_in_terminal

US, EU = "us-east-1", "eu-west-1"
TRICKY = {"env": "prod", "flag": "yes", "count": "123", "empty": "", "bare": None}


@pytest.fixture(scope="module")
def fleet() -> Iterator[Emulator]:
    """250 key pairs in two regions, with tags that differ from record to record."""
    with Emulator(EmulatorConfig(port=0)) as emu:
        emu.store.seed_key_pairs(US, 150, prefix="web-", tags={"team": "web"})
        emu.store.seed_key_pairs(EU, 100, prefix="etl-", tags={"team": "data"})
        for i in range(0, 150, 7):
            emu.store.set_tags(US, f"web-{i:06d}", {**TRICKY, "n": str(i)})
        for i in range(0, 100, 9):
            emu.store.set_tags(EU, f"etl-{i:06d}", {"owner": f"ops {i}", "cost-center": None})
        yield emu


def test_import_all_then_plan_shows_no_changes_twice(tmp_path: Path, fleet: Emulator) -> None:
    url = fleet.url
    first = run_cli(
        "import", "--all", "--write-manifests", "manifests", "--auto-approve",
        cwd=tmp_path, endpoint=url,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert "Import complete! Wrote 2 manifest file(s)" in first.stderr
    assert "adopted 250 key pair(s), 0 failed" in first.stderr
    assert sorted(p.name for p in (tmp_path / "manifests").iterdir()) == [
        "eu-west-1.yaml",
        "us-east-1.yaml",
    ]
    us_text = (tmp_path / "manifests" / "us-east-1.yaml").read_text()
    assert us_text.startswith(
        "# Key pairs found in Lightsail, account 123456789012, region us-east-1"
    )
    us = yaml.safe_load(us_text)
    names = [kp["name"] for kp in us["keyPairs"]]
    assert names == sorted(names) and len(names) == 150
    assert us["keyPairs"][7]["tags"] == {**TRICKY, "n": "7"}
    assert us["keyPairs"][1]["tags"] == {"team": "web"}
    entries = state_entries(tmp_path / "reconciler.state.json")
    assert len(entries) == 250 and {e["origin"] for e in entries.values()} == {"adopted"}
    assert not any("privateKey" in e for e in entries.values())
    assert fleet.calls["TagResource"] == 0 and fleet.calls["UntagResource"] == 0

    for _ in range(2):
        plan = run_cli("plan", "manifests", "--detailed-exitcode", cwd=tmp_path, endpoint=url)
        assert plan.returncode == 0, plan.stdout + plan.stderr
        assert "No changes. 250 unchanged." in plan.stdout

        serial = load_state(tmp_path / "reconciler.state.json")["serial"]
        before = {p.name: p.read_bytes() for p in (tmp_path / "manifests").iterdir()}
        again = run_cli(
            "import", "--all", "--write-manifests", "manifests", cwd=tmp_path, endpoint=url
        )
        assert again.returncode == 0, again.stderr
        assert "Nothing to do" in again.stderr and "all 250 live key pair(s)" in again.stderr
        assert load_state(tmp_path / "reconciler.state.json")["serial"] == serial
        assert {p.name: p.read_bytes() for p in (tmp_path / "manifests").iterdir()} == before


def test_region_filter_and_existing_files(tmp_path: Path, fleet: Emulator) -> None:
    url = fleet.url
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "eu-west-1.yaml").write_text("# mine\n")
    refused = run_cli(
        "import", "--all", "--region", EU, "--write-manifests", "m", "--auto-approve",
        cwd=tmp_path, endpoint=url,
    )  # fmt: skip
    assert refused.returncode == 1
    assert "m/eu-west-1.yaml exists and differs from what would be written" in refused.stderr
    assert "--force" in refused.stderr
    assert (tmp_path / "m" / "eu-west-1.yaml").read_text() == "# mine\n"
    assert not (tmp_path / "reconciler.state.json").exists()

    forced = run_cli(
        "import", "--all", "--region", EU, "--write-manifests", "m", "--force", "--auto-approve",
        cwd=tmp_path, endpoint=url,
    )  # fmt: skip
    assert forced.returncode == 0, forced.stderr
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["eu-west-1.yaml"]
    assert len(state_entries(tmp_path / "reconciler.state.json")) == 100
    plan = run_cli("plan", "m", "--detailed-exitcode", cwd=tmp_path, endpoint=url)
    assert plan.returncode == 0 and "No changes. 100 unchanged." in plan.stdout

    bad = run_cli("import", "--all", cwd=tmp_path, endpoint=url)
    assert bad.returncode == 1 and "import --all needs --write-manifests DIR" in bad.stderr
    both = run_cli("import", "us-east-1/x", "--all", "--write-manifests", "m", cwd=tmp_path)
    assert both.returncode == 1 and "not both" in both.stderr


def test_without_auto_approve_it_shows_and_asks(tmp_path: Path, fleet: Emulator) -> None:
    args = ["import", "--all", "--region", US, "--write-manifests", "m"]
    code, out = run_in_terminal(args, tmp_path, fleet.url, answer="no")
    assert code == 1 and "cancelled; nothing was changed" in out
    assert "m/us-east-1.yaml  (150 key pair(s), new)" in out
    assert "<= us-east-1/web-000149" in out
    assert "Import: 1 file(s) to write, 150 key pair(s) to adopt." in out
    assert not (tmp_path / "m").exists() and not (tmp_path / "reconciler.state.json").exists()

    code, out = run_in_terminal(args, tmp_path, fleet.url, answer="yes")
    assert code == 0, out
    assert len(state_entries(tmp_path / "reconciler.state.json")) == 150

    piped = run_cli(*args, cwd=tmp_path, endpoint=fleet.url)
    assert piped.returncode == 0 and "Nothing to do" in piped.stderr


def test_key_pairs_already_managed_keep_how_they_were_made(
    tmp_path: Path, emulator: Emulator, lightsail: Any
) -> None:
    public = generate_rsa().public_openssh
    write_manifest(
        tmp_path / "old" / "m.yaml",
        US,
        f"""
        - name: made
          preventDestroy: true
        - name: brought
          publicKey: "{public}"
        - name: local
          generate: local
        """,
    )
    url = emulator.url
    assert run_cli("apply", "old", "--auto-approve", cwd=tmp_path, endpoint=url).returncode == 0
    lightsail.create_key_pair(keyPairName="by-hand", tags=[{"key": "k", "value": "v"}])
    result = run_cli(
        "import", "--all", "--region", US, "--write-manifests", "new", "--auto-approve",
        cwd=tmp_path, endpoint=url,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "adopted 1 key pair(s)" in result.stderr
    written = yaml.safe_load((tmp_path / "new" / "us-east-1.yaml").read_text())
    by_name = {kp["name"]: kp for kp in written["keyPairs"]}
    assert by_name["brought"]["publicKey"] == " ".join(public.split()[:2])
    assert by_name["local"]["generate"] == "local"
    assert by_name["made"] == {"name": "made", "preventDestroy": True}
    assert by_name["by-hand"] == {"name": "by-hand", "tags": {"k": "v"}}
    plan = run_cli("plan", "new", "--detailed-exitcode", cwd=tmp_path, endpoint=url)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "No changes. 4 unchanged." in plan.stdout


def test_an_unknown_region_is_refused_before_anything_is_read(tmp_path: Path) -> None:
    bad = run_cli("import", "--all", "--region", "mars-1", "--write-manifests", "m", cwd=tmp_path)
    assert bad.returncode == 1
    assert "Error: --region 'mars-1' is not a region Lightsail serves" in bad.stderr
    assert not (tmp_path / "m").exists()


def test_import_all_beside_existing_manifests_writes_only_what_none_declares(
    tmp_path: Path, fleet: Emulator
) -> None:
    url = fleet.url
    # Two key pairs are declared already, in a file named as import would name its own.
    write_manifest(
        tmp_path / "m" / "eu-west-1.yaml",
        EU,
        "- name: etl-000000\n  tags: {team: data}\n  rotate: {after: 90d, keep: 1}\n"
        "- name: etl-000001\n  tags: {team: data}",
    )
    before = (tmp_path / "m" / "eu-west-1.yaml").read_text()
    done = run_cli(
        "import", "--all", "--region", EU, "--manifests", "m", "--write-manifests", "m",
        "--auto-approve", cwd=tmp_path, endpoint=url,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "m" / "eu-west-1.yaml").read_text() == before  # untouched
    written = yaml.safe_load((tmp_path / "m" / "eu-west-1.imported.yaml").read_text())
    names = [kp["name"] for kp in written["keyPairs"]]
    assert len(names) == 98 and "etl-000000" not in names and "etl-000001" not in names
    assert len(state_entries(tmp_path / "reconciler.state.json")) == 100  # all adopted
    valid = run_cli("validate", "m", cwd=tmp_path)
    assert valid.returncode == 0, valid.stderr  # no key pair declared twice
    assert "Valid: 100 key pair(s) in 2 file(s)." in valid.stderr


def test_import_all_names_and_skips_key_pairs_no_manifest_could_declare(tmp_path: Path) -> None:
    """Live data someone else's tooling left (a dotted name, a tag value with a newline and
    an escape sequence) cannot be declared: named, skipped, and every written file
    validates."""
    data = DataFile(tmp_path / "lightsail.json")
    with data.running() as emu:
        client = lightsail_client(emu.url)
        for name in ("ok-a", "ok-b", "ok-c"):
            client.create_key_pair(keyPairName=name, tags=[{"key": "team", "value": "web"}])
    data.set_wire("keyPairs", "ok-b", {"tags": [{"key": "note", "value": "line\nbreak \x1b[2J"}]})
    data.set_wire("keyPairs", "ok-c", {"name": "dotted.name"})
    project = tmp_path / "p"
    project.mkdir()
    with data.running() as emu:
        done = run_cli(
            "import", "--all", "--region", US, "--write-manifests", "m", "--auto-approve",
            cwd=project, endpoint=emu.url,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "\x1b[2J" not in done.stdout + done.stderr  # the escape is shown, never sent
    assert f"{US}/dotted.name is not written or adopted: no manifest could declare its name" in (
        done.stderr
    )
    assert f"{US}/ok-b is not written or adopted: no manifest could declare its tags" in done.stderr
    written = yaml.safe_load((project / "m" / f"{US}.yaml").read_text())
    assert [kp["name"] for kp in written["keyPairs"]] == ["ok-a"]
    valid = run_cli("validate", "m", cwd=project)
    assert valid.returncode == 0, valid.stderr
