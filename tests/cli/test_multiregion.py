"""Several regions in one run: read concurrently, merged deterministically,
one failing region reported while the others are still planned and applied."""

from __future__ import annotations

from pathlib import Path

from reconciler.emulator import Emulator, EmulatorConfig
from tests.conftest import lightsail_client
from tests.helpers import run_cli, state_entries, write_manifest

REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2", "ca-central-1")


def manifests(root: Path) -> None:
    for region in REGIONS:
        write_manifest(
            root / "manifests" / f"{region}.yaml",
            region,
            "\n".join(f"- name: app-{i}\n  tags: {{region: {region}}}" for i in range(3)),
        )


def test_many_regions_in_one_apply(tmp_path: Path) -> None:
    manifests(tmp_path)
    with Emulator(EmulatorConfig(latency_ms=20, key_pool=4)) as emu:
        applied = run_cli("apply", "manifests", "--auto-approve", cwd=tmp_path, endpoint=emu.url)
        assert applied.returncode == 0, applied.stderr
        assert "Regions read: ap-southeast-2, ca-central-1, eu-west-1, us-east-1" in applied.stdout
        # Each region read with one GetKeyPairs call (fewer than a page each).
        assert emu.calls["GetKeyPairs"] == len(REGIONS)
        entries = state_entries(tmp_path / "reconciler.state.json")
        assert len(entries) == 12
        for region in REGIONS:
            live = lightsail_client(emu.url, region).get_key_pairs()["keyPairs"]
            assert sorted(kp["name"] for kp in live) == ["app-0", "app-1", "app-2"]
            assert all(entries[f"{region}/{kp['name']}"]["arn"] == kp["arn"] for kp in live)
            assert all(f":{region}:" in kp["arn"] for kp in live)

        first = run_cli("plan", "manifests", "--format", "json", cwd=tmp_path, endpoint=emu.url)
        second = run_cli("plan", "manifests", "--format", "json", cwd=tmp_path, endpoint=emu.url)
        assert first.stdout == second.stdout  # merged deterministically


def test_one_failing_region_is_reported_and_the_others_still_apply(tmp_path: Path) -> None:
    manifests(tmp_path)
    with Emulator(EmulatorConfig(key_pool=4)) as emu:
        emu.region_errors["eu-west-1"] = "RegionSetupInProgressException"
        plan = run_cli("plan", "manifests", "--detailed-exitcode", cwd=tmp_path, endpoint=emu.url)
        assert plan.returncode == 1
        assert "eu-west-1: reading key pairs in eu-west-1" in plan.stdout
        assert "RegionSetupInProgressException" in plan.stdout
        assert "us-east-1/app-0" in plan.stdout and "eu-west-1/app-0" not in plan.stdout

        applied = run_cli("apply", "manifests", "--auto-approve", cwd=tmp_path, endpoint=emu.url)
        assert applied.returncode == 1  # the failed region is reported
        entries = state_entries(tmp_path / "reconciler.state.json")
        assert len(entries) == 9
        assert not any(address.startswith("eu-west-1/") for address in entries)

        emu.region_errors.clear()
        healed = run_cli("apply", "manifests", "--auto-approve", cwd=tmp_path, endpoint=emu.url)
        assert healed.returncode == 0, healed.stderr
        assert len(state_entries(tmp_path / "reconciler.state.json")) == 12


def test_region_filter_limits_what_is_read_and_planned(tmp_path: Path) -> None:
    manifests(tmp_path)
    with Emulator(EmulatorConfig(key_pool=4)) as emu:
        result = run_cli(
            "plan", "manifests", "--region", "ca-central-1", cwd=tmp_path, endpoint=emu.url
        )
        assert result.returncode == 0, result.stderr
        assert "Regions read: ca-central-1" in result.stdout
        assert "Plan: 3 to add" in result.stdout
        assert emu.calls["GetKeyPairs"] == 1
