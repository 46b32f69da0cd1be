"""The eight Lightsail key-pair operations, on decoded requests, as the reference has them.

Each operation takes the region (from the request's signature) and its
checked parameters, acts on the ``Store`` and returns the response body with
whether it committed a change. Errors are raised as ``ApiError``. Nothing
here knows about HTTP, signatures or fault injection.
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.emulator import errors
from reconciler.emulator.material import KeySource, imported_fingerprint
from reconciler.emulator.shapes import (
    Kind,
    check_members,
    check_name,
    check_tag_keys,
    check_tag_rules,
    check_tags,
    parse_arn,
)
from reconciler.emulator.store import KeyPairRecord, Store, freeze_tags
from reconciler.keys import PublicKeyError, parse_public_key
from reconciler.model import DEFAULT_KEY_PAIR_NAME

RESOURCE_TYPE = "KeyPair"
# The service reports an operation's status change shortly after it starts.
STATUS_CHANGE_DELAY = 0.15
PAGE_CURSOR_PREFIX = "v1:"


@dataclass(frozen=True, slots=True)
class Outcome:
    body: dict[str, Any]
    committed: bool


def now() -> float:
    """Epoch seconds with millisecond precision, as the service reports times."""
    return round(time.time(), 3)


class KeyPairService:
    """The key-pair API of one emulated account."""

    def __init__(
        self, store: Store, keys: KeySource, *, account_id: str, page_size: int = 100
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
        return {
            "name": record.name,
            "arn": record.arn(region, self.account_id),
            "supportCode": f"{self.account_id}/{record.name}",
            "createdAt": record.created_at,
            "location": _location(region),
            "resourceType": RESOURCE_TYPE,
            "tags": [
                {"key": key} if value is None else {"key": key, "value": value}
                for key, value in record.tags.items()
            ],
            "fingerprint": record.fingerprint,
        }

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
                "operation": _operation("CreateKeyPair", name, region, created),
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
            {"operation": _operation("ImportKeyPair", name, region, created)}, committed=True
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
            {"operation": _operation("DeleteKeyPair", name, region, now())}, committed=True
        )

    def download_default_key_pair(self, region: str, p: dict[str, Any]) -> Outcome:
        record = self.store.get(region, DEFAULT_KEY_PAIR_NAME)
        created = False
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
            created = self.store.insert(region, fresh)
            record = fresh if created else self.store.get(region, DEFAULT_KEY_PAIR_NAME)
        if record is None or record.private_key is None or record.public_key_base64 is None:
            # Deleted in between, or its key material was never kept: the
            # service cannot hand out the keys of this key pair.
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
        return self._tag_outcome("TagResource", name, region)

    def untag_resource(self, region: str, p: dict[str, Any]) -> Outcome:
        name = check_name("resourceName", p["resourceName"])
        keys = set(check_tag_keys("tagKeys", p["tagKeys"]))
        with self.store.transaction():
            record = self._resolve(region, name, p.get("resourceArn"))
            kept = {key: value for key, value in record.tags.items() if key not in keys}
            self.store.set_tags(region, name, kept)
        return self._tag_outcome("UntagResource", name, region)

    # -- helpers ---------------------------------------------------------

    def _check_free(self, region: str, name: str) -> None:
        """Fail fast before making a key; ``Store.insert`` decides races."""
        if self.store.get(region, name) is not None:
            raise errors.name_exists(name)
        if name == DEFAULT_KEY_PAIR_NAME:
            raise errors.invalid_input(
                f"Invalid value for parameter keyPairName: {name} is reserved for the "
                "default key pair; use DownloadDefaultKeyPair"
            )

    def _resolve(self, region: str, name: str, arn_text: str | None) -> KeyPairRecord:
        """The key pair ``name`` names, which ``arn_text`` (when given) must also name."""
        record = self.store.get(region, name)
        if arn_text is not None:
            arn = parse_arn("resourceArn", arn_text)
            if (
                record is None
                or (arn.service, arn.region, arn.account, arn.resource_type)
                != ("lightsail", region, self.account_id, RESOURCE_TYPE)
                or arn.resource_id != record.resource_id
            ):
                raise errors.not_found(arn_text)
        if record is None:
            raise errors.not_found(name)
        return record

    def _tag_outcome(self, operation: str, name: str, region: str) -> Outcome:
        return Outcome({"operations": [_operation(operation, name, region, now())]}, committed=True)


def _location(region: str) -> dict[str, str]:
    return {"availabilityZone": "all", "regionName": region}


def _operation(operation_type: str, name: str, region: str, created: float) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "resourceName": name,
        "resourceType": RESOURCE_TYPE,
        "createdAt": created,
        "location": _location(region),
        "isTerminal": True,
        "operationType": operation_type,
        "status": "Succeeded",
        "statusChangedAt": round(created + STATUS_CHANGE_DELAY, 3),
    }


def encode_page_token(last_name: str) -> str:
    return base64.urlsafe_b64encode((PAGE_CURSOR_PREFIX + last_name).encode()).decode("ascii")


def decode_page_token(token: str) -> str:
    try:
        text = base64.urlsafe_b64decode(token.encode("ascii")).decode("utf-8")
    except (binascii.Error, ValueError):
        text = ""
    if not text.startswith(PAGE_CURSOR_PREFIX):
        raise errors.invalid_input(
            f"Invalid value for parameter pageToken: {token[:100]!r} is not a page token"
        )
    return text[len(PAGE_CURSOR_PREFIX) :]


@dataclass(frozen=True, slots=True)
class OperationSpec:
    members: Mapping[str, Kind]
    required: tuple[str, ...]
    mutating: bool
    run: Callable[[KeyPairService, str, dict[str, Any]], Outcome]


OPERATIONS: dict[str, OperationSpec] = {
    "CreateKeyPair": OperationSpec(
        {"keyPairName": "string", "tags": "tags"},
        ("keyPairName",),
        True,
        KeyPairService.create_key_pair,
    ),
    "ImportKeyPair": OperationSpec(
        {"keyPairName": "string", "publicKeyBase64": "string"},
        ("keyPairName", "publicKeyBase64"),
        True,
        KeyPairService.import_key_pair,
    ),
    "GetKeyPair": OperationSpec(
        {"keyPairName": "string"}, ("keyPairName",), False, KeyPairService.get_key_pair
    ),
    "GetKeyPairs": OperationSpec(
        {"pageToken": "string", "includeDefaultKeyPair": "boolean"},
        (),
        False,
        KeyPairService.get_key_pairs,
    ),
    "DeleteKeyPair": OperationSpec(
        {"keyPairName": "string", "expectedFingerprint": "string"},
        ("keyPairName",),
        True,
        KeyPairService.delete_key_pair,
    ),
    "DownloadDefaultKeyPair": OperationSpec({}, (), True, KeyPairService.download_default_key_pair),
    "TagResource": OperationSpec(
        {"resourceName": "string", "resourceArn": "string", "tags": "tags"},
        ("resourceName", "tags"),
        True,
        KeyPairService.tag_resource,
    ),
    "UntagResource": OperationSpec(
        {"resourceName": "string", "resourceArn": "string", "tagKeys": "strings"},
        ("resourceName", "tagKeys"),
        True,
        KeyPairService.untag_resource,
    ),
}
