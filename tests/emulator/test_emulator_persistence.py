"""The data file's change log: O(1) per change, crash-safe replay, compaction."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from reconciler.emulator import Emulator, EmulatorConfig, EmulatorError, Store, persist
from reconciler.emulator.records import KeyPairRecord
from tests.conftest import lightsail_client
from tests.emulator_helpers import ed25519_openssh


def record(name: str) -> KeyPairRecord:
    return KeyPairRecord(name, "0f6e8f4e-3f5d-4a4e-9d7e-2b1c0a9f8e7d", 1.0, "aa:bb")


def fill(store: Store, count: int, *, start: int = 0) -> None:
    for i in range(start, start + count):
        assert store.insert("us-east-1", record(f"kp-{i:05d}"))


def test_bytes_written_per_change_do_not_grow_with_the_store(tmp_path: Path) -> None:
    """The whole document used to be rewritten per change: 2x the changes cost 4x the bytes."""
    small, large = Store(str(tmp_path / "small.json")), Store(str(tmp_path / "large.json"))
    fill(small, 200)
    fill(large, 400)
    per_change = small.bytes_written / 200
    assert large.bytes_written <= 400 * per_change * 1.1
    assert small.fsync_count <= 200 + 2


def test_every_change_replays_without_a_clean_stop(tmp_path: Path) -> None:
    data = str(tmp_path / "lightsail.json")
    store = Store(data)
    fill(store, 5)
    store.remove("us-east-1", "kp-00001")
    store.set_tags("us-east-1", "kp-00002", {"env": "prod", "bare": None})
    store.set_created_at("us-east-1", "kp-00003", 5.0)
    store.account("222222222222").insert("eu-west-2", record("theirs"))
    store.seed_instances("us-east-1", 2, key_pair_name="kp-00000")
    store.remove_instance("us-east-1", "instance-000001")
    # No close: as after a crash, only the log holds the changes.
    assert not Path(data).exists()
    again = Store(data)
    assert again.names("us-east-1") == ["kp-00000", "kp-00002", "kp-00003", "kp-00004"]
    assert dict(again.get("us-east-1", "kp-00002").tags) == {"env": "prod", "bare": None}  # type: ignore[union-attr]
    assert again.get("us-east-1", "kp-00003").created_at == 5.0  # type: ignore[union-attr]
    assert again.account("222222222222").names("eu-west-2") == ["theirs"]
    assert again.instance_names("us-east-1") == ["instance-000000"]


def test_a_torn_last_record_is_ignored_and_cut_off(tmp_path: Path) -> None:
    data = str(tmp_path / "lightsail.json")
    log = Path(data + ".log")
    fill(Store(data), 3)
    whole = log.read_bytes()
    with open(log, "ab") as handle:
        handle.write(b'{"op":"putKeyPairs","account":"1234567')  # the crash cut it here
    store = Store(data)
    assert store.names("us-east-1") == ["kp-00000", "kp-00001", "kp-00002"]
    assert log.read_bytes() == whole
    fill(store, 1, start=3)
    assert Store(data).count("us-east-1") == 4


def test_a_torn_record_that_ends_in_a_newline_is_ignored_too(tmp_path: Path) -> None:
    data = str(tmp_path / "lightsail.json")
    fill(Store(data), 2)
    with open(data + ".log", "ab") as handle:
        handle.write(b'{"op":"putKe\n')
    assert Store(data).count("us-east-1") == 2


def test_a_damaged_record_before_the_last_is_an_error_naming_the_line(tmp_path: Path) -> None:
    data = str(tmp_path / "lightsail.json")
    fill(Store(data), 3)
    log = Path(data + ".log")
    lines = log.read_bytes().split(b"\n")
    lines[1] = b"garbage"
    log.write_bytes(b"\n".join(lines))
    with pytest.raises(EmulatorError) as exc:
        Emulator(EmulatorConfig(data_path=data))
    assert f"{log}, line 2" in str(exc.value)
    assert log.read_bytes() == b"\n".join(lines)


def test_the_log_is_compacted_into_the_data_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(persist, "MIN_COMPACT_BYTES", 2000)
    data = Path(tmp_path / "lightsail.json")
    log = Path(str(data) + ".log")
    store = Store(str(data))
    fill(store, 60)
    assert data.exists() and stat.S_IMODE(os.stat(data).st_mode) == 0o600
    # Compacted at least once: the log holds only the changes since.
    assert log.stat().st_size < 60 * 150
    before_compaction = log.read_bytes()
    store.remove("us-east-1", "kp-00000")
    assert Store(str(data)).count("us-east-1") == 59
    # A crash between the snapshot's rename and the log's truncation leaves
    # changes in the log that the snapshot already holds: they are skipped.
    fill(store, 40, start=60)
    snapshot = data.read_bytes()
    log.write_bytes(before_compaction + log.read_bytes())
    again = Store(str(data))
    assert again.count("us-east-1") == 99 and again.get("us-east-1", "kp-00000") is None
    assert data.read_bytes() == snapshot
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_a_clean_stop_leaves_one_file_and_a_restart_keeps_logging(tmp_path: Path) -> None:
    data = tmp_path / "lightsail.json"
    with Emulator(EmulatorConfig(data_path=str(data))) as emu:
        client = lightsail_client(emu.url)
        client.import_key_pair(keyPairName="first", publicKeyBase64=ed25519_openssh())
    assert [p.name for p in tmp_path.iterdir()] == ["lightsail.json"]
    with Emulator(EmulatorConfig(data_path=str(data))) as emu:
        client = lightsail_client(emu.url)
        client.import_key_pair(keyPairName="second", publicKeyBase64=ed25519_openssh())
        assert Store(str(data)).names("us-east-1") == ["first", "second"]
    assert Store(str(data)).names("us-east-1") == ["first", "second"]


def test_clear_is_logged(tmp_path: Path) -> None:
    data = str(tmp_path / "lightsail.json")
    store = Store(data)
    fill(store, 3)
    store.clear()
    fill(store, 1, start=7)
    assert Store(data).names("us-east-1") == ["kp-00007"]
