"""One run's write-ahead journal in S3: each group of records a new object, never rewritten.

S3 has no append, so appends from many threads share PUTs (group commit): each
append returns once an object holding its record is stored, and one PUT may
store many records. The objects are ``PREFIX/SEQ.json``, JSON lines in the
format of ``records``; ``parse_records`` reads one back. Records hold key
material: none is ever logged or quoted in a message.
"""

from __future__ import annotations

import threading
from typing import Any

from reconciler.errors import StateError
from reconciler.state.files import IOStats
from reconciler.state.records import JournalRecords, decode_record, encode_record
from reconciler.state.s3_objects import Bucket, Refused


class S3Journal(JournalRecords):
    """One run's write-ahead journal in S3, with group commit.

    ``records`` keeps every record appended, stored or not, for ``commit``: a
    result whose PUT failed still reaches the state if this run gets that far.
    """

    def __init__(self, bucket: Bucket, prefix: str, *, stats: IOStats) -> None:
        self.prefix = prefix
        self._bucket = bucket
        self._stats = stats
        self._sync = threading.Condition()
        self._buffer: list[bytes] = []
        self._queued = 0  # sequence number of the last record appended
        self._stored = 0  # sequence number covered by the last stored object
        self._storing = False
        self._broken: str | None = None
        self._closed = False
        self.appends = 0
        self.records: list[dict[str, Any]] = []  # every record appended, in order
        self.keys: list[str] = []  # the objects stored, in order

    def close(self) -> None:
        with self._sync:
            while self._storing:
                self._sync.wait()
            self._closed = True

    def _append(self, record: dict[str, Any]) -> None:
        line = encode_record(record)
        with self._sync:
            if self._closed:
                raise StateError(f"journal {self._bucket.url(self.prefix)} is closed")
            self._raise_if_broken()
            self._buffer.append(line)
            self.records.append(record)
            self.appends += 1
            self._queued += 1
            sequence = self._queued
            while self._stored < sequence:
                self._raise_if_broken()
                if not self._storing:
                    break
                self._sync.wait()
            else:
                return  # another thread's object holds this record
            self._storing = True
            batch, self._buffer = b"".join(self._buffer), []
            target = self._queued
            key = f"{self.prefix}{len(self.keys) + 1:010d}.json"
        stored = False
        try:
            self._bucket.put(key, batch, if_match=None)
            stored = True
        except Refused:
            raise StateError(f"journal object {self._bucket.url(key)} already exists") from None
        finally:
            with self._sync:
                if stored:
                    self._stored = target
                    self.keys.append(key)
                else:
                    # Whether that object was stored is unknown: nothing may follow it.
                    self._broken = f"storing {self._bucket.url(key)} failed"
                self._storing = False
                self._sync.notify_all()
        self._stats.wrote(len(batch))
        self._stats.fsynced()

    def _raise_if_broken(self) -> None:
        if self._broken is not None:
            raise StateError(
                f"journal {self._bucket.url(self.prefix)} can no longer be trusted: {self._broken}",
                hint="no further changes are made; results already journaled are kept "
                "and folded into the state by this run or the next",
            )


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
