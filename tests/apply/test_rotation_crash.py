"""A rotation cut short loses no key: the old key stays a generation until the new one is
durable. The reconciler runs as a real subprocess against the emulator over HTTP."""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.emulator import Emulator, EmulatorConfig
from reconciler.model import StateEntry
from reconciler.state import LocalBackend
from tests.apply.test_crash import start_apply
from tests.emulator_helpers import live_fingerprints
from tests.helpers import CLI_OUTPUTS, created_fingerprint, run_cli, write_manifest

# The whole tool end to end (faults, crashes, a browser, a terminal, real tools):
# `make test-fast` leaves these out.
pytestmark = pytest.mark.e2e

COUNT = 30
DAY = 86400.0


@pytest.fixture
def slow_emulator() -> Iterator[Emulator]:
    # A key pool as large as all the keys made: a rotated key pair never gets its old key back.
    with Emulator(EmulatorConfig(latency_ms=8, key_pool=3 * COUNT, seed=11)) as emu:
        yield emu


def keys_of(entry: StateEntry) -> set[str]:
    """Every private key the state keeps for a key pair: its own and its generations'."""
    held = {entry.private_key} | {g.entry.private_key for g in entry.generations}
    return {key for key in held if key is not None}


def setup(cwd: Path, emu: Emulator) -> dict[str, str]:
    """Apply COUNT rotating key pairs, backdate them all; their private keys by name."""
    body = "\n".join(f"- name: kp-{i:03d}\n  rotate: {{after: 30d}}" for i in range(COUNT))
    write_manifest(cwd / "manifests" / "keys.yaml", "us-east-1", body)
    applied = run_cli("apply", "manifests", "--auto-approve", cwd=cwd, endpoint=emu.url)
    assert applied.returncode == 0, applied.stderr
    doc = LocalBackend(cwd / "reconciler.state.json").read()
    for address in doc.entries:
        emu.store.set_created_at(address.region, address.name, time.time() - 40 * DAY)
    return {a.name: e.private_key for a, e in doc.entries.items() if e.private_key}


def check(cwd: Path, emu: Emulator, originals: dict[str, str], *, kept: bool = True) -> None:
    """Each original key is still kept (unless ``kept`` is False: rotations done with
    keep: 0 drop it); each live key pair's recorded key is its live one."""
    doc = LocalBackend(cwd / "reconciler.state.json").read()
    live = live_fingerprints(emu.url)
    for name, original in originals.items():
        entry = next(e for a, e in doc.entries.items() if a.name == name)
        if kept:
            assert original in keys_of(entry), f"{name}: the key before rotation was lost"
        if name in live and entry.private_key is not None and entry.fingerprint == live[name]:
            assert created_fingerprint(entry.private_key) == live[name], name


def test_a_create_failing_mid_rotation_keeps_the_old_key_and_the_next_apply_finishes(
    tmp_path: Path, slow_emulator: Emulator
) -> None:
    emu = slow_emulator
    originals = setup(tmp_path, emu)
    emu.operation_errors["CreateKeyPair"] = "AccessDeniedException"
    failed = run_cli("apply", "manifests", "--auto-approve", cwd=tmp_path, endpoint=emu.url)
    assert failed.returncode == 1
    assert emu.committed["DeleteKeyPair"] == COUNT and live_fingerprints(emu.url) == {}
    check(tmp_path, emu, originals)

    del emu.operation_errors["CreateKeyPair"]
    rerun = run_cli("apply", "manifests", "--auto-approve", cwd=tmp_path, endpoint=emu.url)
    assert rerun.returncode == 0, rerun.stderr
    assert len(live_fingerprints(emu.url)) == COUNT
    check(tmp_path, emu, originals, kept=False)
    doc = LocalBackend(tmp_path / "reconciler.state.json").read()
    for address, entry in doc.entries.items():
        # keep: 0, and no instance uses the old key: it goes once the new one is in.
        assert entry.generations == () and entry.private_key != originals[address.name]


@pytest.mark.parametrize("seed", [1, 2])
def test_sigkill_mid_rotation_loses_no_key(
    tmp_path: Path, slow_emulator: Emulator, seed: int
) -> None:
    emu = slow_emulator
    originals = setup(tmp_path, emu)
    # keep: 1 for the rerun to show the first key as generation 1 wherever it rotated.
    body = "\n".join(f"- name: kp-{i:03d}\n  rotate: {{after: 30d, keep: 1}}" for i in range(COUNT))
    write_manifest(tmp_path / "manifests" / "keys.yaml", "us-east-1", body)
    proc = start_apply(tmp_path, emu.url, "--parallelism", "2")
    deadline = time.monotonic() + 30
    while emu.calls["DeleteKeyPair"] == 0 and time.monotonic() < deadline:
        time.sleep(0.005)  # the kill lands once rotations have begun
    time.sleep(random.Random(seed).uniform(0.0, 0.4))
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=30)
    CLI_OUTPUTS.extend((out, err))
    check(tmp_path, emu, originals)

    rerun = run_cli("apply", "manifests", "--auto-approve", cwd=tmp_path, endpoint=emu.url)
    assert len(live_fingerprints(emu.url)) == COUNT
    check(tmp_path, emu, originals)
    doc = LocalBackend(tmp_path / "reconciler.state.json").read()
    lost = [a.name for a in doc.pending]
    assert rerun.returncode == (1 if lost else 0), rerun.stderr
    for address, entry in doc.entries.items():
        if address.name not in lost:
            assert entry.generations[0].entry.private_key == originals[address.name]
