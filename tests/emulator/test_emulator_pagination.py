"""GetKeyPairs pagination on the emulator: tokens, page sizes, order, scale."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from reconciler.emulator import Emulator, EmulatorConfig
from reconciler.emulator.operations import encode_page_token
from tests.conftest import lightsail_client
from tests.emulator_helpers import call, ed25519_openssh, error

DEFAULT = "LightsailDefaultKeyPair"


def import_many(client: Any, names: list[str]) -> None:
    # ImportKeyPair of ed25519 keys: real key pairs without RSA generation.
    for name in names:
        client.import_key_pair(keyPairName=name, publicKeyBase64=ed25519_openssh())


def test_pages_follow_next_page_token_to_the_end() -> None:
    with Emulator(EmulatorConfig(page_size=3)) as emu:
        client = lightsail_client(emu.url)
        names = [f"kp-{i:02d}" for i in range(10)]
        import_many(client, list(reversed(names)))
        pages: list[list[str]] = []
        token: str | None = None
        while True:
            out = client.get_key_pairs(**({"pageToken": token} if token else {}))
            pages.append([kp["name"] for kp in out["keyPairs"]])
            token = out.get("nextPageToken")
            if token is None:
                break
        assert pages == [names[0:3], names[3:6], names[6:9], names[9:10]]
        assert emu.calls["GetKeyPairs"] == 4


def test_no_token_when_the_last_page_is_exactly_full() -> None:
    with Emulator(EmulatorConfig(page_size=3)) as emu:
        client = lightsail_client(emu.url)
        import_many(client, ["a1", "a2", "a3"])
        out = client.get_key_pairs()
        assert [kp["name"] for kp in out["keyPairs"]] == ["a1", "a2", "a3"]
        assert "nextPageToken" not in out


def test_the_boto3_paginator_sees_every_key_pair_once() -> None:
    with Emulator(EmulatorConfig(page_size=4)) as emu:
        client = lightsail_client(emu.url)
        names = [f"n{i:02d}" for i in range(13)]
        import_many(client, names)
        client.download_default_key_pair()
        seen = [
            kp["name"]
            for page in client.get_paginator("get_key_pairs").paginate()
            for kp in page["keyPairs"]
        ]
        assert seen == names
        with_default = [
            kp["name"]
            for page in client.get_paginator("get_key_pairs").paginate(includeDefaultKeyPair=True)
            for kp in page["keyPairs"]
        ]
        assert with_default == sorted([*names, DEFAULT])


def test_a_default_key_pair_alone_on_the_last_page_adds_no_empty_page() -> None:
    with Emulator(EmulatorConfig(page_size=2)) as emu:
        client = lightsail_client(emu.url)
        import_many(client, ["AAA", "BBB"])
        client.download_default_key_pair()  # "LightsailDefaultKeyPair" sorts after "BBB"
        out = client.get_key_pairs()
        assert [kp["name"] for kp in out["keyPairs"]] == ["AAA", "BBB"]
        assert "nextPageToken" not in out


def test_pages_stay_consistent_when_key_pairs_come_and_go(emulator: Emulator) -> None:
    emulator.store.seed_key_pairs("us-east-1", 250, prefix="s-")
    client = lightsail_client(emulator.url)
    first = client.get_key_pairs()
    assert len(first["keyPairs"]) == 100
    client.delete_key_pair(keyPairName="s-000050")  # already seen
    client.delete_key_pair(keyPairName="s-000150")  # not yet seen
    client.import_key_pair(keyPairName="s-000150x", publicKeyBase64=ed25519_openssh())
    rest = [
        kp["name"]
        for page in client.get_paginator("get_key_pairs").paginate(
            PaginationConfig={"StartingToken": first["nextPageToken"]}
        )
        for kp in page["keyPairs"]
    ]
    seen = [kp["name"] for kp in first["keyPairs"]] + rest
    assert len(seen) == len(set(seen)) == 250
    assert "s-000150" not in seen and "s-000150x" in seen


@pytest.mark.parametrize("token", ["garbage", "!!!", "dGhpcyBpcyBub3QgaXQ="])
def test_an_invalid_page_token_is_invalid_input(lightsail: Any, token: str) -> None:
    with pytest.raises(ClientError) as exc:
        lightsail.get_key_pairs(pageToken=token)
    assert error(exc.value)[:2] == ("InvalidInputException", "InvalidParameter")
    assert "pageToken" in error(exc.value)[2]


def test_pages_deep_into_100000_key_pairs_are_complete(emulator: Emulator) -> None:
    emulator.store.seed_key_pairs("us-east-1", 100_000, tags={"bench": "yes", "key-only": None})
    names = emulator.store.names("us-east-1")
    assert len(names) == 100_000 and names == sorted(names)
    first = lightsail_client(emulator.url).get_key_pairs()
    assert first["keyPairs"][0]["tags"] == [{"key": "bench", "value": "yes"}, {"key": "key-only"}]
    # Start 50 pages from the end (the cursor format is the emulator's own).
    token: str | None = encode_page_token(names[-5001])
    seen: list[str] = []
    while token is not None:
        response = call(emulator.url, "GetKeyPairs", {"pageToken": token})
        assert response.status == 200
        body = response.json()
        seen.extend(kp["name"] for kp in body["keyPairs"])
        token = body.get("nextPageToken")
    assert seen == names[-5000:]
