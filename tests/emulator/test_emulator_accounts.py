"""Key pairs and instances per account: mapped access keys, and AssumeRole through moto's STS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from reconciler.emulator import Emulator, EmulatorConfig, EmulatorError, RateLimit, errors
from reconciler.emulator.accounts import AccountMap, parse_mapping
from reconciler.emulator.errors import ApiError
from tests.conftest import ACCESS_KEY, SECRET_KEY, aws_client
from tests.emulator.test_emulator_cli import emulator_process, refused_flags
from tests.emulator_helpers import ed25519_openssh, error

DEFAULT = "123456789012"
OTHER_KEY, OTHER = "AKIDOTHERACCOUNT", "222222222222"
ROLE_ACCOUNT = "333333333333"


def client_for(
    url: str,
    access_key: str,
    *,
    secret_key: str = SECRET_KEY,
    token: str | None = None,
    region: str = "us-east-1",
) -> Any:
    return boto3.client(
        "lightsail",
        region_name=region,
        endpoint_url=url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        aws_session_token=token,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


@pytest.fixture
def two_accounts() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(accounts={OTHER_KEY: OTHER}, key_pool=1)) as emu:
        yield emu


def names(client: Any) -> list[str]:
    return [kp["name"] for kp in client.get_key_pairs(includeDefaultKeyPair=True)["keyPairs"]]


def test_a_mapped_access_key_has_its_own_account(two_accounts: Emulator) -> None:
    mine, theirs = client_for(two_accounts.url, ACCESS_KEY), client_for(two_accounts.url, OTHER_KEY)
    created = theirs.create_key_pair(keyPairName="shared-name")["keyPair"]
    assert created["arn"].startswith(f"arn:aws:lightsail:us-east-1:{OTHER}:KeyPair/")
    assert created["supportCode"] == f"{OTHER}/shared-name"
    # The same name is free in the default account, and each sees only its own.
    own = mine.create_key_pair(keyPairName="shared-name")["keyPair"]
    assert own["arn"].startswith(f"arn:aws:lightsail:us-east-1:{DEFAULT}:KeyPair/")
    assert own["supportCode"] == f"{DEFAULT}/shared-name"
    mine.import_key_pair(keyPairName="only-mine", publicKeyBase64=ed25519_openssh())
    assert names(mine) == ["only-mine", "shared-name"]
    assert names(theirs) == ["shared-name"]
    with pytest.raises(ClientError) as exc:
        theirs.get_key_pair(keyPairName="only-mine")
    assert error(exc.value)[0] == "NotFoundException"
    with pytest.raises(ClientError) as exc:
        theirs.delete_key_pair(keyPairName="only-mine")
    assert error(exc.value)[0] == "NotFoundException"
    # Another account's ARN names nothing here, even with a name that exists.
    with pytest.raises(ClientError) as exc:
        mine.tag_resource(
            resourceName="shared-name", resourceArn=created["arn"], tags=[{"key": "k"}]
        )
    assert error(exc.value)[0] == "NotFoundException"
    assert two_accounts.store.account(OTHER).names("us-east-1") == ["shared-name"]
    assert two_accounts.store.accounts() == [DEFAULT, OTHER]


def test_instances_and_default_key_pairs_are_per_account(two_accounts: Emulator) -> None:
    mine, theirs = client_for(two_accounts.url, ACCESS_KEY), client_for(two_accounts.url, OTHER_KEY)
    launch = {"availabilityZone": "us-east-1a", "blueprintId": "debian_12", "bundleId": "nano_3_0"}
    theirs.create_instances(instanceNames=["box"], **launch)
    assert mine.get_instances()["instances"] == []
    with pytest.raises(ClientError) as exc:
        mine.get_instance(instanceName="box")
    assert error(exc.value)[2] == "The Instance does not exist: box"
    box = theirs.get_instance(instanceName="box")["instance"]
    assert box["arn"].startswith(f"arn:aws:lightsail:us-east-1:{OTHER}:Instance/")
    assert box["sshKeyName"] == "LightsailDefaultKeyPair"
    assert names(theirs) == ["LightsailDefaultKeyPair"]
    assert names(mine) == []
    # The key pair "box" is free in the default account: names are per account too.
    mine.import_key_pair(keyPairName="box", publicKeyBase64=ed25519_openssh())


def test_rate_limits_meter_each_account_apart() -> None:
    config = EmulatorConfig(accounts={OTHER_KEY: OTHER}, rate_limits=(RateLimit(0.01, 1),))
    with Emulator(config) as emu:
        mine, theirs = client_for(emu.url, ACCESS_KEY), client_for(emu.url, OTHER_KEY)
        mine.get_key_pairs()
        with pytest.raises(ClientError) as exc:
            mine.get_key_pairs()
        assert error(exc.value)[0] == "ThrottlingException"
        theirs.get_key_pairs()
        with pytest.raises(ClientError):
            theirs.get_key_pairs()
        assert emu.throttled == {"GetKeyPairs": 2}


def test_accounts_survive_a_restart(tmp_path: Path) -> None:
    data = str(tmp_path / "lightsail.json")
    accounts = {OTHER_KEY: OTHER}
    with Emulator(EmulatorConfig(data_path=data, accounts=accounts, key_pool=1)) as emu:
        theirs = client_for(emu.url, OTHER_KEY)
        made = theirs.create_key_pair(keyPairName="kept")["keyPair"]
    with Emulator(EmulatorConfig(data_path=data, accounts=accounts)) as emu:
        assert client_for(emu.url, OTHER_KEY).get_key_pair(keyPairName="kept")["keyPair"] == made
        assert names(client_for(emu.url, ACCESS_KEY)) == []


def test_with_signature_checks_mapped_keys_pass_and_strangers_do_not() -> None:
    config = EmulatorConfig(
        access_key=ACCESS_KEY, secret_key=SECRET_KEY, accounts={OTHER_KEY: OTHER}
    )
    with Emulator(config) as emu:
        assert names(client_for(emu.url, ACCESS_KEY)) == []
        assert names(client_for(emu.url, OTHER_KEY, secret_key="whatever")) == []
        with pytest.raises(ClientError) as exc:
            client_for(emu.url, ACCESS_KEY, secret_key="wrong").get_key_pairs()
        assert error(exc.value)[:2] == ("UnauthenticatedException", "SignatureDoesNotMatch")
        with pytest.raises(ClientError) as exc:
            client_for(emu.url, "AKIDSTRANGER").get_key_pairs()
        assert error(exc.value)[:2] == ("UnauthenticatedException", "InvalidClientTokenId")


def test_assumed_role_credentials_belong_to_the_roles_account(moto_url: str) -> None:
    """moto's STS issues the credentials; the emulator asks it whose they are."""
    sts = aws_client("sts", moto_url)
    credentials = sts.assume_role(
        RoleArn=f"arn:aws:iam::{ROLE_ACCOUNT}:role/keypairs",
        RoleSessionName="reconciler",
        ExternalId="kp-ci",
    )["Credentials"]
    config = EmulatorConfig(sts_endpoint=moto_url, key_pool=1)
    with Emulator(config) as emu:
        assumed = client_for(
            emu.url,
            credentials["AccessKeyId"],
            secret_key=credentials["SecretAccessKey"],
            token=credentials["SessionToken"],
        )
        made = assumed.create_key_pair(keyPairName="role-made")["keyPair"]
        assert made["arn"].startswith(f"arn:aws:lightsail:us-east-1:{ROLE_ACCOUNT}:KeyPair/")
        assert made["supportCode"] == f"{ROLE_ACCOUNT}/role-made"
        assumed.import_key_pair(keyPairName="role-imported", publicKeyBase64=ed25519_openssh())
        assert names(assumed) == ["role-imported", "role-made"]
        # The long-term key (no session token) stays in the default account.
        default = client_for(emu.url, ACCESS_KEY)
        assert names(default) == []
        default.import_key_pair(keyPairName="default-only", publicKeyBase64=ed25519_openssh())
        assert names(assumed) == ["role-imported", "role-made"]
        # STS was asked once for this key; later calls use the cached answer.
        assert emu.accounts.lookups == 1
        assert emu.store.account(ROLE_ACCOUNT).names("us-east-1") == [
            "role-imported",
            "role-made",
        ]


def test_credentials_sts_refuses_are_unauthenticated_and_not_cached() -> None:
    asked: list[str] = []

    def refuse(access_key: str, token: str) -> str:
        asked.append(access_key)
        raise errors.unauthenticated("InvalidClientTokenId", "The security token is invalid.")

    accounts = AccountMap(DEFAULT, {OTHER_KEY: OTHER}, lookup=refuse)
    for _ in range(2):
        with pytest.raises(ApiError) as exc:
            accounts.account_for("ASIAEXPIRED", "expired")
        assert (exc.value.error_type, exc.value.code) == (
            "UnauthenticatedException",
            "InvalidClientTokenId",
        )
    assert asked == ["ASIAEXPIRED", "ASIAEXPIRED"]
    # Mapped keys and long-term keys never reach STS.
    assert accounts.account_for(OTHER_KEY, "token") == OTHER
    assert accounts.account_for("AKIDLONGTERM", None) == DEFAULT
    assert accounts.lookups == 2


def test_an_unreachable_sts_is_a_service_error_and_is_asked_again() -> None:
    with Emulator(EmulatorConfig(sts_endpoint="http://127.0.0.1:9")) as emu:
        for _ in range(2):
            with pytest.raises(ClientError) as exc:
                client_for(emu.url, "ASIATEMPORARY", token="t").get_key_pairs()
            assert error(exc.value)[0] == "ServiceException"
        assert emu.accounts.lookups == 2


@pytest.mark.parametrize(
    ("text", "says"),
    [("AKID", "is not ACCESS_KEY_ID=ACCOUNT_ID"), ("AKID=12", "not 12 digits"), ("=1", "is not")],
)
def test_a_bad_mapping_says_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ValueError) as exc:
        parse_mapping(text)
    assert says in str(exc.value)


def test_bad_account_settings_are_refused() -> None:
    with pytest.raises(EmulatorError, match="not AKID=12 digits"):
        EmulatorConfig(accounts={"AKID": "1234"}).check()
    with pytest.raises(EmulatorError, match="not an http"):
        EmulatorConfig(sts_endpoint="localhost:5000").check()


def test_the_account_flag_reaches_the_server_and_a_bad_one_exits_2() -> None:
    with emulator_process("--account", f"{OTHER_KEY}={OTHER}", "--key-pool", "1") as (_, url):
        made = client_for(url, OTHER_KEY).create_key_pair(keyPairName="cli")["keyPair"]
        assert made["supportCode"] == f"{OTHER}/cli"
        assert names(client_for(url, ACCESS_KEY)) == []
    result = refused_flags("--account", "AKID=123")
    assert result.returncode == 2
    assert "--account" in result.stderr and "not 12 digits" in result.stderr
    assert "Traceback" not in result.stderr
