"""The write-ahead journal on disk: one JSON record a line, durable before any call it guards.

The executor records an intent before each mutating call and the outcome after
it; a private key returned by CreateKeyPair (or generated locally) is on disk
before anything else happens to it. Appends from many threads share fsyncs
(group commit): each append waits only for an fsync that covers it, and one
fsync may cover many appends. Records are never logged: they hold key material.

Room comes before the call: ``reserve`` preallocates (``posix_fallocate``) the
bytes a change's records can take before the change sends anything, so a full
disk refuses the reservation, and nothing is created that would have no home.
Records are written at explicit offsets inside the allocated space; the unused
tail reads as zero bytes and is cut off when the journal is closed. The first
failed write stops new reservations, while records of reservations already
held still land (a failed write's bytes are overwritten by the next record).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
from pathlib import Path
from typing import Any

from reconciler.errors import StateError, StorageError
from reconciler.state.files import (
    CountsWrites,
    IOStats,
    create_private,
    fsync_dir,
    kib,
    preallocate,
    pwrite_all,
    read_private,
)
from reconciler.state.records import JournalRecords, Reservation, decode_record, encode_record

log = logging.getLogger(__name__)

# Space is preallocated in segments of at least this size (fewer allocations);
# where a whole segment does not fit, exactly what is needed is tried.
SEGMENT = 64 * 1024


class Journal(JournalRecords, CountsWrites):
    """An append-only journal file, created exclusively with mode 0600."""

    def __init__(
        self, path: Path, *, stats: IOStats | None = None, backend: str = "local state"
    ) -> None:
        self.path = path
        self.backend = backend  # names it in messages
        self._stats = IOStats(parent=stats)
        try:
            self._fd = create_private(path, os.O_WRONLY)
        except FileExistsError:
            raise StateError(f"journal {path} already exists") from None
        except OSError as exc:
            raise self._storage_error(f"cannot create journal {path}", exc) from None
        self._append_lock = threading.Lock()
        self._sync = threading.Condition()
        self._local = threading.local()
        self._end = 0  # offset of the next record
        self._allocated = 0  # bytes of disk allocated to the file
        self._promised = 0  # bytes of open reservations not yet used
        self._dirty = 0  # end of a failed write: the next record must cover it
        self._written = 0  # sequence number of the last record fully written
        self._synced = 0  # sequence number covered by the last completed fsync
        self._syncing = False
        self._broken: str | None = None
        self._stopping: StorageError | None = None
        self._closed = False
        self.appends = 0
        try:
            fsync_dir(path.parent, self._stats)
        except OSError as exc:
            self.close()
            raise self._storage_error(f"cannot make journal {path} durable", exc) from None

    def reserve(self, nbytes: int) -> Reservation:
        """Allocate room for ``nbytes`` of records; a StorageError if the disk has none.

        Records appended by this thread while the reservation is held use it.
        """
        with self._append_lock:
            self._check_usable()
            if self._stopping is not None:
                raise self._stopping
            self._make_room(self._end + self._promised + nbytes, "the next change")
            self._promised += nbytes
        return Reservation(self, nbytes)

    def append(self, record: dict[str, Any]) -> None:
        """Store a record made elsewhere (a spool takes those a remote journal could not)."""
        self._append(record)

    @property
    def empty(self) -> bool:
        return self.appends == 0

    @property
    def durable_appends(self) -> int:
        """Records appended so far that a completed fsync covers."""
        with self._sync:
            return self._synced

    def close(self) -> None:
        with self._sync:
            while self._syncing:
                self._sync.wait()
            with self._append_lock:
                if self._closed:
                    return
                self._closed = True
                # Give the unused preallocated tail back (the state needs room next).
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, self._end)
                os.close(self._fd)

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _enter(self, reservation: Reservation) -> None:
        self._local.reservation = reservation

    def _leave(self, reservation: Reservation) -> None:
        with self._append_lock:
            self._promised -= reservation.remaining
            reservation.remaining = 0
        self._local.reservation = None

    def _make_room(self, target: int, purpose: str) -> None:
        """Grow the allocation to ``target`` bytes; a StorageError if the disk is full."""
        needed = target - self._allocated
        if needed <= 0:
            return
        error = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        for size in dict.fromkeys((max(needed, SEGMENT), needed)):
            try:
                preallocate(self._fd, self._allocated, size)
            except OSError as exc:
                error = exc
                continue
            self._allocated += size
            self._stats.preallocated(size)
            return
        raise self._storage_error(
            f"cannot reserve {kib(needed)} in journal {self.path} for {purpose}",
            error,
            hint=f"free at least {kib(needed)} in {self.path.parent} (or move the state), then "
            "run again; nothing more is sent to Lightsail, and every result received is kept",
        )

    def _append(self, record: dict[str, Any]) -> None:
        line = encode_record(record)
        reservation: Reservation | None = getattr(self._local, "reservation", None)
        with self._append_lock:
            self._check_usable()
            # A failed write left bytes at the end: this record covers them (JSON
            # allows the spaces that pad it out).
            size = max(len(line), self._dirty - self._end)
            covered = min(reservation.remaining, size) if reservation is not None else 0
            if self._promised > covered:
                # Room promised to reservations must stay free: this record needs its own.
                self._make_room(self._end + self._promised + size - covered, "a journal record")
            data = line if size == len(line) else line[:-1] + b" " * (size - len(line)) + b"\n"
            try:
                pwrite_all(self._fd, data, self._end)
            except OSError as exc:
                self._dirty = max(self._dirty, self._end + size)
                self._stopping = self._storage_error(f"cannot write journal {self.path}", exc)
                raise self._stopping from None
            if reservation is not None:
                reservation.remaining -= covered
                self._promised -= covered
            self._end += size
            self._allocated = max(self._allocated, self._end)
            self._written += 1
            self.appends += 1
            sequence = self._written
        self._stats.wrote(len(data))
        self._wait_durable(sequence)

    def _wait_durable(self, sequence: int) -> None:
        with self._sync:
            while True:
                if self._synced >= sequence:
                    return  # another thread's fsync covered this record
                if self._broken is not None:
                    self._raise_broken()
                if not self._syncing:
                    break
                self._sync.wait()
            self._syncing = True
            with self._append_lock:
                target = self._written
        error: OSError | None = None
        try:
            os.fsync(self._fd)
        except OSError as exc:
            error = exc
        finally:
            with self._sync:
                if error is None:
                    self._synced = max(self._synced, target)
                else:
                    # After a failed fsync the kernel may have dropped the pages:
                    # a later fsync succeeding would prove nothing.
                    self._broken = f"fsync failed ({error.strerror})"
                self._syncing = False
                self._sync.notify_all()
        if error is not None:
            self._raise_broken()
        self._stats.fsynced()

    def _check_usable(self) -> None:
        if self._closed:
            raise StateError(f"journal {self.path} is closed")
        if self._broken is not None:
            self._raise_broken()

    def _raise_broken(self) -> None:
        raise StorageError(
            f"{self.backend}: journal {self.path} can no longer be trusted: {self._broken}",
            hint="no further changes are made; results already journaled are kept "
            "and compacted into the state by the next run; check the disk, then run again",
        )

    def _storage_error(self, what: str, exc: OSError, *, hint: str | None = None) -> StorageError:
        return StorageError(
            f"{self.backend}: {what}: {exc.strerror or exc}",
            hint=hint
            or f"check {self.path.parent} (space, permissions, a read-only mount), then run "
            "again; results already journaled are kept",
        )


def read_journal(path: Path, *, allow_insecure: bool = False) -> list[dict[str, Any]]:
    """The records of a journal file, oldest first ([] if there is none).

    A last line cut short (the process died mid-append) is ignored: its append
    never returned; so is the zero-filled room preallocated after the last record.
    A bad line anywhere else is corruption and a StateError.
    """
    data = read_private(path, "journal", allow_insecure=allow_insecure)
    if not data:
        return []
    gap = data.find(b"\0")
    if gap >= 0:
        # Preallocated room never written; bytes after a gap were never confirmed durable.
        if data[gap:].strip(b"\0"):
            log.warning("ignoring %d bytes after a gap in journal %s", len(data) - gap, path)
        data = data[:gap]
        if not data:
            return []
    *lines, tail = data.split(b"\n")
    if tail:
        log.warning("ignoring an incomplete last record (%d bytes) in journal %s", len(tail), path)
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        record, reason = decode_record(line)
        if record is not None:
            records.append(record)
            continue
        if number == len(lines) and not tail:
            log.warning("ignoring a damaged last record in journal %s", path)
            continue
        raise StateError(
            f"journal {path} is corrupt at line {number}: {reason}",
            hint="the journal holds results not yet in the state (and private keys: keep it "
            "private); repair or remove that line by hand, then run again",
        )
    return records
