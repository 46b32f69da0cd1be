"""Fault injection on the emulator: latency, throttling, 500s and lost responses."""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError

from reconciler.emulator import Emulator, EmulatorConfig, EmulatorError
from tests.emulator_helpers import client as lightsail_client
from tests.emulator_helpers import ed25519_openssh, error


def outcome(call: Any) -> str:
    """What a client saw: ok, an error code, or a dropped connection."""
    try:
        call()
    except ClientError as exc:
        error_type, _, _, status = error(exc)
        return f"{status} {error_type}"
    except ConnectionClosedError:
        return "dropped"
    return "ok"


def test_latency_is_added_to_every_call() -> None:
    with Emulator(EmulatorConfig(latency_ms=150)) as emu:
        client = lightsail_client(emu.url)
        client.get_key_pairs()  # warm the connection
        for call in (
            client.get_key_pairs,
            lambda: outcome(lambda: client.get_key_pair(keyPairName="x")),
        ):
            started = time.perf_counter()
            call()
            assert time.perf_counter() - started >= 0.15


def test_throttled_calls_are_rate_exceeded_and_have_no_effect() -> None:
    with Emulator(EmulatorConfig(throttle_rate=1.0, key_pool=1)) as emu:
        client = lightsail_client(emu.url)
        with pytest.raises(ClientError) as exc:
            client.create_key_pair(keyPairName="kp")
        assert error(exc.value) == ("ThrottlingException", None, "Rate exceeded", 400)
        assert emu.store.names("us-east-1") == []
        assert emu.calls == {"CreateKeyPair": 1}
        assert emu.committed == {}


def test_botocore_retries_throttling_until_it_gets_through() -> None:
    # Seed 10 throttles the 2nd and 4th call: two imports need one retry each.
    with Emulator(EmulatorConfig(throttle_rate=0.5, seed=10)) as emu:
        client = lightsail_client(emu.url, attempts=5)
        for i in range(4):
            client.import_key_pair(keyPairName=f"kp-{i}", publicKeyBase64=ed25519_openssh())
        assert len(emu.store.names("us-east-1")) == 4
        assert emu.committed["ImportKeyPair"] == 4
        assert emu.calls["ImportKeyPair"] == 6


def test_error_rate_answers_500_service_exception_before_any_effect() -> None:
    with Emulator(EmulatorConfig(error_rate=1.0)) as emu:
        client = lightsail_client(emu.url)
        with pytest.raises(ClientError) as exc:
            client.import_key_pair(keyPairName="kp", publicKeyBase64=ed25519_openssh())
        error_type, _, _, status = error(exc.value)
        assert (error_type, status) == ("ServiceException", 500)
        assert emu.store.names("us-east-1") == []
        assert emu.committed == {}


def test_commit_then_fail_commits_and_then_loses_the_response() -> None:
    with Emulator(EmulatorConfig(commit_then_fail_rate=1.0, seed=3, key_pool=1)) as emu:
        client = lightsail_client(emu.url)
        seen = [
            outcome(lambda i=i: client.create_key_pair(keyPairName=f"kp-{i:02d}"))
            for i in range(12)
        ]
        assert set(seen) == {"500 ServiceException", "dropped"}
        assert emu.store.names("us-east-1") == [f"kp-{i:02d}" for i in range(12)]
        assert emu.calls["CreateKeyPair"] == 12
        assert emu.committed["CreateKeyPair"] == 12
        # Reads commit nothing, so they are never hit.
        assert len(client.get_key_pairs()["keyPairs"]) == 12
        # Calls that fail validation commit nothing either, and answer normally.
        assert (
            outcome(lambda: client.create_key_pair(keyPairName="kp-00"))
            == "400 InvalidInputException"
        )


@pytest.mark.parametrize(
    ("operation", "prepare"),
    [
        ("ImportKeyPair", None),
        ("DeleteKeyPair", "kp"),
        ("TagResource", "kp"),
        ("UntagResource", "kp"),
        ("DownloadDefaultKeyPair", None),
    ],
)
def test_every_mutating_operation_can_lose_its_response(
    operation: str, prepare: str | None
) -> None:
    with Emulator(EmulatorConfig(commit_then_fail_rate=1.0, seed=1, key_pool=1)) as emu:
        client = lightsail_client(emu.url)
        if prepare:
            emu.store.seed_key_pairs("us-east-1", 1, prefix="kp-", tags={"t": "v"})
        name = emu.store.names("us-east-1")[0] if prepare else "kp"
        calls = {
            "ImportKeyPair": lambda: client.import_key_pair(
                keyPairName=name, publicKeyBase64=ed25519_openssh()
            ),
            "DeleteKeyPair": lambda: client.delete_key_pair(keyPairName=name),
            "TagResource": lambda: client.tag_resource(resourceName=name, tags=[{"key": "new"}]),
            "UntagResource": lambda: client.untag_resource(resourceName=name, tagKeys=["t"]),
            "DownloadDefaultKeyPair": client.download_default_key_pair,
        }
        assert outcome(calls[operation]) in ("500 ServiceException", "dropped")
        assert emu.committed == {operation: 1}
        record = emu.store.get("us-east-1", name)
        effect = {
            "ImportKeyPair": record is not None,
            "DeleteKeyPair": record is None,
            "TagResource": record is not None and dict(record.tags) == {"t": "v", "new": None},
            "UntagResource": record is not None and dict(record.tags) == {},
            "DownloadDefaultKeyPair": emu.store.get("us-east-1", "LightsailDefaultKeyPair")
            is not None,
        }[operation]
        assert effect


def test_a_retried_lost_create_reports_name_exists() -> None:
    # The "maybe mine" case of the reference: the first attempt committed, the
    # SDK's retry then meets the name in use.
    with Emulator(EmulatorConfig(commit_then_fail_rate=1.0, seed=3, key_pool=1)) as emu:
        client = lightsail_client(emu.url, attempts=3)
        with pytest.raises(ClientError) as exc:
            client.create_key_pair(keyPairName="lost")
        assert exc.value.response.get("code") == "NameExists"
        assert emu.store.names("us-east-1") == ["lost"]
        assert emu.committed["CreateKeyPair"] == 1


def fault_sequence(seed: int) -> list[str]:
    config = EmulatorConfig(seed=seed, throttle_rate=0.3, error_rate=0.2, commit_then_fail_rate=0.5)
    with Emulator(config) as emu:
        client = lightsail_client(emu.url)
        results = []
        for i in range(30):
            results.append(outcome(client.get_key_pairs))
            results.append(
                outcome(
                    lambda i=i: client.import_key_pair(
                        keyPairName=f"kp-{i}", publicKeyBase64=ed25519_openssh()
                    )
                )
            )
        return results


def test_the_same_seed_gives_the_same_faults() -> None:
    first = fault_sequence(42)
    assert fault_sequence(42) == first
    assert set(first) == {
        "ok",
        "400 ThrottlingException",
        "500 ServiceException",
        "dropped",
    }
    assert fault_sequence(43) != first


def test_faults_are_off_by_default(emulator: Emulator) -> None:
    client = lightsail_client(emulator.url)
    for i in range(30):
        client.import_key_pair(keyPairName=f"kp-{i}", publicKeyBase64=ed25519_openssh())
    assert emulator.committed["ImportKeyPair"] == 30


def test_invalid_fault_settings_are_refused() -> None:
    for config in (
        EmulatorConfig(throttle_rate=1.5),
        EmulatorConfig(error_rate=-0.1),
        EmulatorConfig(throttle_rate=0.6, error_rate=0.6),
        EmulatorConfig(page_size=0),
        EmulatorConfig(latency_ms=-1),
        EmulatorConfig(access_key="only-half"),
        EmulatorConfig(account_id="12345"),
    ):
        with pytest.raises(EmulatorError):
            Emulator(config)


@pytest.mark.parametrize(
    ("error_type", "status"),
    [("AccessDeniedException", 400), ("ServiceUnavailable", 503), ("ServiceException", 500)],
)
def test_force_error_answers_every_call_with_that_error(error_type: str, status: int) -> None:
    with Emulator(EmulatorConfig()) as emu:
        emu.force_error = error_type
        client = lightsail_client(emu.url)
        for call in (client.get_key_pairs, client.download_default_key_pair):
            assert outcome(call) == f"{status} {error_type}"
        assert emu.store.regions() == []
        emu.force_error = None
        assert outcome(client.get_key_pairs) == "ok"
