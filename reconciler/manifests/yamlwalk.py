"""Build plain data from PyYAML's event stream, one small method per kind of event.

``yamlsafe`` owns the policy and the public API; this module is the walker it
runs. It keeps an explicit stack instead of recursing, so nesting costs no
Python frames, and it expands anchors, aliases and merge keys (``<<``) itself
rather than through PyYAML's composer, so that expansion is *counted* before
anything is built: every anchor knows its size (the nodes it stands for once
aliases are expanded) and its height, and an alias that would push the
document past ``MAX_ALIAS_NODES`` expanded nodes or ``MAX_DEPTH`` levels stops
the file with one problem at the alias. A "billion laughs" is refused after a
few dozen events, without allocating anything.

An alias shares the anchored Python object rather than copying it: nothing
downstream mutates parsed data, and sharing keeps memory flat. Positions are
recorded only for nodes written in the file; a node reached through an alias
reports the alias (its use site), and ``Document.aliases`` says which anchor
that alias names, so messages can mention both.

Merge keys follow YAML's merge rule: keys written in the mapping win over
merged ones, and an earlier merged mapping wins over a later one, silently;
a key written twice in one mapping is still a ``duplicate-key`` problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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

from reconciler.errors import Problem
from reconciler.manifests.yamlscalar import (
    MAP_TAGS,
    SEQ_TAGS,
    ScalarError,
    Scalars,
    clip,
    short_repr,
    tag_message,
    type_name,
)

MAX_DEPTH = 64
MAX_PROBLEMS_PER_FILE = 100
# Nodes that aliases may add to one document. Aliasing a tag set on every key
# pair of a large file stays far below; an alias bomb passes it within a few levels.
MAX_ALIAS_NODES = 100_000

JsonPath = tuple[str | int, ...]
Position = tuple[int, int]
AnchorRef = tuple[str, Position]  # anchor name, and where the anchor was written

_MAP, _SEQ, _SKIP, _ROOT = 0, 1, 2, 3
EXPECT_KEY: Any = object()  # a mapping frame waiting for its next key
DISCARD: Any = object()  # a node dropped after reporting why (the data is incomplete)
DUPLICATE: Any = object()  # the value of a repeated key, dropped (the first one is kept)
MERGE: Any = object()  # the key ``<<``: its value is merged into the mapping at its end


class Stop(Exception):
    """Reading this file cannot usefully continue."""


@dataclass(frozen=True, slots=True)
class Built:
    """One finished document: its data and where each of its nodes was written."""

    data: Any
    values: dict[JsonPath, Position]
    keys: dict[JsonPath, Position]
    damaged: frozenset[JsonPath]
    aliases: dict[JsonPath, AnchorRef]


@dataclass(slots=True)
class _Anchor:
    value: Any
    size: int  # nodes the value stands for, aliases expanded
    height: int  # collection levels below it (-1: a scalar)
    position: Position
    open: bool = False  # a collection still being read: an alias to it would be a cycle


class _Frame:
    """A collection being read (or skipped), and what its parent needs to know when it ends."""

    __slots__ = ("anchor", "key", "key_at", "kind", "merges", "path", "saved", "value")

    def __init__(self, kind: int, value: Any = None, path: JsonPath = ()) -> None:
        self.kind = kind
        self.value = value
        self.path = path
        self.key: Any = EXPECT_KEY
        self.key_at: Position = (0, 0)
        self.merges: list[tuple[Any, JsonPath, Position]] | None = None
        self.anchor: str | None = None
        # For an anchored frame: the node count and deepest level when it opened.
        self.saved = (0, 0)


def _at(event: Any) -> Position:
    mark = event.start_mark
    return mark.line + 1, mark.column + 1


class Walker:
    """Turns the events of one file into ``Built`` documents, reporting problems as it goes."""

    def __init__(self, loader: Any, file: str, problems: list[Problem]) -> None:
        self.loader = loader
        self.file = file
        self.problems = problems
        self.scalar_value = Scalars(loader.resolve).value
        self.documents: list[Built] = []
        self._new_document()

    def _new_document(self) -> None:
        self.values: dict[JsonPath, Position] = {}
        self.keys: dict[JsonPath, Position] = {}
        self.damaged: set[JsonPath] = set()
        self.aliases: dict[JsonPath, AnchorRef] = {}
        self.anchors: dict[str, _Anchor] = {}
        self.alias_nodes = 0
        # Nodes so far (aliases counted expanded), and the deepest collection level reached
        # since the innermost open anchor: together they give each anchor its size and height.
        self.nodes = 0
        self.deepest = 0
        self.stack: list[_Frame] = []

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> list[Built]:
        get_event = self.loader.get_event
        on_node = self._node
        while True:
            event = get_event()
            cls = event.__class__
            if cls is ScalarEvent or cls is MappingStartEvent or cls is SequenceStartEvent:
                on_node(event, cls)
            elif cls is MappingEndEvent or cls is SequenceEndEvent:
                self._end_collection()
            elif cls is AliasEvent:
                on_node(event, cls)
            elif cls is DocumentStartEvent:
                self._new_document()
                self.stack = [_Frame(_ROOT, [])]
            elif cls is DocumentEndEvent:
                self._end_document()
            elif cls is StreamEndEvent:
                return self.documents

    def report(self, event: Any, message: str, rule: str = "yaml") -> None:
        mark = event.start_mark
        self.report_at((mark.line + 1, mark.column + 1), message, rule)

    def report_at(self, position: Position, message: str, rule: str = "yaml") -> None:
        line, column = position
        self.problems.append(Problem(self.file, line, column, clip(message), rule))
        if len(self.problems) >= MAX_PROBLEMS_PER_FILE:
            message = f"more than {MAX_PROBLEMS_PER_FILE} problems; stopped reading this file"
            self.problems.append(Problem(self.file, line, column, message, rule))
            raise Stop

    # --- a node: scalar, alias or the start of a collection ---------------------------------

    def _node(self, event: Any, cls: type) -> None:
        stack = self.stack
        top = stack[-1]
        collection = cls is MappingStartEvent or cls is SequenceStartEvent
        if collection and len(stack) > MAX_DEPTH:
            self.report(
                event, f"nesting is deeper than {MAX_DEPTH} levels; stopped reading the file"
            )
            raise Stop
        if top.kind == _SKIP:
            if collection:
                stack.append(_Frame(_SKIP))
            return
        if top.kind == _MAP and top.key is EXPECT_KEY:
            self._key(top, event, cls, collection)
            return
        anchor = None
        if cls is ScalarEvent:
            try:
                value = self.scalar_value(event)
            except ScalarError as error:
                value = self._refused(event, error)
            self.nodes += 1
        elif cls is AliasEvent:
            anchor = self._alias(event)
            value = DISCARD if anchor is None else anchor.value
        else:
            value = self._collection_value(event, cls)
            self.nodes += 1
        path = self._place(top, value, event)
        if path is None:
            if collection:
                stack.append(_Frame(_SKIP))
            if cls is not AliasEvent and event.anchor is not None:
                self.anchors[event.anchor] = _Anchor(DISCARD, 1, -1, _at(event))
        elif collection:
            self._open(value, path, event)
        elif anchor is not None:
            self.aliases[path] = (event.anchor, anchor.position)
        elif event.anchor is not None:
            self.anchors[event.anchor] = _Anchor(value, 1, -1, _at(event))

    def _collection_value(self, event: Any, cls: type) -> Any:
        if event.tag not in (MAP_TAGS if cls is MappingStartEvent else SEQ_TAGS):
            self.report(event, tag_message(event.tag, None, False))
            return DISCARD
        return {} if cls is MappingStartEvent else []

    def _open(self, value: Any, path: JsonPath, event: Any) -> None:
        frame = _Frame(_MAP if isinstance(value, dict) else _SEQ, value, path)
        self.stack.append(frame)
        depth = len(self.stack)
        if event.anchor is not None:
            frame.anchor = event.anchor
            self.anchors[event.anchor] = _Anchor(value, 0, 0, _at(event), open=True)
            frame.saved = (self.nodes - 1, self.deepest)
            self.deepest = depth
        elif depth > self.deepest:
            self.deepest = depth

    def _place(self, top: _Frame, value: Any, event: Any) -> JsonPath | None:
        """Put a node's value into its parent; its path, or None if it was dropped."""
        if top.kind == _MAP:
            key = top.key
            top.key = EXPECT_KEY
            if key is DUPLICATE or key is DISCARD or value is DISCARD:
                if key is not DUPLICATE:
                    self.damaged.add(top.path)
                return None
            if key is MERGE:
                path = (*top.path, "<<")
                if top.merges is None:
                    top.merges = []
                top.merges.append((value, path, _at(event)))
            else:
                path = (*top.path, key)
                top.value[key] = value
                self.keys[path] = top.key_at
        elif value is DISCARD:
            if top.kind == _SEQ:
                self.damaged.add(top.path)
            return None
        elif top.kind == _SEQ:
            path = (*top.path, len(top.value))
            top.value.append(value)
        else:  # _ROOT
            path = ()
            top.value.append(value)
        mark = event.start_mark
        self.values[path] = (mark.line + 1, mark.column + 1)
        return path

    # --- keys -------------------------------------------------------------------------------

    def _key(self, top: _Frame, event: Any, cls: type, collection: bool) -> None:
        if collection:
            if self._collection_value(event, cls) is not DISCARD:
                self.report(event, "mapping keys must be plain strings, not collections")
            self.stack.append(_Frame(_SKIP))
            key = DISCARD
        elif cls is AliasEvent:
            anchor = self._alias(event)
            value = DISCARD if anchor is None else anchor.value
            key = self._accept_key(top, value, event)
        elif event.value == "<<" and event.tag is None and event.implicit[0]:
            key = self._merge_key(top, event)
        else:
            self.nodes += 1
            try:
                key = self._accept_key(top, self.scalar_value(event), event)
            except ScalarError as error:
                key = self._refused(event, error)
        if key is DISCARD:
            self.damaged.add(top.path)
        top.key = key

    def _merge_key(self, top: _Frame, event: Any) -> Any:
        if top.merges is not None:
            self.report(
                event,
                "duplicate merge key '<<': merge a list instead, <<: [*a, *b]",
                "duplicate-key",
            )
            return DUPLICATE
        top.merges = []
        return MERGE

    def _accept_key(self, frame: _Frame, key: Any, event: Any) -> Any:
        """The key a mapping frame stores its next value under; DISCARD or DUPLICATE if none."""
        if key is DISCARD:
            return DISCARD
        if not isinstance(key, str):
            shown = short_repr(event.value if event.__class__ is ScalarEvent else key)
            self.report(
                event, f"mapping key {shown} is read as {type_name(key)}, not a string; quote it"
            )
            return DISCARD
        if key in frame.value:
            line, column = self.keys.get((*frame.path, key), (0, 0))
            self.report(
                event,
                f"duplicate key {short_repr(key)}: first at line {line} column {column}; "
                "YAML would silently keep only the last",
                "duplicate-key",
            )
            return DUPLICATE
        mark = event.start_mark
        frame.key_at = (mark.line + 1, mark.column + 1)
        return key

    # --- refused scalars and aliases ------------------------------------------------------

    def _refused(self, event: Any, error: ScalarError) -> Any:
        """DISCARD, for a scalar a manifest cannot hold, after saying why."""
        self.report(event, str(error))
        return DISCARD

    def _alias(self, event: Any) -> _Anchor | None:
        """The anchor an alias names, counted against the bounds; None if unusable."""
        name = event.anchor
        anchor = self.anchors.get(name)
        if anchor is None:
            self.report(event, f"alias *{name} names no anchor above it; define &{name} first")
            return None
        if anchor.open:
            self.report(event, f"alias *{name} is inside the node &{name} it names (a cycle)")
            return None
        if anchor.value is DISCARD:
            return None  # why was reported at the anchor
        self.alias_nodes += anchor.size
        self.nodes += anchor.size
        if self.alias_nodes > MAX_ALIAS_NODES:
            self._refuse(event, anchor, f"aliases expand to more than {MAX_ALIAS_NODES} nodes")
        depth = len(self.stack) + 1 + anchor.height  # of its deepest collection, placed here
        if depth > MAX_DEPTH + 1:
            self._refuse(event, anchor, f"aliases nest deeper than {MAX_DEPTH} levels")
        if depth > self.deepest:
            self.deepest = depth
        return anchor

    def _refuse(self, event: Any, anchor: _Anchor, what: str) -> None:
        line, column = anchor.position
        self.report(
            event,
            f"{what} (*{event.anchor}, anchored at line {line} column {column}); "
            "refusing a possible alias bomb; stopped reading the file",
        )
        raise Stop

    # --- ends -------------------------------------------------------------------------------

    def _end_collection(self) -> None:
        frame = self.stack.pop()
        if frame.kind == _SKIP:
            return
        if frame.merges:
            self._merge(frame)
        if frame.anchor is not None:
            anchor = self.anchors[frame.anchor]
            nodes, deepest = frame.saved
            anchor.size = self.nodes - nodes
            anchor.height = self.deepest - (len(self.stack) + 1)
            anchor.open = False
            self.deepest = max(deepest, self.deepest)

    def _merge(self, frame: _Frame) -> None:
        """Add the entries of ``<<`` mappings the frame does not already have (YAML's rule)."""
        assert frame.merges is not None
        mapping: dict[str, Any] = frame.value
        for source, path, position in frame.merges:
            parts = [(source, path)]
            if isinstance(source, list):
                parts = [(item, (*path, i)) for i, item in enumerate(source)]
            for part, part_path in parts:
                if not isinstance(part, dict):
                    self.report_at(
                        position,
                        "a merge key '<<' takes a mapping or a list of mappings, "
                        f"not {type_name(part)}",
                    )
                    self.damaged.add(frame.path)
                    continue
                anchor = self.aliases.get(part_path)
                for key, value in part.items():
                    if key in mapping:
                        continue
                    mapping[key] = value
                    entry = (*frame.path, key)
                    self.values[entry] = self.keys[entry] = position
                    if anchor is not None:
                        self.aliases[entry] = anchor

    def _end_document(self) -> None:
        holder = self.stack[0].value
        if holder and holder[0] is not None:  # empty documents are skipped
            self.documents.append(
                Built(holder[0], self.values, self.keys, frozenset(self.damaged), self.aliases)
            )
        self.stack = []
