"""The write-ahead record format, shared by every journal: what each record holds, as a line.

``JournalRecords`` builds the five kinds of record (intent, keygen, result,
removed, failed) and hands each to its subclass's ``_append``, which makes it
durable (an fsync'd file, an S3 object). ``encode_record`` and ``decode_record``
turn a record into one JSON line and back. ``RecordBudget`` bounds the bytes a
change's records can take, so a journal can reserve them before the call.
Records hold key material: nothing here logs them or quotes them in a message.
"""

from __future__ import annotations

import json
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

from reconciler.errors import StorageError
from reconciler.model import Address, JournalOp, StateEntry
from reconciler.state.document import address_to_json, entry_to_json

# The longest ``op`` a record can carry, for the budget of an intent record.
_LONGEST_OP = max(JournalOp, key=len)


class _Reserving(Protocol):
    def _enter(self, reservation: Reservation) -> None: ...
    def _leave(self, reservation: Reservation) -> None: ...


class Reservation:
    """Room a journal keeps for one change's records while the change runs (a context)."""

    def __init__(self, owner: _Reserving | None, size: int) -> None:
        self.size = size
        self.remaining = size
        self._owner = owner

    def __enter__(self) -> Reservation:
        if self._owner is not None:
            self._owner._enter(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._owner is not None:
            self._owner._leave(self)


class JournalRecords(ABC):
    """The write-ahead records a run makes; each returns once its record is durable
    (``_append``, the one thing a journal implements beside ``close``)."""

    appends: int
    """Records appended so far."""
    _stopping: StorageError | None = None

    @abstractmethod
    def close(self) -> None:
        """Wait for appends in progress; no record may follow."""

    @property
    def stopped_by(self) -> StorageError | None:
        """The storage failure after which this journal grants no more room, once there is
        one; it says where records that could not be written went (a spool)."""
        return self._stopping

    def reserve(self, nbytes: int) -> Reservation:
        """Room for ``nbytes`` of records, kept before a change's call is sent and held
        until the returned context exits; records appended by the same thread meanwhile
        use it. A StorageError if there is none; journals that cannot run out of room
        reserve nothing.
        """
        return Reservation(None, nbytes)

    def intent(self, op: JournalOp, address: Address) -> str:
        """Record that ``op`` on ``address`` is about to be called; returns the intent id."""
        try:
            value = JournalOp(op).value
        except ValueError:
            raise ValueError(f"unknown journal operation {op!r}") from None
        intent_id = str(uuid.uuid4())
        self._append(
            {"kind": "intent", "id": intent_id, "op": value, **_address(address), "at": time.time()}
        )
        return intent_id

    def keygen(
        self,
        intent_id: str,
        address: Address,
        private_key: str | None,
        public_key: str,
        *,
        private_key_sealed: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a locally generated key pair (its private half in clear or sealed)."""
        self._append(
            {
                "kind": "keygen",
                "id": intent_id,
                **_address(address),
                **keygen_key(private_key, private_key_sealed),
                "publicKey": public_key,
            }
        )

    def result(self, intent_id: str, entry: StateEntry) -> None:
        """Record the state entry a call produced (with its private key, if any)."""
        self._append({"kind": "result", "id": intent_id, "entry": entry_to_json(entry)})

    def removed(self, intent_id: str, address: Address) -> None:
        """Record that a delete went through."""
        self._append({"kind": "result", "id": intent_id, "removed": True, **_address(address)})

    def failed(self, intent_id: str, error: str) -> None:
        """Record that a call definitely had no effect."""
        self._append({"kind": "failed", "id": intent_id, "error": error[:MAX_ERROR]})

    @abstractmethod
    def _append(self, record: dict[str, Any]) -> None:
        """Store ``record``; return only once it is durable."""


# Upper bounds, in characters, of what a call can return or a key can take:
# an RSA-4096 PEM is about 3,300 characters, a sealed envelope of it under a
# few recipients stays under 8 KiB; ARNs, support codes and fingerprints are short.
MAX_PRIVATE_KEY = 4096
MAX_SEALED_KEY = 8192
MAX_PUBLIC_KEY = 1024
MAX_ERROR = 1024
_FIELDS = 2048  # ARN, fingerprint, support code, location, operation, timestamps, flags


@dataclass(frozen=True, slots=True)
class RecordBudget:
    """Bytes a change's journal records can take at most, as a journal reserves them."""

    sealed: bool = False

    def intent(self, address: Address) -> int:
        return len(
            encode_record(
                {
                    "kind": "intent",
                    "id": str(uuid.UUID(int=0)),
                    "op": _LONGEST_OP.value,
                    **_address(address),
                    "at": time.time(),
                }
            )
        )

    def result(self, address: Address, tags: Mapping[str, Any], *, private_key: bool) -> int:
        """A result record: the entry, its tags, and a private key (clear or sealed) if any."""
        key = (MAX_SEALED_KEY if self.sealed else MAX_PRIVATE_KEY) if private_key else 0
        return self.intent(address) + len(json.dumps(dict(tags))) + MAX_PUBLIC_KEY + key + _FIELDS

    def keygen(self, address: Address) -> int:
        return self.result(address, {}, private_key=True)

    def failed(self) -> int:
        return 128 + MAX_ERROR


def keygen_key(
    private_key: str | None, private_key_sealed: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The private-key member of a keygen record: sealed when it was sealed, else clear."""
    if private_key_sealed is not None:
        return {"privateKeySealed": dict(private_key_sealed)}
    if private_key is None:
        raise ValueError("a keygen record needs the private key, in clear or sealed")
    return {"privateKey": private_key}


def encode_record(record: Mapping[str, Any]) -> bytes:
    """``record`` as one compact JSON line, ASCII only (other text is escaped)."""
    return (json.dumps(record, separators=(",", ":")) + "\n").encode("ascii")


def decode_record(line: bytes) -> tuple[dict[str, Any] | None, str]:
    """The record on one journal line; else None and why it is not one (never its text).

    Only undecodable text and malformed JSON are answered here; any other
    ValueError from the JSON parser reaches the caller.
    """
    try:
        record = json.loads(line)
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    except json.JSONDecodeError as exc:
        return None, f"{exc.msg} at column {exc.colno}"
    if not isinstance(record, dict):
        return None, "not a JSON object"
    return record, ""


def _address(address: Address) -> dict[str, str]:
    return address_to_json(address)
