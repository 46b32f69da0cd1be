"""The emulator's wire protocol and its robustness against bad input, over raw HTTP.

Every bad request gets an AWS JSON 1.1 error response, and the server keeps
serving: each test ends by checking that a normal call still works.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.emulator import Emulator, EmulatorConfig
from tests.conftest import lightsail_client
from tests.emulator_helpers import (
    JSON_11,
    TARGET_PREFIX,
    call,
    ed25519_openssh,
    raw_exchange,
    send,
    signed_headers,
)

# The whole tool end to end (faults, crashes, a browser, a terminal, real tools):
# `make test-fast` leaves these out.
pytestmark = pytest.mark.e2e


def still_serving(emulator: Emulator) -> None:
    assert "keyPairs" in lightsail_client(emulator.url).get_key_pairs()


def test_success_responses_are_json_11_with_a_request_id(emulator: Emulator) -> None:
    response = call(emulator.url, "GetKeyPairs", {})
    assert response.status == 200
    assert response.headers["content-type"] == JSON_11
    assert len(response.headers["x-amzn-requestid"]) == 36
    assert int(response.headers["content-length"]) == len(response.body)
    assert response.json() == {"keyPairs": []}


@pytest.mark.parametrize(
    "target",
    [
        "Lightsail_20161128.GetStaticIps",
        "Lightsail_20161128.",
        "DynamoDB_20120810.ListTables",
        "Lightsail_20161128.getKeyPairs",
    ],
)
def test_unknown_targets_are_unknown_operation(emulator: Emulator, target: str) -> None:
    response = call(emulator.url, target, {})
    assert response.status == 400
    assert response.headers["content-type"] == JSON_11
    assert "x-amzn-requestid" in response.headers
    assert response.json()["__type"] == "UnknownOperationException"
    assert emulator.calls["<unknown>"] == 1
    still_serving(emulator)


def test_a_missing_target_is_unknown_operation(emulator: Emulator) -> None:
    headers = signed_headers(emulator.url, "", b"{}")
    del headers["X-Amz-Target"]
    response = send(emulator.url, b"{}", headers)
    assert response.status == 400
    assert response.json()["__type"] == "UnknownOperationException"


@pytest.mark.parametrize(
    "body",
    [b"{", b"not json", b"[]", b'"string"', b"42", b"\xff\xfe\x00", b"[" * 200_000],
    ids=["truncated", "text", "array", "string", "number", "not-utf8", "deep-nesting"],
)
def test_bodies_that_are_not_a_json_object_are_serialization_errors(
    emulator: Emulator, body: bytes
) -> None:
    response = call(emulator.url, "GetKeyPairs", body)
    assert response.status == 400
    assert response.json()["__type"] == "SerializationException"
    still_serving(emulator)


def test_an_empty_body_is_an_empty_request(emulator: Emulator) -> None:
    response = call(emulator.url, "GetKeyPairs", b"")
    assert response.status == 200
    assert response.json() == {"keyPairs": []}


@pytest.mark.parametrize(
    ("operation", "payload", "member"),
    [
        ("CreateKeyPair", {"keyPairName": 5}, "keyPairName"),
        ("CreateKeyPair", {"keyPairName": "ok", "tags": "env=prod"}, "tags"),
        ("CreateKeyPair", {"keyPairName": "ok", "tags": [["env", "prod"]]}, "tags"),
        ("CreateKeyPair", {"keyPairName": "ok", "tags": [{"key": 1}]}, "tags"),
        ("GetKeyPairs", {"includeDefaultKeyPair": "yes"}, "includeDefaultKeyPair"),
        ("GetKeyPairs", {"pageToken": {"a": 1}}, "pageToken"),
        ("UntagResource", {"resourceName": "ok", "tagKeys": "env"}, "tagKeys"),
        ("ImportKeyPair", {"keyPairName": "ok", "publicKeyBase64": ["ssh-rsa"]}, "publicKeyBase64"),
    ],
)
def test_members_of_the_wrong_type_are_serialization_errors(
    emulator: Emulator, operation: str, payload: dict[str, Any], member: str
) -> None:
    response = call(emulator.url, operation, payload)
    assert response.status == 400
    body = response.json()
    assert body["__type"] == "SerializationException"
    assert member in body["message"]
    assert emulator.store.names("us-east-1") == []


@pytest.mark.parametrize(
    ("operation", "payload", "missing"),
    [
        ("CreateKeyPair", {}, "keyPairName"),
        ("ImportKeyPair", {"keyPairName": "ok"}, "publicKeyBase64"),
        ("GetKeyPair", {"keyPairName": None}, "keyPairName"),
        ("DeleteKeyPair", {"expectedFingerprint": "aa"}, "keyPairName"),
        ("TagResource", {"resourceName": "ok"}, "tags"),
        ("UntagResource", {"tagKeys": []}, "resourceName"),
    ],
)
def test_missing_required_members_are_invalid_input(
    emulator: Emulator, operation: str, payload: dict[str, Any], missing: str
) -> None:
    response = call(emulator.url, operation, payload)
    assert response.status == 400
    body = response.json()
    assert (body["__type"], body["code"]) == ("InvalidInputException", "InvalidParameter")
    assert missing in body["message"]


def test_unknown_members_are_ignored(emulator: Emulator) -> None:
    response = call(emulator.url, "GetKeyPairs", {"futureMember": [1, 2, 3]})
    assert response.status == 200


def test_a_body_over_the_limit_is_refused_without_reading_it_into_a_request(
    emulator: Emulator,
) -> None:
    huge = json.dumps({"keyPairName": "big", "publicKeyBase64": "A" * (2 << 20)}).encode()
    response = call(emulator.url, "ImportKeyPair", huge)
    assert response.status == 413
    assert response.json()["__type"] == "RequestEntityTooLargeException"
    assert emulator.store.names("us-east-1") == []
    still_serving(emulator)


def test_a_huge_declared_length_is_answered_and_the_connection_closed(emulator: Emulator) -> None:
    reply = raw_exchange(
        emulator.url,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999\r\n\r\n{}",
    )
    assert reply.startswith(b"HTTP/1.1 413 ")
    assert b"RequestEntityTooLargeException" in reply
    still_serving(emulator)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: lots\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(200),  # a TLS hello
        b"GARBAGE\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{}",  # body cut short
    ],
    ids=["no-length", "negative", "non-numeric", "chunked", "tls", "garbage", "short-body"],
)
def test_broken_http_gets_an_answer_or_a_close_and_the_server_survives(
    emulator: Emulator, request_bytes: bytes
) -> None:
    reply = raw_exchange(emulator.url, request_bytes, timeout=1)
    # An HTTP/0.9-style request line gets http.server's bare error page, with no status line.
    assert reply == b"" or reply.startswith((b"HTTP/1.1 4", b"HTTP/1.0 4")) or b"400" in reply
    still_serving(emulator)


def test_connections_are_kept_alive(emulator: Emulator) -> None:
    body = b"{}"
    headers = signed_headers(emulator.url, TARGET_PREFIX + "GetKeyPairs", body)
    request = b"POST / HTTP/1.1\r\n" + b"".join(
        f"{k}: {v}\r\n".encode() for k, v in headers.items()
    )
    request += b"Host: " + emulator.url.removeprefix("http://").encode() + b"\r\n"
    request += b"Content-Length: 2\r\n\r\n" + body
    reply = raw_exchange(emulator.url, request * 3, timeout=1)
    assert reply.count(b"HTTP/1.1 200 OK") == 3


def test_get_on_the_root_is_a_health_check(emulator: Emulator) -> None:
    response = send(emulator.url, b"", {}, method="GET")
    assert response.status == 200
    assert response.body.startswith(b"healthy")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
member_names = st.sampled_from(
    [
        "keyPairName",
        "tags",
        "publicKeyBase64",
        "pageToken",
        "includeDefaultKeyPair",
        "expectedFingerprint",
        "resourceName",
        "resourceArn",
        "tagKeys",
    ]
)
operations = st.sampled_from(
    [
        "CreateKeyPair",
        "ImportKeyPair",
        "GetKeyPair",
        "GetKeyPairs",
        "DeleteKeyPair",
        "TagResource",
        "UntagResource",
    ]
)


@pytest.fixture(scope="module")
def fuzz_target() -> Any:
    with Emulator(EmulatorConfig(key_pool=1)) as emu:
        lightsail_client(emu.url).import_key_pair(
            keyPairName="target", publicKeyBase64=ed25519_openssh()
        )
        yield emu


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    operation=operations,
    payload=st.dictionaries(
        member_names,
        json_values | st.sampled_from(["target", "ok-name", [{"key": "k"}]]),
        max_size=4,
    ),
)
def test_arbitrary_requests_never_fail_inside_the_emulator(
    fuzz_target: Emulator, operation: str, payload: dict[str, Any]
) -> None:
    response = call(fuzz_target.url, operation, payload)
    body = response.json()
    assert response.status in (200, 400), body
    if response.status == 400:
        assert body["__type"] in {
            "InvalidInputException",
            "NotFoundException",
            "SerializationException",
        }
        assert isinstance(body["message"], str)
