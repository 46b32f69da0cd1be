"""Plans that would delete or replace a key pair instances were launched with are refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reconciler.emulator import Emulator, EmulatorConfig
from tests.conftest import lightsail_client
from tests.helpers import run_cli, write_manifest

R = "us-east-1"
LAUNCH = {"availabilityZone": "us-east-1a", "blueprintId": "ubuntu_22_04", "bundleId": "nano_3_0"}


def key_pairs(emulator: Emulator) -> set[str]:
    return {kp["name"] for kp in lightsail_client(emulator.url).get_key_pairs()["keyPairs"]}


def test_deleting_or_replacing_a_key_pair_in_use_is_refused(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "manifests" / "keys.yaml", R, "- name: web\n- name: db\n")
    # A small page size: the guard must read every page of instances.
    with Emulator(EmulatorConfig(page_size=2)) as emulator:
        url = emulator.url
        applied = run_cli("apply", "manifests", "--auto-approve", cwd=tmp_path, endpoint=url)
        assert applied.returncode == 0, applied.stderr
        client: Any = lightsail_client(url)
        client.create_instances(instanceNames=["a-1", "a-2", "a-3"], **LAUNCH)
        client.create_instances(instanceNames=["web-1", "web-2"], keyPairName="web", **LAUNCH)
        emulator.reset_counters()

        # A plan with nothing to delete reads no instances.
        plan = run_cli("plan", "manifests", cwd=tmp_path, endpoint=url)
        assert plan.returncode == 0, plan.stderr
        assert emulator.calls["GetInstances"] == 0

        write_manifest(manifest, R, "- name: db\n")
        for command in (
            ("plan", "manifests", "--prune"),
            ("apply", "manifests", "--prune", "--auto-approve"),
        ):
            refused = run_cli(*command, cwd=tmp_path, endpoint=url)
            assert refused.returncode == 1, refused.stderr
            assert (
                "refusing to delete or replace us-east-1/web: 2 instance(s) were launched with it "
                "(web-1, web-2)" in refused.stderr
            )
            assert "nothing was changed" in refused.stderr
        assert emulator.calls["GetInstances"] == 2 * 3  # every page, for each command
        assert key_pairs(emulator) == {"web", "db"}
        assert emulator.committed["DeleteKeyPair"] == 0

        write_manifest(manifest, R, "- name: web\n- name: db\n")
        replace = run_cli(
            "apply",
            "manifests",
            "--auto-approve",
            "--replace",
            f"{R}/web",
            cwd=tmp_path,
            endpoint=url,
        )
        assert replace.returncode == 1 and "refusing to delete or replace" in replace.stderr
        assert emulator.committed["DeleteKeyPair"] == 0

        # Once no instance names it, the same prune goes through.
        client.delete_instance(instanceName="web-1")
        client.delete_instance(instanceName="web-2")
        write_manifest(manifest, R, "- name: db\n")
        pruned = run_cli(
            "apply", "manifests", "--auto-approve", "--prune", cwd=tmp_path, endpoint=url
        )
        assert pruned.returncode == 0, pruned.stderr
        assert key_pairs(emulator) == {"db"}
