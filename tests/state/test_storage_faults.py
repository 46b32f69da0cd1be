"""Storage faults lose no key: the state folder on a small, full or read-only disk.

The disk is a tmpfs mounted by the test (tests run as root in CI); where
mounting is not possible the tests are skipped, saying why. The reconciler
runs as a real subprocess against the emulator over HTTP.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.apply.executor import Executor
from reconciler.aws.lightsail import ClientOptions, Lightsail
from reconciler.emulator import Emulator, EmulatorConfig
from reconciler.errors import StorageError
from reconciler.manifests.load import load_desired
from reconciler.model import Address, JournalOp
from reconciler.planning.planner import make_plan
from reconciler.state import Journal, LocalBackend, read_journal
from reconciler.state import files as files_module
from reconciler.state import journal as journal_module
from reconciler.state.journal import SEGMENT
from tests.emulator_helpers import live_fingerprints
from tests.helpers import CLI_OUTPUTS, assert_no_leak, created_fingerprint, run_cli, write_manifest
from tests.state.test_state_document import make_entry

# The whole tool end to end (faults, crashes, a browser, a terminal, real tools):
# `make test-fast` leaves these out.
pytestmark = pytest.mark.e2e

KEY_PAIRS = 60

Mount = Callable[..., Path]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Mount]:
    """``small_disk(size, *options)``: a fresh tmpfs of ``size`` (e.g. "96k"), unmounted after."""
    mounted: list[Path] = []

    def mount(size: str, *options: str) -> Path:
        point = tmp_path / f"disk-{len(mounted)}"
        point.mkdir()
        opts = ",".join((f"size={size}", "mode=0700", *options))
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(point)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], check=False)


def fill(directory: Path) -> Path:
    """Write a file in ``directory`` until the disk is full; returns it (remove it to free)."""
    filler = directory / f"filler-{uuid.uuid4().hex[:6]}"
    with open(filler, "wb", buffering=0) as f:
        for chunk in (1 << 16, 1 << 12, 1 << 9, 1):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    return filler


def lost_keys(state: Path, emu: Emulator) -> list[str]:
    """Live key pairs whose private key is in neither the state nor its journal."""
    doc = LocalBackend(state).read()
    held = {a.name: e.private_key for a, e in doc.entries.items() if e.private_key}
    lost = []
    for name, fingerprint in live_fingerprints(emu.url).items():
        pem = held.get(name)
        if pem is None or created_fingerprint(pem) != fingerprint:
            lost.append(name)
    return sorted(lost)


def manifests(root: Path, count: int = KEY_PAIRS) -> None:
    body = "\n".join(f"- name: kp-{i:03d}" for i in range(count))
    write_manifest(root / "manifests" / "many.yaml", "us-east-1", body)


# -- the journal's reservations ------------------------------------------------


WEB = Address("us-east-1", "web")


def test_a_reservation_that_does_not_fit_is_refused_naming_the_file(small_disk: Mount) -> None:
    disk = small_disk("64k")
    with Journal(disk / "s.json.journal") as journal:
        with pytest.raises(StorageError) as caught:
            journal.reserve(200 * 1024)
        message = caught.value.message
        assert message.startswith("local state: cannot reserve 200.0 KiB in journal ")
        assert str(disk / "s.json.journal") in message
        assert "No space left on device" in message
        assert caught.value.hint is not None and f"free at least 200.0 KiB in {disk}" in (
            caught.value.hint
        )
        # A refused reservation stops nothing already reserved, and leaves no trace.
        with journal.reserve(8 * 1024):
            journal.intent(JournalOp.CREATE, WEB)
    assert len(read_journal(disk / "s.json.journal")) == 1


def test_reserved_room_takes_its_records_when_the_disk_is_full(small_disk: Mount) -> None:
    disk = small_disk("512k")
    path = disk / "s.json.journal"
    with Journal(path) as journal:
        with journal.reserve(16 * 1024):
            filler = fill(disk)
            with pytest.raises(StorageError, match="cannot reserve"):
                journal.reserve(SEGMENT)  # past the segment: refused before its call
            intent = journal.intent(JournalOp.CREATE, WEB)  # the change in flight: lands
            journal.result(intent, make_entry(WEB))
        assert journal.bytes_reserved >= 16 * 1024
    records = read_journal(path)
    assert [r["kind"] for r in records] == ["intent", "result"]
    # Closing gave back the room not used, so the state can be written.
    assert path.stat().st_size == sum(len(line) for line in path.read_bytes().splitlines(True))
    filler.unlink()


def test_preallocated_room_reads_as_no_records_after_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "s.json.journal"
    journal = Journal(path)
    with journal.reserve(64 * 1024):
        journal.intent(JournalOp.CREATE, WEB)
        # A killed run leaves the zero-filled room after its last record.
        assert path.stat().st_size >= 64 * 1024
        assert len(read_journal(path)) == 1
    journal.close()


# -- preflight -------------------------------------------------------------------


def test_a_disk_too_small_for_the_plan_stops_before_any_call(
    tmp_path: Path, small_disk: Mount, emulator: Emulator
) -> None:
    disk = small_disk("96k")
    manifests(tmp_path)
    state = disk / "reconciler.state.json"
    result = run_cli(
        "apply", "manifests", "--state", str(state), "--auto-approve",
        cwd=tmp_path, endpoint=emulator.url,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [
        f"Error: local state: not enough room in {disk} for this apply: "
        + errors[0].split("for this apply: ", 1)[1]
    ]
    assert "KiB free, about" in errors[0] and "needed" in errors[0]
    assert "nothing was sent to Lightsail" in result.stderr
    assert "internal error" not in result.stderr
    assert emulator.calls.get("CreateKeyPair", 0) == 0
    assert live_fingerprints(emulator.url) == {}


def test_a_read_only_state_folder_stops_before_any_call(
    tmp_path: Path, small_disk: Mount, emulator: Emulator
) -> None:
    disk = small_disk("1m")
    manifests(tmp_path, 3)
    first = run_cli(
        "apply", "manifests", "--state", str(disk / "s.json"), "--auto-approve",
        cwd=tmp_path, endpoint=emulator.url,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    manifests(tmp_path, 5)
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    result = run_cli(
        "apply", "manifests", "--state", str(disk / "s.json"), "--auto-approve",
        cwd=tmp_path, endpoint=emulator.url,
    )  # fmt: skip
    assert result.returncode == 1
    assert "internal error" not in result.stderr
    assert str(disk) in result.stderr
    assert len(live_fingerprints(emulator.url)) == 3  # nothing more was created
    subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)


# -- the disk fills up during an apply -------------------------------------------


def test_a_disk_that_fills_during_apply_loses_no_key_and_the_rerun_converges(
    tmp_path: Path, small_disk: Mount
) -> None:
    disk = small_disk("1200k")
    manifests(tmp_path)
    state = disk / "reconciler.state.json"
    journal = disk / "reconciler.state.json.journal"
    args = ["apply", "manifests", "--state", str(state), "--auto-approve", "--parallelism", "4"]
    with Emulator(EmulatorConfig(latency_ms=25, key_pool=8, seed=3)) as emu:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler", *args],
            cwd=tmp_path,
            env={**os.environ, "AWS_ENDPOINT_URL_LIGHTSAIL": emu.url},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            if journal.exists() and b'"kind":"result"' in journal.read_bytes():
                break
            time.sleep(0.005)
        filler = fill(disk)  # the disk is full from the first result on
        out, err = proc.communicate(timeout=60)
        CLI_OUTPUTS.extend((out, err))
        assert proc.returncode == 1, err
        assert "internal error" not in err
        reserve_errors = [line for line in err.splitlines() if "cannot reserve" in line]
        assert len(reserve_errors) == 1, err  # reported once, not once per key pair
        assert str(journal) in reserve_errors[0]
        assert "Stopped before" in err
        created = emu.calls.get("CreateKeyPair", 0)
        assert 0 < created < KEY_PAIRS  # stopped before creating the rest
        filler.unlink()  # free the space
        assert lost_keys(state, emu) == []

        rerun = run_cli(*args, cwd=tmp_path, endpoint=emu.url)
        assert rerun.returncode == 0, rerun.stderr
        assert len(live_fingerprints(emu.url)) == KEY_PAIRS
        assert emu.committed["CreateKeyPair"] == KEY_PAIRS  # nothing created twice
        assert lost_keys(state, emu) == []
        pems = [e.private_key for e in LocalBackend(state).read().entries.values()]
        assert_no_leak([out, err, rerun.stdout, rerun.stderr], [p for p in pems if p])


# -- a journal write that fails (an injected fault: EIO) -------------------------


def test_a_failed_journal_write_stops_new_calls_and_in_flight_results_still_land(
    tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the spool is beside the working directory
    manifests(tmp_path, 30)
    desired = load_desired([tmp_path / "manifests"])
    backend = LocalBackend(tmp_path / "reconciler.state.json")
    lightsail = Lightsail(ClientOptions(endpoint_url=emulator.url))
    writes = 0
    real = files_module.pwrite_all

    def flaky(fd: int, data: bytes, offset: int) -> None:
        nonlocal writes
        writes += 1
        if writes == 12:  # one write fails half-way, leaving half a record behind
            real(fd, data[: len(data) // 2], offset)
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real(fd, data, offset)

    monkeypatch.setattr(journal_module, "pwrite_all", flaky)
    with backend.lock("apply"):
        doc = backend.begin()
        plan = make_plan(desired, doc.entries, doc.pending, lightsail.snapshot(["us-east-1"]))
        outcome = Executor(lightsail, backend.journal(), parallelism=4).run(plan)
        # Results from the failed write on went to the spool, private to its owner.
        (spooled,) = (tmp_path / ".reconciler" / "spool").iterdir()
        assert spooled.stat().st_mode & 0o777 == 0o600
        assert read_journal(spooled)
        backend.commit()
    assert not spooled.exists()  # the state holds them now
    assert outcome.stopped is not None
    assert outcome.stopped.message.startswith("local state: cannot write journal ")
    assert "Input/output error" in outcome.stopped.message
    assert outcome.not_started  # no new change started after the failure
    done = outcome.succeeded, outcome.failed, outcome.not_started, outcome.unrecorded
    assert sum(len(d) for d in done) == 30
    assert outcome.unrecorded == []  # the spool took what the journal would not
    assert all(not f.lost_key for f in outcome.failed)
    assert f"results are kept in the spool {spooled.relative_to(tmp_path)}" in (
        outcome.stopped.message
    )
    assert lost_keys(backend.path, emulator) == []
    monkeypatch.setattr(journal_module, "pwrite_all", real)
    with backend.lock("apply"):
        doc = backend.begin()
        plan = make_plan(desired, doc.entries, doc.pending, lightsail.snapshot(["us-east-1"]))
        again = Executor(lightsail, backend.journal(), parallelism=4).run(plan)
        backend.commit()
    assert again.ok and len(live_fingerprints(emulator.url)) == 30
    assert emulator.committed["CreateKeyPair"] == 30
    assert lost_keys(backend.path, emulator) == []
