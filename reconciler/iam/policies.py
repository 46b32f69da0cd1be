"""Least-privilege IAM policies for the tool's three roles, written from the project at hand.

- ``plan``: reads Lightsail, the state and the key stores' metadata; writes
  nothing and reads no secret (plan, drift, report and validate run with it).
- ``apply``: also creates, imports, retags and deletes key pairs, writes the
  state, its journal and lock, and keeps private keys in the key store. With
  an ``ownership`` tag in reconciler.yaml, it may create and import only with
  that tag in the request (``aws:RequestTag``, ``aws:TagKeys``), and delete or
  retag only key pairs that carry it (``aws:ResourceTag``); it may never remove
  the tag.
- ``key-reader``: reads the stored private keys and nothing else.

Pure: (regions, state location, key store, ownership) -> a policy document.
Resources are as narrow as the project says: the state's object and its
neighbours, the key store's path or prefix, the manifests' regions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, assert_never

VERSION = "2012-10-17"


class Role(StrEnum):
    PLAN = "plan"
    APPLY = "apply"
    KEY_READER = "key-reader"


@dataclass(frozen=True, slots=True)
class Project:
    """What a policy is written for."""

    regions: tuple[str, ...]
    # s3://BUCKET/KEY, or None for a local state (no IAM for it).
    state_bucket: str | None = None
    state_key: str | None = None
    # The key store spec (state, ssm:/PATH/{region}/{name}, secretsmanager:PREFIX/...).
    key_store: str = "state"
    key_store_kms_key_id: str | None = None
    ownership_tag: str | None = None
    ownership_value: str | None = None


Statement = dict[str, Any]


def policy(project: Project, role: Role) -> dict[str, Any]:
    """The policy document of ``role`` for ``project``."""
    match role:
        case Role.PLAN:
            statements = [*_lightsail_read(), *_state(project, write=False), *_store_meta(project)]
        case Role.APPLY:
            statements = [
                *_lightsail_read(),
                *_lightsail_write(project),
                *_state(project, write=True),
                *_store_meta(project),
                *_store_keys(project, write=True),
            ]
        case Role.KEY_READER:
            statements = _store_keys(project, write=False) or _state(project, write=False)
        case _:
            assert_never(role)
    return {"Version": VERSION, "Statement": statements}


def _sid(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", text.title())


def _statement(
    sid: str, actions: Sequence[str], resources: Sequence[str] | str, **extra: Any
) -> Statement:
    resource: list[str] | str = resources if isinstance(resources, str) else list(resources)
    return {
        "Sid": _sid(sid),
        "Effect": "Allow",
        "Action": sorted(actions),
        "Resource": resource,
        **extra,
    }


def _key_pairs(project: Project) -> list[str]:
    regions = project.regions or ("*",)
    return [f"arn:aws:lightsail:{region}:*:KeyPair/*" for region in regions]


def _lightsail_read() -> list[Statement]:
    # Lightsail's Get* calls take no resource-level permissions.
    reads = ["lightsail:GetKeyPairs", "lightsail:GetKeyPair", "lightsail:GetInstances"]
    return [_statement("read key pairs and instances", reads, "*")]


def _lightsail_write(project: Project) -> list[Statement]:
    creates = ["lightsail:CreateKeyPair", "lightsail:ImportKeyPair"]
    changes = ["lightsail:DeleteKeyPair", "lightsail:TagResource", "lightsail:UntagResource"]
    tag, value = project.ownership_tag, project.ownership_value
    if tag is None or value is None:
        return [
            _statement("create and import key pairs", creates, "*"),
            _statement("change key pairs", changes, _key_pairs(project)),
        ]
    return [
        _statement(
            "create and import owned key pairs",
            creates,
            "*",
            Condition={
                "StringEquals": {f"aws:RequestTag/{tag}": value},
                "ForAnyValue:StringEquals": {"aws:TagKeys": [tag]},
            },
        ),
        _statement(
            "change owned key pairs",
            changes,
            _key_pairs(project),
            Condition={"StringEquals": {f"aws:ResourceTag/{tag}": value}},
        ),
        {
            "Sid": "KeepTheOwnershipTag",
            "Effect": "Deny",
            "Action": ["lightsail:UntagResource"],
            "Resource": _key_pairs(project),
            "Condition": {"ForAnyValue:StringEquals": {"aws:TagKeys": [tag]}},
        },
    ]


def _state(project: Project, *, write: bool) -> list[Statement]:
    bucket, key = project.state_bucket, project.state_key
    if bucket is None or key is None:
        return []
    objects = [f"arn:aws:s3:::{bucket}/{key}", f"arn:aws:s3:::{bucket}/{key}.*"]
    actions = ["s3:GetObject", *(["s3:PutObject", "s3:DeleteObject"] if write else [])]
    return [
        _statement("state objects", actions, objects),
        _statement(
            "state journal listing",
            ["s3:ListBucket"],
            f"arn:aws:s3:::{bucket}",
            Condition={"StringLike": {"s3:prefix": [f"{key}.journal/*"]}},
        ),
    ]


def _store(project: Project) -> tuple[str, str] | None:
    """(service, the ARN pattern of every key the store may hold), or None for the state."""
    scheme, _, template = project.key_store.partition(":")
    fixed = re.split(r"\{[a-z]+\}", template, maxsplit=1)[0].strip("/")
    match scheme:
        case "ssm":
            return (
                "ssm",
                f"arn:aws:ssm:*:*:parameter/{fixed}*" if fixed else "arn:aws:ssm:*:*:parameter/*",
            )
        case "secretsmanager":
            return "secretsmanager", f"arn:aws:secretsmanager:*:*:secret:{fixed}*"
        case _:
            return None


def _store_meta(project: Project) -> list[Statement]:
    store = _store(project)
    if store is None:
        return []
    service, _ = store
    # Listing by metadata takes no resource-level permissions; no value is read.
    listing = "ssm:DescribeParameters" if service == "ssm" else "secretsmanager:ListSecrets"
    return [_statement("key store metadata", [listing], "*")]


def _store_keys(project: Project, *, write: bool) -> list[Statement]:
    store = _store(project)
    if store is None:
        return []
    service, keys = store
    if service == "ssm":
        read = ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParameterHistory"]
        more = ["ssm:PutParameter", "ssm:DeleteParameter", "ssm:AddTagsToResource"]
        more += ["ssm:LabelParameterVersion", "ssm:ListTagsForResource"]
    else:
        read = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
        more = ["secretsmanager:CreateSecret", "secretsmanager:PutSecretValue"]
        more += ["secretsmanager:DeleteSecret", "secretsmanager:TagResource"]
        more += ["secretsmanager:UpdateSecretVersionStage", "secretsmanager:ListSecretVersionIds"]
        more += ["secretsmanager:RestoreSecret"]
    out = [_statement("stored private keys", [*read, *(more if write else [])], [keys])]
    kms = project.key_store_kms_key_id
    if kms is not None:
        usage = ["kms:Decrypt", *(["kms:Encrypt", "kms:GenerateDataKey"] if write else [])]
        if kms.startswith("alias/"):
            # Permissions name keys, not aliases: a key through the store's service only.
            out.append(
                _statement(
                    "key store encryption",
                    usage,
                    ["arn:aws:kms:*:*:key/*"],
                    Condition={"StringLike": {"kms:ViaService": f"{service}.*.amazonaws.com"}},
                )
            )
        else:
            target = kms if kms.startswith("arn:") else f"arn:aws:kms:*:*:key/{kms}"
            out.append(_statement("key store encryption", usage, [target]))
    return out
