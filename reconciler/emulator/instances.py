"""The instance operations key-pair safety needs: CreateInstances, GetInstance(s), DeleteInstance.

An instance records the key pair it was launched with (``sshKeyName``;
``LightsailDefaultKeyPair`` when none was named, which Lightsail then
creates if it is missing). It is ``running`` at once, and deleting or
replacing its key pair later does not change it. An unknown ``keyPairName``
is ``NotFoundException``, as the reference's emulator choices say. Names are
unique per region across key pairs and instances.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from reconciler.emulator import errors
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
from reconciler.emulator.shapes import check_name, check_tags
from reconciler.emulator.store import AccountStore
from reconciler.model import DEFAULT_KEY_PAIR_NAME

RESOURCE_TYPE = "Instance"
IP_ADDRESS_TYPES = ("dualstack", "ipv4", "ipv6")
# The login user of an instance, by the start of its blueprint id.
USERNAMES = {
    "ubuntu": "ubuntu",
    "debian": "admin",
    "amazon": "ec2-user",
    "centos": "centos",
    "almalinux": "ec2-user",
    "freebsd": "ec2-user",
    "windows": "Administrator",
}
RUNNING = {"code": 16, "name": "running"}


class InstanceOperations:
    """The instance half of one emulated account's API (mixed into its service)."""

    store: AccountStore
    account_id: str
    page_size: int

    def ensure_default_key_pair(self, region: str) -> tuple[KeyPairRecord, bool]:
        raise NotImplementedError

    def render_instance(self, region: str, record: InstanceRecord) -> dict[str, Any]:
        raw = bytes.fromhex(record.resource_id.replace("-", ""))
        ipv4 = record.ip_address_type != "ipv6"
        body: dict[str, Any] = {
            "name": record.name,
            "arn": record.arn(region, self.account_id),
            "supportCode": f"{self.account_id}/i-{raw[:9].hex()[:17]}",
            "createdAt": record.created_at,
            "location": location(region, record.availability_zone),
            "resourceType": RESOURCE_TYPE,
            "tags": tag_list(record.tags),
            "blueprintId": record.blueprint_id,
            "blueprintName": record.blueprint_id.split("_")[0].capitalize(),
            "bundleId": record.bundle_id,
            "addOns": [],
            "isStaticIp": False,
            "privateIpAddress": f"172.26.{raw[9]}.{raw[10] % 254 + 1}",
            "ipv6Addresses": [],
            "ipAddressType": record.ip_address_type,
            "hardware": {"cpuCount": 2, "disks": [], "ramSizeInGb": 0.5},
            "networking": {"monthlyTransfer": {"gbPerMonthAllocated": 1024}, "ports": []},
            "state": dict(RUNNING),
            "username": USERNAMES.get(record.blueprint_id.split("_")[0], "bitnami"),
            "sshKeyName": record.ssh_key_name,
            "metadataOptions": {
                "state": "applied",
                "httpTokens": "optional",
                "httpEndpoint": "enabled",
                "httpPutResponseHopLimit": 1,
                "httpProtocolIpv6": "disabled",
            },
        }
        if ipv4:
            body["publicIpAddress"] = f"198.51.100.{raw[11] % 254 + 1}"
        if record.ip_address_type != "ipv4":
            body["ipv6Addresses"] = [f"2600:1f18:{raw[12]:02x}{raw[13]:02x}::{raw[14]:x}"]
        return on_the_wire(body, record.wire)

    def create_instances(self, region: str, p: dict[str, Any]) -> Outcome:
        names = [check_name("instanceNames", name) for name in p["instanceNames"]]
        if not names:
            raise errors.invalid_input("Invalid value for parameter instanceNames: it is empty")
        duplicate = next((n for i, n in enumerate(names) if n in names[:i]), None)
        if duplicate is not None:
            raise errors.invalid_input(
                f"Invalid value for parameter instanceNames: {duplicate} is named twice"
            )
        zone = p["availabilityZone"]
        if not re.fullmatch(re.escape(region) + "[a-z]", zone):
            raise errors.invalid_input(
                f"Invalid value for parameter availabilityZone: {zone[:40]!r} is not an "
                f"availability zone of {region}"
            )
        for member in ("blueprintId", "bundleId"):
            if not p[member]:
                raise errors.invalid_input(f"Invalid value for parameter {member}: it is empty")
        address_type = p.get("ipAddressType", "dualstack")
        if address_type not in IP_ADDRESS_TYPES:
            raise errors.invalid_input(
                f"Invalid value for parameter ipAddressType: {address_type[:40]!r} is not one "
                f"of {', '.join(IP_ADDRESS_TYPES)}"
            )
        tags = freeze_tags(check_tags("tags", p.get("tags", [])))
        key_name = check_name("keyPairName", p.get("keyPairName", DEFAULT_KEY_PAIR_NAME))
        if key_name == DEFAULT_KEY_PAIR_NAME:
            # Lightsail makes the region's default key pair for an instance launched without one.
            self.ensure_default_key_pair(region)
        created = now()
        records = [
            InstanceRecord(
                name,
                str(uuid.uuid4()),
                created,
                zone,
                p["blueprintId"],
                p["bundleId"],
                key_name,
                tags,
                address_type,
            )
            for name in names
        ]
        with self.store.transaction():
            if self.store.get(region, key_name) is None:
                raise errors.not_found(key_name)
            taken = self.store.insert_instances(region, records)
            if taken:
                raise errors.name_exists(*taken)
        operations = [
            operation(
                "CreateInstance",
                name,
                region,
                created,
                resource_type=RESOURCE_TYPE,
                availability_zone=zone,
            )
            for name in names
        ]
        return Outcome({"operations": operations}, committed=True)

    def get_instance(self, region: str, p: dict[str, Any]) -> Outcome:
        name = check_name("instanceName", p["instanceName"])
        record = self.store.get_instance(region, name)
        if record is None:
            raise errors.not_found(name, RESOURCE_TYPE)
        return Outcome({"instance": self.render_instance(region, record)}, committed=False)

    def get_instances(self, region: str, p: dict[str, Any]) -> Outcome:
        after = decode_page_token(p["pageToken"]) if p.get("pageToken") else None
        records, more = self.store.instance_page(region, after, self.page_size)
        body: dict[str, Any] = {"instances": [self.render_instance(region, r) for r in records]}
        if more and records:
            body["nextPageToken"] = encode_page_token(records[-1].name)
        return Outcome(body, committed=False)

    def delete_instance(self, region: str, p: dict[str, Any]) -> Outcome:
        name = check_name("instanceName", p["instanceName"])
        record = self.store.remove_instance(region, name)
        if record is None:
            raise errors.not_found(name, RESOURCE_TYPE)
        deleted = operation(
            "DeleteInstance",
            name,
            region,
            now(),
            resource_type=RESOURCE_TYPE,
            availability_zone=record.availability_zone,
        )
        return Outcome({"operations": [deleted]}, committed=True)
