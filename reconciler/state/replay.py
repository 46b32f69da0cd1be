"""Replay journal records onto a state document (pure: no I/O, input untouched).

Every record sets or drops something at one address, so replaying the same
records twice gives the same document as replaying them once; compaction relies
on that when it dies between writing the state and removing the journal.

- ``result`` with an entry sets the entry and drops any open intent there;
- ``result`` with ``removed`` drops both;
- ``failed`` settles its intent: nothing becomes pending for it, and a pending
  create of an earlier run with that intent id is dropped;
- an unsettled ``create`` intent becomes an open intent (its private key may
  be lost: the planner decides, from what is live);
- an unsettled intent with a ``keygen`` record becomes a pending ``generate``
  holding the generated key, so a locally generated key is never dropped;
- other unsettled intents (tags, deletes, forgets, imports of given keys)
  leave nothing: the planner recomputes them from what is live;
- an intent whose ``op`` is not a ``JournalOp`` is refused (a malformed record).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, assert_never

from reconciler.errors import StateError
from reconciler.model import Address, JournalOp, OpenIntent, StateEntry
from reconciler.state.document import (
    FormatError,
    StateDocument,
    number_field,
    optional_object_field,
    parse_address,
    parse_entry,
    text_field,
)


def _opens_pending(op: JournalOp) -> bool:
    """Whether an unsettled intent of ``op`` leaves an open intent on its own: a create,
    whose key is lost if it went live (the planner decides, from what is live)."""
    match op:
        case JournalOp.CREATE:
            return True
        case (
            JournalOp.IMPORT
            | JournalOp.GENERATE
            | JournalOp.ADOPT
            | JournalOp.UPDATE_TAGS
            | JournalOp.DELETE
            | JournalOp.RETIRE
            | JournalOp.FORGET
        ):
            return False
        case _:
            assert_never(op)


def _generates(op: JournalOp) -> bool:
    """Whether a keygen record under an intent of ``op`` is a locally generated key to keep
    (journals of earlier versions record generate as ``import``)."""
    match op:
        case JournalOp.GENERATE | JournalOp.IMPORT:
            return True
        case (
            JournalOp.CREATE
            | JournalOp.ADOPT
            | JournalOp.UPDATE_TAGS
            | JournalOp.DELETE
            | JournalOp.RETIRE
            | JournalOp.FORGET
        ):
            return False
        case _:
            assert_never(op)


@dataclass(frozen=True, slots=True)
class _Intent:
    id: str
    op: JournalOp
    address: Address
    at: float


@dataclass(frozen=True, slots=True)
class _Keygen:
    id: str
    address: Address
    private_key: str | None
    public_key: str
    private_key_sealed: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class _Result:
    id: str
    entry: StateEntry


@dataclass(frozen=True, slots=True)
class _Removed:
    id: str
    address: Address


@dataclass(frozen=True, slots=True)
class _Failed:
    id: str


_Record = _Intent | _Keygen | _Result | _Removed | _Failed


def replay(
    doc: StateDocument, records: Iterable[Mapping[str, Any]], *, source: str = "journal"
) -> StateDocument:
    """``doc`` with ``records`` applied in order; ``source`` names them in errors."""
    parsed = [_parse(record, f"{source} record {n}") for n, record in enumerate(records, 1)]
    settled = {r.id for r in parsed if isinstance(r, _Result | _Removed | _Failed)}
    intents = {r.id: r for r in parsed if isinstance(r, _Intent)}
    out = doc.copy()
    pending_by_intent = {p.intent_id: a for a, p in doc.pending.items()}
    for record in parsed:
        if isinstance(record, _Result):
            address = record.entry.address
            out.entries[address] = record.entry
            out.pending.pop(address, None)
        elif isinstance(record, _Removed):
            out.entries.pop(record.address, None)
            out.pending.pop(record.address, None)
        elif isinstance(record, _Failed):
            # May settle an intent of an earlier run whose create is now pending.
            earlier = pending_by_intent.get(record.id)
            if earlier is not None and _pending_id(out, earlier) == record.id:
                del out.pending[earlier]
        elif record.id in settled:
            continue
        elif isinstance(record, _Intent) and _opens_pending(record.op):
            out.pending[record.address] = OpenIntent(
                record.address, record.id, record.at, operation=JournalOp.CREATE
            )
        elif isinstance(record, _Keygen):
            intent = intents.get(record.id)
            if intent is None or _generates(intent.op):
                out.pending[record.address] = OpenIntent(
                    record.address,
                    record.id,
                    intent.at if intent is not None else 0.0,
                    operation=JournalOp.GENERATE,
                    private_key=record.private_key,
                    public_key=record.public_key,
                    private_key_sealed=record.private_key_sealed,
                )
    return out


def _op(text: str, where: str) -> JournalOp:
    try:
        return JournalOp(text)
    except ValueError:
        raise FormatError(f"{where}: 'op' is not an operation this version knows") from None


def _pending_id(doc: StateDocument, address: Address) -> str | None:
    pending = doc.pending.get(address)
    return None if pending is None else pending.intent_id


def _parse(record: Mapping[str, Any], where: str) -> _Record:
    try:
        if not isinstance(record, Mapping):
            raise FormatError(f"{where}: expected a JSON object")
        kind = record.get("kind")
        record_id = text_field(record, "id", where)
        if kind == "intent":
            return _Intent(
                record_id,
                _op(text_field(record, "op", where), where),
                parse_address(record, where),
                number_field(record, "at", where),
            )
        if kind == "keygen":
            sealed = optional_object_field(record, "privateKeySealed", where)
            return _Keygen(
                record_id,
                parse_address(record, where),
                None if sealed is not None else text_field(record, "privateKey", where),
                text_field(record, "publicKey", where),
                sealed,
            )
        if kind == "result":
            if record.get("removed") is True:
                return _Removed(record_id, parse_address(record, where))
            return _Result(record_id, parse_entry(record.get("entry"), f"{where} entry"))
        if kind == "failed":
            return _Failed(record_id)
        raise FormatError(f"{where}: unknown record kind")
    except FormatError as exc:
        raise StateError(f"malformed journal record: {exc}") from None
