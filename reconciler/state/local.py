"""The state as a file on the local disk, with its journal, backup and lock beside it.

``PATH`` holds the document, ``PATH.journal`` the write-ahead records of the
current (or a killed) run, ``PATH.backup`` the previous document, ``PATH.lock``
the lock (``lock.FileLock``). Should a journal write fail, its records go to a
private spool (``spool``), folded in like the journal. All are private to their
owner; none is ever reached through a symbolic link. The journal is removed
only after the state that includes it is durable, so a record is never lost,
and replaying it twice is harmless. ``LocalFiles`` is the object store; the
protocol is ``core``'s.
"""

from __future__ import annotations

import functools
import logging
import os
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from reconciler.errors import StateError, StorageError
from reconciler.state.core import Leftovers, StateLock, StateStore
from reconciler.state.document import StateDocument, decode, load_file, loads
from reconciler.state.files import (
    IOStats,
    check_room,
    consume_private,
    kib,
    read_private,
    refuse_symlink,
    remove_durably,
    replace_atomically,
)
from reconciler.state.journal import Journal, read_journal
from reconciler.state.local_settings import LocalSettings
from reconciler.state.lock import FileLock
from reconciler.state.settings import StateContext
from reconciler.state.spool import Spilling, Spool, spool_dir

log = logging.getLogger(__name__)

BACKEND = LocalSettings.NOUN


class LocalFiles:
    """The document, its backup and its journal as private files beside each other."""

    backend = BACKEND
    conditional = False  # the lock alone keeps writers apart; lineage and serial are checked

    def __init__(self, path: Path, *, allow_insecure: bool, stats: IOStats, spool: Spool) -> None:
        self.path = path
        self._spool = spool
        self.location = str(path)
        self.allow_insecure = allow_insecure
        self.backup_path = path.with_name(path.name + ".backup")
        self.journal_path = path.with_name(path.name + ".journal")
        self.backup = str(self.backup_path)
        self._stats = stats

    def load(self, *, secrets: bool = True) -> tuple[StateDocument | None, object]:
        version = self.version()
        doc = consume_private(
            self.path,
            "state file",
            functools.partial(load_file, source=self.location, secrets=secrets, backup=self.backup),
            allow_insecure=self.allow_insecure,
        )
        if doc is not None:
            return doc, version
        # Missing, or not a plain JSON object: read whole, for the exact error message.
        data = read_private(self.path, "state file", allow_insecure=self.allow_insecure)
        if data is None:
            return None, version
        # Decode here and drop the bytes before parsing: a state of 100,000
        # key pairs is ~300 MB, and bytes, text and tree at once would triple it.
        text = decode(data, source=self.location)
        del data
        return loads(text, source=self.location, secrets=secrets, backup=self.backup), version

    def version(self) -> object:
        st = refuse_symlink(self.path, "state file")
        return None if st is None else (st.st_ino, st.st_mtime_ns, st.st_size)

    def save(self, data: bytes, expected: object) -> object:
        try:
            replace_atomically(self.path, data, backup=self.backup_path, stats=self._stats)
        except OSError as exc:
            raise StorageError(
                f"{BACKEND}: cannot write state file {self.location}: {exc.strerror}",
                hint=f"the previous state is untouched and journaled results are kept; free "
                f"at least {kib(len(data))} in {self.path.parent} or fix its permissions, "
                "then run again",
            ) from None
        return self.version()

    def leftovers(self, doc: StateDocument) -> Leftovers:
        records = read_journal(self.journal_path, allow_insecure=self.allow_insecure)
        spooled = self._spool.files()
        records += self._spool.records(spooled)  # results the journal could not take

        def remove() -> None:
            self._remove_journal()
            self._spool.remove(spooled)

        return Leftovers(records, str(self.journal_path), remove=remove)

    def new_journal(self, doc: StateDocument) -> Spilling:
        run = f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"
        return Spilling(Journal(self.journal_path, stats=self._stats), self._spool, run)

    def size(self) -> int:
        st = refuse_symlink(self.path, "state file")
        return 0 if st is None else st.st_size

    def preflight(self, reserve_bytes: int, state_bytes: int) -> None:
        # The journal's records, then the state they become (written beside the old one).
        check_room(
            self.path.parent,
            reserve_bytes + state_bytes,
            backend=BACKEND,
            purpose="the journal and the new state",
            remedy="name another state location with --state",
        )

    def _remove_journal(self) -> None:
        try:
            remove_durably(self.journal_path, self._stats)
        except OSError as exc:
            raise StateError(
                f"{BACKEND}: cannot remove journal {self.journal_path}: {exc.strerror}",
                hint="the state already includes its records; remove it by hand",
            ) from None


class LocalBackend(StateStore):
    """A local state file; see ``StateBackend`` for the protocol it follows."""

    def __init__(
        self,
        path: str | Path,
        *,
        allow_insecure: bool = False,
        lock: Callable[[Path], StateLock] = FileLock,
    ) -> None:
        stats = IOStats()
        # Where results go should the journal fail (a disk error, not a full disk:
        # room is reserved before each call).
        spool = Spool(spool_dir(None), str(Path(path).absolute()), backend=BACKEND, stats=stats)
        files = LocalFiles(Path(path), allow_insecure=allow_insecure, stats=stats, spool=spool)
        self.path = files.path
        super().__init__(files, lock(self.path.with_name(self.path.name + ".lock")), stats)
        self.location = str(path)

    @classmethod
    def open(
        cls, settings: LocalSettings, context: StateContext, *, lock: Callable[[Path], StateLock]
    ) -> LocalBackend:
        """The backend of ``settings``; ``--local`` makes its folder first."""
        if context.make_parents:
            os.makedirs(os.path.dirname(settings.path) or ".", mode=0o700, exist_ok=True)
        return cls(settings.path, allow_insecure=context.allow_insecure, lock=lock)
