"""What the emulator stores: key pairs and instances, and their JSON form on disk.

Records are plain mutable dataclasses owned by the ``Store``; their ``tags``
are immutable maps, replaced and never mutated, so records may share one.
``encode_*`` / ``decode_*`` are the one place that knows the stored field
names, for the snapshot and the change log alike.

A record's ``wire`` is set only by editing the data file: fields that replace
the record's own in every answer that shows it (a null removes one). It
stands for a service answering outside its own model (a ``createdAt`` that is
no timestamp, tags that are no list), which the API itself would never
store, so that clients' strict decoding can be tested over real HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

TagMap = Mapping[str, str | None]
NO_TAGS: TagMap = MappingProxyType({})


def freeze_tags(tags: Mapping[str, str | None]) -> TagMap:
    """An immutable copy, so records may share one tag map safely."""
    return MappingProxyType(dict(tags)) if tags else NO_TAGS


@dataclass(slots=True)
class KeyPairRecord:
    """One stored key pair. ``tags`` is immutable: replace it, never mutate it.

    ``tags`` maps a key to its value, or to None for a key-only tag.
    ``public_key_base64`` and ``private_key`` are held for the default key
    pair only.
    """

    name: str
    resource_id: str
    created_at: float
    fingerprint: str
    tags: TagMap = field(default_factory=lambda: NO_TAGS)
    public_key_base64: str | None = None
    private_key: str | None = field(default=None, repr=False)
    wire: Mapping[str, Any] | None = None

    def arn(self, region: str, account_id: str) -> str:
        return f"arn:aws:lightsail:{region}:{account_id}:KeyPair/{self.resource_id}"


@dataclass(slots=True)
class InstanceRecord:
    """One stored instance: what it was launched with, and its tags."""

    name: str
    resource_id: str
    created_at: float
    availability_zone: str
    blueprint_id: str
    bundle_id: str
    ssh_key_name: str
    tags: TagMap = field(default_factory=lambda: NO_TAGS)
    ip_address_type: str = "dualstack"
    wire: Mapping[str, Any] | None = None

    def arn(self, region: str, account_id: str) -> str:
        return f"arn:aws:lightsail:{region}:{account_id}:Instance/{self.resource_id}"


def uuid4_text(raw: bytes) -> str:
    """A version-4 UUID from 16 random bytes; much faster than ``uuid.UUID`` in bulk."""
    h = raw.hex()
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:32]}"


def _check_tags(tags: Any, name: Any) -> TagMap:
    if not isinstance(tags, dict) or not all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in tags.items()
    ):
        raise ValueError(f"bad tags on {name!r}")
    return freeze_tags(tags)


def _check_wire(wire: Any, name: Any) -> Mapping[str, Any] | None:
    if wire is not None and not isinstance(wire, dict):
        raise ValueError(f"bad wire fields on {name!r}: not an object")
    return MappingProxyType(wire) if wire else None


def _with_wire(item: dict[str, Any], wire: Mapping[str, Any] | None) -> dict[str, Any]:
    if wire is not None:
        item["wire"] = dict(wire)
    return item


def _encode_shared(record: KeyPairRecord | InstanceRecord) -> dict[str, Any]:
    """The stored fields key pairs and instances share."""
    return {
        "name": record.name,
        "id": record.resource_id,
        "createdAt": record.created_at,
        "tags": dict(record.tags),
    }


def _decode_shared(item: dict[str, Any]) -> dict[str, Any]:
    """``_encode_shared``'s fields (and ``wire``) as record arguments."""
    name = item.get("name")
    return {
        "name": str(item["name"]),
        "resource_id": str(item["id"]),
        "created_at": float(item["createdAt"]),
        "tags": _check_tags(item.get("tags") or {}, name),
        "wire": _check_wire(item.get("wire"), name),
    }


def encode_key_pair(record: KeyPairRecord) -> dict[str, Any]:
    item = _encode_shared(record)
    item["fingerprint"] = record.fingerprint
    if record.public_key_base64 is not None:
        item["publicKeyBase64"] = record.public_key_base64
    if record.private_key is not None:
        item["privateKey"] = record.private_key
    return _with_wire(item, record.wire)


def decode_key_pair(item: dict[str, Any]) -> KeyPairRecord:
    return KeyPairRecord(
        **_decode_shared(item),
        fingerprint=str(item["fingerprint"]),
        public_key_base64=item.get("publicKeyBase64"),
        private_key=item.get("privateKey"),
    )


def encode_instance(record: InstanceRecord) -> dict[str, Any]:
    item = _encode_shared(record)
    item.update(
        availabilityZone=record.availability_zone,
        blueprintId=record.blueprint_id,
        bundleId=record.bundle_id,
        sshKeyName=record.ssh_key_name,
        ipAddressType=record.ip_address_type,
    )
    return _with_wire(item, record.wire)


def decode_instance(item: dict[str, Any]) -> InstanceRecord:
    return InstanceRecord(
        **_decode_shared(item),
        availability_zone=str(item["availabilityZone"]),
        blueprint_id=str(item["blueprintId"]),
        bundle_id=str(item["bundleId"]),
        ssh_key_name=str(item["sshKeyName"]),
        ip_address_type=str(item.get("ipAddressType", "dualstack")),
    )
