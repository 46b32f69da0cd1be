"""The write-ahead journal: one JSON record a line, durable before any call it guards.

The executor records an intent before each mutating call and the outcome after
it; a private key returned by CreateKeyPair (or generated locally) is on disk
before anything else happens to it. Appends from many threads share fsyncs
(group commit): each append waits only for an fsync that covers it, and one
fsync may cover many appends. Records are never logged: they hold key material.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from reconciler.errors import StateError
from reconciler.state.files import (
    CountsWrites,
    IOStats,
    create_private,
    fsync_dir,
    read_private,
    write_all,
)
from reconciler.state.records import JournalRecords, decode_record, encode_record

log = logging.getLogger(__name__)


class Journal(JournalRecords, CountsWrites):
    """An append-only journal file, created exclusively with mode 0600."""

    def __init__(self, path: Path, *, stats: IOStats | None = None) -> None:
        self.path = path
        self._stats = IOStats(parent=stats)
        try:
            self._fd = create_private(path, os.O_WRONLY | os.O_APPEND)
        except FileExistsError:
            raise StateError(f"journal {path} already exists") from None
        except OSError as exc:
            raise StateError(f"cannot create journal {path}: {exc.strerror}") from None
        self._append_lock = threading.Lock()
        self._sync = threading.Condition()
        self._written = 0  # sequence number of the last record fully written
        self._synced = 0  # sequence number covered by the last completed fsync
        self._syncing = False
        self._broken: str | None = None
        self._closed = False
        self.appends = 0
        try:
            fsync_dir(path.parent, self._stats)
        except OSError as exc:
            self.close()
            raise StateError(f"cannot make journal {path} durable: {exc.strerror}") from None

    def close(self) -> None:
        with self._sync:
            while self._syncing:
                self._sync.wait()
            with self._append_lock:
                if self._closed:
                    return
                self._closed = True
                os.close(self._fd)

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _append(self, record: dict[str, Any]) -> None:
        line = encode_record(record)
        with self._append_lock:
            self._check_usable()
            try:
                write_all(self._fd, line)
            except OSError as exc:
                # A partial line may now end the file; nothing may follow it.
                self._broken = f"a write failed ({exc.strerror})"
                raise StateError(f"cannot write journal {self.path}: {exc.strerror}") from None
            self._written += 1
            self.appends += 1
            sequence = self._written
        self._stats.wrote(len(line))
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
        raise StateError(
            f"journal {self.path} can no longer be trusted: {self._broken}",
            hint="no further changes are made; results already journaled are kept "
            "and compacted into the state by the next run",
        )


def read_journal(path: Path, *, allow_insecure: bool = False) -> list[dict[str, Any]]:
    """The records of a journal file, oldest first ([] if there is none).

    A last line cut short (the process died mid-append) is ignored: its append
    never returned. A bad line anywhere else is corruption and a StateError.
    """
    data = read_private(path, "journal", allow_insecure=allow_insecure)
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
