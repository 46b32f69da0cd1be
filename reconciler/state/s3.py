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
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.errors import StateError, UsageError
from reconciler.state import s3_objects
from reconciler.state.core import Leftovers, Refused, StateStore
from reconciler.state.document import StateDocument, loads
from reconciler.state.files import IOStats
from reconciler.state.s3_journal import S3Journal, parse_records
from reconciler.state.s3_lock import S3Lock
from reconciler.state.s3_objects import BACKEND, Bucket, s3_client
from reconciler.state.spool import Spool
from reconciler.state.spool import spool_dir as spool_dir_for

log = logging.getLogger(__name__)

# Keys of ``Options.extra`` that configure this backend (the project file sets them).
OPTION_SSE = "s3.sse"
OPTION_KMS_KEY_ID = "s3.kms_key_id"
OPTION_REGION = "s3.region"
OPTION_TIMEOUT = "s3.timeout"
OPTION_SPOOL = "s3.spool"

SSE_ALGORITHMS = ("AES256", "aws:kms")
FOLDED_RUNS = 16  # journal runs the state remembers having folded
# Lenient on purpose (old us-east-1 buckets may hold capitals): S3 has the last word.
BUCKET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,254}")


def parse_url(url: str) -> tuple[str, str]:
    """``s3://BUCKET/KEY`` as ``(bucket, key)``; a UsageError if it is not one."""
    bucket, _, key = url.removeprefix("s3://").partition("/")
    if not url.startswith("s3://") or not BUCKET_NAME.fullmatch(bucket) or not valid_key(key):
        raise UsageError(
            f"{url!r} is not an S3 state location",
            hint="name a bucket and an object key, e.g. s3://my-bucket/reconciler/state.json",
        )
    return bucket, key


def valid_key(key: str) -> bool:
    """An object key for the state: not empty, and no leading or trailing slash."""
    return bool(key) and not key.startswith("/") and not key.endswith("/")


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
    """A state object in S3; see ``StateBackend`` for the protocol it follows."""

    def __init__(
        self,
        bucket: str,
        key: str,
        *,
        client: Any = None,
        sse: str | None = None,
        kms_key_id: str | None = None,
        spool_dir: str | Path | None = None,
    ) -> None:
        location = f"s3://{bucket}/{key}"
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
            S3Lock(objects, f"{key}.lock", location),
            stats,
        )

    @classmethod
    def from_url(cls, url: str, options: Any) -> S3Backend:
        """The backend for ``s3://BUCKET/KEY``, configured by ``options.extra`` and profile."""
        bucket, key = parse_url(url)
        extra: Mapping[str, str] = getattr(options, "extra", None) or {}
        region = extra.get(OPTION_REGION) or None
        timeout = float(extra[OPTION_TIMEOUT]) if extra.get(OPTION_TIMEOUT) else None
        client = s3_client(
            region=region, profile=getattr(options, "profile", None), timeout=timeout
        )
        return cls(
            bucket,
            key,
            client=client,
            sse=extra.get(OPTION_SSE) or None,
            kms_key_id=extra.get(OPTION_KMS_KEY_ID) or None,
            spool_dir=extra.get(OPTION_SPOOL) or None,
        )
