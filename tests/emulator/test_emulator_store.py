"""The emulator's store: persistence across restarts, the data file, and bulk seeding."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator import Emulator, EmulatorConfig, EmulatorError, Store
from tests.conftest import lightsail_client
from tests.emulator_helpers import ed25519_openssh

DEFAULT = "LightsailDefaultKeyPair"


def test_everything_survives_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "lightsail.json"
    with Emulator(EmulatorConfig(data_path=str(data), key_pool=1)) as emu:
        client = lightsail_client(emu.url)
        created = client.create_key_pair(
            keyPairName="web", tags=[{"key": "env", "value": "prod"}, {"key": "bare"}]
        )["keyPair"]
        client.import_key_pair(keyPairName="laptop", publicKeyBase64=ed25519_openssh())
        client.tag_resource(resourceName="laptop", tags=[{"key": "empty", "value": ""}])
        lightsail_client(emu.url, "eu-west-2").import_key_pair(
            keyPairName="london", publicKeyBase64=ed25519_openssh()
        )
        default = client.download_default_key_pair()
        client.import_key_pair(keyPairName="gone", publicKeyBase64=ed25519_openssh())
        client.delete_key_pair(keyPairName="gone")
        before = client.get_key_pairs(includeDefaultKeyPair=True)["keyPairs"]
    with Emulator(EmulatorConfig(data_path=str(data))) as emu:
        client = lightsail_client(emu.url)
        after = client.get_key_pairs(includeDefaultKeyPair=True)["keyPairs"]
        assert after == before
        assert client.get_key_pair(keyPairName="web")["keyPair"] == created
        assert client.get_key_pair(keyPairName="laptop")["keyPair"]["tags"] == [
            {"key": "empty", "value": ""}
        ]
        assert lightsail_client(emu.url, "eu-west-2").get_key_pair(keyPairName="london")
        again = client.download_default_key_pair()
        for field in ("publicKeyBase64", "privateKeyBase64", "createdAt"):
            assert again[field] == default[field]
        assert emu.store.get("us-east-1", "gone") is None


def test_the_data_files_are_private_and_hold_no_created_private_key(tmp_path: Path) -> None:
    data = tmp_path / "lightsail.json"
    log = tmp_path / "lightsail.json.log"
    with Emulator(EmulatorConfig(data_path=str(data), key_pool=1)) as emu:
        client = lightsail_client(emu.url)
        client.create_key_pair(keyPairName="kp")
        assert stat.S_IMODE(os.stat(log).st_mode) == 0o600
        # The service does not keep a created key pair's private key; neither do the files.
        assert "PRIVATE KEY" not in log.read_text()
        client.download_default_key_pair()
        assert "PRIVATE KEY" in log.read_text()
    # A clean stop folds the log into the data file.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lightsail.json"]
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o600
    document = json.loads(data.read_text())
    stored = document["accounts"]["123456789012"]["us-east-1"]["keyPairs"]
    assert [r["name"] for r in stored] == ["LightsailDefaultKeyPair", "kp"]


def test_each_committed_change_is_on_disk_before_the_response(tmp_path: Path) -> None:
    data = tmp_path / "lightsail.json"
    with Emulator(EmulatorConfig(data_path=str(data))) as emu:
        client = lightsail_client(emu.url, max_pool_connections=10)
        threads = [
            threading.Thread(
                target=client.import_key_pair,
                kwargs={"keyPairName": f"kp-{i:02d}", "publicKeyBase64": ed25519_openssh()},
            )
            for i in range(20)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # Read the file while the emulator still runs: no flush on stop is needed.
        on_disk = Store(str(data))
        assert on_disk.names("us-east-1") == [f"kp-{i:02d}" for i in range(20)]


def test_without_a_data_file_nothing_is_kept(tmp_path: Path) -> None:
    with Emulator(EmulatorConfig()) as emu:
        lightsail_client(emu.url).import_key_pair(
            keyPairName="kp", publicKeyBase64=ed25519_openssh()
        )
    with Emulator(EmulatorConfig()) as emu:
        assert lightsail_client(emu.url).get_key_pairs()["keyPairs"] == []
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "content",
    [
        '{"format": "something-else", "regions": {}}',
        "{not json",
        '{"format": "lightsail-emulator/v1"}',
    ],
)
def test_an_unreadable_data_file_stops_the_start_with_a_clear_error(
    tmp_path: Path, content: str
) -> None:
    data = tmp_path / "lightsail.json"
    data.write_text(content)
    with pytest.raises(EmulatorError) as exc:
        Emulator(EmulatorConfig(data_path=str(data)))
    assert str(data) in str(exc.value)
    assert data.read_text() == content


def test_seeded_key_pairs_look_like_real_ones_on_the_wire(emulator: Emulator) -> None:
    emulator.store.seed_key_pairs("us-east-1", 3, prefix="bench-", tags={"team": "x", "k": None})
    assert emulator.store.names("us-east-1") == ["bench-000000", "bench-000001", "bench-000002"]
    record = emulator.store.get("us-east-1", "bench-000001")
    assert record is not None and record.private_key is None
    pair = lightsail_client(emulator.url).get_key_pair(keyPairName="bench-000001")["keyPair"]
    assert pair["fingerprint"] == record.fingerprint
    assert len(pair["fingerprint"].split(":")) == 20
    assert pair["arn"].endswith(record.resource_id)
    assert pair["tags"] == [{"key": "team", "value": "x"}, {"key": "k"}]
    # Tags of one seeded record change alone, although seeding shares one map.
    client = lightsail_client(emulator.url)
    client.untag_resource(resourceName="bench-000001", tagKeys=["team"])
    assert client.get_key_pair(keyPairName="bench-000000")["keyPair"]["tags"] == pair["tags"]


def test_seeding_refuses_names_in_use_and_invalid_prefixes() -> None:
    store = Store()
    store.seed_key_pairs("us-east-1", 5)
    with pytest.raises(ValueError, match="already in use"):
        store.seed_key_pairs("us-east-1", 5)
    with pytest.raises(ValueError, match="prefix"):
        store.seed_key_pairs("us-east-1", 5, prefix="bad.prefix")
    assert store.count("us-east-1") == 5
    assert store.regions() == ["us-east-1"]


def test_a_missing_directory_is_made_and_an_empty_file_is_an_empty_store(tmp_path: Path) -> None:
    nested = tmp_path / "not" / "yet" / "there.json"
    with Emulator(EmulatorConfig(data_path=str(nested))) as emu:
        lightsail_client(emu.url).import_key_pair(
            keyPairName="kp", publicKeyBase64=ed25519_openssh()
        )
    assert Store(str(nested)).names("us-east-1") == ["kp"]
    empty = tmp_path / "empty.json"
    empty.touch()
    assert Store(str(empty)).regions() == []


def test_set_created_at_backdates_a_key_pair_as_seen_through_boto3(
    emulator: Any, lightsail: Any
) -> None:
    lightsail.create_key_pair(keyPairName="old")
    emulator.store.set_created_at("us-east-1", "old", 1_000_000_000.0)
    created = lightsail.get_key_pair(keyPairName="old")["keyPair"]["createdAt"]
    assert created.timestamp() == 1_000_000_000.0


def test_a_version_1_data_file_is_read_into_the_default_account(tmp_path: Path) -> None:
    data = tmp_path / "lightsail.json"
    item = {"name": "old-kp", "id": "0f6e8f4e-3f5d-4a4e-9d7e-2b1c0a9f8e7d", "createdAt": 1.5}
    item |= {"fingerprint": "aa:bb", "tags": {"env": "prod", "bare": None}}
    data.write_text(
        json.dumps({"format": "lightsail-emulator/v1", "regions": {"eu-west-2": [item]}})
    )
    with Emulator(EmulatorConfig(data_path=str(data), account_id="111122223333")) as emu:
        pair = lightsail_client(emu.url, "eu-west-2").get_key_pair(keyPairName="old-kp")["keyPair"]
        assert pair["arn"] == f"arn:aws:lightsail:eu-west-2:111122223333:KeyPair/{item['id']}"
        assert pair["tags"] == [{"key": "env", "value": "prod"}, {"key": "bare"}]
    # Changes are logged beside it, and the next compaction writes the current format.
    with Emulator(EmulatorConfig(data_path=str(data), account_id="111122223333")) as emu:
        client = lightsail_client(emu.url, "eu-west-2")
        client.import_key_pair(keyPairName="new-kp", publicKeyBase64=ed25519_openssh())
    assert json.loads(data.read_text())["format"] == "lightsail-emulator/v2"
    assert Store(str(data), account_id="111122223333").names("eu-west-2") == ["new-kp", "old-kp"]
