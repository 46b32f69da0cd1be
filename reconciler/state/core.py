"""The state protocol every backend follows, written once: ``StateStore``.

A mutating command takes the lock, calls ``begin`` (which folds in the journal
records a killed run left behind), journals each call, and ends with
``commit``; read-only commands call ``read`` without the lock. ``StateStore``
does all of it (the lock check, lineage and serial, the refusal of a copy read
without private keys, folding journals in, closing them) over two small parts:

- an ``ObjectStore``: where the document, its backup and the journals live,
  and how each is read and written (``local.LocalFiles``, ``s3.S3Objects``);
- a ``StateLock``: who may write (``lock.FileLock``, ``s3_lock.S3Lock``).

A new backend is a new ``ObjectStore`` with its settings class and one entry
in ``registry``; a new lock (for example a DynamoDB table) is a new
``StateLock``, chosen by the backend's entry; neither copies the protocol.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from reconciler.errors import StaleStateError, StateError
from reconciler.state.document import StateDocument, dumps, refuse_redacted
from reconciler.state.files import CountsWrites, IOStats
from reconciler.state.lock import LockInfo
from reconciler.state.records import JournalRecords
from reconciler.state.replay import replay

log = logging.getLogger(__name__)

_READ_ATTEMPTS = 5


class Refused(Exception):
    """A conditional write found the document no longer where this run saw it."""


class StateLock(Protocol):
    """The exclusive lock on one state: at most one writer at a time."""

    def acquire(self, command: str, timeout: float) -> LockInfo:
        """Take it, waiting up to ``timeout`` seconds; LockHeldError naming the holder."""
        ...

    def release(self) -> None:
        """Give it back; never raises (a lock that cannot be removed is warned about)."""
        ...

    def force_unlock(self, lock_id: str, *, force: bool = False) -> None:
        """Remove the lock whose ID is ``lock_id``; a live holder keeps it unless ``force``."""
        ...


@dataclass
class Leftovers:
    """Journal records not yet in the document, and what to do once they are."""

    records: list[dict[str, Any]]
    source: str  # names them in messages
    remove: Callable[[], None] = lambda: None
    """Remove them from the store: called only once a document holding them is durable."""
    mark: Callable[[StateDocument], None] = field(default=lambda doc: None)
    """Note in the document that they are in it (before it is written)."""


class ObjectStore(Protocol):
    """Where one state lives: its document, the previous one, its journals."""

    backend: str
    """Names the backend in messages: "local state", "S3 state"."""
    location: str
    backup: str
    """Where the previous document is kept, as a user finds it."""
    conditional: bool
    """Whether ``save`` refuses to replace a document that moved since ``expected``."""

    def load(self, *, secrets: bool = True) -> tuple[StateDocument | None, object]:
        """The document (None if there is none) and a token for the version read."""
        ...

    def version(self) -> object:
        """The token of the version there now, without reading it."""
        ...

    def save(self, data: bytes, expected: object) -> object:
        """Replace the document with ``data``, keeping the old one as the backup.

        With ``conditional``, ``Refused`` if the version there is not ``expected``
        (None: there must be no document). Returns the new version's token.
        """
        ...

    def leftovers(self, doc: StateDocument) -> Leftovers | None:
        """Journal records ``doc`` does not hold yet; None if they changed while read."""
        ...

    def new_journal(self, doc: StateDocument) -> JournalRecords:
        """This run's journal, for changes to ``doc``."""
        ...

    def size(self) -> int:
        """The document's size in bytes (0 if there is none)."""
        ...

    def preflight(self, reserve_bytes: int, state_bytes: int) -> None:
        """A StorageError unless there is room for the journal and the new document."""
        ...


@dataclass(frozen=True, slots=True)
class _Seen:
    """The document as this run last read or wrote it under the lock."""

    version: object
    doc: StateDocument


class StateStore(CountsWrites):
    """The ``StateBackend`` protocol over an object store and a lock."""

    def __init__(self, store: ObjectStore, lock: StateLock, stats: IOStats) -> None:
        self.location = store.location
        self._objects = store
        self._lock = lock
        self._stats = stats
        self._held: LockInfo | None = None
        self._journal: JournalRecords | None = None
        self._seen: _Seen | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"

    def read(self, *, secrets: bool = True) -> StateDocument:
        for _ in range(_READ_ATTEMPTS):
            doc, version = self._objects.load(secrets=secrets)
            base = doc if doc is not None else StateDocument.new()
            left = self._objects.leftovers(base)
            # A run that compacted between the two reads replaced the document and
            # removed its journal: read both again rather than miss its records.
            if left is not None and self._objects.version() == version:
                return replay(base, left.records, source=left.source) if left.records else base
        raise StateError(f"state {self.location} kept changing while it was read", hint="run again")

    @contextlib.contextmanager
    def lock(self, command: str, *, timeout: float = 0.0) -> Iterator[LockInfo]:
        if self._held is not None:
            raise StateError(f"state {self.location} is already locked by this run")
        self._held = self._lock.acquire(command, timeout)
        self._seen = None
        log.debug("locked %s (lock ID %s)", self.location, self._held.id)
        try:
            yield self._held
        finally:
            try:
                self._close_journal()
            finally:
                self._held = None
                self._seen = None
                self._lock.release()
                log.debug("unlocked %s", self.location)

    def begin(self) -> StateDocument:
        self._require_lock("begin")
        return self._compact()

    def journal(self) -> JournalRecords:
        self._require_lock("journal")
        if self._journal is None:
            if self._seen is None:
                self._compact()  # records left by a run that was killed come first
            assert self._seen is not None
            self._journal = self._objects.new_journal(self._seen.doc)
        return self._journal

    def commit(self) -> StateDocument:
        self._require_lock("commit")
        self._close_journal()
        return self._compact()

    def write(self, doc: StateDocument) -> None:
        self._require_lock("write")
        refuse_redacted(doc, self.location)
        if self._journal is not None and self._journal.appends:
            raise StateError(
                f"the journal of {self.location} holds records not yet in the state; "
                "commit it before writing the whole state"
            )
        self._close_journal()
        on_disk, version = self._objects.load()
        self._check_current(on_disk, version, doc.lineage, doc.serial)
        left = self._objects.leftovers(on_disk or doc)
        self._store(doc, version)
        # ``doc`` came from read() or begin(), so it holds any journal left behind.
        if left is not None:
            left.remove()

    def preflight(self, reserve_bytes: int) -> None:
        self._objects.preflight(reserve_bytes, self._objects.size() + reserve_bytes)

    def force_unlock(self, lock_id: str, *, force: bool = False) -> None:
        self._lock.force_unlock(lock_id, force=force)

    # -- internals ----------------------------------------------------------

    def _compact(self) -> StateDocument:
        """Fold every journal record not yet in the document into it, and write it."""
        seen = self._seen
        if seen is not None and self._objects.conditional:
            # The write is refused if the document moved: no need to read it again.
            base, version = seen.doc.copy(), seen.version
        else:
            on_disk, version = self._objects.load()
            if seen is not None:
                self._check_current(on_disk, version, seen.doc.lineage, seen.doc.serial)
            if on_disk is not None:
                base = on_disk
            elif seen is not None:
                base = seen.doc.copy()
            else:
                base = StateDocument.new()
        left = self._objects.leftovers(base)
        if left is None:
            raise StateError(f"the journal of {self.location} vanished under the lock")
        if not left.records:
            self._seen = _Seen(version, base.copy())
            left.remove()  # empty journals, if any
            return base
        doc = replay(base, left.records, source=left.source)
        left.mark(doc)
        try:
            self._store(doc, version)
        except StaleStateError as exc:
            exc.hint = (
                f"the results are kept in {left.source} and go into the state at the next "
                "run; run again"
            )
            raise
        log.info(
            "recorded %d journal records in %s (serial %d)",
            len(left.records),
            self.location,
            doc.serial,
        )
        left.remove()
        return doc

    def _store(self, doc: StateDocument, version: object) -> None:
        """Write ``doc`` with its serial advanced over the version this run saw."""
        copy = doc.copy()
        copy.serial = doc.serial + 1
        data = dumps(copy)
        try:
            new_version = self._objects.save(data, version)
        except Refused:
            raise StaleStateError(
                f"the state in {self.location} changed since this run read it; nothing was written",
                hint="another run wrote it (was its lock forced?); run again",
            ) from None
        doc.serial = copy.serial
        self._seen = _Seen(new_version, copy)
        log.debug("wrote %s (serial %d, %d bytes)", self.location, copy.serial, len(data))

    def _check_current(
        self, on_disk: StateDocument | None, version: object, lineage: str, serial: int
    ) -> None:
        """A StaleStateError if the document is not the one this run read."""
        seen = self._seen
        if self._objects.conditional and seen is not None and version != seen.version:
            raise StaleStateError(
                f"the state in {self.location} changed since this run read it; nothing was written",
                hint="another run wrote it (was its lock forced?); run again",
            )
        if on_disk is None:
            return
        if on_disk.lineage != lineage:
            raise StaleStateError(
                f"state {self.location} has lineage {on_disk.lineage}, but this run read "
                f"lineage {lineage}: another state was put in its place",
                hint="run the command again against the state now in place",
            )
        if on_disk.serial > serial:
            raise StaleStateError(
                f"state {self.location} was written by another run (serial {on_disk.serial}) "
                f"after this run read it (serial {serial})",
                hint="run the command again",
            )

    def _close_journal(self) -> None:
        journal, self._journal = self._journal, None
        if journal is not None:
            journal.close()

    def _require_lock(self, operation: str) -> None:
        if self._held is None:
            raise StateError(f"{operation} needs the lock on state {self.location}; take it first")
