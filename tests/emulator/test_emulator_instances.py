"""Instances on the emulator, through boto3 over HTTP: launched with a key pair, listed, deleted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from reconciler.emulator import Emulator, EmulatorConfig
from tests.conftest import lightsail_client
from tests.emulator_helpers import ed25519_openssh, error

LAUNCH = {"availabilityZone": "us-east-1a", "blueprintId": "ubuntu_22_04", "bundleId": "nano_3_0"}


def launch(client: Any, *names: str, **extra: Any) -> list[dict[str, Any]]:
    operations: list[dict[str, Any]] = client.create_instances(
        instanceNames=list(names), **LAUNCH, **extra
    )["operations"]
    return operations


def test_an_instance_records_the_key_pair_it_was_launched_with(
    emulator: Emulator, lightsail: Any
) -> None:
    lightsail.import_key_pair(keyPairName="deploy", publicKeyBase64=ed25519_openssh())
    operations = launch(
        lightsail, "web-1", "web-2", keyPairName="deploy", tags=[{"key": "role", "value": "web"}]
    )
    assert [(o["resourceName"], o["operationType"], o["resourceType"]) for o in operations] == [
        ("web-1", "CreateInstance", "Instance"),
        ("web-2", "CreateInstance", "Instance"),
    ]
    assert all(o["status"] == "Succeeded" and o["isTerminal"] for o in operations)
    zone = {"availabilityZone": "us-east-1a", "regionName": "us-east-1"}
    assert operations[0]["location"] == zone

    instance = lightsail.get_instance(instanceName="web-1")["instance"]
    assert instance["sshKeyName"] == "deploy"
    assert instance["state"] == {"code": 16, "name": "running"}
    assert instance["resourceType"] == "Instance"
    assert instance["arn"].startswith("arn:aws:lightsail:us-east-1:123456789012:Instance/")
    assert instance["supportCode"].startswith("123456789012/i-")
    assert instance["tags"] == [{"key": "role", "value": "web"}]
    assert instance["blueprintId"] == "ubuntu_22_04" and instance["username"] == "ubuntu"
    assert instance["location"] == zone
    # Deleting the key pair does not change what the instance was launched with.
    lightsail.delete_key_pair(keyPairName="deploy")
    assert lightsail.get_instance(instanceName="web-1")["instance"]["sshKeyName"] == "deploy"


def test_without_a_key_pair_the_default_one_is_made_and_named(
    emulator: Emulator, lightsail: Any
) -> None:
    launch(lightsail, "bare")
    assert lightsail.get_instance(instanceName="bare")["instance"]["sshKeyName"] == (
        "LightsailDefaultKeyPair"
    )
    listed = lightsail.get_key_pairs(includeDefaultKeyPair=True)["keyPairs"]
    assert [kp["name"] for kp in listed] == ["LightsailDefaultKeyPair"]
    default = lightsail.download_default_key_pair()
    launch(lightsail, "bare-2")
    assert lightsail.download_default_key_pair()["publicKeyBase64"] == default["publicKeyBase64"]


def test_an_unknown_key_pair_is_not_found_and_launches_nothing(
    emulator: Emulator, lightsail: Any
) -> None:
    with pytest.raises(ClientError) as exc:
        launch(lightsail, "web", keyPairName="missing")
    assert error(exc.value) == (
        "NotFoundException",
        "DoesNotExist",
        "The KeyPair does not exist: missing",
        400,
    )
    assert lightsail.get_instances()["instances"] == []


def test_names_are_unique_per_region_across_key_pairs_and_instances(
    emulator: Emulator, lightsail: Any
) -> None:
    lightsail.import_key_pair(keyPairName="shared", publicKeyBase64=ed25519_openssh())
    with pytest.raises(ClientError) as exc:
        launch(lightsail, "fresh", "shared", keyPairName="shared")
    assert error(exc.value) == (
        "InvalidInputException",
        "NameExists",
        "Some names are already in use: shared",
        400,
    )
    # All or nothing: "fresh" was not launched either.
    assert lightsail.get_instances()["instances"] == []
    launch(lightsail, "box", keyPairName="shared")
    with pytest.raises(ClientError) as exc:
        lightsail.import_key_pair(keyPairName="box", publicKeyBase64=ed25519_openssh())
    assert error(exc.value)[1] == "NameExists"
    with pytest.raises(ClientError) as exc:
        launch(lightsail, "box", keyPairName="shared")
    assert error(exc.value)[1] == "NameExists"
    # Another region has its own names.
    london = lightsail_client(emulator.url, "eu-west-2")
    london.import_key_pair(keyPairName="box", publicKeyBase64=ed25519_openssh())


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"availabilityZone": "eu-west-2a"}, "availabilityZone"),
        ({"availabilityZone": "us-east-1"}, "availabilityZone"),
        ({"instanceNames": ["bad.name"]}, "instanceNames"),
        ({"instanceNames": ["twice", "twice"]}, "twice is named twice"),
        ({"instanceNames": []}, "instanceNames"),
        ({"ipAddressType": "ipv5"}, "ipAddressType"),
        ({"tags": [{"key": "aws:reserved", "value": "x"}]}, "tags"),
    ],
)
def test_bad_launch_requests_are_invalid_input(
    emulator: Emulator, lightsail: Any, change: dict[str, Any], says: str
) -> None:
    request = {"instanceNames": ["ok-name"], **LAUNCH, **change}
    with pytest.raises(ClientError) as exc:
        lightsail.create_instances(**request)
    error_type, code, message, status = error(exc.value)
    assert (error_type, code, status) == ("InvalidInputException", "InvalidParameter", 400)
    assert says in message
    assert emulator.store.instance_names("us-east-1") == []


def test_get_and_delete_of_a_missing_instance_are_not_found(lightsail: Any) -> None:
    for call in (lightsail.get_instance, lightsail.delete_instance):
        with pytest.raises(ClientError) as exc:
            call(instanceName="ghost")
        assert error(exc.value) == (
            "NotFoundException",
            "DoesNotExist",
            "The Instance does not exist: ghost",
            400,
        )


def test_delete_instance_removes_it_and_answers_an_operation(
    emulator: Emulator, lightsail: Any
) -> None:
    launch(lightsail, "gone", "kept")
    deleted = lightsail.delete_instance(instanceName="gone", forceDeleteAddOns=True)["operations"]
    assert [(o["resourceName"], o["operationType"]) for o in deleted] == [
        ("gone", "DeleteInstance")
    ]
    assert [i["name"] for i in lightsail.get_instances()["instances"]] == ["kept"]
    assert emulator.committed == {"CreateInstances": 1, "DeleteInstance": 1}


def test_get_instances_pages_through_every_instance_with_the_paginator() -> None:
    with Emulator(EmulatorConfig(page_size=7)) as emu:
        emu.store.seed_instances("us-east-1", 30, key_pair_name="fleet-key", prefix="node-")
        client = lightsail_client(emu.url)
        first = client.get_instances()
        assert len(first["instances"]) == 7 and "nextPageToken" in first
        pages = list(client.get_paginator("get_instances").paginate())
        assert [len(p["instances"]) for p in pages] == [7, 7, 7, 7, 2]
        assert "nextPageToken" not in pages[-1]
        names = [i["name"] for p in pages for i in p["instances"]]
        assert names == [f"node-{i:06d}" for i in range(30)]
        assert {i["sshKeyName"] for p in pages for i in p["instances"]} == {"fleet-key"}
        assert emu.calls["GetInstances"] == 6
        # Instances are not key pairs.
        assert client.get_key_pairs()["keyPairs"] == []


def test_instances_are_tagged_like_key_pairs(emulator: Emulator, lightsail: Any) -> None:
    launch(lightsail, "tagged", tags=[{"key": "a", "value": "1"}])
    arn = lightsail.get_instance(instanceName="tagged")["instance"]["arn"]
    done = lightsail.tag_resource(
        resourceName="tagged", resourceArn=arn, tags=[{"key": "b", "value": "2"}]
    )["operations"]
    assert done[0]["resourceType"] == "Instance"
    lightsail.untag_resource(resourceName="tagged", tagKeys=["a"])
    assert lightsail.get_instance(instanceName="tagged")["instance"]["tags"] == [
        {"key": "b", "value": "2"}
    ]


def test_instances_survive_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "lightsail.json"
    with Emulator(EmulatorConfig(data_path=str(data))) as emu:
        client = lightsail_client(emu.url)
        client.import_key_pair(keyPairName="deploy", publicKeyBase64=ed25519_openssh())
        launch(client, "web", keyPairName="deploy", ipAddressType="ipv4")
        emu.store.seed_instances("us-east-1", 3, key_pair_name="deploy", prefix="batch-")
        launch(client, "doomed", keyPairName="deploy")
        client.delete_instance(instanceName="doomed")
        before = client.get_instances()["instances"]
    with Emulator(EmulatorConfig(data_path=str(data))) as emu:
        after = lightsail_client(emu.url).get_instances()["instances"]
    assert after == before
    assert [i["name"] for i in after] == [
        "batch-000000",
        "batch-000001",
        "batch-000002",
        "web",
    ]
    assert after[-1]["ipAddressType"] == "ipv4" and "publicIpAddress" in after[-1]
