"""SigV4 on the emulator: the region comes from the signature, and keys are verified when set."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.auth
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from reconciler.emulator import Emulator, EmulatorConfig
from tests.conftest import ACCESS_KEY, SECRET_KEY, lightsail_client
from tests.emulator_helpers import TARGET_PREFIX, call, error, send, signed_headers


@pytest.fixture
def verifying() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(access_key=ACCESS_KEY, secret_key=SECRET_KEY, key_pool=1)) as emu:
        yield emu


def client_with(url: str, access_key: str, secret_key: str, **config: Any) -> Any:
    return boto3.client(
        "lightsail",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(retries={"max_attempts": 1}, **config),
    )


def assert_unauthenticated(exc: pytest.ExceptionInfo[ClientError], code: str) -> None:
    error_type, got_code, _, status = error(exc.value)
    assert (error_type, got_code, status) == ("UnauthenticatedException", code, 400)


def test_the_right_key_is_accepted(verifying: Emulator) -> None:
    client = lightsail_client(verifying.url)
    client.create_key_pair(keyPairName="kp", tags=[{"key": "note", "value": "spaces  and : / @"}])
    assert client.get_key_pair(keyPairName="kp")["keyPair"]["name"] == "kp"


def test_a_bad_secret_is_unauthenticated_and_changes_nothing(verifying: Emulator) -> None:
    client = client_with(verifying.url, ACCESS_KEY, "not-the-secret")
    with pytest.raises(ClientError) as exc:
        client.create_key_pair(keyPairName="kp")
    assert_unauthenticated(exc, "SignatureDoesNotMatch")
    assert verifying.store.names("us-east-1") == []
    assert verifying.calls["CreateKeyPair"] == 1
    assert verifying.committed == {}


def test_an_unknown_access_key_is_unauthenticated(verifying: Emulator) -> None:
    with pytest.raises(ClientError) as exc:
        client_with(verifying.url, "AKIDOTHER", SECRET_KEY).get_key_pairs()
    assert_unauthenticated(exc, "InvalidClientTokenId")


def test_an_unsigned_request_is_unauthenticated(verifying: Emulator) -> None:
    client = client_with(verifying.url, ACCESS_KEY, SECRET_KEY, signature_version=UNSIGNED)
    with pytest.raises(ClientError) as exc:
        client.get_key_pairs()
    assert_unauthenticated(exc, "MissingAuthenticationToken")


def test_a_missing_authorization_header_is_refused_even_without_keys(emulator: Emulator) -> None:
    headers = signed_headers(emulator.url, TARGET_PREFIX + "GetKeyPairs", b"{}")
    del headers["Authorization"]
    response = send(emulator.url, b"{}", headers)
    assert response.status == 400
    assert response.json()["__type"] == "UnauthenticatedException"
    assert response.json()["code"] == "MissingAuthenticationToken"


def test_any_secret_is_accepted_when_no_keys_are_configured(emulator: Emulator) -> None:
    client = client_with(emulator.url, "anything", "whatever")
    assert client.get_key_pairs()["keyPairs"] == []


def test_a_body_changed_after_signing_is_refused(verifying: Emulator) -> None:
    body = json.dumps({"keyPairName": "signed"}).encode()
    headers = signed_headers(verifying.url, TARGET_PREFIX + "CreateKeyPair", body)
    tampered = json.dumps({"keyPairName": "evil!"}).encode()
    headers["Content-Length"] = str(len(tampered))
    response = send(verifying.url, tampered, headers)
    assert response.status == 400
    assert response.json()["code"] == "SignatureDoesNotMatch"
    assert verifying.store.names("us-east-1") == []


def test_a_changed_target_header_is_refused(verifying: Emulator) -> None:
    headers = signed_headers(verifying.url, TARGET_PREFIX + "GetKeyPairs", b"{}")
    headers["X-Amz-Target"] = TARGET_PREFIX + "DownloadDefaultKeyPair"
    response = send(verifying.url, b"{}", headers)
    assert response.json()["code"] == "SignatureDoesNotMatch"
    assert verifying.store.names("us-east-1") == []


def test_a_signature_for_another_service_is_refused(verifying: Emulator) -> None:
    response = call(verifying.url, "GetKeyPairs", {}, service="ec2")
    assert response.status == 400
    body = response.json()
    assert body["__type"] == "UnauthenticatedException"
    assert "lightsail" in body["message"]


@pytest.mark.parametrize(
    "header",
    [
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/lightsail/aws4_request",
        "AWS4-HMAC-SHA256 Credential=AKID/us-east-1, SignedHeaders=host, Signature=00",
        "AWS3 AWSAccessKeyId=AKID,Signature=abc",
        "Bearer token",
    ],
)
def test_malformed_authorization_headers_are_refused(emulator: Emulator, header: str) -> None:
    headers = signed_headers(emulator.url, TARGET_PREFIX + "GetKeyPairs", b"{}")
    headers["Authorization"] = header
    response = send(emulator.url, b"{}", headers)
    assert response.status == 400
    assert response.json()["__type"] == "UnauthenticatedException"


def test_a_stale_signature_is_refused(verifying: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    an_hour_ago = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=1)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: an_hour_ago)
    with pytest.raises(ClientError) as exc:
        lightsail_client(verifying.url).get_key_pairs()
    assert_unauthenticated(exc, "SignatureExpired")


def test_the_region_comes_from_the_credential_scope(emulator: Emulator) -> None:
    lightsail_client(emulator.url, "ap-southeast-2").create_key_pair(keyPairName="sydney")
    assert emulator.store.names("ap-southeast-2") == ["sydney"]
    assert emulator.store.names("us-east-1") == []
