"""SSM Parameter Store as a key store: one ``SecureString`` parameter per key pair.

``ssm:/path/{region}/{name}`` names where each key goes; the parameter lives
in the key pair's region, encrypted with ``kmsKeyId`` (else the account's
``alias/aws/ssm``), tagged with its fingerprint, region, name and lineage.
``describe`` uses DescribeParameters and ListTagsForResource only, so plans
and drift reports need no ``ssm:GetParameter``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

import botocore.exceptions

from reconciler.keystore.base import (
    LABEL_FINGERPRINT,
    KeyMetadata,
    KeyStoreConflict,
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
from reconciler.model import Address, StateEntry

NAME = re.compile(r"/?[A-Za-z0-9_.\-/]{1,1000}")


class SsmKeyStore:
    scheme = "ssm"

    def __init__(
        self,
        location: str,
        *,
        clients: ClientFactory,
        account: Callable[[Address], str],
        kms_key_id: str | None = None,
    ) -> None:
        self.template = Template(location, allowed=NAME, scheme="SSM parameter")
        self.spec = f"ssm:{location}"
        self.kms_key_id = kms_key_id
        self._clients = clients
        self._account = account

    def put(self, entry: StateEntry, pem: str, *, lineage: str, suffix: str = "") -> StateEntry:
        address = entry.address
        name = self.template.render(address, self._account) + suffix
        fingerprint = key_fingerprint(pem, entry.origin)
        request: dict[str, object] = {
            "Name": name,
            "Value": pem,
            "Type": "SecureString",
            "Overwrite": False,
            "Description": f"Private key of Lightsail key pair {address}",
            "Tags": tag_list(labels_for(address, fingerprint, lineage)),
        }
        if self.kms_key_id:
            request["KeyId"] = self.kms_key_id
        client = self._clients(address.region)
        what = f"storing the key of {address} in SSM parameter {name}"
        try:
            response = retried(lambda: client.put_parameter(**request))
            version = str(response["Version"])
        except botocore.exceptions.ClientError as e:
            if error_code(e) != "ParameterAlreadyExists":
                raise translate(e, what, "SSM") from None
            existing = self._describe(address, name)
            if existing is None:
                raise KeyStoreError(
                    f"storing the key of {address}: SSM parameter {name} exists but cannot be read",
                    hint="run again",
                ) from None
            if existing.fingerprint != fingerprint:
                raise conflict(address, name) from None
            version = existing.version
        except (botocore.exceptions.BotoCoreError, Retried) as e:
            raise translate(e, what, "SSM") from None
        ref = {"store": self.spec, "location": name, "version": version, "fingerprint": fingerprint}
        return replace(entry, private_key=None, private_key_sealed=None, private_key_ref=ref)

    def _name(self, entry: StateEntry) -> str:
        ref = entry.private_key_ref
        if ref is not None and owns(ref, self.scheme):
            return ref["location"]
        return self.template.render(entry.address, self._account)

    def get(self, entry: StateEntry) -> str | None:
        ref = entry.private_key_ref
        if ref is None or not owns(ref, self.scheme):
            return None
        name = ref["location"]
        client = self._clients(entry.address.region)
        response = call(
            f"reading the key of {entry.address} from SSM parameter {name}",
            lambda: client.get_parameter(Name=name, WithDecryption=True),
            service="SSM",
        )
        return str(response["Parameter"]["Value"])

    def describe(self, entry: StateEntry) -> KeyMetadata | None:
        return self._describe(entry.address, self._name(entry))

    def _describe(self, address: Address, name: str) -> KeyMetadata | None:
        client = self._clients(address.region)
        what = f"checking the key of {address} in SSM parameter {name}"
        found = call(
            what,
            lambda: client.describe_parameters(
                ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [name]}]
            ),
            service="SSM",
        )["Parameters"]
        if not found:
            return None
        tags = call(
            what,
            lambda: client.list_tags_for_resource(ResourceType="Parameter", ResourceId=name),
            service="SSM",
        )
        labels = labels_from(tags.get("TagList"))
        version = str(found[0].get("Version", ""))
        return KeyMetadata(name, version, labels.get(LABEL_FINGERPRINT), labels)

    def delete(self, entry: StateEntry) -> StateEntry:
        name = self._name(entry)
        client = self._clients(entry.address.region)
        try:
            retried(lambda: client.delete_parameter(Name=name))
        except botocore.exceptions.ClientError as e:
            if error_code(e) != "ParameterNotFound":
                raise translate(e, f"deleting SSM parameter {name}", "SSM") from None
        except (botocore.exceptions.BotoCoreError, Retried) as e:
            raise translate(e, f"deleting SSM parameter {name}", "SSM") from None
        return replace(entry, private_key_ref=None)

    def location(self, address: Address, suffix: str = "") -> str:
        return self.template.render(address, self._account) + suffix


def conflict(address: Address, where: str) -> KeyStoreConflict:
    return KeyStoreConflict(
        f"{address}: {where} already holds a different key (its fingerprint label differs); "
        "not overwritten",
        hint="move or delete it if it is stale, then run again; the key stays in the state "
        "until then",
    )
