"""YAML scalars as Python values, exactly as a YAML 1.1 safe load reads them, and in words.

``Scalars.value`` resolves a scalar event's tag (``yes`` is true, ``1_000`` is
1000, ``~`` is null) and constructs it with PyYAML's safe constructors, for the
standard scalar tags only; anything else raises ``ScalarError`` with the
message to show. ``clip``, ``short_repr`` and ``type_name`` keep messages about
values short and readable whatever the input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import ScalarNode

MAX_MESSAGE_LENGTH = 300

_YAML = "tag:yaml.org,2002:"
STR_TAG = _YAML + "str"
MERGE_TAG = _YAML + "merge"
MAP_TAGS = frozenset({None, "!", _YAML + "map"})
SEQ_TAGS = frozenset({None, "!", _YAML + "seq"})
_CONSTRUCTORS: dict[str, Callable[[SafeConstructor, ScalarNode], Any]] = {
    _YAML + "null": SafeConstructor.construct_yaml_null,
    _YAML + "bool": SafeConstructor.construct_yaml_bool,
    _YAML + "int": SafeConstructor.construct_yaml_int,
    _YAML + "float": SafeConstructor.construct_yaml_float,
    _YAML + "timestamp": SafeConstructor.construct_yaml_timestamp,
    _YAML + "binary": SafeConstructor.construct_yaml_binary,
}
_CONSTRUCTOR = SafeConstructor()
# Plain scalars this short are resolved once per read and then looked up:
# tag values such as ``prod`` repeat on every key pair.
_CACHEABLE_LENGTH = 64
_MISSING: Any = object()


class ScalarError(ValueError):
    """A scalar a manifest cannot hold; the message says why and what to do."""


class Scalars:
    """Reads the scalars of one file, remembering short plain ones already resolved."""

    def __init__(self, resolve: Callable[..., str]) -> None:
        self.resolve = resolve
        self.cache: dict[str, Any] = {}

    def value(self, event: Any) -> Any:
        value: str = event.value
        tag = event.tag
        if tag is None or tag == "!":
            if not event.implicit[0]:
                return value
            cached = self.cache.get(value, _MISSING)
            if cached is not _MISSING:
                return cached
            tag = self.resolve(ScalarNode, value, event.implicit)
        if tag == STR_TAG:
            result: Any = value
        else:
            construct = _CONSTRUCTORS.get(tag)
            if construct is None:
                raise ScalarError(tag_message(tag, value, bool(event.implicit[0])))
            try:
                result = construct(_CONSTRUCTOR, ScalarNode(tag, value))
            except (yaml.YAMLError, ValueError, TypeError, OverflowError) as error:
                kind = tag.rsplit(":", 1)[-1]
                raise ScalarError(f"cannot read {short_repr(value)} as {kind}: {error}") from None
        if event.tag is None and len(value) <= _CACHEABLE_LENGTH:
            self.cache[value] = result
        return result


def tag_message(tag: str, value: str | None, implicit: bool) -> str:
    if tag == MERGE_TAG:
        return "'<<' is a merge key; quote it to use it as a value"
    if implicit and value is not None:
        shown = short_repr(value)
        return f"{shown} is read as YAML tag {tag!r}, which manifests do not accept; quote it"
    return f"the YAML tag {tag!r} is not allowed in manifests"


def clip(message: str) -> str:
    """Keep messages readable whatever the input."""
    if len(message) <= MAX_MESSAGE_LENGTH:
        return message
    return message[: MAX_MESSAGE_LENGTH - 3] + "..."


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters: values in messages may be megabytes long."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def type_name(value: Any) -> str:
    """What a YAML value is, in words: "a string", "an integer", "a date"..."""
    if value is None:
        return "null"
    for kind, name in _TYPE_NAMES:
        if isinstance(value, kind):
            return name
    return "a date" if hasattr(value, "isoformat") else type(value).__name__


_TYPE_NAMES: tuple[tuple[type, str], ...] = (
    (bool, "a boolean"),  # before int: bool is an int
    (int, "an integer"),
    (float, "a number"),
    (str, "a string"),
    (dict, "a mapping"),
    (list, "a list"),
    (bytes, "binary data"),
)
