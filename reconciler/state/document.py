"""The state document: what the tool created or adopted, as versioned JSON.

Reading is strict: a value of the wrong shape is a ``StateError`` naming the
file and the field, never a traceback, and never quoting a value (it could be
key material). Older format versions are brought up to date one step at a time
by ``_UPGRADES``; a newer version than this code knows is refused.
"""

from __future__ import annotations

import codecs
import json
import re
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast, get_args

from reconciler.errors import StateError
from reconciler.model import (
    Address,
    Generation,
    JournalOp,
    OpenIntent,
    Origin,
    PendingOp,
    StateEntry,
)

FORMAT_VERSION = 4

ORIGINS: tuple[str, ...] = get_args(Origin)
PENDING_OPERATIONS: tuple[PendingOp, ...] = (JournalOp.CREATE, JournalOp.GENERATE)

# _UPGRADES[n] turns a version-n document (parsed JSON) into a version n+1 one.
# When the format changes: bump FORMAT_VERSION, add the step, never edit an old one.


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Version 2 may record ``preventDestroy`` per entry; version 1 entries had none.

    Bumped so that a reconciler that does not know the field refuses the state
    rather than rewriting it without the protection.
    """
    return data


def _v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
    """Version 3 adds key stores: ``keys`` (the store in use) and ``privateKeyRef``
    on entries. A version-2 state kept every key in itself: the ``state`` store."""
    return {**data, "keys": {"store": "state"}}


def _with_accounts(data: dict[str, Any]) -> dict[str, Any]:
    """The next version may record the ``account`` alias of entries and open intents
    (when the project declares several accounts); older entries name none.

    Entries naming no account keep meaning what they did: the one account the
    state was written for. A run with several accounts places each of them by
    the account id in its ARN (``workflow.place_in_accounts``). Bumped so that
    a reconciler that does not know the field refuses the state rather than
    merging key pairs of different accounts.
    """
    return data


_UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    1: _v1_to_v2,
    2: _v2_to_v3,
    3: _with_accounts,
}


class FormatError(ValueError):
    """A JSON value lacks the shape the format requires.

    The message names the field and what was expected, never the value.
    """


@dataclass(eq=True)
class StateDocument:
    """The whole state: format version, lineage, serial, entries and pending creates.

    ``encryption`` names who private keys are sealed for (``{"type": "kms", "keyId": ...}``
    or ``{"type": "age", "recipient": ...}``); empty means they are kept in clear.
    ``keys`` names the key store new private keys go to (``{"store": "ssm:/p/{region}/{name}",
    "kmsKeyId": ...}``); empty means the state itself.
    """

    version: int
    lineage: str
    serial: int
    entries: dict[Address, StateEntry] = field(default_factory=dict)
    pending: dict[Address, OpenIntent] = field(default_factory=dict)
    encryption: list[dict[str, str]] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)
    # Read without private keys (for plans on large states); never written back.
    redacted: bool = field(default=False, compare=False)
    # Journal runs already folded into this document, each with the last object
    # number folded: a write that lands late (after its run was folded and its
    # objects removed) is recognised and not replayed again. Kept for S3.
    folded: dict[str, int] = field(default_factory=dict, compare=False)

    def __repr__(self) -> str:
        return (
            f"StateDocument(version={self.version}, lineage={self.lineage!r}, "
            f"serial={self.serial}, entries={len(self.entries)}, pending={len(self.pending)})"
        )

    @classmethod
    def new(cls) -> StateDocument:
        """An empty document with a fresh lineage; serial 0 means never written."""
        return cls(version=FORMAT_VERSION, lineage=str(uuid.uuid4()), serial=0)

    def copy(self) -> StateDocument:
        """A copy whose dictionaries may be changed without touching this one."""
        return StateDocument(
            self.version,
            self.lineage,
            self.serial,
            dict(self.entries),
            dict(self.pending),
            [dict(item) for item in self.encryption],
            dict(self.keys),
            self.redacted,
            dict(self.folded),
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "version": self.version,
            "lineage": self.lineage,
            "serial": self.serial,
        }
        if self.encryption:
            data["encryption"] = [dict(item) for item in self.encryption]
        if self.keys:
            data["keys"] = dict(self.keys)
        if self.folded:
            data["journalFolded"] = dict(sorted(self.folded.items()))
        data["keyPairs"] = [entry_to_json(self.entries[a]) for a in sorted(self.entries)]
        data["pending"] = [pending_to_json(self.pending[a]) for a in sorted(self.pending)]
        return data

    @classmethod
    def from_json(
        cls,
        data: Mapping[str, Any],
        *,
        source: str,
        backup: str | None = None,
        consume: bool = False,
    ) -> StateDocument:
        """Parse (and upgrade) a document; ``source`` names it (``backup`` its previous
        version) in error messages. With ``consume`` the caller hands ``data`` over:
        each key pair is dropped from it once parsed, so both forms are never held whole."""
        try:
            return _document(_upgraded(data, source), consume=consume)
        except FormatError as exc:
            raise StateError(f"state {source} is malformed: {exc}", hint=_repair(backup)) from None


def refuse_redacted(doc: StateDocument, location: str) -> None:
    """A document read without its private keys must never replace the state."""
    if doc.redacted:
        raise StateError(f"refusing to write {location} from a copy read without private keys")


def decode(data: bytes, *, source: str) -> str:
    """The text of a state file's bytes."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StateError(f"state {source} is not UTF-8 text (byte {exc.start})") from None


# What a document read without secrets also leaves out of each key pair entry:
# records of how it was made, which no plan or drift report looks at.
_RECORDS = ("operation", "publicKeyBase64", "supportCode", "location")


def _without_secrets(obj: dict[str, Any]) -> dict[str, Any]:
    """Drop private keys (and an entry's records) as each object is parsed, before the
    next is read."""
    obj.pop("privateKey", None)
    obj.pop("privateKeySealed", None)
    if "origin" in obj and "arn" in obj:
        for key in _RECORDS:
            obj.pop(key, None)
    return obj


def _repair(backup: str | None) -> str:
    if backup is None:
        return "fix it by hand"
    return f"fix it by hand, or restore the previous version, kept as {backup}"


def loads(
    data: bytes | str, *, source: str, secrets: bool = True, backup: str | None = None
) -> StateDocument:
    """Parse the bytes (or decoded text) of a state file.

    With ``secrets=False`` private keys are dropped while parsing, so a plan
    over 100,000 key pairs never holds them all; such a document is marked
    ``redacted`` and backends refuse to write it.
    """
    if isinstance(data, bytes):
        data = decode(data, source=source)
    try:
        parsed = json.loads(data, object_hook=None if secrets else _without_secrets)
    except json.JSONDecodeError as exc:
        raise StateError(
            f"state {source} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            hint=_repair(backup),
        ) from None
    if not isinstance(parsed, dict):
        raise StateError(f"state {source} is malformed: expected a JSON object at the top level")
    doc = StateDocument.from_json(parsed, source=source, backup=backup, consume=True)
    doc.redacted = not secrets
    return doc


def load_file(
    file: BinaryIO, *, source: str, secrets: bool = True, backup: str | None = None
) -> StateDocument | None:
    """``loads`` of an open state file, read in pieces: the text is never held whole.

    Each key pair entry is parsed as its piece arrives (private keys dropped
    at once with ``secrets=False``), so a state of 100,000 key pairs costs its
    parsed entries, not its text besides them. None when the file is not a
    plain JSON object of the expected shape: read it whole with ``loads``
    then, for the same result or the same error message.
    """
    try:
        parsed = _Pieces(file, secrets).document()
    except (_NotInPieces, json.JSONDecodeError, UnicodeDecodeError):
        return None
    doc = StateDocument.from_json(parsed, source=source, backup=backup, consume=True)
    doc.redacted = not secrets
    return doc


def _shared(obj: dict[str, Any]) -> dict[str, Any]:
    """A key pair entry whose repeated values are shared with every equal one.

    ``json.loads`` shares the keys within one call; entries parsed one by one
    would each hold their own copies of the keys of the dictionaries an entry
    keeps (tags, key reference), and repeated values (regions, tags) are
    copies either way. Other objects are left as they are.
    """
    if "origin" in obj and "arn" in obj:
        for key in ("region", "origin", "resourceType"):
            obj[key] = _short(obj.get(key))
        for key in ("tags", "privateKeyRef"):
            inner = obj.get(key)
            if isinstance(inner, dict):
                obj[key] = {sys.intern(k): _short(v) for k, v in inner.items()}
    return obj


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) <= _SHARED_TEXT:
        return sys.intern(value)
    return value


def _shared_without_secrets(obj: dict[str, Any]) -> dict[str, Any]:
    return _shared(_without_secrets(obj))


_SHARED_TEXT = 64


class _NotInPieces(Exception):
    """The text is not a plain JSON object the piecewise reader follows."""


_SPACE = re.compile(r"[ \t\n\r]*")
_PIECE = 1 << 20


class _Pieces:
    """A JSON object read from a file a piece at a time: its values whole, except the
    ``keyPairs`` list, whose items are parsed one by one."""

    def __init__(self, file: BinaryIO, secrets: bool) -> None:
        self._file = file
        self._text = codecs.getincrementaldecoder("utf-8")()
        self._decoder = json.JSONDecoder(
            object_hook=_shared if secrets else _shared_without_secrets
        )
        self._buffer = ""
        self._pos = 0
        self._eof = False

    def document(self) -> dict[str, Any]:
        self._expect("{")
        out: dict[str, Any] = {}
        if self._peek() == "}":
            self._pos += 1
        else:
            while True:
                key = self._value()
                if not isinstance(key, str):
                    raise _NotInPieces
                self._expect(":")
                if key == "keyPairs" and self._peek() == "[":
                    out[key] = self._items()
                else:
                    out[key] = self._value()
                if self._next() == "}":
                    break
        if self._peek() != "":
            raise _NotInPieces  # extra data after the object
        return out

    def _items(self) -> list[Any]:
        self._expect("[")
        items: list[Any] = []
        if self._peek() == "]":
            self._pos += 1
            return items
        while True:
            items.append(self._value())
            if self._next() == "]":
                return items

    def _next(self) -> str:
        """The separator after a value: ``,`` or the closing bracket."""
        char = self._peek()
        self._pos += 1
        if char not in (",", "}", "]"):
            raise _NotInPieces
        return char

    def _more(self) -> bool:
        if self._eof:
            return False
        data = self._file.read(_PIECE)
        if self._pos:
            self._buffer, self._pos = self._buffer[self._pos :], 0
        self._eof = not data
        self._buffer += self._text.decode(data, final=self._eof)
        return True

    def _peek(self) -> str:
        while True:
            match = _SPACE.match(self._buffer, self._pos)
            self._pos = match.end() if match else self._pos
            if self._pos < len(self._buffer) or not self._more():
                return self._buffer[self._pos : self._pos + 1]

    def _expect(self, char: str) -> None:
        if self._peek() != char:
            raise _NotInPieces
        self._pos += 1

    def _value(self) -> Any:
        self._peek()
        while True:
            try:
                value, end = self._decoder.raw_decode(self._buffer, self._pos)
            except json.JSONDecodeError:
                if not self._more():
                    raise
                continue
            # A value that ends the text read so far may go on (a number) in the next piece.
            if end < len(self._buffer) or not self._more():
                self._pos = end
                return value


def dumps(doc: StateDocument) -> bytes:
    """The bytes of a state file: indented, stable, ASCII."""
    return (json.dumps(doc.to_json(), indent=2) + "\n").encode("ascii")


def entry_to_json(entry: StateEntry) -> dict[str, Any]:
    data: dict[str, Any] = {
        **address_to_json(entry.address),
        "origin": entry.origin,
        "arn": entry.arn,
        "fingerprint": entry.fingerprint,
        "createdAt": entry.created_at,
        "tags": {k: entry.tags[k] for k in sorted(entry.tags)},
        "publicKeyBase64": entry.public_key_base64,
    }
    data.update(_private_key_json(entry.private_key, entry.private_key_sealed))
    if entry.private_key_ref is not None:
        data["privateKeyRef"] = dict(entry.private_key_ref)
    data.update(
        {
            "supportCode": entry.support_code,
            "location": None if entry.location is None else dict(entry.location),
            "resourceType": entry.resource_type,
            "operation": None if entry.operation is None else dict(entry.operation),
            "importedPublicKey": entry.imported_public_key,
        }
    )
    if entry.prevent_destroy:
        data["preventDestroy"] = True
    if entry.generations:
        data["generations"] = [
            {**entry_to_json(g.entry), "retiredAt": g.retired_at} for g in entry.generations
        ]
    return data


def entry_from_json(data: Mapping[str, Any]) -> StateEntry:
    try:
        return parse_entry(data, "key pair entry")
    except FormatError as exc:
        raise StateError(f"malformed key pair entry: {exc}") from None


def pending_to_json(pending: OpenIntent) -> dict[str, Any]:
    data: dict[str, Any] = {
        **address_to_json(pending.address),
        "intentId": pending.intent_id,
        "startedAt": pending.started_at,
        "operation": pending.operation.value,
    }
    data.update(_private_key_json(pending.private_key, pending.private_key_sealed))
    if pending.public_key is not None:
        data["publicKey"] = pending.public_key
    return data


def _private_key_json(private_key: str | None, sealed: Mapping[str, Any] | None) -> dict[str, Any]:
    """The members holding a private key, in the clear or sealed: those that are set."""
    data: dict[str, Any] = {}
    if private_key is not None:
        data["privateKey"] = private_key
    if sealed is not None:
        data["privateKeySealed"] = dict(sealed)
    return data


def parse_entry(data: object, where: str) -> StateEntry:
    obj, address, where = _record(data, where)
    return StateEntry(
        address=address,
        origin=cast(Origin, _one_of(obj, "origin", ORIGINS, where)),
        arn=text_field(obj, "arn", where),
        fingerprint=text_field(obj, "fingerprint", where),
        created_at=number_field(obj, "createdAt", where),
        tags=_tags(obj, where),
        public_key_base64=optional_text_field(obj, "publicKeyBase64", where),
        private_key=optional_text_field(obj, "privateKey", where),
        private_key_sealed=optional_object_field(obj, "privateKeySealed", where),
        support_code=optional_text_field(obj, "supportCode", where) or "",
        location=optional_object_field(obj, "location", where),
        resource_type=optional_text_field(obj, "resourceType", where) or "KeyPair",
        operation=optional_object_field(obj, "operation", where),
        imported_public_key=optional_text_field(obj, "importedPublicKey", where),
        prevent_destroy=_optional_bool(obj, "preventDestroy", where),
        private_key_ref=_strings(obj, "privateKeyRef", where),
        generations=_generations(obj, where),
    )


def _generations(obj: Mapping[str, Any], where: str) -> tuple[Generation, ...]:
    items = obj.get("generations")
    if items is None:
        return ()
    if not isinstance(items, list):
        raise FormatError(f"{where}: 'generations' must be a list")
    out: list[Generation] = []
    for i, item in enumerate(items):
        at = f"{where} generation {i + 1}"
        entry = parse_entry(item, at)
        out.append(Generation(entry, number_field(_object(item, at), "retiredAt", at)))
    return tuple(out)


def _optional_bool(obj: Mapping[str, Any], key: str, where: str) -> bool:
    value = obj.get(key, False)
    if not isinstance(value, bool):
        raise FormatError(f"{where}: '{key}' must be true or false")
    return value


def parse_pending(data: object, where: str) -> OpenIntent:
    obj, address, where = _record(data, where)
    operation = _pending_operation(text_field(obj, "operation", where), where)
    return OpenIntent(
        address=address,
        intent_id=text_field(obj, "intentId", where),
        started_at=number_field(obj, "startedAt", where),
        operation=operation,
        private_key=optional_text_field(obj, "privateKey", where),
        public_key=optional_text_field(obj, "publicKey", where),
        private_key_sealed=optional_object_field(obj, "privateKeySealed", where),
    )


def _pending_operation(text: str, where: str) -> PendingOp:
    for operation in PENDING_OPERATIONS:
        if text == operation.value:
            return operation
    raise FormatError(f"{where}: operation must be one of {', '.join(PENDING_OPERATIONS)}")


def address_to_json(address: Address) -> dict[str, str]:
    """An address as JSON members: ``account`` only when it names one."""
    data = {"region": address.region, "name": address.name}
    if address.account:
        data = {"account": address.account, **data}
    return data


def _record(data: object, where: str) -> tuple[Mapping[str, Any], Address, str]:
    """A key pair's JSON object, its address, and ``where`` with the address, for messages."""
    obj = _object(data, where)
    address = parse_address(obj, where)
    return obj, address, f"{where} ({address})"


def _one_of(obj: Mapping[str, Any], key: str, choices: Sequence[str], where: str) -> str:
    value = text_field(obj, key, where)
    if value not in choices:
        raise FormatError(f"{where}: {key} must be one of {', '.join(choices)}")
    return value


def parse_address(obj: Mapping[str, Any], where: str) -> Address:
    account = optional_text_field(obj, "account", where) or ""
    return Address(text_field(obj, "region", where), text_field(obj, "name", where), account)


def _upgraded(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise FormatError("'version' must be a positive integer")
    if version > FORMAT_VERSION:
        raise StateError(
            f"state {source} has format version {version}, but this reconciler reads "
            f"versions up to {FORMAT_VERSION}",
            hint="a newer reconciler wrote it: upgrade lightsail-reconciler to use this state",
        )
    upgraded = dict(data)
    while version < FORMAT_VERSION:
        upgraded = _UPGRADES[version](upgraded)
        version += 1
        upgraded["version"] = version
    return upgraded


def _document(data: Mapping[str, Any], *, consume: bool = False) -> StateDocument:
    lineage = text_field(data, "lineage", "document")
    serial = _int(data, "serial", "document")
    if serial < 0:
        raise FormatError("'serial' must not be negative")
    entries: dict[Address, StateEntry] = {}
    items = _list(data, "keyPairs")
    for i, item in enumerate(items):
        entry = parse_entry(item, f"keyPairs[{i}]")
        if consume:
            items[i] = None
        if entry.address in entries:
            raise FormatError(f"keyPairs[{i}]: key pair {entry.address} appears twice")
        entries[entry.address] = entry
    pending: dict[Address, OpenIntent] = {}
    for i, item in enumerate(_list(data, "pending")):
        create = parse_pending(item, f"pending[{i}]")
        if create.address in pending:
            raise FormatError(f"pending[{i}]: key pair {create.address} appears twice")
        pending[create.address] = create
    encryption = [_encryption_item(item, i) for i, item in enumerate(_list(data, "encryption"))]
    keys = _strings(data, "keys", "document") or {}
    folded = data.get("journalFolded", {})
    if not isinstance(folded, Mapping) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in folded.values()
    ):
        raise FormatError("'journalFolded' must map journal runs to object numbers")
    return StateDocument(
        FORMAT_VERSION, lineage, serial, entries, pending, encryption, keys, folded=dict(folded)
    )


def _strings(obj: Mapping[str, Any], key: str, where: str) -> dict[str, str] | None:
    value = optional_object_field(obj, key, where)
    if value is None:
        return None
    if not all(isinstance(item, str) for item in value.values()):
        raise FormatError(f"{where}: '{key}' values must be strings")
    return {str(k): v for k, v in value.items()}


def _encryption_item(data: object, index: int) -> dict[str, str]:
    obj = _object(data, f"encryption[{index}]")
    if not all(isinstance(value, str) for value in obj.values()):
        raise FormatError(f"encryption[{index}]: values must be strings")
    text_field(obj, "type", f"encryption[{index}]")
    return {str(key): value for key, value in obj.items()}


def _list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise FormatError(f"'{key}' must be a list")
    return value


def _object(data: object, where: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise FormatError(f"{where}: expected a JSON object")
    return data


def text_field(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise FormatError(f"{where}: '{key}' must be a string")
    return value


def optional_text_field(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise FormatError(f"{where}: '{key}' must be a string or null")
    return value


def _int(obj: Mapping[str, Any], key: str, where: str) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise FormatError(f"{where}: '{key}' must be an integer")
    return value


def number_field(obj: Mapping[str, Any], key: str, where: str) -> float:
    value = obj.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise FormatError(f"{where}: '{key}' must be a number")
    return float(value)


def optional_object_field(obj: Mapping[str, Any], key: str, where: str) -> dict[str, Any] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise FormatError(f"{where}: '{key}' must be an object or null")
    return dict(value)


def _tags(obj: Mapping[str, Any], where: str) -> dict[str, str | None]:
    value = obj.get("tags", {})
    if not isinstance(value, Mapping):
        raise FormatError(f"{where}: 'tags' must be an object")
    tags: dict[str, str | None] = {}
    for key, tag_value in value.items():
        if tag_value is not None and not isinstance(tag_value, str):
            raise FormatError(f"{where}: tag values must be strings or null")
        tags[str(key)] = tag_value
    return tags
