"""What every state backend offers the commands: read, lock, journal, commit, write.

A mutating command takes the lock, calls ``begin`` (which folds in any journal
a killed run left behind), checks ``preflight``, journals each call through
``journal`` (reserving room first), and ends with ``commit``. Read-only
commands call ``read`` without the lock. ``core.StateStore`` implements this
once for every backend.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any, Protocol

from reconciler.errors import StorageError
from reconciler.model import Address, JournalOp, StateEntry
from reconciler.state.document import StateDocument
from reconciler.state.lock import LockInfo
from reconciler.state.records import Reservation


class JournalWriter(Protocol):
    """The write-ahead records a run makes; each returns once its record is durable.

    ``reserve`` keeps room for one change's records before its call is sent (a
    StorageError if there is none); records appended by the same thread while
    it is held use that room.
    """

    def reserve(self, nbytes: int) -> Reservation: ...

    @property
    def stopped_by(self) -> StorageError | None:
        """The storage failure after which the journal grants no more room, if any; it
        says where records that could not be written went (a spool)."""
        ...

    def intent(self, op: JournalOp, address: Address) -> str: ...
    def keygen(
        self,
        intent_id: str,
        address: Address,
        private_key: str | None,
        public_key: str,
        *,
        private_key_sealed: Mapping[str, Any] | None = None,
    ) -> None: ...
    def result(self, intent_id: str, entry: StateEntry) -> None: ...
    def removed(self, intent_id: str, address: Address) -> None: ...
    def failed(self, intent_id: str, error: str) -> None: ...


class StateBackend(Protocol):
    location: str
    """Where the state lives, as the user named it (for messages)."""

    @property
    def fsync_count(self) -> int:
        """fsync calls made so far, state writes and journal appends together."""
        ...

    @property
    def bytes_written(self) -> int:
        """Bytes written so far, state writes and journal appends together."""
        ...

    def read(self, *, secrets: bool = True) -> StateDocument:
        """The state with any journal replayed, in memory; writes nothing, needs no lock.

        ``secrets=False`` leaves private keys out (a plan or drift report needs
        none of them); the document is then marked redacted and cannot be written.
        """
        ...

    def lock(
        self, command: str, *, timeout: float = 0.0
    ) -> contextlib.AbstractContextManager[LockInfo]:
        """Hold the exclusive lock; LockHeldError if still held after ``timeout`` seconds."""
        ...

    def begin(self) -> StateDocument:
        """Under the lock: compact any leftover journal and return the current document."""
        ...

    def journal(self) -> JournalWriter:
        """Under the lock: the write-ahead journal for this run."""
        ...

    def commit(self) -> StateDocument:
        """Under the lock: fold the journal into the state (serial + 1) and remove it."""
        ...

    def write(self, doc: StateDocument) -> None:
        """Under the lock: replace the whole state with ``doc`` (its serial is advanced)."""
        ...

    def preflight(self, reserve_bytes: int) -> None:
        """Before the first call of a run: a StorageError unless the state's location is
        writable and has room for ``reserve_bytes`` of journal plus the state it becomes."""
        ...

    def force_unlock(self, lock_id: str, *, force: bool = False) -> None:
        """Remove the lock whose ID is ``lock_id``; a live holder keeps it unless ``force``."""
        ...
