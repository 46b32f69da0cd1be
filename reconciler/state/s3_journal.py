"""One run's write-ahead journal in S3: each group of records a new object, never rewritten.

S3 has no append, so appends from many threads share PUTs (group commit): each
append returns once an object holding its record is stored, and one PUT may
store many records. The objects are ``PREFIX/SEQ.json``, JSON lines in the
format of ``records``; ``parse_records`` reads one back. Records hold key
material: none is ever logged or quoted in a message.

When a PUT fails for good (``Bucket`` has retried it), its records and every
later one go to this run's local spool file instead, and no new reservation is
granted: the run stops, changes in flight finish into the spool, and the next
run moves the spooled records into the state. Reservations are made in the
spool, so a result always has room in one home or the other.
"""

from __future__ import annotations

import threading
from typing import Any

from reconciler.errors import ReconcilerError, StateError, StorageError
from reconciler.state.files import IOStats
from reconciler.state.journal import Journal
from reconciler.state.records import JournalRecords, Reservation, decode_record, encode_record
from reconciler.state.s3_objects import BACKEND, Bucket, Refused
from reconciler.state.spool import Spool


class S3Journal(JournalRecords):
    """One run's write-ahead journal in S3, with group commit and a local spool behind it.

    ``records`` keeps every record appended, stored or spooled, for ``commit``:
    a result whose PUT failed still reaches the state if this run gets that far.
    """

    def __init__(
        self, bucket: Bucket, prefix: str, *, stats: IOStats, spool: Spool, run: str
    ) -> None:
        self.prefix = prefix
        self._spools = spool
        self._run = run
        self._spool: Journal | None = None  # opened at the first reservation or spooled record
        self._spool_lock = threading.Lock()
        self._bucket = bucket
        self._stats = stats
        self._sync = threading.Condition()
        self._buffer: list[tuple[bytes, dict[str, Any]]] = []
        self._queued = 0  # sequence number of the last record appended
        self._stored = 0  # sequence number covered by the last stored object
        self._storing = False
        self._stopping: StorageError | None = None  # set once records go to the spool
        self._lost: StorageError | None = None  # neither S3 nor the spool took a batch
        self._closed = False
        self.appends = 0
        self.records: list[dict[str, Any]] = []  # every record appended, in order
        self.keys: list[str] = []  # the objects stored, in order

    @property
    def spool(self) -> Journal:
        """This run's spool file, opened on first use."""
        with self._spool_lock:
            if self._spool is None:
                self._spool = self._spools.open(self._run)
            return self._spool

    @property
    def spooled(self) -> Journal | None:
        """The spool file, if this run opened one."""
        return self._spool

    def reserve(self, nbytes: int) -> Reservation:
        if self._stopping is not None:
            raise self._stopping
        return self.spool.reserve(nbytes)

    def close(self) -> None:
        with self._sync:
            while self._storing:
                self._sync.wait()
            self._closed = True
        if self._spool is not None:
            self._spools.discard_if_empty(self._spool)

    def _append(self, record: dict[str, Any]) -> None:
        line = encode_record(record)
        with self._sync:
            if self._closed:
                raise StateError(f"journal {self._bucket.url(self.prefix)} is closed")
            self.records.append(record)
            self.appends += 1
            if self._stopping is not None:
                spooled = True
            else:
                spooled = False
                self._buffer.append((line, record))
                self._queued += 1
                sequence = self._queued
                while self._stored < sequence:
                    if self._lost is not None:
                        raise self._lost
                    if not self._storing:
                        break
                    self._sync.wait()
                else:
                    return  # another thread's object (or the spool) holds this record
                self._storing = True
                batch, self._buffer = self._buffer, []
                target = self._queued
                key = f"{self.prefix}{len(self.keys) + 1:010d}.json"
        if spooled:
            self.spool.append(record)
            return
        self._store(key, batch, target)

    def _store(self, key: str, batch: list[tuple[bytes, dict[str, Any]]], target: int) -> None:
        body = b"".join(line for line, _ in batch)
        try:
            self._bucket.put(key, body, if_match=None)
        except Refused:
            failure: ReconcilerError = StorageError(
                f"{BACKEND}: journal object {self._bucket.url(key)} already exists"
            )
        except ReconcilerError as exc:
            failure = exc
        else:
            with self._sync:
                self._stored = target
                self.keys.append(key)
                self._storing = False
                self._sync.notify_all()
            self._stats.wrote(len(body))
            self._stats.fsynced()
            return
        # Whether that object was stored is unknown: it and everything after it
        # go to the spool (replaying a record twice is harmless).
        try:
            spool = self.spool.path
        except StorageError:
            spool = None
        with self._sync:
            self._stopping = StorageError(
                f"{failure.message}; results are kept in the local spool {spool}",
                hint="no further changes are made; the next run moves the spooled results "
                "into the state (the spool file is private to its owner: keep it); run again "
                "once S3 answers",
            )
            batch += self._buffer
            self._buffer = []
            target = self._queued
        try:
            for _, record in batch:
                self.spool.append(record)
        except StorageError as exc:
            with self._sync:
                self._lost = exc
                self._storing = False
                self._sync.notify_all()
            raise
        with self._sync:
            self._stored = target
            self._storing = False
            self._sync.notify_all()


def parse_records(data: bytes, source: str) -> list[dict[str, Any]]:
    """The JSON-lines records of one journal object (stored whole: no line is cut short)."""
    records: list[dict[str, Any]] = []
    for number, line in enumerate(data.splitlines(), start=1):
        try:
            record, _ = decode_record(line)
        except ValueError:  # e.g. a number too long to convert
            record = None
        if record is None:
            raise StateError(
                f"journal object {source} is corrupt at line {number}",
                hint="it holds results not yet in the state (and private keys: keep it "
                "private); repair or remove it by hand, then run again",
            )
        records.append(record)
    return records
