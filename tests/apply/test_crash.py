"""Key material survives crashes, lost responses, races and throttling.

The reconciler runs as a real process (forked from a pre-imported server, see
tests/forkrun.py) against an in-process emulator over HTTP. Rounds are seeded,
so a failure names a round that can be re-run.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.aws.lightsail import ClientOptions, Lightsail
from reconciler.emulator import Emulator, EmulatorConfig
from reconciler.manifests.load import load_desired
from reconciler.planning.planner import FindingKind, make_plan
from reconciler.state import LocalBackend
from tests.conftest import lightsail_client
from tests.emulator_helpers import live_fingerprints
from tests.forkrun import ForkedCLI
from tests.helpers import (
    CLI_OUTPUTS,
    assert_no_leak,
    created_fingerprint,
    run_cli,
    write_manifest,
)

# The whole tool end to end (faults, crashes, a browser, a terminal, real tools):
# `make test-fast` leaves these out.
pytestmark = pytest.mark.e2e

KEY_PAIRS = 200
ROUNDS = 20


def manifest(root: Path, count: int = KEY_PAIRS) -> Path:
    body = "\n".join(f"- name: kp-{i:04d}\n  tags: {{n: '{i}'}}" for i in range(count))
    return write_manifest(root / "manifests" / "many.yaml", "us-east-1", body)


@pytest.fixture
def slow_emulator() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(latency_ms=8, key_pool=16, seed=7)) as emu:
        yield emu


def start_apply(cwd: Path, url: str, *extra: str) -> ForkedCLI:
    """`reconciler apply` in its own process, forked from a pre-imported server."""
    env = dict(os.environ, AWS_ENDPOINT_URL_LIGHTSAIL=url)
    return ForkedCLI(["apply", "manifests", "--auto-approve", *extra], cwd=cwd, env=env)


def check_invariants(cwd: Path, emu: Emulator) -> tuple[set[str], set[str]]:
    """Every live key pair is in state with its real key, or pending (lost)."""
    doc = LocalBackend(cwd / "reconciler.state.json").read()  # state + journal, must parse
    live = live_fingerprints(emu.url)
    held = {a.name for a, e in doc.entries.items() if e.private_key}
    pending = {a.name for a in doc.pending}
    for name, fingerprint in live.items():
        entry = next((e for a, e in doc.entries.items() if a.name == name), None)
        if entry is not None:
            assert entry.private_key is not None, name
            assert created_fingerprint(entry.private_key) == fingerprint, name
            assert entry.fingerprint == fingerprint, name
        else:
            assert name in pending, f"{name} is live but neither in state nor pending"
    # No key pair was ever created twice: every committed create is one live key pair.
    assert emu.committed["CreateKeyPair"] == len(live)
    return held, pending


def crash_rounds(tmp_path: Path, emu: Emulator, seed: int, rounds: int) -> list[str]:
    rng = random.Random(seed)
    outputs: list[str] = []
    interrupted = 0
    for round_no in range(rounds):
        cwd = tmp_path / f"round-{round_no}"
        manifest(cwd)
        emu.store.clear()
        emu.reset_counters()
        proc = start_apply(cwd, emu.url)
        # A 200-key apply takes about half a second here: most kills land mid-apply.
        time.sleep(rng.uniform(0.02, 0.6))
        proc.kill()  # SIGKILL
        out, err = proc.communicate(timeout=30)
        interrupted += proc.returncode == -9
        outputs += [out, err]
        CLI_OUTPUTS.extend((out, err))
        check_invariants(cwd, emu)

        rerun = run_cli("apply", "manifests", "--auto-approve", cwd=cwd, endpoint=emu.url)
        outputs += [rerun.stdout, rerun.stderr]
        held, pending = check_invariants(cwd, emu)
        live = live_fingerprints(emu.url)
        assert len(live) == KEY_PAIRS, f"round {round_no}: the rerun did not converge"
        assert held | pending >= set(live)
        if pending:
            assert rerun.returncode == 1
            assert "key material lost" in rerun.stdout + rerun.stderr
        else:
            assert rerun.returncode == 0, f"round {round_no}: {rerun.stderr}"
        # Planning again (in-process, to keep rounds short) finds nothing to do
        # but the lost keys, each reported as such.
        doc = LocalBackend(cwd / "reconciler.state.json").read()
        final = make_plan(
            load_desired([cwd / "manifests"]),
            doc.entries,
            doc.pending,
            Lightsail(ClientOptions(endpoint_url=emu.url)).snapshot(["us-east-1"]),
        )
        assert final.changes == (), f"round {round_no}: {final.changes[:3]}"
        assert {f.address.name for f in final.findings if f.address} == pending
        assert all(f.kind is FindingKind.LOST_KEY for f in final.findings)
        pems = [e.private_key for e in doc.entries.values() if e.private_key]
        assert_no_leak(outputs, pems)
        outputs.clear()
    assert interrupted, "no round was killed before its apply finished"
    return outputs


@pytest.mark.slow
def test_sigkill_at_random_moments_never_loses_or_duplicates_a_key(
    tmp_path: Path, slow_emulator: Emulator
) -> None:
    crash_rounds(tmp_path, slow_emulator, seed=1234, rounds=ROUNDS)


@pytest.mark.slow
def test_sigkill_with_lost_responses(tmp_path: Path) -> None:
    config = EmulatorConfig(latency_ms=8, key_pool=16, seed=99, commit_then_fail_rate=0.2)
    with Emulator(config) as emu:
        crash_rounds(tmp_path, emu, seed=4321, rounds=ROUNDS)


def test_a_lost_response_is_reported_and_replace_fixes_it(tmp_path: Path) -> None:
    manifest(tmp_path, 3)
    with Emulator(EmulatorConfig(key_pool=4, seed=1)) as emu:
        emu.faults.commit_then_fail_rate = 1.0
        first = run_cli("apply", "manifests", "--auto-approve", cwd=tmp_path, endpoint=emu.url)
        assert first.returncode == 1
        assert "key material lost" in first.stderr
        assert "reconciler apply --replace us-east-1/kp-0000" in first.stderr
        assert emu.committed["CreateKeyPair"] == 3  # created once each, never retried blindly

        emu.faults.commit_then_fail_rate = 0.0
        plan = run_cli("plan", "manifests", cwd=tmp_path, endpoint=emu.url)
        assert plan.returncode == 1
        assert plan.stdout.count("key material lost") == 3
        assert "already exists" not in plan.stdout

        fixed = run_cli(
            "apply",
            "manifests",
            "--auto-approve",
            "--replace",
            "us-east-1/kp-0001",
            cwd=tmp_path,
            endpoint=emu.url,
        )
        assert "replace" in fixed.stdout
        doc = LocalBackend(tmp_path / "reconciler.state.json").read()
        names = {a.name for a in doc.entries}
        assert names == {"kp-0001"}
        entry = next(iter(doc.entries.values()))
        live = lightsail_client(emu.url).get_key_pair(keyPairName="kp-0001")["keyPair"]
        assert entry.private_key and created_fingerprint(entry.private_key) == live["fingerprint"]
        assert {a.name for a in doc.pending} == {"kp-0000", "kp-0002"}


def test_two_concurrent_applies_one_proceeds_no_duplicate_creates(tmp_path: Path) -> None:
    manifest(tmp_path, 40)
    with Emulator(EmulatorConfig(latency_ms=80, key_pool=8)) as emu:
        first = start_apply(tmp_path, emu.url, "--parallelism", "1")
        # Wait until the first holds the lock (its lock file exists).
        deadline = time.monotonic() + 20
        while not (tmp_path / "reconciler.state.json.lock").exists():
            assert time.monotonic() < deadline, "first apply never took the lock"
            time.sleep(0.02)
        second = run_cli("apply", "manifests", "--auto-approve", cwd=tmp_path, endpoint=emu.url)
        _out, err = first.communicate(timeout=120)
        assert first.returncode == 0, err
        assert second.returncode == 1
        assert "locked by apply" in second.stderr and f"pid {first.pid}" in second.stderr
        assert emu.calls["CreateKeyPair"] == 40
        assert emu.committed["CreateKeyPair"] == 40


def test_second_apply_waits_with_lock_timeout(tmp_path: Path) -> None:
    manifest(tmp_path, 10)
    with Emulator(EmulatorConfig(latency_ms=50, key_pool=4)) as emu:
        first = start_apply(tmp_path, emu.url, "--parallelism", "1")
        deadline = time.monotonic() + 20
        while not (tmp_path / "reconciler.state.json.lock").exists():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        second = run_cli(
            "apply",
            "manifests",
            "--auto-approve",
            "--lock-timeout",
            "60",
            cwd=tmp_path,
            endpoint=emu.url,
        )
        first.communicate(timeout=60)
        assert first.returncode == 0
        assert second.returncode == 0, second.stderr
        assert "No changes." in second.stdout
        assert emu.committed["CreateKeyPair"] == 10


@pytest.mark.parametrize(
    "faults",
    [
        {"throttle_rate": 0.3},
        {"error_rate": 0.2},
    ],
    ids=["throttle-30pc", "errors-20pc"],
)
def test_apply_converges_through_throttling_and_5xx(tmp_path: Path, faults: Any) -> None:
    manifest(tmp_path, 60)
    with Emulator(EmulatorConfig(key_pool=8, seed=5, **faults)) as emu:
        result = run_cli("apply", "manifests", "--auto-approve", cwd=tmp_path, endpoint=emu.url)
        assert result.returncode == 0, result.stderr
        assert "Apply complete! Resources:" in result.stderr and " failed" not in result.stderr
        emu.faults.throttle_rate = emu.faults.error_rate = 0.0  # for the checks below
        assert len(live_fingerprints(emu.url)) == 60
        assert emu.committed["CreateKeyPair"] == 60  # no blind duplicate after a 5xx
        check_invariants(tmp_path, emu)


SSM_KEY_PAIRS = 60


def stored_key(ssm: Any, name: str) -> str | None:
    try:
        value: str = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        return None
    return value


def check_ssm_invariants(cwd: Path, emu: Emulator, ssm: Any, prefix: str) -> set[str]:
    """Every live key pair has its key in SSM or (not yet stored) in the state, or is
    pending (lost); never in two places with different fingerprints. Returns the pending."""
    doc = LocalBackend(cwd / "reconciler.state.json").read()
    pending = {a.name for a in doc.pending}
    for name, fingerprint in live_fingerprints(emu.url).items():
        entry = next((e for a, e in doc.entries.items() if a.name == name), None)
        kept = stored_key(ssm, f"/{prefix}/us-east-1/{name}")
        if kept is not None:
            assert created_fingerprint(kept) == fingerprint, name
        if entry is None:
            assert name in pending, f"{name} is live but neither in state nor pending"
            continue
        assert entry.fingerprint == fingerprint, name
        if entry.private_key_ref is not None:
            assert kept is not None, f"{name}: the state refers to a key SSM does not hold"
            assert entry.private_key_ref["fingerprint"] == fingerprint, name
        else:
            assert entry.private_key is not None, name
            assert created_fingerprint(entry.private_key) == fingerprint, name
    assert emu.committed["CreateKeyPair"] == len(live_fingerprints(emu.url))
    return pending


@pytest.mark.parametrize("commit_then_fail", [0.0, 0.2])
def test_sigkill_with_an_ssm_key_store(
    tmp_path: Path, moto_url: str, monkeypatch: pytest.MonkeyPatch, commit_then_fail: float
) -> None:
    from reconciler.custody import key_fingerprint
    from tests.conftest import aws_client

    monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", moto_url)
    ssm = aws_client("ssm", moto_url)
    config = EmulatorConfig(
        latency_ms=8, key_pool=16, seed=5, commit_then_fail_rate=commit_then_fail
    )
    rng = random.Random(77)
    with Emulator(config) as emu:
        prefix = f"crash-{os.getpid()}-{int(commit_then_fail * 10)}"
        store = f"--key-store=ssm:/{prefix}/{{region}}/{{name}}"
        manifest(tmp_path, SSM_KEY_PAIRS)
        proc = start_apply(tmp_path, emu.url, store)
        time.sleep(rng.uniform(0.8, 1.6))
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        CLI_OUTPUTS.extend((out, err))
        check_ssm_invariants(tmp_path, emu, ssm, prefix)

        emu.faults.commit_then_fail_rate = 0.0
        rerun = run_cli("apply", "manifests", "--auto-approve", cwd=tmp_path, endpoint=emu.url)
        pending = check_ssm_invariants(tmp_path, emu, ssm, prefix)
        assert len(live_fingerprints(emu.url)) == SSM_KEY_PAIRS
        assert rerun.returncode == (1 if pending else 0), rerun.stderr
        doc = LocalBackend(tmp_path / "reconciler.state.json").read()
        # Every key the state knows of is now in SSM, and no state file holds one.
        assert all(e.private_key_ref is not None for e in doc.entries.values())
        for path in tmp_path.iterdir():
            if ".state.json" in path.name:
                assert "PRIVATE KEY" not in path.read_text(), path.name
        for entry in doc.entries.values():
            kept = stored_key(ssm, f"/{prefix}/us-east-1/{entry.address.name}")
            assert kept is not None and key_fingerprint(kept, "created") == entry.fingerprint
