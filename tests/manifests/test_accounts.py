"""Accounts in reconciler.yaml and manifests: declaring them, naming them, addresses."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from reconciler.errors import ManifestError, UsageError
from reconciler.manifests.accounts import Account, Accounts
from reconciler.manifests.load import load_desired
from reconciler.manifests.project import PROJECT_FILE, read_project
from reconciler.model import Address
from tests.helpers import run_cli, write_manifest

TWO = """\
accounts:
  prod: {profile: prod}
  staging:
    roleArn: "arn:aws:iam::222222222222:role/keypairs"
    externalId: kp-ci
    sessionName: ci-run
    profile: ci
"""


def project(directory: Path, text: str) -> Path:
    path = directory / PROJECT_FILE
    path.write_text(textwrap.dedent(text))
    return path


def test_accounts_are_read_with_their_credential_sources(tmp_path: Path) -> None:
    accounts = read_project(project(tmp_path, TWO)).accounts
    assert accounts.several
    assert [a.alias for a in accounts] == ["prod", "staging"]
    assert accounts.by_alias["prod"] == Account("prod", profile="prod")
    staging = accounts.by_alias["staging"]
    assert staging.role_arn == "arn:aws:iam::222222222222:role/keypairs"
    assert (staging.external_id, staging.session_name, staging.profile) == ("kp-ci", "ci-run", "ci")
    assert staging.role_account_id == "222222222222"
    assert "assumed from profile ci" in staging.describe()


def test_every_problem_in_accounts_is_reported_at_its_place(tmp_path: Path) -> None:
    text = """\
    accounts:
      prod: {profile: prod, region: us-east-1}
      "bad/alias": {profile: x}
      staging: {roleArn: "arn:aws:iam::22:role/x"}
      ci: {externalId: abc}
      other: [profile]
    """
    with pytest.raises(UsageError) as caught:
        read_project(project(tmp_path, text))
    message = str(caught.value)
    assert "5 problems in project file" in message
    assert "reconciler.yaml:2:25: unknown field 'accounts.prod.region'" in message
    assert "reconciler.yaml:3:3: account alias 'bad/alias' must be" in message
    assert "reconciler.yaml:4:22: accounts.staging.roleArn" in message
    assert "is not an IAM role ARN" in message
    assert "reconciler.yaml:5:20: accounts.ci.externalId needs a roleArn" in message
    assert "reconciler.yaml:6:10: accounts.other must be a mapping" in message


def test_addresses_carry_the_account_only_when_set() -> None:
    assert str(Address("us-east-1", "web")) == "us-east-1/web"
    assert str(Address("us-east-1", "web", "prod")) == "prod/us-east-1/web"
    assert Address.parse("prod/us-east-1/web") == Address("us-east-1", "web", "prod")
    assert Address.parse("us-east-1/web") == Address("us-east-1", "web")
    assert Address("us-east-1", "web", "prod").where == "prod/us-east-1"
    assert Address("us-east-1", "web").where == "us-east-1"
    for text in ("web", "a/b/c/d", "prod//web", "/us-east-1/web"):
        with pytest.raises(UsageError):
            Address.parse(text)


def manifests(tmp_path: Path) -> Path:
    write_manifest(tmp_path / "m" / "prod.yaml", "us-east-1", "- name: web", "")
    text = (tmp_path / "m" / "prod.yaml").read_text()
    (tmp_path / "m" / "prod.yaml").write_text("account: prod\n" + text)
    staging = write_manifest(tmp_path / "m" / "staging.yaml", "us-east-1", "- name: web")
    staging.write_text("account: staging\n" + staging.read_text())
    return tmp_path / "m"


def test_with_several_accounts_addresses_name_the_account(tmp_path: Path) -> None:
    accounts = read_project(project(tmp_path, TWO)).accounts
    desired = load_desired([manifests(tmp_path)], accounts=accounts)
    assert sorted(map(str, desired.key_pairs)) == ["prod/us-east-1/web", "staging/us-east-1/web"]


def test_with_one_account_addresses_stay_region_and_name(tmp_path: Path) -> None:
    one = Accounts({"prod": Account("prod", profile="prod")})
    path = write_manifest(tmp_path / "m" / "prod.yaml", "us-east-1", "- name: web")
    path.write_text("account: prod\n" + path.read_text())
    desired = load_desired([path], accounts=one)
    assert list(desired.key_pairs) == [Address("us-east-1", "web")]


def test_an_unknown_or_missing_account_is_an_error_at_its_place(tmp_path: Path) -> None:
    accounts = read_project(project(tmp_path, TWO)).accounts
    folder = manifests(tmp_path)
    (folder / "typo.yaml").write_text(
        "account: prdo\napiVersion: reconciler.lightsail/v1\nkind: KeyPairSet\n"
        "region: us-east-1\nkeyPairs:\n  - name: api\n"
    )
    write_manifest(folder / "none.yaml", "us-west-2", "- name: api")
    with pytest.raises(ManifestError) as caught:
        load_desired([folder], accounts=accounts)
    found = [str(p) for p in caught.value.problems]
    assert len(found) == 2
    assert "none.yaml:3:1: reconciler.yaml declares several accounts (prod, staging)" in found[0]
    assert found[1].endswith(
        "typo.yaml:1:10: account 'prdo' is not declared in reconciler.yaml "
        "(declared: prod, staging) [account]"
    )


def test_validate_checks_account_aliases_against_the_project(tmp_path: Path) -> None:
    project(tmp_path, TWO)
    folder = manifests(tmp_path)
    assert run_cli("validate", "m", cwd=tmp_path).returncode == 0
    (folder / "prod.yaml").write_text((folder / "prod.yaml").read_text().replace("prod", "qa"))
    result = run_cli("validate", "m", cwd=tmp_path)
    assert result.returncode == 1
    assert "m/prod.yaml:1:10: account 'qa' is not declared in reconciler.yaml" in result.stdout


def test_a_key_sealed_before_its_account_was_recorded_still_opens_there_only(
    tmp_path: Path,
) -> None:
    from reconciler.errors import EncryptionError
    from reconciler.state.crypto import Unsealer
    from tests.state.test_crypto import PEM, AgeKey, age_sealer

    age = AgeKey(tmp_path)
    sealed = age_sealer(age).seal(Address("us-east-1", "web"), PEM)
    unsealer = Unsealer(age_identities=[str(age.file)], kms_client_factory=None)
    assert unsealer.unseal(sealed, Address("us-east-1", "web", "prod")) == PEM
    with pytest.raises(EncryptionError, match="was sealed for us-east-1/web"):
        unsealer.unseal(sealed, Address("us-east-1", "db", "prod"))
    placed = age_sealer(age).seal(Address("us-east-1", "web", "prod"), PEM)
    with pytest.raises(EncryptionError, match="was sealed for prod/us-east-1/web"):
        unsealer.unseal(placed, Address("us-east-1", "web", "staging"))
