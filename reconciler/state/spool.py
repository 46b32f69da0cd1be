"""A local spool: a durable home for records a remote store could not take (yet).

When a remote home fails (an S3 journal object that cannot be stored; a key
store that does not answer), its records go to a spool file on the local disk
instead: a journal file in the usual format, 0600 from the first byte, keys
sealed when sealing is on (records are sealed before they are journaled). One
file per run, ``DIR/TAG-RUN.journal``, where TAG names the remote location, so
the next run against the same location finds them, moves them to their remote
home, and only then removes the files.

The spool also gives a remote journal something to reserve before a call: the
room a result needs if the remote store fails while the call is in flight.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import Any

from reconciler.errors import StorageError
from reconciler.state.files import IOStats, check_room, refuse_symlink, remove_durably
from reconciler.state.journal import Journal, read_journal
from reconciler.state.records import JournalRecords, Reservation

log = logging.getLogger(__name__)

DEFAULT_DIR = Path(".reconciler") / "spool"


class Spool:
    """The spool files of one remote location (named in messages as ``backend``)."""

    def __init__(self, directory: Path, location: str, *, backend: str, stats: IOStats) -> None:
        self.directory = directory
        self.location = location
        self.backend = backend
        self.tag = hashlib.sha256(location.encode()).hexdigest()[:16]
        self._stats = stats

    def open(self, run: str) -> Journal:
        """A new spool file for run ``run`` (the folder is made private if it is new)."""
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"{self.backend}: cannot create spool folder {self.directory}: {exc.strerror}",
                hint="make it writable, or set another spool folder in reconciler.yaml",
            ) from None
        return Journal(
            self.directory / f"{self.tag}-{run}.journal",
            stats=self._stats,
            backend=f"{self.backend} spool",
        )

    def files(self) -> list[Path]:
        """Spool files left for this location, oldest run first."""
        if refuse_symlink(self.directory, "spool folder") is None:
            return []
        return sorted(self.directory.glob(f"{self.tag}-*.journal"))

    def records(self, files: list[Path]) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        for path in files:
            records.extend(read_journal(path))
        return records

    def remove(self, files: list[Path]) -> None:
        """Remove spool files whose records are now durable in their remote home."""
        for path in files:
            try:
                remove_durably(path, self._stats)
            except OSError as exc:
                log.warning(
                    "cannot remove spool file %s (%s); its records are already in %s",
                    path,
                    exc.strerror,
                    self.location,
                )

    def discard_if_empty(self, journal: Journal) -> None:
        """Close ``journal``; remove its file if nothing was spooled in it."""
        journal.close()
        if journal.empty:
            self.remove([journal.path])

    def preflight(self, reserve_bytes: int) -> None:
        """Room in the spool folder for this run's records, should the remote store fail."""
        with contextlib.suppress(OSError):  # check_room names what is wrong with it
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        check_room(
            self.directory if self.directory.is_dir() else self.directory.parent,
            reserve_bytes,
            backend=self.backend,
            purpose=f"the local spool that keeps results should {self.location} fail",
            remedy="set another spool folder in reconciler.yaml",
        )


class Spilling(JournalRecords):
    """A journal file that hands its records to a spool once a write to it fails.

    The first record the journal cannot store, and every record after it, go
    to this run's spool file (so their order is kept), and no new reservation
    is granted: the run stops, changes in flight keep their results. Only if
    the spool fails too does an append fail.
    """

    def __init__(self, journal: Journal, spool: Spool, run: str) -> None:
        self.journal = journal
        self._spool = spool
        self._run = run
        self._spilled: Journal | None = None
        self._lock = threading.Lock()
        self._stopping: StorageError | None = None

    @property
    def appends(self) -> int:  # type: ignore[override]
        return self.journal.appends + (self._spilled.appends if self._spilled else 0)

    @property
    def spilled(self) -> Journal | None:
        return self._spilled

    def reserve(self, nbytes: int) -> Reservation:
        if self._stopping is not None:
            raise self._stopping
        return self.journal.reserve(nbytes)

    def close(self) -> None:
        self.journal.close()
        if self._spilled is not None:
            self._spool.discard_if_empty(self._spilled)

    def _append(self, record: dict[str, Any]) -> None:
        if self._spilled is None:
            try:
                self.journal.append(record)
                return
            except StorageError as exc:
                with self._lock:
                    if self._spilled is None:
                        try:
                            self._spilled = self._spool.open(self._run)
                        except StorageError:
                            raise exc from None
                        self._stopping = StorageError(
                            f"{exc.message}; results are kept in the spool {self._spilled.path}",
                            hint="no further changes are made; the next run moves the spooled "
                            "results into the state; check the disk, then run again",
                        )
        assert self._spilled is not None
        self._spilled.append(record)


def spool_dir(configured: str | None) -> Path:
    """The spool folder: as configured, else ``.reconciler/spool`` (under RECONCILER_LOCAL_DIR)."""
    if configured:
        return Path(configured)
    base = os.environ.get("RECONCILER_LOCAL_DIR")
    return Path(base) / "spool" if base else DEFAULT_DIR
