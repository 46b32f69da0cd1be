"""Secrets Manager as a key store: one secret per key pair.

``secretsmanager:prefix/{region}/{name}`` names where each key goes; the
secret lives in the key pair's region, encrypted with ``kmsKeyId`` (else the
account's ``aws/secretsmanager`` key) and tagged with its fingerprint,
region, name and lineage. ``describe`` uses DescribeSecret only, so plans and
drift reports need no ``secretsmanager:GetSecretValue``. ``delete`` removes
the secret without a recovery window: it is called only once the key is safe
elsewhere (read back and compared) or its key pair is gone.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

import botocore.exceptions

from reconciler.keystore.base import (
    LABEL_FINGERPRINT,
    KeyMetadata,
    KeyStoreError,
    key_fingerprint,
    labels_for,
)
from reconciler.keystore.remote import (
    ClientFactory,
    Retried,
    Template,
    call,
    error_code,
    labels_from,
    owns,
    retried,
    tag_list,
    translate,
)
from reconciler.keystore.ssm import conflict
from reconciler.model import Address, StateEntry

NAME = re.compile(r"[A-Za-z0-9/_+=.@\-]{1,512}")
SERVICE = "Secrets Manager"


class SecretsManagerKeyStore:
    scheme = "secretsmanager"

    def __init__(
        self,
        location: str,
        *,
        clients: ClientFactory,
        account: Callable[[Address], str],
        kms_key_id: str | None = None,
    ) -> None:
        self.template = Template(location, allowed=NAME, scheme="Secrets Manager")
        self.spec = f"secretsmanager:{location}"
        self.kms_key_id = kms_key_id
        self._clients = clients
        self._account = account

    def put(self, entry: StateEntry, pem: str, *, lineage: str, suffix: str = "") -> StateEntry:
        address = entry.address
        name = self.template.render(address, self._account) + suffix
        fingerprint = key_fingerprint(pem, entry.origin)
        request: dict[str, object] = {
            "Name": name,
            "SecretString": pem,
            "Description": f"Private key of Lightsail key pair {address}",
            "Tags": tag_list(labels_for(address, fingerprint, lineage)),
        }
        if self.kms_key_id:
            request["KmsKeyId"] = self.kms_key_id
        client = self._clients(address.region)
        what = f"storing the key of {address} in Secrets Manager secret {name}"
        try:
            response = retried(lambda: client.create_secret(**request))
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
        ref = {
            "store": self.spec,
            "location": arn,
            "version": version,
            "fingerprint": fingerprint,
        }
        return replace(entry, private_key=None, private_key_sealed=None, private_key_ref=ref)

    def _secret_id(self, entry: StateEntry) -> str:
        ref = entry.private_key_ref
        if ref is not None and owns(ref, self.scheme):
            return ref["location"]
        return self.template.render(entry.address, self._account)

    def get(self, entry: StateEntry) -> str | None:
        ref = entry.private_key_ref
        if ref is None or not owns(ref, self.scheme):
            return None
        secret_id = ref["location"]
        client = self._clients(entry.address.region)
        response = call(
            f"reading the key of {entry.address} from secret {secret_id}",
            lambda: client.get_secret_value(SecretId=secret_id),
            service=SERVICE,
        )
        return str(response["SecretString"])

    def describe(self, entry: StateEntry) -> KeyMetadata | None:
        return self._describe(entry.address, self._secret_id(entry))

    def _describe(self, address: Address, secret_id: str) -> KeyMetadata | None:
        client = self._clients(address.region)
        what = f"checking the key of {address} in secret {secret_id}"
        try:
            response = retried(lambda: client.describe_secret(SecretId=secret_id))
        except botocore.exceptions.ClientError as e:
            if error_code(e) == "ResourceNotFoundException":
                return None
            raise translate(e, what, SERVICE) from None
        except (botocore.exceptions.BotoCoreError, Retried) as e:
            raise translate(e, what, SERVICE) from None
        if response.get("DeletedDate") is not None:
            return None
        labels = labels_from(response.get("Tags"))
        current = [
            version
            for version, stages in (response.get("VersionIdsToStages") or {}).items()
            if "AWSCURRENT" in stages
        ]
        return KeyMetadata(
            str(response["ARN"]),
            current[0] if current else "",
            labels.get(LABEL_FINGERPRINT),
            labels,
        )

    def delete(self, entry: StateEntry) -> StateEntry:
        secret_id = self._secret_id(entry)
        client = self._clients(entry.address.region)
        try:
            retried(
                lambda: client.delete_secret(SecretId=secret_id, ForceDeleteWithoutRecovery=True)
            )
        except botocore.exceptions.ClientError as e:
            if error_code(e) != "ResourceNotFoundException":
                raise translate(e, f"deleting secret {secret_id}", SERVICE) from None
        except (botocore.exceptions.BotoCoreError, Retried) as e:
            raise translate(e, f"deleting secret {secret_id}", SERVICE) from None
        return replace(entry, private_key_ref=None)

    def location(self, address: Address, suffix: str = "") -> str:
        return self.template.render(address, self._account) + suffix
