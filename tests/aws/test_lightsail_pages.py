"""Reading key pairs page by page: our decoding matches botocore's, throttles are retried.

``Lightsail.list_key_pairs`` decodes GetKeyPairs pages with ``json.loads``
(botocore parses none of it); every field the reconciler reads must come out
exactly as botocore's own parsing gives it.
"""

from __future__ import annotations

from reconciler.aws import wire
from reconciler.aws.lightsail import RAW, ClientOptions, Lightsail
from reconciler.emulator import Emulator, EmulatorConfig, RateLimit
from tests.conftest import lightsail_client
from tests.emulator_helpers import ed25519_openssh


def test_decoded_pages_equal_what_botocore_parses() -> None:
    with Emulator(EmulatorConfig(page_size=4)) as emu:
        client = lightsail_client(emu.url)
        for i in range(10):
            tags = [{"key": "team", "value": f"t{i}"}, {"key": "flag"}]  # a tag without value
            client.import_key_pair(keyPairName=f"kp-{i:02d}", publicKeyBase64=ed25519_openssh())
            client.tag_resource(resourceName=f"kp-{i:02d}", tags=tags)
        expected = [
            wire.key_pair(kp, "keyPairs[]", "us-east-1")
            for page in client.get_paginator("get_key_pairs").paginate()
            for kp in page["keyPairs"]
        ]
        lightsail = Lightsail(ClientOptions(endpoint_url=emu.url))
        page = lightsail.client("us-east-1").get_key_pairs()
        assert "keyPairs" not in page and "nextPageToken" not in page  # botocore parsed none
        assert page[RAW]["keyPairs"] and page[RAW]["nextPageToken"]
        emu.reset_counters()
        ours = lightsail.list_key_pairs("us-east-1")
        assert ours == expected
        assert len(ours) == 10 and emu.calls["GetKeyPairs"] == 3
        assert ours[0].tags == {"team": "t0", "flag": None}
        assert isinstance(ours[0].created_at, float) and ours[0].created_at > 1e9


def test_a_throttled_page_is_read_again_at_the_pace() -> None:
    limits = (RateLimit(20, 1, "GetKeyPairs"),)
    with Emulator(EmulatorConfig(page_size=2, rate_limits=limits)) as emu:
        client = lightsail_client(emu.url)
        for i in range(9):
            client.import_key_pair(keyPairName=f"kp-{i}", publicKeyBase64=ed25519_openssh())
        lightsail = Lightsail(ClientOptions(endpoint_url=emu.url))
        names = [kp.address.name for kp in lightsail.list_key_pairs("us-east-1")]
        assert names == [f"kp-{i}" for i in range(9)]
        throttled = emu.throttled["GetKeyPairs"]
        assert throttled >= 1  # one token: the second page came too soon
        assert emu.calls["GetKeyPairs"] == 5 + throttled
