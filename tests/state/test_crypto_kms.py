"""Sealing private keys with AWS KMS envelope encryption, against moto over real HTTP."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import EncryptionError
from reconciler.keys import generate_rsa
from reconciler.model import Address
from reconciler.state import crypto
from reconciler.state.crypto import EncryptionSpec, Sealer, Unsealer
from tests.conftest import aws_client
from tests.state.test_crypto import AgeKey, assert_no_secret

WEB = Address("us-east-1", "web")
PEM = generate_rsa().private_pem


class KmsFactory:
    """Makes boto3 KMS clients for moto, counting every call they make by operation."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.regions: list[str | None] = []
        self.calls: Counter[str] = Counter()
        self.refuse: set[str] = set()  # regions whose clients cannot be made
        self.closed = False

    def __call__(self, region: str | None) -> Any:
        if self.closed:
            raise AssertionError("a KMS client was asked for after the sealer was made")
        if region in self.refuse:
            raise RuntimeError(f"no route to KMS in {region}")
        self.regions.append(region)
        client = aws_client("kms", self.url, region or "us-east-1")
        client.meta.events.register("before-call.kms.*", self._count)
        return client

    def _count(self, event_name: str, **_: Any) -> None:
        self.calls[event_name.rsplit(".", 1)[-1]] += 1


@pytest.fixture
def kms(moto_url: str) -> KmsFactory:
    return KmsFactory(moto_url)


def make_key(url: str, region: str = "us-east-1", alias: str | None = None) -> str:
    client = aws_client("kms", url, region)
    arn: str = client.create_key(Description="state keys")["KeyMetadata"]["Arn"]
    if alias is not None:
        client.create_alias(AliasName=alias, TargetKeyId=arn)
    return arn


def test_kms_round_trip_by_alias_records_the_key_arn(moto_url: str, kms: KmsFactory) -> None:
    arn = make_key(moto_url, alias="alias/state-round-trip")
    sealer = Sealer([EncryptionSpec("kms", "alias/state-round-trip")], kms_client_factory=kms)
    sealed = sealer.seal(WEB, PEM)
    assert_no_secret(str(sealed))
    [recipient] = sealed["recipients"]
    # The ARN, not the alias: re-pointing the alias later must not orphan the key.
    assert recipient["keyId"] == arn and recipient["region"] == "us-east-1"
    assert kms.calls == Counter({"GenerateDataKey": 1})
    opener = KmsFactory(moto_url)
    assert crypto.unseal(sealed, WEB, kms_client_factory=opener) == PEM
    assert opener.calls == Counter({"Decrypt": 1})


def test_sealing_needs_no_network_after_the_sealer_is_made(moto_url: str, kms: KmsFactory) -> None:
    arn = make_key(moto_url)
    sealer = Sealer([EncryptionSpec("kms", arn)], kms_client_factory=kms)
    made = dict(kms.calls)
    kms.closed = True  # any further client would raise
    for i in range(100):
        sealer.seal(Address("us-east-1", f"key-{i}"), PEM)
    assert dict(kms.calls) == made == {"GenerateDataKey": 1}


def test_one_decrypt_call_per_data_key_however_many_entries(moto_url: str, kms: KmsFactory) -> None:
    arn = make_key(moto_url)
    runs = [Sealer([EncryptionSpec("kms", arn)], kms_client_factory=kms) for _ in range(2)]
    sealed = {
        Address("us-east-1", f"key-{run}-{i}"): sealer.seal(
            Address("us-east-1", f"key-{run}-{i}"), PEM
        )
        for run, sealer in enumerate(runs)
        for i in range(300)
    }
    opener = KmsFactory(moto_url)
    unsealer = Unsealer(kms_client_factory=opener)
    for address, box in sealed.items():
        assert unsealer.unseal(box, address) == PEM
    assert opener.calls == Counter({"Decrypt": 2})  # one per run's data key
    assert opener.regions == ["us-east-1"]  # one client, reused


def test_kms_and_age_recipients_either_one_opens_it(
    moto_url: str, kms: KmsFactory, tmp_path: Path
) -> None:
    arn = make_key(moto_url)
    age = AgeKey(tmp_path)
    sealer = Sealer([EncryptionSpec("kms", arn), age.spec], kms_client_factory=kms)
    sealed = sealer.seal(WEB, PEM)
    assert [r["type"] for r in sealed["recipients"]] == ["kms", "age"]
    # KMS alone.
    assert Unsealer(kms_client_factory=KmsFactory(moto_url)).unseal(sealed, WEB) == PEM
    # age alone, and age is preferred: no KMS call when an identity opens it.
    opener = KmsFactory(moto_url)
    unsealer = Unsealer(age_identities=[str(age.file)], kms_client_factory=opener)
    assert unsealer.unseal(sealed, WEB) == PEM
    assert opener.calls == Counter()
    assert Unsealer(age_identities=[str(age.file)], kms_client_factory=None).unseal(
        sealed, WEB
    ) == (PEM)


def test_age_first_in_the_specs_still_takes_its_data_key_from_kms(
    moto_url: str, kms: KmsFactory, tmp_path: Path
) -> None:
    arn = make_key(moto_url)
    age = AgeKey(tmp_path)
    Sealer([age.spec, EncryptionSpec("kms", arn)], kms_client_factory=kms)
    assert kms.calls == Counter({"GenerateDataKey": 1})


def test_a_second_kms_key_in_another_region_wraps_the_same_data_key(
    moto_url: str, kms: KmsFactory
) -> None:
    east = make_key(moto_url, "us-east-1")
    west = make_key(moto_url, "eu-west-1")
    sealer = Sealer(
        [EncryptionSpec("kms", east), EncryptionSpec("kms", west)], kms_client_factory=kms
    )
    assert kms.calls == Counter({"GenerateDataKey": 1, "Encrypt": 1})
    assert sorted(r for r in kms.regions if r) == ["eu-west-1", "us-east-1"]  # from the ARNs
    sealed = sealer.seal(WEB, PEM)
    assert [r["region"] for r in sealed["recipients"]] == ["us-east-1", "eu-west-1"]
    # us-east-1 unreachable: the eu-west-1 key opens it.
    opener = KmsFactory(moto_url)
    opener.refuse = {"us-east-1"}
    assert Unsealer(kms_client_factory=opener).unseal(sealed, WEB) == PEM
    assert opener.regions == ["eu-west-1"]


def test_an_unknown_kms_key_fails_when_the_sealer_is_made(kms: KmsFactory) -> None:
    with pytest.raises(EncryptionError) as caught:
        Sealer([EncryptionSpec("kms", "alias/no-such-key")], kms_client_factory=kms)
    err = caught.value
    assert "cannot make a data key with KMS key alias/no-such-key: NotFoundException" in err.message
    assert err.hint is not None and "kms:GenerateDataKey" in err.hint


def test_no_kms_access_says_what_was_tried_without_key_material(
    moto_url: str, kms: KmsFactory, tmp_path: Path
) -> None:
    arn = make_key(moto_url)
    age = AgeKey(tmp_path)
    sealed = Sealer([EncryptionSpec("kms", arn), age.spec], kms_client_factory=kms).seal(WEB, PEM)
    # The key looked for in the wrong region, and no age identity given.
    key_id = arn.split("/")[-1]
    sealed["recipients"][0]["region"] = "eu-north-1"
    sealed["recipients"][0]["keyId"] = key_id  # a bare ID: the recorded region is used
    with pytest.raises(EncryptionError) as caught:
        Unsealer(kms_client_factory=KmsFactory(moto_url)).unseal(sealed, WEB)
    err = caught.value
    assert f"age:{age.recipient} (no age identity given)" in err.message
    assert f"kms:{key_id} (NotFoundException: " in err.message
    assert err.hint is not None
    assert "--age-identity FILE" in err.hint and "kms:Decrypt" in err.hint
    assert_no_secret(f"{err.message} {err.hint}", age.secret)
    # No KMS access configured at all.
    with pytest.raises(EncryptionError, match="no KMS access configured"):
        Unsealer(kms_client_factory=None).unseal(sealed, WEB)
