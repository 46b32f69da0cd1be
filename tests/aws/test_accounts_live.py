"""Several accounts end to end: a profile, roles assumed through moto's STS, a failing account.

The emulator keeps key pairs per account: the profile's access key is mapped
to the default account (the one moto's STS names for a key it did not issue),
and credentials from AssumeRole belong to the role's account because the
emulator asks moto's STS whose they are.
"""

from __future__ import annotations

import json
import textwrap
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from reconciler.aws.credentials import session_for
from reconciler.emulator import Emulator, EmulatorConfig
from reconciler.manifests.accounts import Account
from reconciler.state.document import FORMAT_VERSION
from tests.conftest import ACCESS_KEY, SECRET_KEY, aws_client
from tests.helpers import load_state, run_cli, write_manifest

# The whole tool end to end (faults, crashes, a browser, a terminal, real tools):
# `make test-fast` leaves these out.
pytestmark = pytest.mark.e2e

DEFAULT = "123456789012"
STAGING, QA = "222222222222", "333333333333"
PROD_KEY, CI_KEY, STRANGER_KEY = "AKIDPRODPROFILE", "AKIDCIPROFILE", "AKIDSTRANGER"

AWS_CONFIG = f"""\
[profile prod]
aws_access_key_id = {PROD_KEY}
aws_secret_access_key = prod-secret
[profile ci]
aws_access_key_id = {CI_KEY}
aws_secret_access_key = ci-secret
[profile denied]
aws_access_key_id = {STRANGER_KEY}
aws_secret_access_key = stranger-secret
"""

PROJECT = f"""\
accounts:
  prod: {{profile: prod}}
  staging:
    roleArn: "arn:aws:iam::{STAGING}:role/keypairs"
    externalId: kp-ci
    sessionName: reconciler-test
"""
QA_ACCOUNT = f"""\
  qa: {{roleArn: "arn:aws:iam::{QA}:role/keypairs", profile: ci}}
"""
FAILING = """\
  denied: {profile: denied}
  unassumable: {roleArn: "arn:aws:iam::444444444444:role/keypairs", profile: nowhere}
"""


@pytest.fixture
def emulator(moto_url: str) -> Iterator[Emulator]:
    """Signatures checked: the profile's key is mapped, strangers are refused."""
    config = EmulatorConfig(
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        accounts={PROD_KEY: DEFAULT},
        sts_endpoint=moto_url,
        key_pool=2,
    )
    with Emulator(config) as emu:
        yield emu


@pytest.fixture
def env(tmp_path: Path, moto_url: str) -> dict[str, str]:
    config = tmp_path / "aws-config"
    config.write_text(AWS_CONFIG)
    return {"AWS_CONFIG_FILE": str(config), "AWS_ENDPOINT_URL_STS": moto_url}


def manifest(folder: Path, account: str, region: str, names: list[str]) -> None:
    path = write_manifest(
        folder / f"{account}-{region}.yaml",
        region,
        "\n".join(f"- name: {n}\n  tags: {{team: {account}}}" for n in names),
    )
    path.write_text(f"account: {account}\n" + path.read_text())


def names(store: Any, account: str, region: str = "us-east-1") -> list[str]:
    result: list[str] = store.account(account).names(region)
    return result


def reconciler(work: Path, emu: Emulator, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = run_cli(*args, cwd=work, endpoint=emu.url, env=env)
    return result.returncode, result.stdout, result.stderr


def test_two_accounts_plan_apply_and_name_the_account_everywhere(
    tmp_path: Path, emulator: Emulator, env: dict[str, str]
) -> None:
    (tmp_path / "reconciler.yaml").write_text(PROJECT)
    manifest(tmp_path / "m", "prod", "us-east-1", ["web"])
    manifest(tmp_path / "m", "staging", "us-east-1", ["web"])
    manifest(tmp_path / "m", "staging", "eu-west-1", ["api"])

    code, out, err = reconciler(tmp_path, emulator, env, "plan", "m")
    assert code == 0, err
    for address in ("prod/us-east-1/web", "staging/us-east-1/web", "staging/eu-west-1/api"):
        assert f"+ {address}" in out
    code, out, err = reconciler(tmp_path, emulator, env, "plan", "m", "--format", "markdown")
    assert code == 0 and "staging/eu-west-1/api" in out and "prod/us-east-1/web" in out
    code, out, err = reconciler(tmp_path, emulator, env, "plan", "m", "--format", "json")
    changes = json.loads(out)["changes"]
    assert {(c["account"], c["address"]) for c in changes} == {
        ("prod", "prod/us-east-1/web"),
        ("staging", "staging/us-east-1/web"),
        ("staging", "staging/eu-west-1/api"),
    }

    code, out, err = reconciler(tmp_path, emulator, env, "apply", "m", "--auto-approve")
    assert code == 0, err
    assert names(emulator.store, DEFAULT) == ["web"]
    assert names(emulator.store, STAGING) == ["web"]
    assert names(emulator.store, STAGING, "eu-west-1") == ["api"]
    state = load_state(tmp_path / "reconciler.state.json")
    assert {(e["account"], e["region"], e["name"]) for e in state["keyPairs"]} == {
        ("prod", "us-east-1", "web"),
        ("staging", "us-east-1", "web"),
        ("staging", "eu-west-1", "api"),
    }
    arns = {e["account"] + "/" + e["name"]: e["arn"] for e in state["keyPairs"]}
    assert f":{STAGING}:KeyPair/" in arns["staging/api"] and f":{DEFAULT}:" in arns["prod/web"]
    # Credentials stay in memory: neither the state nor any output holds them.
    text = (tmp_path / "reconciler.state.json").read_text()
    assert "ASIA" not in text and "ci-secret" not in text and "prod-secret" not in text

    code, out, _ = reconciler(tmp_path, emulator, env, "plan", "m", "--detailed-exitcode")
    assert code == 0 and "No changes" in out
    code, out, _ = reconciler(tmp_path, emulator, env, "state", "list")
    assert [line.split("\t")[0] for line in out.splitlines()[1:]] == [
        "staging/eu-west-1/api",
        "prod/us-east-1/web",
        "staging/us-east-1/web",
    ]
    key = run_cli("key", "get", "staging/us-east-1/web", cwd=tmp_path, env=env)
    assert key.returncode == 0 and "PRIVATE KEY" in key.stdout
    code, _, err = reconciler(tmp_path, emulator, env, "key", "get", "us-east-1/web")
    assert code == 1 and "us-east-1/web is not in the state" in err

    # Drift in one account names it; --target and --account narrow by account.
    prod = boto3.client(
        "lightsail",
        region_name="us-east-1",
        endpoint_url=emulator.url,
        aws_access_key_id=PROD_KEY,
        aws_secret_access_key="prod-secret",
        config=Config(retries={"total_max_attempts": 1}),
    )
    prod.tag_resource(resourceName="web", tags=[{"key": "team", "value": "moved"}])
    launch = {"availabilityZone": "us-east-1a", "blueprintId": "debian_12", "bundleId": "nano_3_0"}
    prod.create_instances(instanceNames=["box"], keyPairName="web", **launch)
    code, out, _ = reconciler(tmp_path, emulator, env, "drift", "m")
    assert code == 2 and "prod/us-east-1/web" in out
    code, out, _ = reconciler(tmp_path, emulator, env, "drift", "m", "--format", "json")
    report = json.loads(out)
    assert code == 2
    assert [(f["account"], f["address"], f["kind"]) for f in report["findings"]] == [
        ("prod", "prod/us-east-1/web", "tags-changed")
    ]
    code, out, _ = reconciler(tmp_path, emulator, env, "plan", "m", "--target", "staging/*/*")
    assert code == 0 and "No changes" in out and "prod/us-east-1/web" in out  # left out
    code, out, _ = reconciler(tmp_path, emulator, env, "plan", "m", "--exclude", "*/web")
    assert code == 0 and "No changes" in out and "prod/us-east-1/web" in out  # in every account
    code, out, _ = reconciler(tmp_path, emulator, env, "plan", "m", "--account", "staging")
    assert code == 0 and "No changes" in out and "prod/" not in out
    code, out, _ = reconciler(tmp_path, emulator, env, "plan", "m", "--account", "prod")
    assert "~ prod/us-east-1/web" in out
    code, _, err = reconciler(tmp_path, emulator, env, "plan", "m", "--account", "nope")
    assert code == 1 and "--account nope: no such account" in err

    # An instance in prod uses prod's web: prod's is refused, staging's is not.
    code, _, err = reconciler(
        tmp_path, emulator, env, "plan", "m", "--replace", "prod/us-east-1/web"
    )
    assert code == 1 and "refusing to delete or replace prod/us-east-1/web" in err
    # --rotate too names the account.
    code, _, err = reconciler(tmp_path, emulator, env, "plan", "m", "--rotate", "us-east-1/web")
    assert code == 1 and "write it as ACCOUNT/REGION/NAME" in err
    code, out, err = reconciler(
        tmp_path, emulator, env, "plan", "m", "--rotate", "staging/us-east-1/web"
    )
    assert code == 0, err
    assert "staging/us-east-1/web" in out and "rotate" in out
    # --replace names the account; one without it is refused with the form to use.
    code, _, err = reconciler(tmp_path, emulator, env, "plan", "m", "--replace", "us-east-1/web")
    assert code == 1 and "write it as ACCOUNT/REGION/NAME" in err
    code, out, err = reconciler(
        tmp_path,
        emulator,
        env,
        "apply",
        "m",
        "--auto-approve",
        "--replace",
        "staging/us-east-1/web",
    )
    assert code == 0, err
    assert "-/+ staging/us-east-1/web" in out and "~ prod/us-east-1/web" in out

    # A saved plan limited to one account applies to that account alone.
    manifest(tmp_path / "m", "staging", "us-east-1", ["web", "extra"])
    manifest(tmp_path / "m", "prod", "us-east-1", ["web", "other"])
    code, out, err = reconciler(
        tmp_path, emulator, env, "plan", "m", "--account", "staging", "--out", "staged.json"
    )
    assert code == 0, err
    assert "+ staging/us-east-1/extra" in out and "prod/" not in out
    code, out, err = reconciler(tmp_path, emulator, env, "apply", "staged.json")
    assert code == 0, err
    assert names(emulator.store, STAGING) == ["extra", "web"]
    assert names(emulator.store, DEFAULT) == ["web"]


def test_three_accounts_and_failing_ones_are_findings_while_the_others_apply(
    tmp_path: Path, emulator: Emulator, env: dict[str, str]
) -> None:
    (tmp_path / "reconciler.yaml").write_text(PROJECT + QA_ACCOUNT + FAILING)
    folder = tmp_path / "m"
    for account in ("prod", "staging", "qa", "denied", "unassumable"):
        manifest(folder, account, "us-east-1", [f"{account}-key"])
    manifest(folder, "qa", "us-west-2", ["qa-west"])

    code, out, err = reconciler(
        tmp_path, emulator, env, "apply", "m", "--auto-approve", "--parallelism", "3"
    )
    assert code == 1
    assert names(emulator.store, DEFAULT) == ["prod-key"]
    assert names(emulator.store, STAGING) == ["staging-key"]
    assert names(emulator.store, QA) == ["qa-key"]
    assert names(emulator.store, QA, "us-west-2") == ["qa-west"]
    assert "+ qa/us-west-2/qa-west" in out
    assert "+ denied/" not in out and "+ unassumable/" not in out
    assert "Error: account denied: The security token" in err
    assert "its region us-east-1 was not read" in err
    assert "2 unread accounts left" in err
    assert "InvalidClientTokenId" in err
    assert "account unassumable: cannot get credentials" in err
    assert "profile nowhere" in err
    assert "Traceback" not in err
    entries = load_state(tmp_path / "reconciler.state.json")["keyPairs"]
    assert sorted(e["account"] for e in entries) == ["prod", "qa", "qa", "staging"]

    # The others, alone, are in sync.
    code, out, err = reconciler(
        tmp_path, emulator, env, "plan", "m", "--account", "qa", "--detailed-exitcode"
    )
    assert code == 0, err


def test_a_single_account_state_is_carried_over_in_place(
    tmp_path: Path, emulator: Emulator, env: dict[str, str]
) -> None:
    write_manifest(tmp_path / "m" / "keys.yaml", "us-east-1", "- name: web\n- name: db")
    code, _, err = reconciler(tmp_path, emulator, env, "apply", "m", "--auto-approve")
    assert code == 0, err
    state_path = tmp_path / "reconciler.state.json"
    old = load_state(state_path)
    # As the previous format wrote it: no account anywhere.
    old["version"] = FORMAT_VERSION - 1
    state_path.write_text(json.dumps(old, indent=2))
    assert all("account" not in e for e in old["keyPairs"])

    (tmp_path / "reconciler.yaml").write_text(PROJECT)
    text = (tmp_path / "m" / "keys.yaml").read_text()
    (tmp_path / "m" / "keys.yaml").write_text("account: prod\n" + text)
    manifest(tmp_path / "m", "staging", "us-east-1", ["web"])

    code, out, err = reconciler(tmp_path, emulator, env, "plan", "m")
    assert code == 0, err
    assert "+ staging/us-east-1/web" in out
    assert "prod/us-east-1/" not in out  # placed in prod, and unchanged there
    assert "Plan: 1 to add, 0 to change, 0 to destroy." in out
    assert load_state(state_path)["version"] == FORMAT_VERSION - 1  # a plan writes nothing

    code, out, err = reconciler(tmp_path, emulator, env, "apply", "m", "--auto-approve")
    assert code == 0, err
    assert "Recorded the account of 2 key pair(s) in the state." in err
    new = load_state(state_path)
    assert new["version"] == FORMAT_VERSION and new["lineage"] == old["lineage"]
    assert sorted((e["account"], e["name"]) for e in new["keyPairs"]) == [
        ("prod", "db"),
        ("prod", "web"),
        ("staging", "web"),
    ]
    prod_web = next(e for e in new["keyPairs"] if e["account"] == "prod" and e["name"] == "web")
    assert (
        prod_web["privateKey"]
        == next(e for e in old["keyPairs"] if e["name"] == "web")["privateKey"]
    )
    code, out, _ = reconciler(tmp_path, emulator, env, "plan", "m", "--detailed-exitcode")
    assert code == 0 and "No changes" in out


def test_assumed_role_credentials_are_refreshed_before_they_expire(
    emulator: Emulator, moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 15-minute session is inside botocore's refresh window at once: each use
    assumes the role again, as a long apply would when its session runs out."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_url)
    account = Account(
        "qa", role_arn=f"arn:aws:iam::{QA}:role/keypairs", external_id="kp-qa", duration_seconds=900
    )
    session = session_for(account)
    credentials = session.get_credentials()
    first = credentials.get_frozen_credentials().access_key
    second = credentials.get_frozen_credentials().access_key
    assert first != second and first.startswith("ASIA") and second.startswith("ASIA")
    client = session.client(
        "lightsail",
        region_name="us-east-1",
        endpoint_url=emulator.url,
        config=Config(retries={"total_max_attempts": 1}),
    )
    made = client.create_key_pair(keyPairName="refreshed")["keyPair"]
    assert f":{QA}:KeyPair/" in made["arn"]


def test_the_embedded_emulator_keeps_each_account_apart(tmp_path: Path) -> None:
    (tmp_path / "reconciler.yaml").write_text(PROJECT)
    manifest(tmp_path / "m", "prod", "us-east-1", ["web"])
    manifest(tmp_path / "m", "staging", "us-east-1", ["web"])
    result = run_cli("apply", "m", "--local", "--auto-approve", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    state = load_state(tmp_path / ".reconciler" / "local.state.json")
    arns = sorted(e["arn"].split(":")[4] for e in state["keyPairs"])
    assert len(set(arns)) == 2
    again = run_cli("plan", "m", "--local", "--detailed-exitcode", cwd=tmp_path)
    assert again.returncode == 0, again.stderr


def test_account_settings_for_roles_are_checked(tmp_path: Path) -> None:
    (tmp_path / "reconciler.yaml").write_text(
        textwrap.dedent(
            """\
            accounts:
              a: {profile: x, durationSeconds: 60}
              b: {roleArn: "arn:aws:iam::222222222222:role/r", durationSeconds: 100000}
            """
        )
    )
    write_manifest(tmp_path / "m.yaml", "us-east-1", "- name: web")
    result = run_cli("plan", "m.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert "reconciler.yaml:2:36: accounts.a.durationSeconds must be a whole number" in (
        result.stderr
    )
    assert "accounts.a.durationSeconds needs a roleArn" in result.stderr
    assert "reconciler.yaml:3:69: accounts.b.durationSeconds" in result.stderr


def test_key_store_locations_name_each_key_pairs_account(
    tmp_path: Path, emulator: Emulator, env: dict[str, str], moto_url: str
) -> None:
    (tmp_path / "reconciler.yaml").write_text(PROJECT)
    manifest(tmp_path / "m", "prod", "us-east-1", ["web"])
    manifest(tmp_path / "m", "staging", "us-east-1", ["web"])
    env = {**env, "AWS_ENDPOINT_URL_SSM": moto_url}
    prefix = f"/accounts-{uuid.uuid4().hex[:8]}"
    code, _, err = reconciler(
        tmp_path,
        emulator,
        env,
        "apply",
        "m",
        "--auto-approve",
        f"--key-store=ssm:{prefix}/{{region}}/{{name}}",
    )
    assert code == 1 and "with several accounts its location needs {account}" in err
    assert names(emulator.store, DEFAULT) == []
    spec = f"ssm:{prefix}/{{account}}/{{region}}/{{name}}"
    code, _, err = reconciler(
        tmp_path, emulator, env, "apply", "m", "--auto-approve", f"--key-store={spec}"
    )
    assert code == 0, err
    entries = load_state(tmp_path / "reconciler.state.json")["keyPairs"]
    assert sorted(e["privateKeyRef"]["location"] for e in entries) == [
        f"{prefix}/{DEFAULT}/us-east-1/web",
        f"{prefix}/{STAGING}/us-east-1/web",
    ]
    key = run_cli("key", "get", "staging/us-east-1/web", cwd=tmp_path, env=env)
    assert key.returncode == 0 and "PRIVATE KEY" in key.stdout


def test_import_all_writes_one_file_per_account_and_region_and_report_counts_accounts(
    tmp_path: Path, emulator: Emulator, env: dict[str, str]
) -> None:
    (tmp_path / "reconciler.yaml").write_text(PROJECT)
    emulator.store.seed_key_pairs("us-east-1", 3, prefix="web-", tags={"team": "web"})
    emulator.store.account(STAGING).seed_key_pairs("us-east-1", 2, prefix="web-")
    emulator.store.account(STAGING).seed_key_pairs("eu-west-1", 4, prefix="etl-")
    args = ("import", "--all", "--region", "us-east-1", "--region", "eu-west-1")
    # Without --auto-approve and no terminal: shown, refused, nothing written.
    code, out, err = reconciler(
        tmp_path, emulator, env, *args, "--account", "staging", "--write-manifests", "m"
    )
    assert code == 1 and "needs confirmation" in err and not (tmp_path / "m").exists()
    assert "m/staging/eu-west-1.yaml  (4 key pair(s), new)" in out and "prod" not in out
    code, out, err = reconciler(
        tmp_path, emulator, env, *args, "--write-manifests", "m", "--auto-approve"
    )
    assert code == 0, err
    assert "adopted 9 key pair(s), 0 failed" in err
    assert "<= staging/eu-west-1/etl-000000" in out
    written = sorted(str(p.relative_to(tmp_path / "m")) for p in (tmp_path / "m").rglob("*.yaml"))
    assert written == ["prod/us-east-1.yaml", "staging/eu-west-1.yaml", "staging/us-east-1.yaml"]
    staging = (tmp_path / "m" / "staging" / "eu-west-1.yaml").read_text()
    assert staging.startswith(
        f"# Key pairs found in Lightsail, account {STAGING} (staging), region eu-west-1"
    )
    assert "\naccount: staging\nregion: eu-west-1\n" in staging
    for _ in range(2):
        code, out, err = reconciler(tmp_path, emulator, env, "plan", "m", "--detailed-exitcode")
        assert code == 0, out + err
    code, _, err = reconciler(
        tmp_path, emulator, env, *args, "--write-manifests", "m", "--auto-approve"
    )
    assert code == 0 and "Nothing to do" in err

    code, _, err = reconciler(tmp_path, emulator, env, "report", "m", "--out", "report.html")
    assert code == 0, err
    page = (tmp_path / "report.html").read_text()
    assert '<b id="count-accounts">2</b>' in page
    accounts = page.split('<table id="accounts">')[1].split("</table>")[0]
    assert '<tr data-region="prod"><td>prod</td><td class="num" data-field="total">3</td>' in (
        accounts
    )
    assert '<tr data-region="staging"><td>staging</td><td class="num" data-field="total">6' in (
        accounts
    )
    assert '<tr data-region="staging/eu-west-1"><td>staging/eu-west-1</td>' in page


def test_a_state_per_account_lets_accounts_apply_in_parallel(
    tmp_path: Path, emulator: Emulator, env: dict[str, str], moto_url: str
) -> None:
    bucket = f"accounts-{uuid.uuid4().hex[:8]}"
    aws_client("s3", moto_url).create_bucket(Bucket=bucket)
    backend = f"backend: {{type: s3, bucket: {bucket}, key: 'lightsail/{{account}}/state.json'}}\n"
    (tmp_path / "reconciler.yaml").write_text(backend + PROJECT)
    manifest(tmp_path / "m", "prod", "us-east-1", ["web"])
    manifest(tmp_path / "m", "staging", "us-east-1", ["web", "api"])
    env = {**env, "AWS_ENDPOINT_URL_S3": moto_url}

    for accounts in ((), ("--account", "prod", "--account", "staging")):
        code, _, err = reconciler(tmp_path, emulator, env, "plan", "m", *accounts)
        assert code == 1 and "has one copy per account: say which with --account" in err

    def apply(alias: str) -> tuple[int, str, str]:
        return reconciler(
            tmp_path, emulator, env, "apply", "m", "--auto-approve", "--account", alias
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(apply, ["prod", "staging"]))
    assert [code for code, _, _ in results] == [0, 0], results
    assert names(emulator.store, DEFAULT) == ["web"]
    assert names(emulator.store, STAGING) == ["api", "web"]
    s3 = aws_client("s3", moto_url)
    for alias, expected in (("prod", ["web"]), ("staging", ["api", "web"])):
        body = s3.get_object(Bucket=bucket, Key=f"lightsail/{alias}/state.json")["Body"].read()
        entries = json.loads(body)["keyPairs"]
        assert sorted(e["name"] for e in entries) == expected
        assert {e["account"] for e in entries} == {alias}
    code, out, _ = reconciler(
        tmp_path, emulator, env, "plan", "m", "--account", "staging", "--detailed-exitcode"
    )
    assert code == 0 and "No changes" in out


def test_a_failing_account_is_one_finding_naming_it_and_its_unread_regions(
    tmp_path: Path, emulator: Emulator, env: dict[str, str]
) -> None:
    (tmp_path / "reconciler.yaml").write_text(PROJECT + FAILING.splitlines()[0] + "\n")
    folder = tmp_path / "m"
    manifest(folder, "prod", "us-east-1", ["web"])
    manifest(folder, "prod", "eu-west-2", ["eu"])
    for region in ("us-east-1", "eu-west-1", "eu-west-2"):
        manifest(folder, "denied", region, [f"key-{region}"])
    # A region failing on its own stays a finding of its own, in prod.
    emulator.region_errors["eu-west-2"] = "RegionSetupInProgressException"
    unread = (
        "account denied: The security token included in the request is invalid. "
        "(UnauthenticatedException/InvalidClientTokenId): "
        "its 3 regions were not read (eu-west-1, eu-west-2, us-east-1)"
    )

    code, out, err = reconciler(tmp_path, emulator, env, "plan", "m", "--detailed-exitcode")
    assert code == 1, err
    errors = [line for line in out.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 2 and errors[0] == f"Error: {unread}", out
    assert errors[1].startswith("Error: prod/eu-west-2: reading key pairs in prod/eu-west-2: ")
    code, out, _ = reconciler(tmp_path, emulator, env, "plan", "m", "--format", "json")
    findings = json.loads(out)["findings"]
    assert [(f["kind"], f["address"]) for f in findings] == [
        ("account-failed", None),
        ("region-failed", None),
    ]
    assert findings[0]["message"] == unread and findings[1]["message"].startswith("prod/eu-west-2")
    code, out, _ = reconciler(tmp_path, emulator, env, "plan", "m", "--format", "sarif")
    results = json.loads(out)["runs"][0]["results"]
    found = [r["ruleId"] for r in results if r["ruleId"] != "planned-change"]
    assert found == ["account-failed", "region-failed"]
    assert results[0]["message"]["text"].startswith(unread)
    code, out, _ = reconciler(tmp_path, emulator, env, "plan", "m", "--format", "github")
    assert out.count("[account-failed]") == 1 and out.count("account denied") == 1
    code, out, _ = reconciler(tmp_path, emulator, env, "plan", "m", "--format", "markdown")
    assert out.count("account denied") == 1 and f":x: {unread}" in out

    for fmt in ("text", "markdown"):
        code, out, _ = reconciler(tmp_path, emulator, env, "drift", "m", "--format", fmt)
        shown = out.split("<details>")[0]  # markdown's details hold the JSON report
        assert code == 1 and shown.count("account denied") == 1 and unread in shown, out
    code, out, _ = reconciler(tmp_path, emulator, env, "drift", "m", "--format", "json")
    report = json.loads(out)
    assert code == 1 and report["failedAccounts"] == {"denied": unread}
    assert len(report["failedRegions"]) == 4
    code, out, _ = reconciler(tmp_path, emulator, env, "drift", "m", "--format", "github")
    assert out.count("[account-failed]") == 1 and out.count("[region-failed]") == 1

    code, out, err = reconciler(tmp_path, emulator, env, "apply", "m", "--auto-approve")
    assert code == 1 and "+ prod/us-east-1/web" in out
    assert names(emulator.store, DEFAULT) == ["web"]
    assert "Resources: 1 added, 0 changed, 0 destroyed; 1 unread account left" in err
    assert "1 unread account left" in err and "1 unread region left" in err
    assert err.count("account denied") == 1 and "Traceback" not in err


def test_import_all_onboards_what_it_could_read_and_the_rest_once_it_answers(
    tmp_path: Path, emulator: Emulator, env: dict[str, str]
) -> None:
    denied = "  denied: {profile: denied}\n"
    (tmp_path / "reconciler.yaml").write_text(PROJECT + denied)
    emulator.store.seed_key_pairs("us-east-1", 2, prefix="web-")
    emulator.store.account(STAGING).seed_key_pairs("us-east-1", 1, prefix="api-")
    emulator.store.account(STAGING).seed_key_pairs("eu-west-1", 3, prefix="etl-")
    emulator.store.account("444444444444").seed_key_pairs("us-east-1", 2, prefix="old-")
    emulator.region_errors["eu-west-1"] = "RegionSetupInProgressException"
    regions = ("--region", "us-east-1", "--region", "eu-west-1")
    args = ("import", "--all", *regions, "--write-manifests", "m", "--auto-approve")

    def written() -> list[str]:
        return sorted(str(p.relative_to(tmp_path / "m")) for p in (tmp_path / "m").rglob("*.yaml"))

    code, out, err = reconciler(tmp_path, emulator, env, *args)
    assert code == 1, err
    assert written() == ["prod/us-east-1.yaml", "staging/us-east-1.yaml"]
    assert "Not read (no manifest is written for them" in out
    assert "  account denied\n" in out and "  prod/eu-west-1\n" in out
    assert "adopted 3 key pair(s), 0 failed" in err
    errors = [line for line in err.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 3, err
    assert errors[0].startswith("Error: account denied: The security token")
    assert errors[0].endswith(
        "its 2 regions were not read (eu-west-1, us-east-1); nothing was written or adopted for it"
    )
    assert errors[1].startswith("Error: prod/eu-west-1 could not be read: ")
    assert errors[2].startswith("Error: staging/eu-west-1 could not be read: ")
    assert "Traceback" not in err
    entries = load_state(tmp_path / "reconciler.state.json")["keyPairs"]
    assert sorted(f"{e['account']}/{e['name']}" for e in entries) == [
        "prod/web-000000",
        "prod/web-000001",
        "staging/api-000000",
    ]

    # The region answers and the account is fixed: the rest is onboarded, the rest kept.
    emulator.region_errors.clear()
    role = '  denied: {roleArn: "arn:aws:iam::444444444444:role/keypairs"}\n'
    (tmp_path / "reconciler.yaml").write_text(PROJECT + role)
    before = (tmp_path / "m" / "prod" / "us-east-1.yaml").read_text()
    code, out, err = reconciler(tmp_path, emulator, env, *args)
    assert code == 0, err
    assert "Import complete!" in err and "adopted 5 key pair(s), 0 failed" in err
    assert written() == [
        "denied/us-east-1.yaml",
        "prod/us-east-1.yaml",
        "staging/eu-west-1.yaml",
        "staging/us-east-1.yaml",
    ]
    assert "m/prod/us-east-1.yaml  (2 key pair(s), unchanged)" in out
    assert (tmp_path / "m" / "prod" / "us-east-1.yaml").read_text() == before
    code, _, err = reconciler(tmp_path, emulator, env, *args)
    assert code == 0 and "Nothing to do" in err and "all 8 live key pair(s)." in err
    code, out, err = reconciler(tmp_path, emulator, env, "plan", "m", "--detailed-exitcode")
    assert code == 0, out + err


def test_a_failing_credential_process_is_one_finding_while_the_other_account_applies(
    tmp_path: Path, emulator: Emulator, env: dict[str, str]
) -> None:
    config = Path(env["AWS_CONFIG_FILE"])
    config.write_text(config.read_text() + "[profile broken]\ncredential_process = false\n")
    (tmp_path / "reconciler.yaml").write_text(
        "accounts:\n  prod: {profile: prod}\n  broken: {profile: broken}\n"
    )
    folder = tmp_path / "m"
    manifest(folder, "prod", "us-east-1", ["prod-key"])
    manifest(folder, "broken", "us-east-1", ["broken-key"])
    code, out, err = reconciler(tmp_path, emulator, env, "apply", "m", "--auto-approve")
    assert code == 1, err
    assert names(emulator.store, DEFAULT) == ["prod-key"], out + err  # the other one applies
    assert "account broken: cannot get credentials" in err, err
    assert "its region us-east-1 was not read" in err
    assert "internal error" not in err and "Traceback" not in err
