"""Apply summaries count what is left unresolved; --quiet keeps only the summaries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reconciler.apply.executor import ApplyResult
from reconciler.emulator import Emulator
from reconciler.model import Address
from reconciler.output import summary as outcome
from reconciler.planning.planner import Finding, FindingKind, Plan
from tests.helpers import run_cli, state_entries, write_manifest


def _plan(*findings: Finding) -> Plan:
    return Plan((), findings, 0, (), (), ("us-east-1",), "l", 1, "sha256:" + "0" * 64)


def _conflict(name: str) -> Finding:
    return Finding(FindingKind.CONFLICT, Address("us-east-1", name), "exists", "import it")


def test_summary_counts_each_kind_of_finding_left_with_its_remedy() -> None:
    lost = Finding(FindingKind.LOST_KEY, Address("us-east-1", "x"), "lost", "replace")
    text = outcome.summary(_plan(_conflict("a"), _conflict("b"), lost), ApplyResult())
    assert text == (
        "Apply finished with errors! Resources: 0 added, 0 changed, 0 destroyed; "
        "2 conflicts left: run `reconciler import us-east-1/a`, `reconciler import us-east-1/b`, "
        "1 lost key left."
    )
    assert not outcome.succeeded(_plan(lost), ApplyResult())
    assert outcome.summary(_plan(), ApplyResult()) == (
        "Apply complete! Resources: 0 added, 0 changed, 0 destroyed."
    )
    many = outcome.summary(_plan(*(_conflict(f"k{i}") for i in range(7))), None)
    assert "7 conflicts left: run `reconciler import us-east-1/k0`" in many
    assert "`reconciler import us-east-1/k4` and 2 more." in many


def test_apply_with_a_conflict_makes_the_rest_and_counts_the_conflict(
    tmp_path: Path, emulator: Emulator, lightsail: Any
) -> None:
    write_manifest(tmp_path / "m.yaml", "us-east-1", "- name: taken\n- name: free")
    lightsail.create_key_pair(keyPairName="taken")
    result = run_cli("apply", "m.yaml", "--auto-approve", cwd=tmp_path, endpoint=emulator.url)
    assert result.returncode == 1
    assert (
        "Apply finished with errors! Resources: 1 added, 0 changed, 0 destroyed; "
        "1 conflict left: run `reconciler import us-east-1/taken`." in result.stderr
    )
    assert set(state_entries(tmp_path / "reconciler.state.json")) == {"us-east-1/free"}

    # Nothing else to do: the conflict is still counted, and still exit 1.
    again = run_cli("apply", "m.yaml", "--auto-approve", cwd=tmp_path, endpoint=emulator.url)
    assert again.returncode == 1
    assert "Resources: 0 added, 0 changed, 0 destroyed; 1 conflict left" in again.stderr

    assert run_cli("import", "us-east-1/taken", cwd=tmp_path, endpoint=emulator.url).returncode == 0
    done = run_cli("apply", "m.yaml", "--auto-approve", cwd=tmp_path, endpoint=emulator.url)
    assert done.returncode == 0, done.stderr


def test_quiet_apply_prints_no_line_per_change_but_keeps_the_summary(
    tmp_path: Path, emulator: Emulator
) -> None:
    body = "\n".join(f"- name: kp-{i}" for i in range(5))
    write_manifest(tmp_path / "m.yaml", "us-east-1", body)
    loud = run_cli(
        "apply",
        "m.yaml",
        "--auto-approve",
        "--target",
        "us-east-1/kp-0",
        cwd=tmp_path,
        endpoint=emulator.url,
    )
    assert "create us-east-1/kp-0: done" in loud.stderr and "(create)" in loud.stdout
    quiet = run_cli(
        "apply", "m.yaml", "--auto-approve", "--quiet", cwd=tmp_path, endpoint=emulator.url
    )
    assert quiet.returncode == 0, quiet.stderr
    assert "kp-" not in quiet.stdout + quiet.stderr
    assert quiet.stdout == ("Plan: 4 to add, 0 to change, 0 to destroy.\n")
    assert "Apply complete! Resources: 4 added, 0 changed, 0 destroyed." in quiet.stderr

    (tmp_path / "m.yaml").write_text((tmp_path / "m.yaml").read_text().replace("kp-4", "kp-9"))
    pruned = run_cli(
        "destroy", "m.yaml", "--auto-approve", "-q", cwd=tmp_path, endpoint=emulator.url
    )
    assert pruned.returncode == 0, pruned.stderr
    assert "kp-" not in pruned.stdout + pruned.stderr
    assert "4 destroyed" in pruned.stderr
