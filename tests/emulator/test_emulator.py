"""The emulator's key-pair operations, driven by boto3 over real HTTP.

Shapes, formats and error codes are those of lightsail-keypair-reference.md;
tag and name validation live in test_emulator_validation.py, pagination in
test_emulator_pagination.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from reconciler.emulator import Emulator, EmulatorConfig
from tests.conftest import lightsail_client
from tests.emulator_helpers import ed25519_openssh, error

ARN = re.compile(
    r"^arn:aws:lightsail:us-east-1:123456789012:KeyPair/"
    r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
)
LOCATION = {"availabilityZone": "all", "regionName": "us-east-1"}
DEFAULT = "LightsailDefaultKeyPair"


def sha1_of_pkcs8(pem: str) -> str:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return hashlib.sha1(der).digest().hex(":")


def md5_of_blob(openssh: str) -> str:
    return hashlib.md5(base64.b64decode(openssh.split()[1])).digest().hex(":")


def rsa_openssh(bits: int) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )


def assert_operation(op: dict[str, Any], operation_type: str, name: str) -> None:
    assert op["operationType"] == operation_type
    assert op["resourceName"] == name
    assert op["resourceType"] == "KeyPair"
    assert op["location"] == LOCATION
    assert op["isTerminal"] is True
    assert op["status"] == "Succeeded"
    assert re.fullmatch(r"[0-9a-f-]{36}", op["id"])
    delay = (op["statusChangedAt"] - op["createdAt"]).total_seconds()
    assert 0.1 <= delay <= 0.2


# -- CreateKeyPair -------------------------------------------------------------


def test_create_returns_real_key_material_whose_fingerprint_matches(lightsail: Any) -> None:
    out = lightsail.create_key_pair(keyPairName="web-prod")
    pem = out["privateKeyBase64"]
    assert pem.startswith("-----BEGIN RSA PRIVATE KEY-----\n")
    assert pem.rstrip().endswith("-----END RSA PRIVATE KEY-----")
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 2048
    assert key.public_key().public_numbers().e == 65537
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    assert out["publicKeyBase64"] == public.decode() + " "
    fingerprint = out["keyPair"]["fingerprint"]
    assert fingerprint == sha1_of_pkcs8(pem)
    assert re.fullmatch(r"([0-9a-f]{2}:){19}[0-9a-f]{2}", fingerprint)


def test_create_response_has_the_reference_shapes(lightsail: Any) -> None:
    before = dt.datetime.now(dt.UTC)
    out = lightsail.create_key_pair(
        keyPairName="web", tags=[{"key": "env", "value": "prod"}, {"key": "flag"}]
    )
    pair = out["keyPair"]
    assert pair["name"] == "web"
    assert ARN.match(pair["arn"])
    assert pair["supportCode"] == "123456789012/web"
    assert pair["location"] == LOCATION
    assert pair["resourceType"] == "KeyPair"
    assert pair["tags"] == [{"key": "env", "value": "prod"}, {"key": "flag"}]
    created = pair["createdAt"]
    assert abs((created - before).total_seconds()) < 5
    assert created.microsecond % 1000 == 0  # millisecond precision
    assert_operation(out["operation"], "CreateKeyPair", "web")
    assert out["operation"]["createdAt"] == created


def test_each_create_makes_a_new_key(lightsail: Any) -> None:
    first = lightsail.create_key_pair(keyPairName="one")
    second = lightsail.create_key_pair(keyPairName="two")
    assert first["keyPair"]["fingerprint"] != second["keyPair"]["fingerprint"]
    assert first["keyPair"]["arn"] != second["keyPair"]["arn"]


def test_create_with_a_used_name_is_name_exists(lightsail: Any) -> None:
    lightsail.create_key_pair(keyPairName="taken")
    with pytest.raises(ClientError) as exc:
        lightsail.create_key_pair(keyPairName="taken")
    assert error(exc.value) == (
        "InvalidInputException",
        "NameExists",
        "Some names are already in use: taken",
        400,
    )


def test_concurrent_creates_of_one_name_have_exactly_one_winner() -> None:
    with Emulator(EmulatorConfig(key_pool=2)) as emu:
        clients = [lightsail_client(emu.url) for _ in range(12)]
        start = threading.Barrier(len(clients))
        results: list[str] = []

        def create(client: Any) -> None:
            start.wait()
            try:
                out = client.create_key_pair(keyPairName="contested")
                results.append("won:" + out["keyPair"]["fingerprint"])
            except ClientError as exc:
                results.append(str(exc.response.get("code")))

        threads = [threading.Thread(target=create, args=(c,)) for c in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [r for r in results if r.startswith("won:")]
        assert len(winners) == 1
        assert sorted(r for r in results if not r.startswith("won:")) == ["NameExists"] * 11
        assert emu.store.names("us-east-1") == ["contested"]
        record = emu.store.get("us-east-1", "contested")
        assert record is not None and winners[0] == "won:" + record.fingerprint
        assert emu.calls["CreateKeyPair"] == 12
        assert emu.committed["CreateKeyPair"] == 1


def test_concurrent_creates_of_different_names_all_land() -> None:
    with Emulator(EmulatorConfig(key_pool=2)) as emu:
        client = lightsail_client(emu.url, max_pool_connections=16)
        names = [f"kp-{i:02d}" for i in range(40)]
        threads = [
            threading.Thread(target=client.create_key_pair, kwargs={"keyPairName": n})
            for n in names
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert emu.store.names("us-east-1") == names
        assert emu.committed["CreateKeyPair"] == 40


# -- GetKeyPair ----------------------------------------------------------------


def test_get_returns_what_create_returned(lightsail: Any) -> None:
    created = lightsail.create_key_pair(keyPairName="web")["keyPair"]
    got = lightsail.get_key_pair(keyPairName="web")["keyPair"]
    assert got == {**created, "tags": []}


def test_get_of_a_missing_key_pair_is_not_found(lightsail: Any) -> None:
    with pytest.raises(ClientError) as exc:
        lightsail.get_key_pair(keyPairName="ghost")
    assert error(exc.value) == (
        "NotFoundException",
        "DoesNotExist",
        "The KeyPair does not exist: ghost",
        400,
    )


# -- ImportKeyPair -------------------------------------------------------------


def test_import_answers_only_an_operation_and_fingerprints_the_blob(lightsail: Any) -> None:
    public = ed25519_openssh("me@laptop")
    out = lightsail.import_key_pair(keyPairName="laptop", publicKeyBase64=public)
    assert set(out) == {"operation", "ResponseMetadata"}
    assert_operation(out["operation"], "ImportKeyPair", "laptop")
    pair = lightsail.get_key_pair(keyPairName="laptop")["keyPair"]
    assert pair["fingerprint"] == md5_of_blob(public)
    assert ARN.match(pair["arn"])
    assert pair["tags"] == []


@pytest.mark.parametrize("bits", [2048, 4096])
def test_import_accepts_rsa_2048_to_4096(lightsail: Any, bits: int) -> None:
    public = rsa_openssh(bits)
    lightsail.import_key_pair(keyPairName=f"rsa{bits}", publicKeyBase64=public + "\n")
    pair = lightsail.get_key_pair(keyPairName=f"rsa{bits}")["keyPair"]
    assert pair["fingerprint"] == md5_of_blob(public)


def _ecdsa_openssh() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )


@pytest.mark.parametrize(
    "public",
    [
        pytest.param(lambda: rsa_openssh(1024), id="rsa-1024"),
        pytest.param(_ecdsa_openssh, id="ecdsa"),
        pytest.param(
            lambda: base64.b64encode(ed25519_openssh().encode()).decode(), id="base64-twice"
        ),
        pytest.param(lambda: "ssh-rsa not-base64!", id="bad-base64"),
        pytest.param(lambda: "ssh-ed25519 " + base64.b64encode(b"short").decode(), id="truncated"),
        pytest.param(lambda: "", id="empty"),
        pytest.param(lambda: "ssh-rsa " + ed25519_openssh().split()[1], id="type-mismatch"),
    ],
)
def test_import_refuses_keys_lightsail_does_not_take(lightsail: Any, public: Any) -> None:
    with pytest.raises(ClientError) as exc:
        lightsail.import_key_pair(keyPairName="bad", publicKeyBase64=public())
    assert error(exc.value) == (
        "InvalidInputException",
        "InvalidKey.Format",
        "The format of this public key is not valid",
        400,
    )
    assert lightsail.get_key_pairs()["keyPairs"] == []


def test_import_with_a_used_name_is_name_exists(lightsail: Any) -> None:
    lightsail.create_key_pair(keyPairName="taken")
    with pytest.raises(ClientError) as exc:
        lightsail.import_key_pair(keyPairName="taken", publicKeyBase64=ed25519_openssh())
    assert error(exc.value)[:2] == ("InvalidInputException", "NameExists")


# -- DeleteKeyPair -------------------------------------------------------------


def test_delete_removes_the_key_pair(lightsail: Any) -> None:
    lightsail.create_key_pair(keyPairName="old")
    out = lightsail.delete_key_pair(keyPairName="old")
    assert_operation(out["operation"], "DeleteKeyPair", "old")
    with pytest.raises(ClientError) as exc:
        lightsail.get_key_pair(keyPairName="old")
    assert error(exc.value)[0] == "NotFoundException"


def test_delete_of_a_missing_key_pair_is_not_found(lightsail: Any) -> None:
    with pytest.raises(ClientError) as exc:
        lightsail.delete_key_pair(keyPairName="ghost")
    assert error(exc.value) == (
        "NotFoundException",
        "DoesNotExist",
        "The KeyPair does not exist: ghost",
        400,
    )


def test_delete_checks_the_expected_fingerprint(lightsail: Any) -> None:
    fingerprint = lightsail.create_key_pair(keyPairName="kp")["keyPair"]["fingerprint"]
    with pytest.raises(ClientError) as exc:
        lightsail.delete_key_pair(keyPairName="kp", expectedFingerprint="00:11:22")
    assert error(exc.value)[:2] == ("InvalidInputException", "FingerprintMismatch")
    assert "kp" in error(exc.value)[2]
    assert lightsail.get_key_pair(keyPairName="kp")
    lightsail.delete_key_pair(keyPairName="kp", expectedFingerprint=fingerprint)
    assert lightsail.get_key_pairs()["keyPairs"] == []


# -- DownloadDefaultKeyPair ----------------------------------------------------


def test_download_default_creates_it_once_and_returns_the_same_keys(lightsail: Any) -> None:
    first = lightsail.download_default_key_pair()
    second = lightsail.download_default_key_pair()
    for field in ("publicKeyBase64", "privateKeyBase64", "createdAt"):
        assert first[field] == second[field]
    key = serialization.load_pem_private_key(first["privateKeyBase64"].encode(), password=None)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    assert first["publicKeyBase64"] == public.decode() + " "
    pair = lightsail.get_key_pair(keyPairName=DEFAULT)["keyPair"]
    assert pair["fingerprint"] == sha1_of_pkcs8(first["privateKeyBase64"])
    assert pair["createdAt"] == first["createdAt"]


def test_get_key_pairs_leaves_the_default_out_unless_asked(lightsail: Any) -> None:
    lightsail.download_default_key_pair()
    lightsail.create_key_pair(keyPairName="mine")
    names = [kp["name"] for kp in lightsail.get_key_pairs()["keyPairs"]]
    assert names == ["mine"]
    listed = lightsail.get_key_pairs(includeDefaultKeyPair=True)["keyPairs"]
    assert sorted(kp["name"] for kp in listed) == [DEFAULT, "mine"]
    assert [
        kp["name"] for kp in lightsail.get_key_pairs(includeDefaultKeyPair=False)["keyPairs"]
    ] == ["mine"]


def test_deleting_the_default_needs_its_fingerprint(lightsail: Any) -> None:
    lightsail.download_default_key_pair()
    fingerprint = lightsail.get_key_pair(keyPairName=DEFAULT)["keyPair"]["fingerprint"]
    with pytest.raises(ClientError) as exc:
        lightsail.delete_key_pair(keyPairName=DEFAULT)
    assert error(exc.value)[:2] == ("InvalidInputException", "InvalidParameter")
    assert "expectedFingerprint" in error(exc.value)[2]
    with pytest.raises(ClientError) as exc:
        lightsail.delete_key_pair(keyPairName=DEFAULT, expectedFingerprint="aa:bb")
    assert error(exc.value)[:2] == ("InvalidInputException", "FingerprintMismatch")
    lightsail.delete_key_pair(keyPairName=DEFAULT, expectedFingerprint=fingerprint)
    again = lightsail.download_default_key_pair()
    assert sha1_of_pkcs8(again["privateKeyBase64"]) != fingerprint


def test_the_default_name_cannot_be_created_directly(lightsail: Any) -> None:
    with pytest.raises(ClientError) as exc:
        lightsail.create_key_pair(keyPairName=DEFAULT)
    assert error(exc.value)[:2] == ("InvalidInputException", "InvalidParameter")
    lightsail.download_default_key_pair()
    with pytest.raises(ClientError) as exc:
        lightsail.import_key_pair(keyPairName=DEFAULT, publicKeyBase64=ed25519_openssh())
    assert error(exc.value)[:2] == ("InvalidInputException", "NameExists")


# -- regions -------------------------------------------------------------------


def test_each_region_has_its_own_key_pairs(emulator: Emulator) -> None:
    east = lightsail_client(emulator.url, "us-east-1")
    frankfurt = lightsail_client(emulator.url, "eu-central-1")
    east.create_key_pair(keyPairName="shared-name")
    assert frankfurt.get_key_pairs()["keyPairs"] == []
    pair = frankfurt.create_key_pair(keyPairName="shared-name")["keyPair"]
    assert pair["location"] == {"availabilityZone": "all", "regionName": "eu-central-1"}
    assert pair["arn"].startswith("arn:aws:lightsail:eu-central-1:123456789012:KeyPair/")
    assert emulator.store.names("us-east-1") == ["shared-name"]
    assert emulator.store.names("eu-central-1") == ["shared-name"]


def test_a_region_lightsail_does_not_serve_is_invalid_input(emulator: Emulator) -> None:
    client = lightsail_client(emulator.url, "us-gov-west-1")
    with pytest.raises(ClientError) as exc:
        client.get_key_pairs()
    assert error(exc.value)[:2] == ("InvalidInputException", "InvalidParameter")
    assert "us-gov-west-1" in error(exc.value)[2]


def test_account_id_is_configurable() -> None:
    with Emulator(EmulatorConfig(account_id="210987654321", key_pool=1)) as emu:
        pair = lightsail_client(emu.url).create_key_pair(keyPairName="kp")["keyPair"]
        assert pair["arn"].startswith("arn:aws:lightsail:us-east-1:210987654321:KeyPair/")
        assert pair["supportCode"] == "210987654321/kp"


# -- counters ------------------------------------------------------------------


def test_counters_count_calls_and_commits(emulator: Emulator, lightsail: Any) -> None:
    lightsail.create_key_pair(keyPairName="kp")
    with pytest.raises(ClientError):
        lightsail.create_key_pair(keyPairName="kp")
    lightsail.get_key_pairs()
    assert emulator.calls == {"CreateKeyPair": 2, "GetKeyPairs": 1}
    assert emulator.committed == {"CreateKeyPair": 1}
    emulator.reset_counters()
    assert emulator.calls == {} and emulator.committed == {}
