"""The state as an object in S3, with its journal, backup and lock beside it.

``s3://BUCKET/KEY`` holds the document, ``KEY.backup`` the previous one,
``KEY.lock`` the lock, and ``KEY.journal/RUN/SEQ.json`` the write-ahead records
of the current (or a killed) run. Every write is conditional, as with
Terraform's ``use_lockfile``: the lock is created with ``If-None-Match: *``, so
one run at a time holds it, and the document is replaced with ``If-Match`` on
the ETag this run read, so a write against a state that changed underneath is
refused. S3 has no append: each group of journal records is a new object,
created once and never rewritten, and removed once the state includes it.

This module keeps the document and folds journals into it; the S3 calls are in
``s3_objects``, the lock in ``s3_lock`` and the journal objects in ``s3_journal``.
Objects may hold private keys: no body is ever logged or put in a message, and
the configured server-side encryption is sent with every write and copy.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.errors import StaleStateError, StateError, UsageError
from reconciler.state.document import StateDocument, dumps, loads, refuse_redacted
from reconciler.state.files import CountsWrites, IOStats
from reconciler.state.lock import LockInfo
from reconciler.state.replay import replay
from reconciler.state.s3_journal import S3Journal, parse_records
from reconciler.state.s3_lock import S3Lock
from reconciler.state.s3_objects import BACKEND, Bucket, Refused, s3_client
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
_READ_ATTEMPTS = 5
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


@dataclass(frozen=True, slots=True)
class _Seen:
    """The state object as this run last read or wrote it under the lock."""

    etag: str | None  # None: there was no state object
    doc: StateDocument


class S3Backend(CountsWrites):
    """A state object in S3; see ``StateBackend`` for the protocol it follows."""

    def __init__(
        self,
        bucket: str,
        key: str,
        *,
        client: Any = None,
        sse: str | None = None,
        kms_key_id: str | None = None,
        region: str | None = None,
        spool_dir: str | Path | None = None,
    ) -> None:
        self.location = f"s3://{bucket}/{key}"
        parse_url(self.location)
        if kms_key_id is not None and sse is None:
            sse = "aws:kms"
        if sse is not None and sse not in SSE_ALGORITHMS:
            raise UsageError(
                f"unknown server-side encryption {sse!r} for {self.location}",
                hint=f"use one of {', '.join(SSE_ALGORITHMS)}",
            )
        if kms_key_id is not None and sse != "aws:kms":
            raise UsageError(f"a KMS key for {self.location} needs encryption aws:kms, not {sse}")
        self.key = key
        self.region = region
        self.backup_key = f"{key}.backup"
        self.lock_key = f"{key}.lock"
        self.journal_prefix = f"{key}.journal/"
        self._bucket = Bucket(client or s3_client(region=region), bucket, sse, kms_key_id)
        self._lock_object = S3Lock(self._bucket, self.lock_key, self.location)
        self._stats = IOStats()
        self._spool = Spool(
            spool_dir_for(str(spool_dir) if spool_dir else None),
            self.location,
            backend=BACKEND,
            stats=IOStats(),  # standby: the backend's counts are its PUTs
        )
        self._held: tuple[LockInfo, str] | None = None  # our lock and its object's ETag
        self._journal: S3Journal | None = None
        self._seen: _Seen | None = None

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
            region=region,
            spool_dir=extra.get(OPTION_SPOOL) or None,
        )

    def __repr__(self) -> str:
        return f"S3Backend({self.location!r})"

    def read(self, *, secrets: bool = True) -> StateDocument:
        for _ in range(_READ_ATTEMPTS):
            current = self._bucket.get(self.key)
            keys = self._bucket.list(self.journal_prefix)
            base = self._parse(current, secrets=secrets) or StateDocument.new()
            records = self._fetch_records(self._unfolded(keys, base))
            # A run that compacted meanwhile replaced the state and removed the
            # objects: read both again rather than miss its records.
            etag = None if current is None else current[1]
            if records is not None and (not keys or self._bucket.etag(self.key) == etag):
                records += self._spool.records(self._spool.files())
                return replay(base, records, source=self._journal_url) if records else base
        raise StateError(f"state {self.location} kept changing while it was read", hint="run again")

    @contextlib.contextmanager
    def lock(self, command: str, *, timeout: float = 0.0) -> Iterator[LockInfo]:
        if self._held is not None:
            raise StateError(f"state {self.location} is already locked by this run")
        info, etag = self._lock_object.acquire(command, timeout)
        self._held = (info, etag)
        self._seen = None
        log.debug("locked %s (lock ID %s)", self.location, info.id)
        try:
            yield info
        finally:
            try:
                self._close_journal()
            finally:
                self._held = None
                self._seen = None
                self._lock_object.release(info, etag)

    def begin(self) -> StateDocument:
        self._require_lock("begin")
        return self._compact()

    def journal(self) -> S3Journal:
        self._require_lock("journal")
        if self._journal is None:
            seen = self._seen or self._see()
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            # Runs are serialized by the lock; names sort in the order they ran.
            run = f"{seen.doc.serial:010d}-{stamp}-{uuid.uuid4().hex[:8]}"
            self._journal = S3Journal(
                self._bucket,
                f"{self.journal_prefix}{run}/",
                stats=self._stats,
                spool=functools.partial(self._spool.open, run),
            )
        return self._journal

    def commit(self) -> StateDocument:
        self._require_lock("commit")
        journal = self._close_journal()
        if journal is None or not journal.records:
            return self._compact()
        seen = self._seen or self._see()
        doc = replay(seen.doc, journal.records, source=self._bucket.url(journal.prefix))
        self._mark_folded(doc, journal.keys)
        try:
            self._store(doc, seen.etag)
        except StaleStateError as exc:
            exc.hint = (
                f"this run's results are kept in {self._bucket.url(journal.prefix)} and go "
                "into the state at the next run; run again"
            )
            raise
        log.info(
            "recorded %d journal records in %s (serial %d)",
            len(journal.records),
            self.location,
            doc.serial,
        )
        self._remove(journal.keys)
        if journal.spooled is not None:
            self._spool.remove([journal.spooled.path])
        return doc

    def write(self, doc: StateDocument) -> None:
        self._require_lock("write")
        refuse_redacted(doc, self.location)
        if self._journal is not None and self._journal.appends:
            raise StateError(
                f"the journal of {self.location} holds records not yet in the state; "
                "commit it before writing the whole state"
            )
        self._close_journal()
        seen = self._seen or self._see()
        if seen.etag is not None and (
            seen.doc.lineage != doc.lineage or seen.doc.serial > doc.serial
        ):
            raise StaleStateError(
                f"state {self.location} is at lineage {seen.doc.lineage} serial "
                f"{seen.doc.serial}, but this document was read at lineage {doc.lineage} "
                f"serial {doc.serial}",
                hint="run the command again",
            )
        self._store(doc, seen.etag)

    def preflight(self, reserve_bytes: int) -> None:
        # S3 does not fill up, but the local spool behind the journal may.
        self._spool.preflight(reserve_bytes)

    def force_unlock(self, lock_id: str, *, force: bool = False) -> None:
        self._lock_object.force_unlock(lock_id, force=force)

    # -- internals ----------------------------------------------------------

    @property
    def _journal_url(self) -> str:
        return self._bucket.url(self.journal_prefix)

    def _see(self) -> _Seen:
        """Compact any leftover journal (as ``begin`` does) and return what was seen."""
        self._compact()
        assert self._seen is not None
        return self._seen

    def _compact(self) -> StateDocument:
        current = self._bucket.get(self.key)
        etag = None if current is None else current[1]
        if self._seen is not None and etag != self._seen.etag:
            raise self._stale()
        base = self._parse(current) or (
            self._seen.doc.copy() if self._seen is not None else StateDocument.new()
        )
        keys = self._bucket.list(self.journal_prefix)
        records = self._fetch_records(self._unfolded(keys, base))
        if records is None:
            raise StateError(f"journal objects under {self._journal_url} vanished under the lock")
        spooled = self._spool.files()
        records += self._spool.records(spooled)  # results S3 could not take in an earlier run
        if not records:
            self._seen = _Seen(etag, base.copy())
            self._remove(keys)  # empty objects, if any
            self._spool.remove(spooled)
            return base
        doc = replay(base, records, source=self._journal_url)
        self._mark_folded(doc, keys)
        self._store(doc, etag)
        log.info(
            "recorded %d journal records in %s (serial %d)", len(records), self.location, doc.serial
        )
        self._remove(keys)
        self._spool.remove(spooled)
        return doc

    def _store(self, doc: StateDocument, etag: str | None) -> None:
        """Write ``doc`` (serial + 1) over the object whose ETag is ``etag``; keep a backup."""
        serial = doc.serial + 1
        copy = doc.copy()
        copy.serial = serial
        data = dumps(copy)
        try:
            if etag is not None:
                self._bucket.copy(self.key, self.backup_key, if_match=etag)
            new_etag = self._bucket.put(self.key, data, if_match=etag)
        except Refused:
            raise self._stale() from None
        self._stats.wrote(len(data))
        self._stats.fsynced()
        doc.serial = serial
        self._seen = _Seen(new_etag, copy)
        log.debug("wrote %s (serial %d, %d bytes)", self.location, serial, len(data))

    def _stale(self) -> StaleStateError:
        return StaleStateError(
            f"the state in {self.location} changed since this run read it; nothing was written",
            hint="another run wrote it (was its lock forced?); run again",
        )

    def _parse(
        self, current: tuple[bytes, str] | None, *, secrets: bool = True
    ) -> StateDocument | None:
        if current is None:
            return None
        return loads(current[0], source=self.location, secrets=secrets)

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

    def _fetch_records(self, keys: list[str]) -> list[dict[str, Any]] | None:
        """The records of ``keys`` in order; None if one of them is gone."""
        records: list[dict[str, Any]] = []
        for key in keys:
            current = self._bucket.get(key)
            if current is None:
                return None
            records.extend(parse_records(current[0], self._bucket.url(key)))
        return records

    def _remove(self, keys: list[str]) -> None:
        if keys:
            try:
                self._bucket.delete_all(keys, f"journal objects under {self._journal_url}")
            except StateError as exc:
                exc.hint = "the state already includes their records; remove them by hand"
                raise

    def _close_journal(self) -> S3Journal | None:
        journal, self._journal = self._journal, None
        if journal is not None:
            journal.close()
            if journal.spooled is not None:
                self._spool.discard_if_empty(journal.spooled)
        return journal

    def _require_lock(self, operation: str) -> None:
        if self._held is None:
            raise StateError(f"{operation} needs the lock on state {self.location}; take it first")
