"""The state as a file on the local disk, with its journal, backup and lock beside it.

``PATH`` holds the document, ``PATH.journal`` the write-ahead records of the
current (or a killed) run, ``PATH.backup`` the previous document, ``PATH.lock``
the lock. All are private to their owner; none is ever reached through a
symbolic link. The journal is removed only after the state that includes it
is durable, so a record is never lost, and replaying it twice is harmless.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reconciler.errors import StaleStateError, StateError, StorageError
from reconciler.state.document import StateDocument, decode, dumps, loads, refuse_redacted
from reconciler.state.files import (
    CountsWrites,
    IOStats,
    check_room,
    kib,
    read_private,
    refuse_symlink,
    remove_durably,
    replace_atomically,
)
from reconciler.state.journal import Journal, read_journal
from reconciler.state.lock import HeldLock, LockInfo, acquire, force_unlock
from reconciler.state.replay import replay

log = logging.getLogger(__name__)

_READ_ATTEMPTS = 5


class LocalBackend(CountsWrites):
    """A local state file; see ``StateBackend`` for the protocol it follows."""

    def __init__(self, path: str | Path, *, allow_insecure: bool = False) -> None:
        self.path = Path(path)
        self.location = str(path)
        self.allow_insecure = allow_insecure
        self.backup_path = self.path.with_name(self.path.name + ".backup")
        self.journal_path = self.path.with_name(self.path.name + ".journal")
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._stats = IOStats()
        self._held: HeldLock | None = None
        self._journal: Journal | None = None
        # Lineage and serial of the document this run last read or wrote under the lock.
        self._seen: tuple[str, int] | None = None

    def __repr__(self) -> str:
        return f"LocalBackend({self.location!r})"

    def read(self, *, secrets: bool = True) -> StateDocument:
        for _ in range(_READ_ATTEMPTS):
            before = self._identity()
            doc = self._load(secrets=secrets)
            records = self._records()
            # A run that compacted between our two reads replaced the state and
            # removed the journal: read both again rather than miss its records.
            if self._identity() == before:
                break
        else:
            raise StateError(
                f"state {self.location} kept changing while it was read", hint="run again"
            )
        base = doc if doc is not None else StateDocument.new()
        return replay(base, records, source=str(self.journal_path)) if records else base

    @contextlib.contextmanager
    def lock(self, command: str, *, timeout: float = 0.0) -> Iterator[LockInfo]:
        if self._held is not None:
            raise StateError(f"state {self.location} is already locked by this run")
        held = acquire(self.lock_path, command, timeout=timeout)
        self._held = held
        self._seen = None
        log.debug("locked %s (lock ID %s)", self.location, held.info.id)
        try:
            yield held.info
        finally:
            try:
                self._close_journal()
            finally:
                self._held = None
                self._seen = None
                held.release()
                log.debug("unlocked %s", self.location)

    def begin(self) -> StateDocument:
        self._require_lock("begin")
        return self._compact()

    def journal(self) -> Journal:
        self._require_lock("journal")
        if self._journal is not None:
            return self._journal
        if refuse_symlink(self.journal_path, "journal") is not None:
            self._compact()  # records left by a run that was killed
        self._journal = Journal(self.journal_path, stats=self._stats)
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
        on_disk = self._load()
        if on_disk is not None:
            self._check_current(on_disk, doc.lineage, doc.serial)
        self._store(doc)
        # ``doc`` came from read() or begin(), so it includes any journal left behind.
        self._remove_journal()

    def preflight(self, reserve_bytes: int) -> None:
        # The journal's records, then the state they become (written beside the old one).
        check_room(
            self.path.parent,
            reserve_bytes + self._size() + reserve_bytes,
            backend="local state",
            purpose="the journal and the new state",
            remedy="name another state location with --state",
        )

    def force_unlock(self, lock_id: str, *, force: bool = False) -> None:
        force_unlock(self.lock_path, lock_id, force=force)

    def _compact(self) -> StateDocument:
        on_disk = self._load()
        if on_disk is not None and self._seen is not None:
            self._check_current(on_disk, *self._seen)
        if on_disk is not None:
            base = on_disk
        elif self._seen is not None:
            base = StateDocument.new()
            base.lineage, base.serial = self._seen
        else:
            base = StateDocument.new()
        records = self._records()
        if not records:
            self._seen = (base.lineage, base.serial)
            self._remove_journal()
            return base
        doc = replay(base, records, source=str(self.journal_path))
        self._store(doc)
        log.info(
            "recorded %d journal records in %s (serial %d)", len(records), self.location, doc.serial
        )
        self._remove_journal()
        return doc

    def _store(self, doc: StateDocument) -> None:
        serial = doc.serial + 1
        data = dumps(_with_serial(doc, serial))
        try:
            replace_atomically(self.path, data, backup=self.backup_path, stats=self._stats)
        except OSError as exc:
            raise StorageError(
                f"local state: cannot write state file {self.location}: {exc.strerror}",
                hint=f"the previous state is untouched and journaled results are kept; free "
                f"at least {kib(len(data))} in {self.path.parent} or fix its permissions, "
                "then run again",
            ) from None
        doc.serial = serial
        self._seen = (doc.lineage, serial)
        log.debug("wrote %s (serial %d, %d bytes)", self.location, serial, len(data))

    def _check_current(self, on_disk: StateDocument, lineage: str, serial: int) -> None:
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

    def _load(self, *, secrets: bool = True) -> StateDocument | None:
        data = read_private(self.path, "state file", allow_insecure=self.allow_insecure)
        if data is None:
            return None
        # Decode here and drop the bytes before parsing: a state of 100,000
        # key pairs is ~300 MB, and bytes, text and tree at once would triple it.
        text = decode(data, source=self.location)
        del data
        return loads(text, source=self.location, secrets=secrets)

    def _records(self) -> list[dict[str, Any]]:
        return read_journal(self.journal_path, allow_insecure=self.allow_insecure)

    def _size(self) -> int:
        st = refuse_symlink(self.path, "state file")
        return 0 if st is None else st.st_size

    def _identity(self) -> tuple[int, int, int] | None:
        st = refuse_symlink(self.path, "state file")
        return None if st is None else (st.st_ino, st.st_mtime_ns, st.st_size)

    def _remove_journal(self) -> None:
        try:
            remove_durably(self.journal_path, self._stats)
        except OSError as exc:
            raise StateError(
                f"cannot remove journal {self.journal_path}: {exc.strerror}",
                hint="the state already includes its records; remove it by hand",
            ) from None

    def _close_journal(self) -> None:
        if self._journal is not None:
            journal, self._journal = self._journal, None
            journal.close()

    def _require_lock(self, operation: str) -> None:
        if self._held is None:
            raise StateError(f"{operation} needs the lock on state {self.location}; take it first")


def _with_serial(doc: StateDocument, serial: int) -> StateDocument:
    copy = doc.copy()
    copy.serial = serial
    return copy
