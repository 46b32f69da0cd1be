"""Plan and drift check stored keys in pages, not one or two calls per key.

moto in server mode over real HTTP, behind the recording proxy that counts
operations; ``Custody.check`` is the code plan and drift run.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

import pytest

from reconciler.custody import Custody, KeyProblemKind, KeySetting, StoreContext
from reconciler.custody import secretsmanager as sm_store
from reconciler.custody import ssm as ssm_store
from reconciler.model import Address, StateEntry
from tests.aws_proxy import recording_proxy
from tests.conftest import aws_client

R = "us-east-1"
SECRET_READS = {"GetParameter", "GetParameters", "GetParametersByPath", "GetSecretValue"}


def custody(url: str, spec: str) -> Custody:
    context = StoreContext(
        clients=lambda service: lambda region: aws_client(service, url, region or R)
    )
    return Custody(KeySetting(spec), context, lineage="L")


def entry(name: str, ref: dict[str, str]) -> StateEntry:
    return StateEntry(Address(R, name), "created", "arn", "fp", 0.0, {}, private_key_ref=ref)


def tags(fingerprint: str) -> list[dict[str, str]]:
    return [{"Key": "reconciler:fingerprint", "Value": fingerprint}]


def seed_ssm(url: str, prefix: str, count: int) -> tuple[str, list[StateEntry]]:
    spec = f"ssm:/{prefix}/{{region}}/{{name}}"
    client = aws_client("ssm", url)
    entries = []
    for i in range(count):
        name, fingerprint = f"/{prefix}/{R}/k{i:03d}", f"aa:{i:04x}"
        client.put_parameter(Name=name, Value="x", Type="SecureString", Tags=tags(fingerprint))
        ref = {"store": spec, "location": name, "version": "1", "fingerprint": fingerprint}
        entries.append(entry(f"k{i:03d}", ref))
    return spec, entries


def seed_secrets(url: str, prefix: str, count: int) -> tuple[str, list[StateEntry]]:
    spec = f"secretsmanager:{prefix}/{{region}}/{{name}}"
    client = aws_client("secretsmanager", url)
    entries = []
    for i in range(count):
        fingerprint = f"bb:{i:04x}"
        made = client.create_secret(
            Name=f"{prefix}/{R}/k{i:03d}", SecretString="x", Tags=tags(fingerprint)
        )
        ref = {
            "store": spec,
            "location": made["ARN"],
            "version": made["VersionId"],
            "fingerprint": fingerprint,
        }
        entries.append(entry(f"k{i:03d}", ref))
    return spec, entries


def moto_pages(found: int) -> int:
    """DescribeParameters calls for ``found`` parameters: moto answers ten to a page
    whatever MaxResults asks (AWS: up to 50), a full last page with a NextToken."""
    return found // 10 + 1


def check(url: str, spec: str, entries: list[StateEntry]) -> tuple[dict[str, Any], Any]:
    with recording_proxy(url) as proxy:
        problems = custody(proxy.url, spec).check(entries)
        calls = dict(proxy.calls)
    assert not SECRET_READS & set(calls)
    return {p.address.name: p for p in problems}, calls


def test_ssm_keys_are_checked_fifty_to_a_call(moto_url: str) -> None:
    count = 120
    spec, entries = seed_ssm(moto_url, f"bulk-{uuid.uuid4().hex[:8]}", count)
    problems, calls = check(moto_url, spec, entries)
    assert problems == {}
    assert ssm_store.BATCH == 50
    # Three calls (50, 50 and 20 keys), in moto's pages.
    assert calls == {"DescribeParameters": moto_pages(50) * 2 + moto_pages(20)}

    # Out of band: one deleted, one relabelled, one rewritten with its label kept.
    client = aws_client("ssm", moto_url)
    gone, relabelled, rewritten = entries[3], entries[60], entries[61]
    assert gone.private_key_ref and relabelled.private_key_ref and rewritten.private_key_ref
    client.delete_parameter(Name=gone.private_key_ref["location"])
    client.add_tags_to_resource(
        ResourceType="Parameter",
        ResourceId=relabelled.private_key_ref["location"],
        Tags=tags("00:11"),
    )
    client.put_parameter(
        Name=rewritten.private_key_ref["location"], Value="y", Type="SecureString", Overwrite=True
    )
    problems, calls = check(moto_url, spec, entries)
    assert {n: p.kind for n, p in problems.items()} == {
        "k003": KeyProblemKind.MISSING,
        "k060": KeyProblemKind.FINGERPRINT,
    }
    assert problems["k060"].actual == "00:11"
    # One call per 50 (49, 48 and 20 pass), one more for each 50 with keys that
    # did not pass, and tags only for the two that are there but did not pass.
    passed = moto_pages(49) + moto_pages(48) + moto_pages(20)
    assert calls == {"DescribeParameters": passed + 2, "ListTagsForResource": 2}


@pytest.mark.parametrize("many", [False, True], ids=["by-name", "by-prefix"])
def test_secrets_are_listed_in_pages(
    moto_url: str, monkeypatch: pytest.MonkeyPatch, many: bool
) -> None:
    count = 45
    if many:  # listed under the common prefix, 20 to a page
        monkeypatch.setattr(sm_store, "LIST_AT", 40)
        monkeypatch.setattr(sm_store, "PAGE", 20)
    spec, entries = seed_secrets(moto_url, f"bulk-{uuid.uuid4().hex[:8]}", count)
    expected_calls = math.ceil(count / (20 if many else sm_store.NAMES_PER_CALL))
    problems, calls = check(moto_url, spec, entries)
    assert problems == {}
    assert calls == {"ListSecrets": expected_calls}

    client = aws_client("secretsmanager", moto_url)
    gone, relabelled, recreated = entries[0], entries[21], entries[44]
    assert gone.private_key_ref and relabelled.private_key_ref and recreated.private_key_ref
    client.delete_secret(SecretId=gone.private_key_ref["location"], ForceDeleteWithoutRecovery=True)
    client.tag_resource(SecretId=relabelled.private_key_ref["location"], Tags=tags("00:11"))
    # Deleted and created again under the same name: another secret (another ARN).
    client.delete_secret(
        SecretId=recreated.private_key_ref["location"], ForceDeleteWithoutRecovery=True
    )
    client.create_secret(Name=f"{spec.split(':')[1].split('/')[0]}/{R}/k044", SecretString="z")
    problems, calls = check(moto_url, spec, entries)
    assert {n: p.kind for n, p in problems.items()} == {
        "k000": KeyProblemKind.MISSING,
        "k021": KeyProblemKind.FINGERPRINT,
        "k044": KeyProblemKind.MISSING,
    }
    assert problems["k021"].actual == "00:11"
    assert set(calls) == {"ListSecrets"}
