"""Read untrusted YAML into plain data, remembering where every node was.

Manifests arrive in pull requests, so reading one must never construct
arbitrary objects, expand aliases without bound, recurse once per nesting
level, or silently keep only the last of two equal mapping keys (the last
three ``yaml.safe_load`` does). ``yamlwalk`` walks the parser's event stream
with an explicit stack instead of using PyYAML's recursive composer and
constructor; this module reads files and runs it.
Scalars resolve exactly as in a YAML 1.1 safe load (``yes`` is true, ``1_000``
is 1000, ``~`` is null); the 1-based line and column of every value and
every mapping key is recorded by its JSON path, so later checks can point at
the offending node. Problems are returned, never raised.

Policy for hostile or surprising input, each reported as a Problem:
- anchors, aliases and merge keys (``<<``: one mapping or a list of them)
  work as in CI and compose files; aliases may add at most
  ``MAX_ALIAS_NODES`` nodes to a document, so an alias bomb stops the file
  with one problem at the alias that crossed the bound; an alias to an
  undefined anchor or to the node that holds it is a problem;
- nesting deeper than ``MAX_DEPTH`` (aliases expanded) stops reading the file;
- duplicate mapping keys name both places; the first value is kept;
- mapping keys must be strings (``on:`` and ``1:`` are not, in YAML 1.1);
- only the standard scalar tags and plain ``!!map`` / ``!!seq`` are accepted;
  ``!!python/object``, ``!!set`` and custom tags are not;
- files over ``MAX_FILE_BYTES``, non-UTF-8 bytes, and anything but a regular
  file (a FIFO is never waited on: ``regular.read_regular``) are refused
  before parsing; at most ``MAX_PROBLEMS_PER_FILE`` are reported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reconciler.errors import Problem
from reconciler.manifests.yamlscalar import MAX_MESSAGE_LENGTH, clip, short_repr, type_name
from reconciler.manifests.yamlwalk import (
    MAX_ALIAS_NODES,
    MAX_DEPTH,
    MAX_PROBLEMS_PER_FILE,
    AnchorRef,
    JsonPath,
    Position,
    Stop,
    Walker,
)
from reconciler.regular import NotRegularFile, read_regular

__all__ = [
    "MAX_ALIAS_NODES",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_MESSAGE_LENGTH",
    "MAX_PROBLEMS_PER_FILE",
    "Document",
    "JsonPath",
    "Position",
    "clip",
    "parse_documents",
    "read_text",
    "short_repr",
    "type_name",
]

MAX_FILE_BYTES = 4 * 1024 * 1024

# The C parser (libyaml) when present; both only produce events here.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class Document:
    """One YAML document as plain data, with the place of each of its nodes.

    ``values`` maps the JSON path of every node to where it starts; ``keys``
    maps the path of every mapping value to where its key starts. ``damaged``
    holds the paths of mappings and lists that lost an entry to a reported
    problem, so that nobody also calls that entry "missing". ``aliases`` maps
    the path of every node an alias (or a merge through one) produced to the
    anchor it names: nodes inside aliased content have no place of their own
    and report the alias, the place the value is used.
    """

    data: Any
    values: Mapping[JsonPath, Position]
    keys: Mapping[JsonPath, Position]
    damaged: frozenset[JsonPath] = frozenset()
    aliases: Mapping[JsonPath, AnchorRef] = field(default_factory=dict)

    def position(self, path: Sequence[str | int]) -> Position:
        """Where the node at ``path`` starts, or its nearest recorded ancestor."""
        p = tuple(path)
        while p and p not in self.values:
            p = p[:-1]
        return self.values.get(p, (1, 1))

    def key_position(self, path: Sequence[str | int]) -> Position:
        """Where the key of the mapping entry at ``path`` starts."""
        return self.keys.get(tuple(path)) or self.position(path)

    def alias_notes(self) -> dict[Position, str]:
        """For each place an alias was used, a note naming its anchor, for problems found there."""
        return {
            self.values[path]: f" (through *{name}, anchored at line {line} column {column})"
            for path, (name, (line, column)) in self.aliases.items()
            if path in self.values
        }


def read_text(path: Path, file: str) -> tuple[str | None, list[Problem]]:
    """The UTF-8 text of a manifest file, or the problem that prevents reading it."""
    try:
        data, size = read_regular(path, MAX_FILE_BYTES)
    except NotRegularFile as error:
        message = f"is {error.kind}, not a regular file; not read"
        return None, [Problem(file, 1, 1, message, "path")]
    except OSError as error:
        return None, [Problem(file, 1, 1, f"cannot read file: {error.strerror or error}", "path")]
    if size > MAX_FILE_BYTES:
        return None, [_too_big(file, size)]
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
    problems: list[Problem] = []
    loader = _Loader(text)
    walker = Walker(loader, file, problems)
    try:
        walker.run()
    except Stop:
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
    documents = [Document(b.data, b.values, b.keys, b.damaged, b.aliases) for b in walker.documents]
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
