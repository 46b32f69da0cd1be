"""SSM Parameter Store as a key store: one ``SecureString`` parameter per key pair.

``ssm:/path/{region}/{name}`` names where each key goes; the parameter lives
in the key pair's region, encrypted with ``kmsKeyId`` (else the account's
``alias/aws/ssm``), tagged with its fingerprint, region, name and lineage.
``describe`` uses DescribeParameters and ListTagsForResource only, so plans
and drift reports need no ``ssm:GetParameter``; ``describe_many`` checks up to
50 keys per DescribeParameters call (their names, and their fingerprint labels
as a tag filter), asking per key only about those that do not pass.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

from reconciler.aws import wire
from reconciler.aws.retry import Pacer
from reconciler.custody.base import LABEL_FINGERPRINT, KeyMetadata, expected_fingerprint
from reconciler.custody.bulk import Found, by_region, chunks, run_all
from reconciler.custody.remote import (
    NewKey,
    RemoteKeyStore,
    call,
    decoded,
    labels_from,
    secret_text,
)
from reconciler.model import Address, StateEntry

NAME = re.compile(r"/?[A-Za-z0-9_.\-/]{1,1000}")
# DescribeParameters takes at most 50 values per filter and returns at most 50 per page.
BATCH = 50


class SsmKeyStore(RemoteKeyStore):
    scheme = "ssm"
    noun = "SSM parameter"
    allowed = NAME
    service = "SSM"
    create_op, read_op = "PutParameter", "GetParameter"
    decodes = ("PutParameter", "GetParameter", "DescribeParameters", "ListTagsForResource")
    kind = "SSM parameter"
    taken = "ParameterAlreadyExists"
    missing = "ParameterNotFound"

    def _create(self, client: Any, key: NewKey) -> Any:
        request = self._request(key, value="Value", kms="KeyId")
        return client.put_parameter(**request, Type="SecureString", Overwrite=False)

    def _created(self, name: str, data: Any) -> tuple[str, str]:
        return name, _version(data)

    def _read(self, client: Any, location: str) -> Any:
        return client.get_parameter(Name=location, WithDecryption=True)

    def _key_in(self, data: Any) -> str:
        return secret_text(wire.member(data, "Parameter"), "Parameter", "Value")

    def _remove(self, client: Any, location: str) -> object:
        return client.delete_parameter(Name=location)

    def _describe(self, address: Address, location: str) -> KeyMetadata | None:
        client, pace = self._reach(address.region)
        what = f"checking the key of {address} in SSM parameter {location}"
        response = call(
            what,
            lambda: client.describe_parameters(
                ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [location]}]
            ),
            pace,
            service="SSM",
        )
        found = decoded("DescribeParameters", address.region, response, _parameters)
        if location not in found:
            return None
        return self._labelled(address, location, found[location])

    def describe_many(self, entries: Sequence[StateEntry], *, parallelism: int) -> Found:
        """``describe`` for many keys, 50 to a DescribeParameters call; in their order.

        One call per 50 keys finds those present under their names, labelled
        with a fingerprint expected in that call, and still at the version the
        state recorded; the rest (missing, relabelled, rewritten) are asked
        about by name, then by tags, as ``describe`` does.
        """
        work = [
            [entries[i] for i in chunk]
            for group in by_region(entries).values()
            for chunk in chunks(group, BATCH)
        ]
        positions = [i for group in by_region(entries).values() for i in group]
        found: Found = [None] * len(entries)
        described = (
            meta for part in run_all(self._describe_chunk, work, parallelism) for meta in part
        )
        for i, meta in zip(positions, described, strict=True):
            found[i] = meta
        return found

    def _describe_chunk(self, entries: Sequence[StateEntry]) -> Found:
        """Keys of one region, at most 50; their metadata in their order."""
        region = entries[0].address.region
        client, pace = self._reach(region)
        names = [self._where(e) for e in entries]
        expected = [expected_fingerprint(e) for e in entries]
        what = f"checking {len(entries)} stored key(s) in SSM ({region})"
        fingerprints = sorted({f for f in expected if f})
        labelled = (
            _versions(
                client,
                pace,
                what,
                [
                    {"Key": "Name", "Option": "Equals", "Values": sorted(set(names))},
                    {"Key": f"tag:{LABEL_FINGERPRINT}", "Option": "Equals", "Values": fingerprints},
                ],
                region,
            )
            if fingerprints
            else {}
        )
        found: Found = [None] * len(entries)
        rest: list[int] = []
        shared: dict[str, dict[str, str]] = {}  # one labels mapping per fingerprint
        for i, entry in enumerate(entries):
            name, fingerprint = names[i], expected[i]
            version = labelled.get(name)
            recorded = (entry.private_key_ref or {}).get("version")
            if version is not None and (not recorded or version == recorded):
                labels = shared.setdefault(fingerprint, {LABEL_FINGERPRINT: fingerprint})
                found[i] = KeyMetadata(name, version, fingerprint, labels)
            else:
                rest.append(i)
        if rest:
            asked = sorted({names[i] for i in rest})
            present = _versions(
                client, pace, what, [{"Key": "Name", "Option": "Equals", "Values": asked}], region
            )
            for i in rest:
                name = names[i]
                if name in present:
                    found[i] = self._labelled(entries[i].address, name, present[name])
        return found

    def _labelled(self, address: Address, name: str, version: str) -> KeyMetadata:
        client, pace = self._reach(address.region)
        tags = call(
            f"checking the key of {address} in SSM parameter {name}",
            lambda: client.list_tags_for_resource(ResourceType="Parameter", ResourceId=name),
            pace,
            service="SSM",
        )
        labels = decoded(
            "ListTagsForResource",
            address.region,
            tags,
            lambda data: labels_from(data.get("TagList"), "TagList"),
        )
        return KeyMetadata(name, version, labels.get(LABEL_FINGERPRINT), labels)


def _versions(
    client: Any, pace: Pacer, what: str, filters: list[dict[str, Any]], region: str
) -> dict[str, str]:
    """The parameters DescribeParameters finds with ``filters``: name to version, all pages."""
    out: dict[str, str] = {}
    request: dict[str, Any] = {"ParameterFilters": filters, "MaxResults": BATCH}
    while True:
        response = call(
            what, functools.partial(client.describe_parameters, **request), pace, service="SSM"
        )
        out.update(decoded("DescribeParameters", region, response, _parameters))
        token = decoded("DescribeParameters", region, response, _next_token)
        if token is None:
            return out
        request = {**request, "NextToken": token}


def _parameters(data: Any) -> dict[str, str]:
    """A DescribeParameters page's parameters: name to version."""
    out: dict[str, str] = {}
    for index, parameter in enumerate(wire.items(wire.member(data, "Parameters"), "Parameters")):
        at = f"Parameters[{index}]"
        if not isinstance(parameter, dict):
            raise wire.Malformed(at, "is not an object")
        name = parameter.get("Name")
        if not isinstance(name, str) or not name:
            raise wire.Malformed(f"{at}.Name", "is not a parameter name")
        out[name] = _version(parameter, at) if parameter.get("Version") is not None else ""
    return out


def _version(data: Any, at: str = "") -> str:
    """A parameter's ``Version``: a positive whole number."""
    value = wire.member(data, "Version", at)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise wire.Malformed(f"{at}.Version" if at else "Version", "is not a version number")
    return str(value)


def _next_token(data: Any) -> str | None:
    return wire.string(data, "NextToken", "") or None
