"""Request decoding and input validation, following the Lightsail service model.

Two layers, as the real service has them. A body that is not JSON, or a
member of the wrong JSON type, is a ``SerializationException``. A body that
decodes but breaks the model's rules (a required member missing, a name
outside the ``ResourceName`` pattern, a bad tag or ARN) is an
``InvalidInputException`` with ``code`` ``InvalidParameter`` and a message
naming the member and the value. Unknown members are ignored and JSON
``null`` counts as absent, as AWS JSON services do.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from reconciler.emulator.errors import invalid_input, serialization
from reconciler.model import name_problem, tag_problems

Kind = Literal["string", "boolean", "tags", "strings", "objects"]

# botocore's ResourceArn pattern, from the service model.
ARN_PATTERN = re.compile(
    r"^arn:(aws[^:]*):([a-zA-Z0-9-]+):([a-z0-9-]+):([0-9]+):([a-zA-Z]+)/([a-zA-Z0-9-]+)$"
)


@dataclass(frozen=True, slots=True)
class Arn:
    partition: str
    service: str
    region: str
    account: str
    resource_type: str
    resource_id: str


def decode_body(body: bytes) -> dict[str, Any]:
    """The request's JSON object; an empty body is an empty object."""
    if not body.strip():
        return {}
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise serialization("The request body is not valid JSON") from None
    if not isinstance(document, dict):
        raise serialization("The request body must be a JSON object")
    return document


def check_members(
    params: Mapping[str, Any], members: Mapping[str, Kind], required: tuple[str, ...]
) -> dict[str, Any]:
    """The known, non-null members of ``params``, each checked against its kind."""
    checked = {
        name: _check_kind(name, params[name], kind)
        for name, kind in members.items()
        if params.get(name) is not None
    }
    missing = [name for name in required if name not in checked]
    if missing:
        raise invalid_input(f"Missing required parameter: {', '.join(missing)}")
    return checked


def _check_kind(name: str, value: Any, kind: Kind) -> Any:
    if kind == "string" and isinstance(value, str):
        return value
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind == "strings" and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    if kind == "tags" and isinstance(value, list) and all(_is_tag(v) for v in value):
        return value
    if kind == "objects" and isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return value
    expected = {
        "string": "a string",
        "boolean": "a boolean",
        "strings": "a list of strings",
        "tags": "a list of {key, value} objects with string members",
        "objects": "a list of objects",
    }[kind]
    raise serialization(f"Invalid type for parameter {name}: expected {expected}")


def _is_tag(value: Any) -> bool:
    return isinstance(value, dict) and all(
        value.get(member) is None or isinstance(value[member], str) for member in ("key", "value")
    )


def check_name(member: str, name: str) -> str:
    problem = name_problem(name)
    if problem is not None:
        raise invalid_input(f"Invalid value for parameter {member}: {problem}")
    return name


def check_tags(member: str, items: list[dict[str, Any]]) -> dict[str, str | None]:
    """A request's tag list as a dict; a tag without ``value`` maps to None."""
    tags: dict[str, str | None] = {}
    for item in items:
        key = item.get("key")
        if key is None:
            raise invalid_input(f"Invalid value for parameter {member}: every tag needs a key")
        if key in tags:
            raise invalid_input(f"Invalid value for parameter {member}: duplicate tag key {key!r}")
        tags[key] = item.get("value")
    check_tag_rules(member, tags)
    return tags


def check_tag_rules(member: str, tags: Mapping[str, str | None]) -> None:
    problems = tag_problems(tags)
    if problems:
        raise invalid_input(f"Invalid value for parameter {member}: {'; '.join(problems)}")


def check_tag_keys(member: str, keys: list[str]) -> list[str]:
    for key in keys:
        if not key or key.lower().startswith("aws:"):
            raise invalid_input(
                f"Invalid value for parameter {member}: tag key {key!r} cannot be removed"
            )
        check_tag_rules(member, {key: None})  # the rules of a tag's key, its value aside
    return keys


def parse_arn(member: str, text: str) -> Arn:
    match = ARN_PATTERN.fullmatch(text)
    if match is None:
        raise invalid_input(f"Invalid value for parameter {member}: {text[:300]!r} is not an ARN")
    return Arn(*match.groups())
