"""Lightsail's answers, decoded strictly: every field the reconciler reads, checked once.

Answers come from outside (the service, a proxy, an emulator), so every item
of every answer the reconciler reads is checked here against the types and
shapes the API reference gives, before anything uses it: one decoder per
shape (key pair, tags, instance, operation, page), and no checks elsewhere.
A field that is not what the model says is a ``Malformed`` naming it by its
path in the answer (``keyPairs[3].createdAt``); ``lightsail`` turns that
into one ``LightsailError`` naming the operation and the region. So nothing
malformed reaches the journal or the state.

The decoders take JSON values: the client takes the members it reads out of
the body before botocore parses it (``lightsail.take_members``), because
botocore does not check the types of what it parses, and raises on some
shapes (a string where a list should be) without naming the field.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import botocore.utils

from reconciler.errors import LightsailError
from reconciler.model import MAX_NAME_LENGTH, Address, LiveInstance, LiveKeyPair

# The code of a LightsailError for an answer outside the API model.
MALFORMED = "MalformedResponse"
_CHECK = "check AWS_ENDPOINT_URL_LIGHTSAIL (or --endpoint-url) and any proxy in between"
MALFORMED_HINT = f"nothing from that answer was recorded; {_CHECK}"
# A create or import that answered malformed still took effect.
CREATED_HINT = (
    "the key pair was made: its private key is in the state, and what was malformed is not "
    f"(it was read back with GetKeyPair); {_CHECK}"
)
IMPORTED_HINT = f"the import took effect and is recorded without what was malformed; {_CHECK}"

# What a name read back may be: the API's pattern (\w[\w-]*\w) and the console's
# (which also allows '.'). Never '/', which would make REGION/NAME ambiguous, nor
# a control character.
_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_OPERATION_STRINGS = (
    "id",
    "resourceName",
    "resourceType",
    "operationType",
    "status",
    "errorCode",
    "errorDetails",
    "operationDetails",
)
_OPERATION_TIMES = ("createdAt", "statusChangedAt")
_FOREVER = float("inf")
_ACCOUNT = re.compile(r"[0-9]{12}")


class Malformed(Exception):
    """A field of an answer is not what the model says: ``where`` is its path in the answer."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where} {problem}")
        self.where = where
        self.problem = problem


def malformed(
    operation: str, place: str, error: Malformed, hint: str = MALFORMED_HINT
) -> LightsailError:
    """The one line a malformed answer is: ``GetKeyPairs in us-east-1: keyPairs[3].createdAt
    is not a timestamp``."""
    return LightsailError(f"{operation} in {place}: {error}", code=MALFORMED, hint=hint)


def answer(value: Any) -> Mapping[str, Any]:
    """An answer's body, which must be a JSON object."""
    if not isinstance(value, dict):
        raise Malformed("the answer", "is not a JSON object")
    return value


def member(data: Mapping[str, Any], name: str, at: str = "") -> Any:
    """``data[name]``, which must be there (JSON null counts as absent)."""
    value = data.get(name)
    if value is None:
        raise Malformed(_path(at, name), "is missing")
    return value


def _path(at: str, name: str) -> str:
    return f"{at}.{name}" if at else name


def _object(value: Any, at: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise Malformed(at, f"is {_kind(value)}, not an object")
    return value


def items(value: Any, at: str) -> list[Any]:
    """A list member of an answer (``keyPairs``, ``instances``)."""
    if not isinstance(value, list):
        raise Malformed(at, f"is {_kind(value)}, not a list")
    return value


def string(data: Mapping[str, Any], name: str, at: str, *, default: str = "") -> str:
    """An optional string member; ``default`` when absent."""
    value = data.get(name)
    if value is None:
        return default
    if not isinstance(value, str):
        raise Malformed(_path(at, name), f"is {_kind(value)}, not a string")
    return value


def page_token(data: Mapping[str, Any]) -> str | None:
    """``nextPageToken``: a non-empty string, or absent on the last page."""
    token = string(data, "nextPageToken", "")
    return token or None


def timestamp(value: Any, at: str) -> float:
    """Epoch seconds: a number as Lightsail sends it, or a date botocore parsed, or ISO text."""
    if isinstance(value, bool):
        raise Malformed(at, "is not a timestamp")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, datetime):
        seconds = round(value.timestamp(), 3)
    elif isinstance(value, str):
        try:
            seconds = float(value)
        except ValueError:
            try:
                seconds = round(botocore.utils.parse_timestamp(value).timestamp(), 3)
            except (ValueError, TypeError, OverflowError, OSError):
                raise Malformed(at, "is not a timestamp") from None
    else:
        raise Malformed(at, "is not a timestamp")
    if not math.isfinite(seconds) or seconds < 0:
        raise Malformed(at, "is not a timestamp")
    return seconds


def lenient_timestamp(value: Any) -> Any:
    """botocore's timestamp parser for our clients: epoch seconds when the value is a
    timestamp, else the value itself, for the decoders to name (botocore's own parser
    raises on it, naming nothing)."""
    try:
        return timestamp(value, "")
    except Malformed:
        return value


def key_pair_name(value: Any, at: str) -> str:
    """A key pair's (or an instance's) name as read back."""
    if value is None:
        raise Malformed(at, "is missing")
    if not isinstance(value, str):
        raise Malformed(at, f"is {_kind(value)}, not a name")
    if not value or len(value) > MAX_NAME_LENGTH or not _NAME.fullmatch(value):
        raise Malformed(at, f"{_clip(value)} is not a Lightsail name")
    return value


def tags(value: Any, at: str) -> dict[str, str | None]:
    """A tag list as a dict; keys and values are shared with equal ones (100,000 key pairs
    carry the same few team tags)."""
    if value is None:
        return {}
    if not isinstance(value, list):
        raise Malformed(at, f"is {_kind(value)}, not a list of tags")
    out: dict[str, str | None] = {}
    for index, tag in enumerate(value):
        if not isinstance(tag, dict):
            raise Malformed(f"{at}[{index}]", f"is {_kind(tag)}, not a tag")
        key, text = tag.get("key"), tag.get("value")
        if not isinstance(key, str) or not key:
            what = "is missing" if key is None else f"is {_kind(key)}, not a tag key"
            raise Malformed(f"{at}[{index}].key", what)
        if text is not None and not isinstance(text, str):
            raise Malformed(f"{at}[{index}].value", f"is {_kind(text)}, not a string")
        out[sys.intern(key)] = sys.intern(text) if text is not None and len(text) <= 64 else text
    return out


def location(value: Any, at: str) -> dict[str, str] | None:
    """``{availabilityZone, regionName}``, or None when absent."""
    if value is None:
        return None
    data = _object(value, at)
    return {
        name: string(data, name, at) for name in ("availabilityZone", "regionName") if name in data
    }


def key_pairs(values: list[Any], at: str, region: str, account: str = "") -> list[LiveKeyPair]:
    """A page's ``KeyPair`` items, each checked as ``key_pair`` checks one (``at[i]``)."""
    out: list[LiveKeyPair] = []
    for index, value in enumerate(values):
        live = _plain_key_pair(value, region, account)
        out.append(live if live is not None else key_pair(value, f"{at}[{index}]", region, account))
    return out


def _plain_key_pair(value: Any, region: str, account: str) -> LiveKeyPair | None:
    """The key pair ``value`` is when every field is as the model says, at once; None
    otherwise (``key_pair`` then says which field is not). A plan of 100,000 key pairs
    decodes each: this is the fast way through."""
    if type(value) is not dict:
        return None
    get = value.get
    name, arn, fingerprint = get("name"), get("arn", ""), get("fingerprint", "")
    support, created, listed = get("supportCode", ""), get("createdAt", 0.0), get("tags")
    if not (
        type(name) is str
        and type(arn) is str
        and type(fingerprint) is str
        and type(support) is str
        and (type(created) is float or type(created) is int)
        and 0 <= created < _FOREVER
        and len(name) <= MAX_NAME_LENGTH
        and _NAME.fullmatch(name)
    ):
        return None
    tags: dict[str, str | None] = {}
    if listed is not None:
        if type(listed) is not list:
            return None
        intern = sys.intern
        for tag in listed:
            if type(tag) is not dict:
                return None
            key, text = tag.get("key"), tag.get("value")
            if type(key) is not str or not key:
                return None
            if text is None:
                tags[intern(key)] = None
            elif type(text) is str:
                tags[intern(key)] = intern(text) if len(text) <= 64 else text
            else:
                return None
    return LiveKeyPair(
        Address(region, name, account), arn, fingerprint, float(created), tags, support
    )


def key_pair(value: Any, at: str, region: str, account: str = "") -> LiveKeyPair:
    """A ``KeyPair`` of GetKeyPair(s) or CreateKeyPair."""
    data = _object(value, at)
    created = data.get("createdAt")
    return LiveKeyPair(
        address=Address(region, key_pair_name(data.get("name"), _path(at, "name")), account),
        arn=string(data, "arn", at),
        fingerprint=string(data, "fingerprint", at),
        created_at=0.0 if created is None else timestamp(created, _path(at, "createdAt")),
        tags=tags(data.get("tags"), _path(at, "tags")),
        support_code=string(data, "supportCode", at),
    )


def instance(value: Any, at: str, region: str, account: str = "") -> LiveInstance:
    """An ``Instance`` of GetInstances: its name, state and the key pair it was launched with."""
    data = _object(value, at)
    key = data.get("sshKeyName")
    state = data.get("state")
    created = data.get("createdAt")
    return LiveInstance(
        region=region,
        name=key_pair_name(data.get("name"), _path(at, "name")),
        key_pair=(
            Address(region, key_pair_name(key, _path(at, "sshKeyName")), account)
            if key is not None
            else None
        ),
        created_at=0.0 if created is None else timestamp(created, _path(at, "createdAt")),
        state="" if state is None else string(_object(state, _path(at, "state")), "name", at),
    )


def operation(value: Any, at: str) -> dict[str, Any] | None:
    """An ``Operation`` object, as the state keeps it: its known members, checked."""
    if value is None:
        return None
    data = _object(value, at)
    out: dict[str, Any] = {
        name: string(data, name, at) for name in _OPERATION_STRINGS if name in data
    }
    for name in _OPERATION_TIMES:
        if data.get(name) is not None:
            out[name] = timestamp(data[name], _path(at, name))
    if data.get("isTerminal") is not None:
        if not isinstance(data["isTerminal"], bool):
            raise Malformed(
                _path(at, "isTerminal"), f"is {_kind(data['isTerminal'])}, not a boolean"
            )
        out["isTerminal"] = data["isTerminal"]
    if data.get("location") is not None:
        out["location"] = location(data["location"], _path(at, "location"))
    return out


@dataclass(frozen=True, slots=True)
class CreatedKeyPair:
    """What CreateKeyPair returned, decoded. ``private_key`` is secret.

    ``problem`` is set when a part of the answer is malformed: the key pair was
    still created, and its private key (which arrived) must still be kept, so
    the malformed parts are left out (a malformed key pair: ``key_pair`` None)
    rather than the answer refused; the caller reports ``problem`` once the key
    is durable.
    """

    key_pair: LiveKeyPair | None
    tags: Mapping[str, str | None] | None  # None when the answer carried none
    location: Mapping[str, str] | None
    resource_type: str
    public_key_base64: str
    private_key: str = field(repr=False)
    operation: Mapping[str, Any] | None
    problem: LightsailError | None = None


def created_key_pair(
    data: Mapping[str, Any], address: Address, place: str
) -> CreatedKeyPair | None:
    """A CreateKeyPair answer; None when it carries no private key to keep."""
    private_key = data.get("privateKeyBase64")
    if not isinstance(private_key, str) or not private_key:
        return None
    problems: list[Malformed] = []

    def kept(decode: Any, *args: Any) -> Any:
        try:
            return decode(*args)
        except Malformed as error:
            problems.append(error)
            return None

    raw = data.get("keyPair")
    live: LiveKeyPair | None = None
    if raw is None:
        problems.append(Malformed("keyPair", "is missing"))
    else:
        live = kept(key_pair, raw, "keyPair", address.region, address.account)
    fields: Mapping[str, Any] = raw if isinstance(raw, dict) and live is not None else {}
    if live is not None and live.address != address:
        problems.append(
            Malformed("keyPair.name", f"{live.address.name!r} is not the name asked for")
        )
        live = None
    where = kind = None
    if live is not None:  # nothing of a malformed key pair is recorded
        where = kept(location, fields.get("location"), "keyPair.location")
        kind = kept(string, fields, "resourceType", "keyPair")
    public = kept(string, data, "publicKeyBase64", "")
    done = kept(operation, data.get("operation"), "operation")
    problem = None
    if problems:
        problem = malformed(
            "CreateKeyPair",
            place,
            problems[0],
            hint=CREATED_HINT,
        )
    return CreatedKeyPair(
        key_pair=live,
        tags=live.tags if live is not None and fields.get("tags") is not None else None,
        location=where,
        resource_type=kind or "KeyPair",
        public_key_base64=public or "",
        private_key=private_key,
        operation=done,
        problem=problem,
    )


def account_number(data: Any) -> str:
    """GetCallerIdentity's ``Account``: a 12-digit account id."""
    value = member(answer(data), "Account")
    if not isinstance(value, str) or not _ACCOUNT.fullmatch(value):
        raise Malformed("Account", "is not a 12-digit account id")
    return value


def _kind(value: Any) -> str:
    """What a JSON value is, in words, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _clip(text: str, limit: int = 60) -> str:
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


@dataclass(frozen=True, slots=True)
class ImportedKeyPair:
    """What ImportKeyPair returned: its operation; ``problem`` as for ``CreatedKeyPair``
    (the import took effect; a malformed operation is left out and reported)."""

    operation: Mapping[str, Any] | None
    problem: LightsailError | None = None
