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
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import botocore.exceptions

from reconciler.aws.lightsail import error_code
from reconciler.aws.retry import Retried
from reconciler.custody.base import (
    LABEL_FINGERPRINT,
    KeyMetadata,
    KeyStoreError,
    key_fingerprint,
    labels_for,
)
from reconciler.custody.bulk import Found, by_region, chunks, run_all
from reconciler.custody.remote import (
    RemoteKeyStore,
    call,
    labels_from,
    owns,
    retried,
    tag_list,
    translate,
)
from reconciler.custody.ssm import conflict
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

    def put(self, entry: StateEntry, pem: str, *, lineage: str, suffix: str = "") -> StateEntry:
        address = entry.address
        name = self.location(address, suffix)
        fingerprint = key_fingerprint(pem, entry.origin)
        request: dict[str, object] = {
            "Name": name,
            "SecretString": pem,
            "Description": f"Private key of Lightsail key pair {address}",
            "Tags": tag_list(labels_for(address, fingerprint, lineage)),
        }
        if self.kms_key_id:
            request["KmsKeyId"] = self.kms_key_id
        client, pace = self._reach(address.region)
        what = f"storing the key of {address} in Secrets Manager secret {name}"
        try:
            response = retried(lambda: client.create_secret(**request), pace)
            arn, version = str(response["ARN"]), str(response.get("VersionId", ""))
        except botocore.exceptions.ClientError as e:
            if error_code(e) != "ResourceExistsException":
                raise translate(e, what, SERVICE) from None
            existing = self._describe(address, name)
            if existing is None:
                raise KeyStoreError(
                    f"{what}: the secret exists but is scheduled for deletion",
                    hint=f"restore or delete it (aws secretsmanager restore-secret "
                    f"--secret-id {name}), then run again; the key stays in the state until then",
                ) from None
            if existing.fingerprint != fingerprint:
                raise conflict(address, f"secret {name}") from None
            arn, version = existing.location, existing.version
        except (botocore.exceptions.BotoCoreError, Retried) as e:
            raise translate(e, what, SERVICE) from None
        return self._stored(entry, arn, version, fingerprint)

    def get(self, entry: StateEntry) -> str | None:
        ref = entry.private_key_ref
        if ref is None or not owns(ref, self.scheme):
            return None
        secret_id = ref["location"]
        client, pace = self._reach(entry.address.region)
        response = call(
            f"reading the key of {entry.address} from secret {secret_id}",
            lambda: client.get_secret_value(SecretId=secret_id),
            pace,
            service=SERVICE,
        )
        return str(response["SecretString"])

    def describe(self, entry: StateEntry) -> KeyMetadata | None:
        return self._describe(entry.address, self._where(entry))

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
            for secret in response.get("SecretList", []):
                if secret.get("DeletedDate") is not None:
                    continue
                meta = _metadata(secret, secret.get("SecretVersionsToStages"))
                out[meta.location] = out[str(secret["Name"])] = meta
            token = response.get("NextToken")
            if not token:
                return out
            request = {**request, "NextToken": token}

    def _describe(self, address: Address, secret_id: str) -> KeyMetadata | None:
        client, pace = self._reach(address.region)
        what = f"checking the key of {address} in secret {secret_id}"
        try:
            response = retried(lambda: client.describe_secret(SecretId=secret_id), pace)
        except botocore.exceptions.ClientError as e:
            if error_code(e) == "ResourceNotFoundException":
                return None
            raise translate(e, what, SERVICE) from None
        except (botocore.exceptions.BotoCoreError, Retried) as e:
            raise translate(e, what, SERVICE) from None
        if response.get("DeletedDate") is not None:
            return None
        return _metadata(response, response.get("VersionIdsToStages"))

    def delete(self, entry: StateEntry) -> StateEntry:
        secret_id = self._where(entry)
        client, pace = self._reach(entry.address.region)
        try:
            retried(
                lambda: client.delete_secret(SecretId=secret_id, ForceDeleteWithoutRecovery=True),
                pace,
            )
        except botocore.exceptions.ClientError as e:
            if error_code(e) != "ResourceNotFoundException":
                raise translate(e, f"deleting secret {secret_id}", SERVICE) from None
        except (botocore.exceptions.BotoCoreError, Retried) as e:
            raise translate(e, f"deleting secret {secret_id}", SERVICE) from None
        return replace(entry, private_key_ref=None)


def _metadata(secret: Mapping[str, Any], stages: Mapping[str, Any] | None) -> KeyMetadata:
    """A key's metadata from DescribeSecret's answer or a ListSecrets entry."""
    labels = labels_from(secret.get("Tags"))
    current = [version for version, names in (stages or {}).items() if "AWSCURRENT" in names]
    return KeyMetadata(
        str(secret["ARN"]), current[0] if current else "", labels.get(LABEL_FINGERPRINT), labels
    )


def _name_of(secret_id: str) -> str:
    """A secret's name from its id: an ARN ends in ``:secret:NAME-XXXXXX``."""
    if secret_id.startswith("arn:") and ":secret:" in secret_id:
        return secret_id.split(":secret:", 1)[1][:-7]
    return secret_id
