"""Read untrusted YAML into plain data, remembering where every node was.

Manifests arrive in pull requests, so reading one must never construct
arbitrary objects, expand aliases, recurse once per nesting level, grow without
bound, or silently keep only the last of two equal mapping keys (the last three
``yaml.safe_load`` does). This module walks the parser's event stream with an
explicit stack instead of using PyYAML's recursive composer and constructor.
Scalars resolve exactly as in a YAML 1.1 safe load (``yes`` is true, ``1_000``
is 1000, ``~`` is null); the 1-based line and column of every value and
every mapping key is recorded by its JSON path, so later checks can point at
the offending node. Problems are returned, never raised.

Policy for hostile or surprising input, each reported as a Problem:
- aliases (``*name``) are refused outright: manifests never need them, and
  refusing them makes "billion laughs" impossible rather than merely capped;
  anchors alone are harmless and ignored;
- nesting deeper than ``MAX_DEPTH`` stops reading the file;
- duplicate mapping keys name both places; the first value is kept;
- mapping keys must be strings (``on:`` and ``1:`` are not, in YAML 1.1);
- only the standard scalar tags and plain ``!!map`` / ``!!seq`` are accepted;
  ``!!python/object``, ``!!set``, merge keys (``<<``) and custom tags are not;
- files over ``MAX_FILE_BYTES``, non-regular files and non-UTF-8 bytes are
  refused before parsing; at most ``MAX_PROBLEMS_PER_FILE`` are reported.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import ScalarNode

from reconciler.errors import Problem

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64
MAX_PROBLEMS_PER_FILE = 100
MAX_MESSAGE_LENGTH = 300

JsonPath = tuple[str | int, ...]
Position = tuple[int, int]

# The C parser (libyaml) when present; both only produce events here.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_YAML = "tag:yaml.org,2002:"
_STR_TAG = _YAML + "str"
_MAP_TAGS = frozenset({None, "!", _YAML + "map"})
_SEQ_TAGS = frozenset({None, "!", _YAML + "seq"})
_SCALAR_CONSTRUCTORS: dict[str, Callable[[SafeConstructor, ScalarNode], Any]] = {
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

_MAP, _SEQ, _SKIP, _ROOT = 0, 1, 2, 3
_EXPECT_KEY: Any = object()  # a mapping frame waiting for its next key
_DISCARD: Any = object()  # a node dropped after reporting why (the data is incomplete)
_DUPLICATE: Any = object()  # the value of a repeated key, dropped (the first one is kept)


@dataclass(frozen=True, slots=True)
class Document:
    """One YAML document as plain data, with the place of each of its nodes.

    ``values`` maps the JSON path of every node to where it starts; ``keys``
    maps the path of every mapping value to where its key starts. ``damaged``
    holds the paths of mappings and lists that lost an entry to a reported
    problem, so that nobody also calls that entry "missing".
    """

    data: Any
    values: Mapping[JsonPath, Position]
    keys: Mapping[JsonPath, Position]
    damaged: frozenset[JsonPath] = frozenset()

    def position(self, path: Sequence[str | int]) -> Position:
        """Where the node at ``path`` starts, or its nearest recorded ancestor."""
        p = tuple(path)
        while p and p not in self.values:
            p = p[:-1]
        return self.values.get(p, (1, 1))

    def key_position(self, path: Sequence[str | int]) -> Position:
        """Where the key of the mapping entry at ``path`` starts."""
        return self.keys.get(tuple(path)) or self.position(path)


class _Stop(Exception):
    """Reading this file cannot usefully continue."""


def read_text(path: Path, file: str) -> tuple[str | None, list[Problem]]:
    """The UTF-8 text of a manifest file, or the problem that prevents reading it."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            return None, [Problem(file, 1, 1, "not a regular file", "path")]
        if info.st_size > MAX_FILE_BYTES:
            return None, [_too_big(file, info.st_size)]
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        return None, [Problem(file, 1, 1, f"cannot read file: {error.strerror or error}", "path")]
    if len(data) > MAX_FILE_BYTES:
        return None, [_too_big(file, len(data))]
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError as error:
        start = error.start
        line_start = data.rfind(b"\n", 0, start) + 1
        line = data.count(b"\n", 0, start) + 1
        column = len(data[line_start:start].decode("utf-8", "replace")) + 1
        message = f"file is not valid UTF-8 (byte 0x{data[start]:02x}); save it as UTF-8"
        return None, [Problem(file, line, column, message, "encoding")]


def _too_big(file: str, size: int) -> Problem:
    limit = MAX_FILE_BYTES // (1024 * 1024)
    message = f"file is {size} bytes; manifests are limited to {limit} MiB each"
    return Problem(file, 1, 1, message, "size")


def parse_documents(text: str, file: str) -> tuple[list[Document], list[Problem]]:
    """Every non-empty document in ``text``, and every problem met reading it.

    Documents completed before a syntax error are still returned.
    """
    documents: list[Document] = []
    problems: list[Problem] = []
    loader = _Loader(text)
    try:
        _walk(loader, file, documents, problems)
    except _Stop:
        pass
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problems.append(Problem(file, line, column, clip(_yaml_message(error)), "yaml"))
    except yaml.reader.ReaderError as error:
        line, column = _offset_position(text, _char_offset(text, error.position))
        code = (
            error.character if isinstance(error.character, int) else ord(error.character[:1] or "?")
        )
        message = f"character U+{code:04X} is not allowed in YAML ({error.reason})"
        problems.append(Problem(file, line, column, message, "yaml"))
    except yaml.YAMLError as error:
        problems.append(Problem(file, 1, 1, clip(f"invalid YAML: {error}"), "yaml"))
    except RecursionError:  # not expected (no recursion here), but never a traceback
        problems.append(Problem(file, 1, 1, "YAML nesting is too deep", "yaml"))
    finally:
        loader.dispose()
    return documents, problems


def _yaml_message(error: yaml.MarkedYAMLError) -> str:
    parts = [p for p in (error.context, error.problem) if p]
    return "invalid YAML: " + ("; ".join(parts) if parts else "syntax error")


def _char_offset(text: str, position: int) -> int:
    # libyaml reports the offset in UTF-8 bytes, PyYAML's reader in characters.
    if _Loader is yaml.SafeLoader:
        return position
    return len(text.encode("utf-8")[:position].decode("utf-8", "ignore"))


def _offset_position(text: str, offset: int) -> Position:
    line_start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - line_start + 1


def _walk(loader: Any, file: str, documents: list[Document], problems: list[Problem]) -> None:
    """Build each document from the event stream; one loop, no recursion."""
    get_event = loader.get_event
    resolve = loader.resolve
    cache: dict[str, Any] = {}

    def report(event: Any, message: str, rule: str = "yaml") -> None:
        mark = event.start_mark
        problems.append(Problem(file, mark.line + 1, mark.column + 1, clip(message), rule))
        if len(problems) >= MAX_PROBLEMS_PER_FILE:
            problems.append(
                Problem(
                    file,
                    mark.line + 1,
                    mark.column + 1,
                    f"more than {MAX_PROBLEMS_PER_FILE} problems; stopped reading this file",
                    rule,
                )
            )
            raise _Stop

    def scalar(event: Any) -> Any:
        """The Python value of a scalar event, or _DISCARD after reporting why not."""
        value: str = event.value
        tag = event.tag
        if tag is None or tag == "!":
            if not event.implicit[0]:
                return value
            cached = cache.get(value, _DISCARD)
            if cached is not _DISCARD:
                return cached
            tag = resolve(ScalarNode, value, event.implicit)
        if tag == _STR_TAG:
            result: Any = value
        else:
            construct = _SCALAR_CONSTRUCTORS.get(tag)
            if construct is None:
                report(event, _tag_message(tag, value, bool(event.implicit[0])))
                return _DISCARD
            try:
                result = construct(_CONSTRUCTOR, ScalarNode(tag, value))
            except (yaml.YAMLError, ValueError, TypeError, OverflowError) as error:
                report(
                    event, f"cannot read {short_repr(value)} as {tag.rsplit(':', 1)[-1]}: {error}"
                )
                return _DISCARD
        if event.tag is None and len(value) <= _CACHEABLE_LENGTH:
            cache[value] = result
        return result

    values: dict[JsonPath, Position] = {}
    keys: dict[JsonPath, Position] = {}
    damaged: set[JsonPath] = set()
    stack: list[list[Any]] = []
    alias_reported = False
    while True:
        event = get_event()
        cls = event.__class__
        is_scalar = cls is ScalarEvent
        if is_scalar or cls is MappingStartEvent or cls is SequenceStartEvent or cls is AliasEvent:
            top = stack[-1]
            kind = top[0]
            is_collection = not is_scalar and cls is not AliasEvent
            if is_collection and len(stack) > MAX_DEPTH:
                report(
                    event, f"nesting is deeper than {MAX_DEPTH} levels; stopped reading the file"
                )
                raise _Stop
            if kind == _SKIP:
                if is_collection:
                    stack.append([_SKIP])
                continue
            if is_scalar:
                value = scalar(event)
            elif cls is AliasEvent:
                value = _DISCARD
                if not alias_reported:  # one is enough to say it; a bomb has thousands
                    alias_reported = True
                    report(
                        event,
                        f"aliases (*{event.anchor}) are not allowed in manifests; "
                        "write the value out",
                    )
            elif event.tag not in (_MAP_TAGS if cls is MappingStartEvent else _SEQ_TAGS):
                report(event, _tag_message(event.tag, None, False))
                value = _DISCARD
            else:
                value = {} if cls is MappingStartEvent else []
            if kind == _MAP:
                key = top[3]
                if key is _EXPECT_KEY:  # this node is a key
                    if is_collection:
                        if value is not _DISCARD:
                            report(event, "mapping keys must be plain strings, not collections")
                        key = _DISCARD
                        stack.append([_SKIP])
                    else:
                        key = _accept_key(top, value, event, keys, report)
                    if key is _DISCARD:
                        damaged.add(top[2])
                    top[3] = key
                    continue
                top[3] = _EXPECT_KEY
                if key is _DUPLICATE or key is _DISCARD or value is _DISCARD:
                    if key is not _DUPLICATE:
                        damaged.add(top[2])
                    if is_collection:
                        stack.append([_SKIP])
                    continue
                path = top[2] + (key,)
                top[1][key] = value
                keys[path] = top[4]
            elif value is _DISCARD:
                if kind == _SEQ:
                    damaged.add(top[2])
                if is_collection:
                    stack.append([_SKIP])
                continue
            elif kind == _SEQ:
                path = top[2] + (len(top[1]),)
                top[1].append(value)
            else:  # _ROOT
                path = ()
                top[1].append(value)
            mark = event.start_mark
            values[path] = (mark.line + 1, mark.column + 1)
            if cls is MappingStartEvent:
                stack.append([_MAP, value, path, _EXPECT_KEY, None])
            elif cls is SequenceStartEvent:
                stack.append([_SEQ, value, path])
        elif cls is MappingEndEvent or cls is SequenceEndEvent:
            stack.pop()
        elif cls is DocumentStartEvent:
            values, keys, damaged = {}, {}, set()
            stack = [[_ROOT, []]]
            alias_reported = False
        elif cls is DocumentEndEvent:
            holder = stack[0][1]
            if holder and holder[0] is not None:  # empty documents are skipped
                documents.append(Document(holder[0], values, keys, frozenset(damaged)))
            stack = []
        elif cls is StreamEndEvent:
            return


def _accept_key(
    frame: list[Any],
    key: Any,
    event: Any,
    keys: dict[JsonPath, Position],
    report: Callable[..., None],
) -> Any:
    """The key a mapping frame stores its next value under; _DISCARD or _DUPLICATE if none."""
    if key is _DISCARD:
        return _DISCARD
    mark = event.start_mark
    if not isinstance(key, str):
        report(
            event,
            f"mapping key {short_repr(event.value)} is read as {type_name(key)}, "
            "not a string; quote it",
        )
        return _DISCARD
    if key in frame[1]:
        line, column = keys.get(frame[2] + (key,), (0, 0))
        report(
            event,
            f"duplicate key {short_repr(key)}: first at line {line} column {column}; "
            "YAML would silently keep only the last",
            "duplicate-key",
        )
        return _DUPLICATE
    frame[4] = (mark.line + 1, mark.column + 1)
    return key


def _tag_message(tag: str, value: str | None, implicit: bool) -> str:
    if tag == _YAML + "merge":
        return "merge keys ('<<') are not supported in manifests; write the entries out"
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
