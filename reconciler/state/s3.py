"""The state as an object in S3, with its journal, backup and lock beside it.

``s3://BUCKET/KEY`` holds the document, ``KEY.backup`` the previous one,
``KEY.lock`` the lock, and ``KEY.journal/RUN/SEQ.json`` the write-ahead records
of the current (or a killed) run. Every write is conditional, as with
Terraform's ``use_lockfile``: the lock is created with ``If-None-Match: *``, so
one run at a time holds it, and the document is replaced with ``If-Match`` on
the ETag this run read, so a write against a state that changed underneath is
refused. S3 has no append: each group of journal records is a new object,
created once and never rewritten, and removed once the state includes it.

Objects may hold private keys: no body is ever logged or put in a message, and
the configured server-side encryption is sent with every write and copy.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config

from reconciler.errors import (
    CredentialsError,
    LockHeldError,
    ReconcilerError,
    StaleStateError,
    StateError,
    UsageError,
)
from reconciler.model import Address, StateEntry
from reconciler.state.document import StateDocument, dumps, entry_to_json, loads
from reconciler.state.files import IOStats
from reconciler.state.journal import OPERATIONS, keygen_key
from reconciler.state.lock import LockInfo, _alive
from reconciler.state.replay import replay

log = logging.getLogger(__name__)

# Keys of ``Options.extra`` that configure this backend (the project file sets them).
OPTION_SSE = "s3.sse"
OPTION_KMS_KEY_ID = "s3.kms_key_id"
OPTION_REGION = "s3.region"

SSE_ALGORITHMS = ("AES256", "aws:kms")
LOCK_POLL_FIRST = 0.2
LOCK_POLL_MAX = 5.0
_READ_ATTEMPTS = 5
_CONFLICT_ATTEMPTS = 5
_DELETE_BATCH = 1000
# Lenient on purpose (old us-east-1 buckets may hold capitals): S3 has the last word.
BUCKET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,254}")
_BotoErrors = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)
_ABSENT = ("NoSuchKey", "404")  # with If-Match, S3 answers 404 when the object is gone
_REFUSED = ("PreconditionFailed", "412", "ConditionalRequestConflict")


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


def s3_client(*, region: str | None = None, profile: str | None = None) -> Any:
    """An S3 client from boto3's standard chain (AWS_PROFILE, AWS_ENDPOINT_URL_S3, ...)."""
    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
        return session.client(
            "s3",
            config=Config(
                retries={"mode": "standard", "total_max_attempts": 5},
                connect_timeout=10,
                read_timeout=60,
                user_agent_extra="lightsail-reconciler",
            ),
        )
    except botocore.exceptions.BotoCoreError as exc:
        raise StateError(f"cannot set up an S3 client: {exc}") from None


class _Refused(Exception):
    """A conditional request was refused: the object is not in the state it expected."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True, slots=True)
class _Seen:
    """The state object as this run last read or wrote it under the lock."""

    etag: str | None  # None: there was no state object
    doc: StateDocument


class _Bucket:
    """The S3 calls the backend makes, every failure turned into a ReconcilerError."""

    def __init__(self, client: Any, bucket: str, sse: str | None, kms_key_id: str | None) -> None:
        self.client = client
        self.bucket = bucket
        self.encryption: dict[str, str] = {}
        if sse is not None:
            self.encryption["ServerSideEncryption"] = sse
        if kms_key_id is not None:
            self.encryption["SSEKMSKeyId"] = kms_key_id

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def get(self, key: str) -> tuple[bytes, str] | None:
        """The body and ETag of ``key``, or None if there is no such object."""
        what = f"cannot read {self.url(key)}"
        response = self._call("get_object", what, {"Key": key}, absent=True)
        if response is None:
            return None
        try:
            return response["Body"].read(), str(response["ETag"])
        except botocore.exceptions.BotoCoreError as exc:
            raise self._error(exc, what) from None

    def etag(self, key: str) -> str | None:
        response = self._call(
            "head_object", f"cannot read {self.url(key)}", {"Key": key}, absent=True
        )
        return None if response is None else str(response["ETag"])

    def put(self, key: str, body: bytes, *, if_match: str | None) -> str:
        """Write ``key`` if its ETag is ``if_match`` (None: only if there is no such object).

        Returns the new ETag; ``_Refused`` if the condition does not hold.
        """
        condition = {"IfMatch": if_match} if if_match is not None else {"IfNoneMatch": "*"}
        params = {"Key": key, "Body": body, **condition, **self.encryption}
        for attempt in range(_CONFLICT_ATTEMPTS):
            try:
                response = self._call("put_object", f"cannot write {self.url(key)}", params)
                return str(response["ETag"])
            except _Refused as refused:
                if (
                    refused.code != "ConditionalRequestConflict"
                    or attempt + 1 == _CONFLICT_ATTEMPTS
                ):
                    break
                time.sleep(0.05 * 2**attempt)  # a concurrent conditional write: S3 says retry
        # A request retried after its response was lost is refused although it
        # went through: then the object holds exactly what was sent.
        current = self.get(key)
        if current is not None and current[0] == body:
            return current[1]
        raise _Refused(key)

    def copy(self, source: str, target: str, *, if_match: str) -> None:
        self._call(
            "copy_object",
            f"cannot copy {self.url(source)} to {self.url(target)}",
            {
                "Key": target,
                "CopySource": {"Bucket": self.bucket, "Key": source},
                "CopySourceIfMatch": if_match,
                **self.encryption,
            },
        )

    def delete(self, key: str, *, if_match: str) -> None:
        self._call(
            "delete_object", f"cannot remove {self.url(key)}", {"Key": key, "IfMatch": if_match}
        )

    def delete_all(self, keys: list[str], what: str) -> None:
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = [{"Key": k} for k in keys[start : start + _DELETE_BATCH]]
            response = self._call(
                "delete_objects",
                f"cannot remove {what}",
                {"Delete": {"Objects": batch, "Quiet": True}},
            )
            for error in response.get("Errors") or ():
                raise StateError(f"cannot remove {what}: {error.get('Code')} on {error['Key']}")

    def list(self, prefix: str) -> list[str]:
        """The keys under ``prefix``, in order."""
        keys: list[str] = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        try:
            for page in pages:
                keys.extend(str(item["Key"]) for item in page.get("Contents", ()))
        except _BotoErrors as exc:
            raise self._error(exc, f"cannot list {self.url(prefix)}") from None
        return sorted(keys)

    def _call(
        self, operation: str, what: str, params: dict[str, Any], *, absent: bool = False
    ) -> Any:
        """``client.<operation>``: None for a missing object if ``absent``, else ``_Refused``
        when a condition fails; any other failure as a ReconcilerError about ``what``."""
        try:
            return getattr(self.client, operation)(Bucket=self.bucket, **params)
        except botocore.exceptions.ClientError as exc:
            code = _code(exc)
            if absent and code in _ABSENT:
                return None
            if code in _REFUSED or code in _ABSENT:
                raise _Refused(code) from None
            raise self._error(exc, what) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self._error(exc, what) from None

    def _error(self, exc: Exception, what: str) -> ReconcilerError:
        if isinstance(exc, botocore.exceptions.NoCredentialsError):
            return CredentialsError(
                f"{what}: no AWS credentials found",
                code="NoCredentials",
                hint="set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            )
        if not isinstance(exc, botocore.exceptions.ClientError):
            return StateError(f"{what}: {exc}", hint="check the network and run again")
        code = _code(exc)
        if code == "NoSuchBucket":
            return StateError(
                f"{what}: bucket {self.bucket} does not exist",
                hint="create it (with versioning enabled), or fix the state location",
            )
        if code in ("AccessDenied", "403", "KMS.AccessDeniedException"):
            kms = self.encryption.get("ServerSideEncryption") == "aws:kms"
            return StateError(
                f"{what}: access denied",
                hint="allow s3:GetObject, s3:PutObject and s3:DeleteObject on the state key and "
                f"the keys that start with it, and s3:ListBucket on {self.bucket}"
                + (", and kms:GenerateDataKey and kms:Decrypt on the KMS key" if kms else ""),
            )
        message = exc.response.get("Error", {}).get("Message") or code
        return StateError(f"{what}: {message}", hint="run again; -v shows more")


class S3Journal:
    """One run's write-ahead journal in S3, with group commit.

    Appends from many threads share PUTs: each append returns only once an
    object holding its record is stored, and one PUT may store many records.
    ``records`` keeps every record appended, stored or not, for ``commit``: a
    result whose PUT failed still reaches the state if this run gets that far.
    """

    def __init__(self, bucket: _Bucket, prefix: str, *, stats: IOStats) -> None:
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

    def intent(self, op: str, address: Address) -> str:
        """Record that ``op`` on ``address`` is about to be called; returns the intent id."""
        if op not in OPERATIONS:
            raise ValueError(f"unknown journal operation {op!r}")
        intent_id = str(uuid.uuid4())
        record = {"kind": "intent", "id": intent_id, "op": op, **_address(address)}
        self._append({**record, "at": time.time()})
        return intent_id

    def keygen(
        self,
        intent_id: str,
        address: Address,
        private_key: str | None,
        public_key: str,
        *,
        private_key_sealed: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a locally generated key pair (its private half in clear or sealed)."""
        record = {"kind": "keygen", "id": intent_id, **_address(address)}
        key = keygen_key(private_key, private_key_sealed)
        self._append({**record, **key, "publicKey": public_key})

    def result(self, intent_id: str, entry: StateEntry) -> None:
        """Record the state entry a call produced (with its private key, if any)."""
        self._append({"kind": "result", "id": intent_id, "entry": entry_to_json(entry)})

    def removed(self, intent_id: str, address: Address) -> None:
        """Record that a delete went through."""
        self._append({"kind": "result", "id": intent_id, "removed": True, **_address(address)})

    def failed(self, intent_id: str, error: str) -> None:
        """Record that a call definitely had no effect."""
        self._append({"kind": "failed", "id": intent_id, "error": error})

    def close(self) -> None:
        with self._sync:
            while self._storing:
                self._sync.wait()
            self._closed = True

    def _append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode("ascii")
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
        except _Refused:
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


class S3Backend:
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
        self._bucket = _Bucket(client or s3_client(region=region), bucket, sse, kms_key_id)
        self._stats = IOStats()
        self._held: tuple[LockInfo, str] | None = None  # our lock and its object's ETag
        self._journal: S3Journal | None = None
        self._seen: _Seen | None = None

    @classmethod
    def from_url(cls, url: str, options: Any) -> S3Backend:
        """The backend for ``s3://BUCKET/KEY``, configured by ``options.extra`` and profile."""
        bucket, key = parse_url(url)
        extra: Mapping[str, str] = getattr(options, "extra", None) or {}
        region = extra.get(OPTION_REGION) or None
        client = s3_client(region=region, profile=getattr(options, "profile", None))
        return cls(
            bucket,
            key,
            client=client,
            sse=extra.get(OPTION_SSE) or None,
            kms_key_id=extra.get(OPTION_KMS_KEY_ID) or None,
            region=region,
        )

    def __repr__(self) -> str:
        return f"S3Backend({self.location!r})"

    @property
    def fsync_count(self) -> int:
        """Durable writes so far: PUTs of the state and of journal objects."""
        return self._stats.fsyncs

    @property
    def bytes_written(self) -> int:
        return self._stats.bytes

    def read(self) -> StateDocument:
        for _ in range(_READ_ATTEMPTS):
            current = self._bucket.get(self.key)
            keys = self._bucket.list(self.journal_prefix)
            records = self._fetch_records(keys)
            # A run that compacted meanwhile replaced the state and removed the
            # objects: read both again rather than miss its records.
            etag = None if current is None else current[1]
            if records is not None and (not keys or self._bucket.etag(self.key) == etag):
                base = self._parse(current) or StateDocument.new()
                return replay(base, records, source=self._journal_url) if records else base
        raise StateError(f"state {self.location} kept changing while it was read", hint="run again")

    @contextlib.contextmanager
    def lock(self, command: str, *, timeout: float = 0.0) -> Iterator[LockInfo]:
        if self._held is not None:
            raise StateError(f"state {self.location} is already locked by this run")
        info, etag = self._acquire(command, timeout)
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
                self._release(info, etag)

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
                self._bucket, f"{self.journal_prefix}{run}/", stats=self._stats
            )
        return self._journal

    def commit(self) -> StateDocument:
        self._require_lock("commit")
        journal = self._close_journal()
        if journal is None or not journal.records:
            return self._compact()
        seen = self._seen or self._see()
        doc = replay(seen.doc, journal.records, source=self._bucket.url(journal.prefix))
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
        return doc

    def write(self, doc: StateDocument) -> None:
        self._require_lock("write")
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

    def force_unlock(self, lock_id: str, *, force: bool = False) -> None:
        current = self._bucket.get(self.lock_key)
        if current is None:
            raise StateError(
                f"state {self.location} is not locked (no {self._bucket.url(self.lock_key)})"
            )
        info = _lock_info(current[0])
        if info is None or info.id != lock_id:
            held_id = "no readable lock ID" if info is None else f"lock ID {info.id}"
            raise StateError(
                f"lock ID does not match: {self._bucket.url(self.lock_key)} has {held_id}, "
                f"not {lock_id}",
                hint="copy the lock ID from the 'state is locked' message",
            )
        if not force and info.host == socket.gethostname() and _alive(info.pid):
            raise StateError(
                f"the run holding the lock is still running: {info.describe()}",
                hint="let it finish or stop it; forcing the unlock anyway lets two runs "
                "write the state at once",
            )
        try:
            self._bucket.delete(self.lock_key, if_match=current[1])
        except _Refused:
            raise StateError(
                f"the lock on {self.location} changed while it was being removed", hint="run again"
            ) from None
        log.warning("removed the state lock held by %s", info.describe())

    # -- internals ----------------------------------------------------------

    @property
    def _journal_url(self) -> str:
        return self._bucket.url(self.journal_prefix)

    def _acquire(self, command: str, timeout: float) -> tuple[LockInfo, str]:
        info = LockInfo.for_this_process(command)
        body = json.dumps(asdict(info)).encode()
        deadline = time.monotonic() + max(timeout, 0.0)
        delay = LOCK_POLL_FIRST
        while True:
            try:
                return info, self._bucket.put(self.lock_key, body, if_match=None)
            except _Refused:
                pass
            current = self._bucket.get(self.lock_key)
            if current is None:
                continue  # released between our two requests
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._held_error(_lock_info(current[0]), timeout)
            if delay == LOCK_POLL_FIRST:
                log.info("waiting up to %.1fs for the lock on %s", timeout, self.location)
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, LOCK_POLL_MAX)

    def _release(self, info: LockInfo, etag: str) -> None:
        url = self._bucket.url(self.lock_key)
        try:
            current = self._bucket.get(self.lock_key)
            if current is None or current[1] != etag:
                log.warning("lock %s was removed or replaced while this run held it", url)
                return
            self._bucket.delete(self.lock_key, if_match=etag)
            log.debug("unlocked %s", self.location)
        except _Refused:
            log.warning("lock %s was removed or replaced while this run held it", url)
        except StateError as exc:
            log.warning(
                "could not release the lock on %s (%s); remove it with "
                "`reconciler force-unlock %s --state %s`",
                self.location,
                exc.message,
                info.id,
                self.location,
            )

    def _held_error(self, holder: LockInfo | None, timeout: float) -> LockHeldError:
        who = holder.describe() if holder else "another run (its lock details are unreadable)"
        waited = f" after waiting {timeout:g}s" if timeout > 0 else ""
        if holder is not None:
            remedy = f"`reconciler force-unlock {holder.id} --state {self.location}`"
        else:
            remedy = f"remove {self._bucket.url(self.lock_key)} by hand"
        return LockHeldError(
            f"state {self.location} is locked by {who}{waited}",
            hint="wait for that run to finish, or retry with --lock-timeout SECONDS; S3 cannot "
            f"tell whether that run is still alive: if it is stuck or gone for good, {remedy}",
        )

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
        records = self._fetch_records(keys)
        if records is None:
            raise StateError(f"journal objects under {self._journal_url} vanished under the lock")
        if not records:
            self._seen = _Seen(etag, base.copy())
            self._remove(keys)  # empty objects, if any
            return base
        doc = replay(base, records, source=self._journal_url)
        self._store(doc, etag)
        log.info(
            "recorded %d journal records in %s (serial %d)", len(records), self.location, doc.serial
        )
        self._remove(keys)
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
        except _Refused:
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

    def _parse(self, current: tuple[bytes, str] | None) -> StateDocument | None:
        return None if current is None else loads(current[0], source=self.location)

    def _fetch_records(self, keys: list[str]) -> list[dict[str, Any]] | None:
        """The records of ``keys`` in order; None if one of them is gone."""
        records: list[dict[str, Any]] = []
        for key in keys:
            current = self._bucket.get(key)
            if current is None:
                return None
            records.extend(_parse_records(current[0], self._bucket.url(key)))
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
        return journal

    def _require_lock(self, operation: str) -> None:
        if self._held is None:
            raise StateError(f"{operation} needs the lock on state {self.location}; take it first")


def _address(address: Address) -> dict[str, str]:
    return {"region": address.region, "name": address.name}


def _code(error: botocore.exceptions.ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _lock_info(data: bytes) -> LockInfo | None:
    try:
        return LockInfo.from_json(json.loads(data))
    except ValueError:
        return None


def _parse_records(data: bytes, source: str) -> list[dict[str, Any]]:
    """The JSON-lines records of one journal object (stored whole: no line is cut short)."""
    records: list[dict[str, Any]] = []
    for number, line in enumerate(data.splitlines(), start=1):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            raise StateError(
                f"journal object {source} is corrupt at line {number}",
                hint="it holds results not yet in the state (and private keys: keep it "
                "private); repair or remove it by hand, then run again",
            )
        records.append(record)
    return records
