"""Secrets Manager as a key store: one secret per key pair.

``secretsmanager:prefix/{region}/{name}`` names where each key goes; the
secret lives in the key pair's region, encrypted with ``kmsKeyId`` (else the
account's ``aws/secretsmanager`` key) and tagged with its fingerprint,
region, name and lineage. ``describe`` uses DescribeSecret only, so plans and
drift reports need no ``secretsmanager:GetSecretValue``; ``describe_many``
lists secrets (ListSecrets, 100 to a page, tags included) under the keys'
common name prefix, or by name for a few keys. ``delete`` removes
the secret without a recovery window: it is called only once the key is safe
elsewhere (read back and compared) or its key pair is gone.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Sequence
from typing import Any

from reconciler.aws import wire
from reconciler.custody.base import LABEL_FINGERPRINT, KeyMetadata, KeyStoreError
from reconciler.custody.bulk import Found, by_region, chunks, run_all
from reconciler.custody.remote import (
    NewKey,
    RemoteKeyStore,
    call,
    call_unless,
    decoded,
    labels_from,
    secret_text,
)
from reconciler.model import Address, StateEntry

NAME = re.compile(r"[A-Za-z0-9/_+=.@\-]{1,512}")
SERVICE = "Secrets Manager"
PAGE = 100  # ListSecrets returns at most 100 secrets per page
NAMES_PER_CALL = 10  # and takes at most 10 values per filter
# From this many keys in one region on, their common prefix is listed rather
# than their names asked for ten at a time.
LIST_AT = 200


class SecretsManagerKeyStore(RemoteKeyStore):
    scheme = "secretsmanager"
    noun = "Secrets Manager"
    allowed = NAME
    service = SERVICE
    create_op, read_op = "CreateSecret", "GetSecretValue"
    decodes = ("CreateSecret", "GetSecretValue", "DescribeSecret", "ListSecrets")
    kind = "secret"
    taken = "ResourceExistsException"
    missing = "ResourceNotFoundException"

    def _create(self, client: Any, key: NewKey) -> Any:
        return client.create_secret(**self._request(key, value="SecretString", kms="KmsKeyId"))

    def _created(self, name: str, data: Any) -> tuple[str, str]:
        return _created(data)

    def _read(self, client: Any, location: str) -> Any:
        return client.get_secret_value(SecretId=location)

    def _key_in(self, data: Any) -> str:
        return secret_text(data, "", "SecretString")

    def _remove(self, client: Any, location: str) -> object:
        # No recovery window: a key is deleted only once it is safe elsewhere.
        return client.delete_secret(SecretId=location, ForceDeleteWithoutRecovery=True)

    def _unseen(self, address: Address, name: str, what: str) -> KeyStoreError:
        return KeyStoreError(
            f"{what}: the secret exists but is scheduled for deletion",
            hint=f"restore or delete it (aws secretsmanager restore-secret "
            f"--secret-id {name}), then run again; the key stays in the state until then",
        )

    def describe_many(self, entries: Sequence[StateEntry], *, parallelism: int) -> Found:
        """``describe`` for many keys: ListSecrets under their common name prefix (one
        call per 100 secrets), or by name, ten to a call, when they are few.

        A key recorded by ARN is matched by ARN, so a secret deleted and created
        again under the same name counts as missing, as with ``describe``.
        """
        found: Found = [None] * len(entries)
        for region, group in by_region(entries).items():
            ids = [self._where(entries[i]) for i in group]
            names = sorted({_name_of(i) for i in ids})
            prefix = os.path.commonprefix(names)  # noqa: RUF071 (a name prefix, not a path)
            queries: list[Sequence[str]] = (
                [[prefix]]
                if prefix and len(group) >= LIST_AT
                else list(chunks(names, NAMES_PER_CALL))
            )
            listed: dict[str, KeyMetadata] = {}
            for part in run_all(functools.partial(self._list, region), queries, parallelism):
                listed.update(part)
            for i, secret_id in zip(group, ids, strict=True):
                found[i] = listed.get(secret_id)
        return found

    def _list(self, region: str, prefixes: Sequence[str]) -> dict[str, KeyMetadata]:
        """Secrets whose names begin with one of ``prefixes``, by ARN and by name."""
        client, pace = self._reach(region)
        what = f"listing stored keys in Secrets Manager ({region})"
        request: dict[str, Any] = {
            "Filters": [{"Key": "name", "Values": list(prefixes)}],
            "MaxResults": PAGE,
        }
        out: dict[str, KeyMetadata] = {}
        while True:
            response = call(
                what, functools.partial(client.list_secrets, **request), pace, service=SERVICE
            )
            secrets, token = decoded("ListSecrets", region, response, _listed)
            for name, meta in secrets:
                out[meta.location] = out[name] = meta
            if token is None:
                return out
            request = {**request, "NextToken": token}

    def _describe(self, address: Address, location: str) -> KeyMetadata | None:
        client, pace = self._reach(address.region)
        response = call_unless(
            self.missing,
            f"checking the key of {address} in secret {location}",
            lambda: client.describe_secret(SecretId=location),
            pace,
            service=SERVICE,
        )
        if response is None:
            return None
        described = decoded(
            "DescribeSecret",
            address.region,
            response,
            lambda data: _secret(data, "", "VersionIdsToStages"),
        )
        return None if described is None else described[1]


def _created(data: Any) -> tuple[str, str]:
    """CreateSecret's answer: the secret's ARN and its version."""
    return _arn(data, ""), wire.string(data, "VersionId", "")


def _listed(data: Any) -> tuple[list[tuple[str, KeyMetadata]], str | None]:
    """A ListSecrets page: each secret not scheduled for deletion by name, and the next token."""
    found = []
    for index, secret in enumerate(wire.items(wire.member(data, "SecretList"), "SecretList")):
        described = _secret(secret, f"SecretList[{index}]", "SecretVersionsToStages")
        if described is not None:
            found.append(described)
    return found, wire.string(data, "NextToken", "") or None


def _secret(value: Any, at: str, stages_member: str) -> tuple[str, KeyMetadata] | None:
    """A secret of DescribeSecret or ListSecrets: its name and its key's metadata; None
    when it is scheduled for deletion."""
    if not isinstance(value, dict):
        raise wire.Malformed(at or "the answer", "is not an object")
    if value.get("DeletedDate") is not None:
        wire.timestamp(value["DeletedDate"], f"{at}.DeletedDate" if at else "DeletedDate")
        return None
    name = wire.string(value, "Name", at)
    labels = labels_from(value.get("Tags"), f"{at}.Tags" if at else "Tags")
    stages = _stages(value.get(stages_member), f"{at}.{stages_member}" if at else stages_member)
    current = [version for version, names in stages.items() if "AWSCURRENT" in names]
    meta = KeyMetadata(
        _arn(value, at), current[0] if current else "", labels.get(LABEL_FINGERPRINT), labels
    )
    return name, meta


def _arn(data: Any, at: str) -> str:
    arn = wire.member(data, "ARN", at)
    if not isinstance(arn, str) or not arn.startswith("arn:"):
        raise wire.Malformed(f"{at}.ARN" if at else "ARN", "is not an ARN")
    return arn


def _stages(value: Any, at: str) -> dict[str, list[str]]:
    """Version ids to their staging labels (``{id: [AWSCURRENT, ...]}``)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise wire.Malformed(at, "is not a map of versions to labels")
    for version, labels in value.items():
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise wire.Malformed(f"{at}.{version}", "is not a list of labels")
    return value


def _name_of(secret_id: str) -> str:
    """A secret's name from its id: an ARN ends in ``:secret:NAME-XXXXXX``."""
    if secret_id.startswith("arn:") and ":secret:" in secret_id:
        return secret_id.split(":secret:", 1)[1][:-7]
    return secret_id
