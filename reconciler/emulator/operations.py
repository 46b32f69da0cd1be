"""The eight Lightsail key-pair operations, on decoded requests, as the reference has them.

The instance operations come from ``instances.py``; ``OPERATIONS`` lists
them all. Each operation takes the region (from the request's signature) and its
checked parameters, acts on the ``Store`` and returns the response body with
whether it committed a change. Errors are raised as ``ApiError``. Nothing
here knows about HTTP, signatures or fault injection.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.emulator import errors
from reconciler.emulator.instances import RESOURCE_TYPE as INSTANCE
from reconciler.emulator.instances import InstanceOperations
from reconciler.emulator.material import KeySource, imported_fingerprint
from reconciler.emulator.records import InstanceRecord, KeyPairRecord, freeze_tags
from reconciler.emulator.responses import (
    Outcome,
    decode_page_token,
    encode_page_token,
    location,
    now,
    on_the_wire,
    operation,
    tag_list,
)
from reconciler.emulator.shapes import (
    Kind,
    check_members,
    check_name,
    check_tag_keys,
    check_tag_rules,
    check_tags,
    parse_arn,
)
from reconciler.emulator.store import AccountStore
from reconciler.keys import PublicKeyError, parse_public_key
from reconciler.model import DEFAULT_KEY_PAIR_NAME

__all__ = ["OPERATIONS", "LightsailService", "Outcome", "decode_page_token", "encode_page_token"]

RESOURCE_TYPE = "KeyPair"


class LightsailService(InstanceOperations):
    """The key-pair and instance API of one emulated account."""

    def __init__(
        self, store: AccountStore, keys: KeySource, *, account_id: str, page_size: int = 100
    ) -> None:
        self.store = store
        self.keys = keys
        self.account_id = account_id
        self.page_size = page_size

    def call(self, operation: str, region: str, params: Mapping[str, Any]) -> Outcome:
        spec = OPERATIONS[operation]
        return spec.run(self, region, check_members(params, spec.members, spec.required))

    # -- rendering -------------------------------------------------------

    def render(self, region: str, record: KeyPairRecord) -> dict[str, Any]:
        body = {
            "name": record.name,
            "arn": record.arn(region, self.account_id),
            "supportCode": f"{self.account_id}/{record.name}",
            "createdAt": record.created_at,
            "location": location(region),
            "resourceType": RESOURCE_TYPE,
            "tags": tag_list(record.tags),
            "fingerprint": record.fingerprint,
        }
        return on_the_wire(body, record.wire)

    # -- operations ------------------------------------------------------

    def create_key_pair(self, region: str, p: dict[str, Any]) -> Outcome:
        name = check_name("keyPairName", p["keyPairName"])
        tags = check_tags("tags", p.get("tags", []))
        self._check_free(region, name)
        key = self.keys.new_key()
        created = now()
        record = KeyPairRecord(name, str(uuid.uuid4()), created, key.fingerprint, freeze_tags(tags))
        if not self.store.insert(region, record):
            raise errors.name_exists(name)
        return Outcome(
            {
                "keyPair": self.render(region, record),
                "publicKeyBase64": key.public_key_base64,
                "privateKeyBase64": key.private_pem,
                "operation": operation("CreateKeyPair", name, region, created),
            },
            committed=True,
        )

    def import_key_pair(self, region: str, p: dict[str, Any]) -> Outcome:
        name = check_name("keyPairName", p["keyPairName"])
        try:
            public_key = parse_public_key(p["publicKeyBase64"])
        except PublicKeyError:
            raise errors.invalid_key_format() from None
        self._check_free(region, name)
        created = now()
        record = KeyPairRecord(name, str(uuid.uuid4()), created, imported_fingerprint(public_key))
        if not self.store.insert(region, record):
            raise errors.name_exists(name)
        return Outcome(
            {"operation": operation("ImportKeyPair", name, region, created)}, committed=True
        )

    def get_key_pair(self, region: str, p: dict[str, Any]) -> Outcome:
        name = check_name("keyPairName", p["keyPairName"])
        record = self.store.get(region, name)
        if record is None:
            raise errors.not_found(name)
        return Outcome({"keyPair": self.render(region, record)}, committed=False)

    def get_key_pairs(self, region: str, p: dict[str, Any]) -> Outcome:
        after = decode_page_token(p["pageToken"]) if p.get("pageToken") else None
        skip = None if p.get("includeDefaultKeyPair") else DEFAULT_KEY_PAIR_NAME
        records, more = self.store.page(region, after, self.page_size, skip=skip)
        body: dict[str, Any] = {"keyPairs": [self.render(region, r) for r in records]}
        if more and records:
            body["nextPageToken"] = encode_page_token(records[-1].name)
        return Outcome(body, committed=False)

    def delete_key_pair(self, region: str, p: dict[str, Any]) -> Outcome:
        name = check_name("keyPairName", p["keyPairName"])
        expected = p.get("expectedFingerprint")
        with self.store.transaction():
            record = self.store.get(region, name)
            if record is None:
                raise errors.not_found(name)
            if name == DEFAULT_KEY_PAIR_NAME and expected is None:
                raise errors.invalid_input(
                    f"expectedFingerprint is required to delete the default key pair: {name}"
                )
            if expected is not None and expected != record.fingerprint:
                raise errors.fingerprint_mismatch(name)
            self.store.remove(region, name)
        return Outcome(
            {"operation": operation("DeleteKeyPair", name, region, now())}, committed=True
        )

    def ensure_default_key_pair(self, region: str) -> tuple[KeyPairRecord, bool]:
        """The region's default key pair, and whether it was made now because it was missing."""
        record = self.store.get(region, DEFAULT_KEY_PAIR_NAME)
        if record is None:
            # Generate outside the lock; if another request won the race, use its key.
            key = self.keys.new_key()
            fresh = KeyPairRecord(
                DEFAULT_KEY_PAIR_NAME,
                str(uuid.uuid4()),
                now(),
                key.fingerprint,
                public_key_base64=key.public_key_base64,
                private_key=key.private_pem,
            )
            if self.store.insert(region, fresh):
                return fresh, True
            record = self.store.get(region, DEFAULT_KEY_PAIR_NAME)
            if record is None:
                # Deleted in between: the service cannot hand out its keys.
                raise errors.service_error()
        return record, False

    def download_default_key_pair(self, region: str, p: dict[str, Any]) -> Outcome:
        record, created = self.ensure_default_key_pair(region)
        if record.private_key is None or record.public_key_base64 is None:
            # Its key material was never kept: the service cannot hand it out.
            raise errors.service_error()
        body = {
            "publicKeyBase64": record.public_key_base64,
            "privateKeyBase64": record.private_key,
            "createdAt": record.created_at,
        }
        return Outcome(body, committed=created)

    def tag_resource(self, region: str, p: dict[str, Any]) -> Outcome:
        name = check_name("resourceName", p["resourceName"])
        tags = check_tags("tags", p["tags"])
        with self.store.transaction():
            record = self._resolve(region, name, p.get("resourceArn"))
            merged = {**record.tags, **tags}
            check_tag_rules("tags", merged)
            self.store.set_tags(region, name, merged)
        return self._tag_outcome("TagResource", record, region)

    def untag_resource(self, region: str, p: dict[str, Any]) -> Outcome:
        name = check_name("resourceName", p["resourceName"])
        keys = set(check_tag_keys("tagKeys", p["tagKeys"]))
        with self.store.transaction():
            record = self._resolve(region, name, p.get("resourceArn"))
            kept = {key: value for key, value in record.tags.items() if key not in keys}
            self.store.set_tags(region, name, kept)
        return self._tag_outcome("UntagResource", record, region)

    # -- helpers ---------------------------------------------------------

    def _check_free(self, region: str, name: str) -> None:
        """Fail fast before making a key; ``Store.insert`` decides races."""
        if self.store.name_taken(region, name):
            raise errors.name_exists(name)
        if name == DEFAULT_KEY_PAIR_NAME:
            raise errors.invalid_input(
                f"Invalid value for parameter keyPairName: {name} is reserved for the "
                "default key pair; use DownloadDefaultKeyPair"
            )

    def _resolve(
        self, region: str, name: str, arn_text: str | None
    ) -> KeyPairRecord | InstanceRecord:
        """The key pair or instance ``name`` names, which ``arn_text`` (when given) must too."""
        record: KeyPairRecord | InstanceRecord | None = self.store.get(region, name)
        if record is None:
            record = self.store.get_instance(region, name)
        if arn_text is not None:
            arn = parse_arn("resourceArn", arn_text)
            if (
                record is None
                or arn.resource_id != record.resource_id
                or (arn.service, arn.region, arn.account, arn.resource_type)
                != ("lightsail", region, self.account_id, _resource_type(record))
            ):
                raise errors.not_found(arn_text)
        if record is None:
            raise errors.not_found(name)
        return record

    def _tag_outcome(
        self, operation_type: str, record: KeyPairRecord | InstanceRecord, region: str
    ) -> Outcome:
        if isinstance(record, InstanceRecord):
            done = operation(
                operation_type,
                record.name,
                region,
                now(),
                resource_type=INSTANCE,
                availability_zone=record.availability_zone,
            )
        else:
            done = operation(operation_type, record.name, region, now())
        return Outcome({"operations": [done]}, committed=True)


def _resource_type(record: KeyPairRecord | InstanceRecord) -> str:
    return INSTANCE if isinstance(record, InstanceRecord) else RESOURCE_TYPE


@dataclass(frozen=True, slots=True)
class OperationSpec:
    members: Mapping[str, Kind]
    required: tuple[str, ...]
    mutating: bool
    run: Callable[[LightsailService, str, dict[str, Any]], Outcome]


OPERATIONS: dict[str, OperationSpec] = {
    "CreateKeyPair": OperationSpec(
        {"keyPairName": "string", "tags": "tags"},
        ("keyPairName",),
        True,
        LightsailService.create_key_pair,
    ),
    "ImportKeyPair": OperationSpec(
        {"keyPairName": "string", "publicKeyBase64": "string"},
        ("keyPairName", "publicKeyBase64"),
        True,
        LightsailService.import_key_pair,
    ),
    "GetKeyPair": OperationSpec(
        {"keyPairName": "string"}, ("keyPairName",), False, LightsailService.get_key_pair
    ),
    "GetKeyPairs": OperationSpec(
        {"pageToken": "string", "includeDefaultKeyPair": "boolean"},
        (),
        False,
        LightsailService.get_key_pairs,
    ),
    "DeleteKeyPair": OperationSpec(
        {"keyPairName": "string", "expectedFingerprint": "string"},
        ("keyPairName",),
        True,
        LightsailService.delete_key_pair,
    ),
    "DownloadDefaultKeyPair": OperationSpec(
        {}, (), True, LightsailService.download_default_key_pair
    ),
    "TagResource": OperationSpec(
        {"resourceName": "string", "resourceArn": "string", "tags": "tags"},
        ("resourceName", "tags"),
        True,
        LightsailService.tag_resource,
    ),
    "UntagResource": OperationSpec(
        {"resourceName": "string", "resourceArn": "string", "tagKeys": "strings"},
        ("resourceName", "tagKeys"),
        True,
        LightsailService.untag_resource,
    ),
    "CreateInstances": OperationSpec(
        {
            "instanceNames": "strings",
            "availabilityZone": "string",
            "blueprintId": "string",
            "bundleId": "string",
            "keyPairName": "string",
            "tags": "tags",
            "userData": "string",
            "customImageName": "string",
            "addOns": "objects",
            "ipAddressType": "string",
        },
        ("instanceNames", "availabilityZone", "blueprintId", "bundleId"),
        True,
        LightsailService.create_instances,
    ),
    "GetInstance": OperationSpec(
        {"instanceName": "string", "includeHealthStatus": "boolean"},
        ("instanceName",),
        False,
        LightsailService.get_instance,
    ),
    "GetInstances": OperationSpec(
        {"pageToken": "string", "includeHealthStatus": "boolean"},
        (),
        False,
        LightsailService.get_instances,
    ),
    "DeleteInstance": OperationSpec(
        {"instanceName": "string", "forceDeleteAddOns": "boolean"},
        ("instanceName",),
        True,
        LightsailService.delete_instance,
    ),
}
