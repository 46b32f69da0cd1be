"""What every state backend offers the commands: read, lock, journal, commit, write.

A mutating command takes the lock, calls ``begin`` (which folds in any journal
a killed run left behind), checks ``preflight``, journals each call through
``journal`` (reserving room first), and ends with ``commit``. Read-only
commands call ``read`` without the lock. ``core.StateStore`` implements this
once for every backend.
"""

from __future__ import annotations

import contextlib
from typing import Protocol, TypeAlias

from reconciler.state.document import StateDocument
from reconciler.state.lock import LockInfo
from reconciler.state.records import JournalRecords

# The write-ahead records a run makes: every journal is a ``JournalRecords``.
JournalWriter: TypeAlias = JournalRecords


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
