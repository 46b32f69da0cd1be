"""Pieces every operation's response shares: times, locations, operation objects, page tokens."""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.emulator import errors

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


def location(region: str, availability_zone: str = "all") -> dict[str, str]:
    return {"availabilityZone": availability_zone, "regionName": region}


def operation(
    operation_type: str,
    name: str,
    region: str,
    created: float,
    *,
    resource_type: str = "KeyPair",
    availability_zone: str = "all",
) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "resourceName": name,
        "resourceType": resource_type,
        "createdAt": created,
        "location": location(region, availability_zone),
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


def tag_list(tags: Any) -> list[dict[str, str]]:
    """A record's tag map as the service lists tags; a key-only tag has no ``value``."""
    return [
        {"key": key} if value is None else {"key": key, "value": value}
        for key, value in tags.items()
    ]


def on_the_wire(body: dict[str, Any], wire: Mapping[str, Any] | None) -> dict[str, Any]:
    """``body`` with a record's ``wire`` fields in place of its own (a null removes one)."""
    if wire:
        for name, value in wire.items():
            if value is None:
                body.pop(name, None)
            else:
                body[name] = value
    return body
