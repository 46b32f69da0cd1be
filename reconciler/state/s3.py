"""The state as an object in S3, with its journal, backup and lock beside it.

``s3://BUCKET/KEY`` holds the document, ``KEY.backup`` the previous one,
``KEY.lock`` the lock, and ``KEY.journal/RUN/SEQ.json`` the write-ahead records
of the current (or a killed) run. Every write is conditional, as with
Terraform's ``use_lockfile``: the lock is created with ``If-None-Match: *``, so
one run at a time holds it, and the document is replaced with ``If-Match`` on
the ETag this run read, so a write against a state that changed underneath is
refused. S3 has no append: each group of journal records is a new object,
created once and never rewritten, and removed once the state includes it.

``S3Objects`` is the object store the protocol in ``core`` runs over; the S3
calls are in ``s3_objects``, the lock in ``s3_lock``, the journal objects in
``s3_journal``, and the local spool that keeps results S3 would not take in
``spool``.
Objects may hold private keys: no body is ever logged or put in a message, and
the configured server-side encryption is sent with every write and copy.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.errors import StateError, UsageError
from reconciler.state import s3_objects
from reconciler.state.core import Leftovers, Refused, StateLock, StateStore
from reconciler.state.document import StateDocument, loads
from reconciler.state.files import IOStats
from reconciler.state.s3_journal import S3Journal, parse_records
from reconciler.state.s3_lock import S3Lock
from reconciler.state.s3_objects import BACKEND, Bucket, s3_client
from reconciler.state.s3_settings import SSE_ALGORITHMS, S3Settings, parse_url
from reconciler.state.settings import StateContext
from reconciler.state.spool import Spool
from reconciler.state.spool import spool_dir as spool_dir_for

log = logging.getLogger(__name__)

FOLDED_RUNS = 16  # journal runs the state remembers having folded

# The lock of a state: made with its bucket, the lock object's key and the state's location.
LockFactory = Callable[[Bucket, str, str], StateLock]


class S3Objects:
    """The document, its backup and its journal objects in one bucket (see ``core.ObjectStore``).

    Writes are conditional: a document is replaced only over the ETag this run
    saw, so ``conditional`` is true. Journal records S3 would not take are in
    the local ``spool``, and count as journal records until the state holds them.
    """

    backend = BACKEND
    conditional = True

    def __init__(
        self, bucket: Bucket, key: str, location: str, spool: Spool, stats: IOStats
    ) -> None:
        self.key = key
        self.location = location
        self.backup_key = f"{key}.backup"
        self.journal_prefix = f"{key}.journal/"
        self.backup = bucket.url(self.backup_key)
        self._bucket = bucket
        self._spool = spool
        self._stats = stats
        self._run: S3Journal | None = None  # this run's journal, once opened

    def load(self, *, secrets: bool = True) -> tuple[StateDocument | None, object]:
        current = self._bucket.get(self.key)
        if current is None:
            return None, None
        body, etag = current
        return loads(body, source=self.location, secrets=secrets, backup=self.backup), etag

    def version(self) -> object:
        return self._bucket.etag(self.key)

    def save(self, data: bytes, expected: object) -> object:
        etag = None if expected is None else str(expected)
        try:
            if etag is not None:
                self._bucket.copy(self.key, self.backup_key, if_match=etag)
            new_etag = self._bucket.put(self.key, data, if_match=etag)
        except s3_objects.Refused:
            raise Refused() from None
        self._stats.wrote(len(data))
        self._stats.fsynced()
        return new_etag

    def leftovers(self, doc: StateDocument) -> Leftovers | None:
        run, self._run = self._run, None
        if run is not None:
            # This run's own journal, after ``begin`` folded in every earlier one:
            # its records are in memory, with those the spool took.
            spooled = [run.spooled.path] if run.spooled is not None else []
            return self._leftovers(run.records, run.keys, spooled, run.prefix)
        keys = self._bucket.list(self.journal_prefix)
        records: list[dict[str, Any]] = []
        for key in self._unfolded(keys, doc):
            current = self._bucket.get(key)
            if current is None:
                return None  # folded and removed by another run meanwhile
            records.extend(parse_records(current[0], self._bucket.url(key)))
        spooled = self._spool.files()
        records += self._spool.records(spooled)  # results S3 would not take in an earlier run
        return self._leftovers(records, keys, spooled, self.journal_prefix)

    def new_journal(self, doc: StateDocument) -> S3Journal:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        # Runs are serialized by the lock; names sort in the order they ran.
        run = f"{doc.serial:010d}-{stamp}-{uuid.uuid4().hex[:8]}"
        self._run = S3Journal(
            self._bucket,
            f"{self.journal_prefix}{run}/",
            stats=self._stats,
            spool=self._spool,
            run=run,
        )
        return self._run

    def size(self) -> int:
        return 0  # S3 does not fill up

    def preflight(self, reserve_bytes: int, state_bytes: int) -> None:
        # S3 does not fill up, but the local spool behind the journal may.
        self._spool.preflight(reserve_bytes)

    def _leftovers(
        self, records: list[dict[str, Any]], keys: list[str], spooled: list[Path], prefix: str
    ) -> Leftovers:
        def remove() -> None:
            if keys:
                what = f"journal objects under {self._bucket.url(self.journal_prefix)}"
                try:
                    self._bucket.delete_all(keys, what)
                except StateError as exc:
                    exc.hint = "the state already includes their records; remove them by hand"
                    raise
            self._spool.remove(spooled)

        return Leftovers(
            records,
            self._bucket.url(prefix),
            remove=remove,
            mark=lambda doc: self._mark_folded(doc, keys),
        )

    def _journal_object(self, key: str) -> tuple[str, int] | None:
        """The run and number of a journal object ``PREFIX/RUN/SEQ.json``."""
        run, _, name = key.removeprefix(self.journal_prefix).partition("/")
        number = name.removesuffix(".json")
        return (run, int(number)) if number.isdigit() and name.endswith(".json") else None

    def _unfolded(self, keys: list[str], doc: StateDocument) -> list[str]:
        """``keys`` less the objects ``doc`` already holds: a PUT that landed late,
        after its run was folded and its objects removed, is not replayed again."""
        fresh = []
        for key in keys:
            place = self._journal_object(key)
            if place is not None and place[1] <= doc.folded.get(place[0], -1):
                log.info("ignoring %s: the state already holds it", self._bucket.url(key))
                continue
            fresh.append(key)
        return fresh

    def _mark_folded(self, doc: StateDocument, keys: list[str]) -> None:
        for key in keys:
            place = self._journal_object(key)
            if place is not None:
                run, number = place
                doc.folded[run] = max(number, doc.folded.get(run, 0))
        for run in sorted(doc.folded)[:-FOLDED_RUNS]:
            del doc.folded[run]  # late writes arrive within seconds, not many runs later


class S3Backend(StateStore):
    """A state object in S3; see ``StateBackend`` for the protocol it follows.

    ``open`` makes it from its settings, with the lock its registry entry
    chooses; made directly, it takes an S3 client from the standard chain
    unless given one, and the S3 lock.
    """

    def __init__(
        self,
        bucket: str,
        key: str,
        *,
        client: Any = None,
        sse: str | None = None,
        kms_key_id: str | None = None,
        spool_dir: str | Path | None = None,
        lock: LockFactory = S3Lock,
    ) -> None:
        location = S3Settings(bucket, key).location
        parse_url(location)
        if kms_key_id is not None and sse is None:
            sse = "aws:kms"
        if sse is not None and sse not in SSE_ALGORITHMS:
            raise UsageError(
                f"unknown server-side encryption {sse!r} for {location}",
                hint=f"use one of {', '.join(SSE_ALGORITHMS)}",
            )
        if kms_key_id is not None and sse != "aws:kms":
            raise UsageError(f"a KMS key for {location} needs encryption aws:kms, not {sse}")
        self.key = key
        stats = IOStats()
        objects = Bucket(client or s3_client(), bucket, sse, kms_key_id)
        spool = Spool(
            spool_dir_for(str(spool_dir) if spool_dir else None),
            location,
            backend=BACKEND,
            stats=IOStats(),  # standby: the backend's counts are its PUTs
        )
        super().__init__(
            S3Objects(objects, key, location, spool, stats),
            lock(objects, f"{key}.lock", location),
            stats,
        )

    @classmethod
    def open(cls, settings: S3Settings, context: StateContext, *, lock: LockFactory) -> S3Backend:
        """The backend of ``settings``, reached with the run's AWS profile."""
        client = s3_client(
            region=settings.region, profile=context.profile, timeout=settings.timeout
        )
        return cls(
            settings.bucket,
            settings.key,
            client=client,
            sse=settings.sse,
            kms_key_id=settings.kms_key_id,
            spool_dir=settings.spool,
            lock=lock,
        )
