"""The S3 calls the state backend makes: conditional reads, writes, copies and removals.

``Bucket`` wraps a boto3 client for one bucket. Writes are conditional
(``If-None-Match: *`` to create, ``If-Match`` on an ETag to replace or remove),
and a condition that does not hold is ``Refused``. A call answered with a 5xx,
a throttle, a timeout or a dropped connection is sent again with backoff: that
is safe because every write is conditional (a PUT that went through before its
answer was lost is refused the second time, and ``put`` then finds its own
bytes in place). Every other failure, and one that outlasts the retries, is a
StorageError naming the object and saying what to do. Bodies may hold private
keys: none is ever logged or put in a message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import boto3
import botocore.exceptions

from reconciler.aws.config import client_config
from reconciler.aws.retry import backoff
from reconciler.errors import CredentialsError, ReconcilerError, StateError, StorageError
from reconciler.state.s3_settings import S3Settings

log = logging.getLogger(__name__)

BACKEND = S3Settings.NOUN
# Attempts in all for a call that fails in a way worth retrying (5xx, throttling,
# timeouts, dropped connections): at a 20% failure rate, one call in ~15,000 fails.
ATTEMPTS = 7
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
_CONFLICT_ATTEMPTS = 5
_DELETE_BATCH = 1000
_ABSENT = ("NoSuchKey", "404")  # with If-Match, S3 answers 404 when the object is gone
_REFUSED = ("PreconditionFailed", "412", "ConditionalRequestConflict")
_TRANSIENT_CODES = frozenset(
    (
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeoutException",
        "500",
        "502",
        "503",
        "504",
    )
)
_TRANSIENT_ERRORS = (
    botocore.exceptions.ConnectionError,  # refused, reset, dropped, timed out
    botocore.exceptions.HTTPClientError,
    botocore.exceptions.ResponseStreamingError,
)


def transient(exc: Exception) -> bool:
    """Whether a failed S3 call is worth sending again (the service or the network hiccuped)."""
    if isinstance(exc, botocore.exceptions.ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return _code(exc) in _TRANSIENT_CODES or int(status) >= 500
    return isinstance(exc, _TRANSIENT_ERRORS)


def s3_client(
    *, region: str | None = None, profile: str | None = None, timeout: float | None = None
) -> Any:
    """An S3 client from boto3's standard chain (AWS_PROFILE, AWS_ENDPOINT_URL_S3, ...).

    It makes one attempt per call: ``Bucket`` retries what is safe to retry.
    ``timeout`` (seconds) bounds connecting and each wait for a response.
    """
    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
        return session.client(
            "s3",
            config=client_config(
                attempts=1,
                connect_timeout=timeout or CONNECT_TIMEOUT,
                read_timeout=timeout or READ_TIMEOUT,
            ),
        )
    except botocore.exceptions.BotoCoreError as exc:
        raise StateError(f"cannot set up an S3 client: {exc}") from None


class Refused(Exception):
    """A conditional request was refused: the object is not in the state it expected."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class Bucket:
    """The S3 calls the backend makes, every failure turned into a ReconcilerError."""

    def __init__(self, client: Any, bucket: str, sse: str | None, kms_key_id: str | None) -> None:
        self.client = client
        self.bucket = bucket
        self.sleep: Callable[[float], None] = time.sleep
        self.encryption: dict[str, str] = {}
        if sse is not None:
            self.encryption["ServerSideEncryption"] = sse
        if kms_key_id is not None:
            self.encryption["SSEKMSKeyId"] = kms_key_id

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def get(self, key: str) -> tuple[bytes, str] | None:
        """The body and ETag of ``key``, or None if there is no such object."""

        def read(**params: Any) -> tuple[bytes, str]:
            # The body is read inside the retried call: a connection dropped mid-body retries.
            response = self.client.get_object(**params)
            return response["Body"].read(), str(response["ETag"])

        result: tuple[bytes, str] | None = self._call(
            read, f"cannot read {self.url(key)}", {"Key": key}, absent=True
        )
        return result

    def etag(self, key: str) -> str | None:
        response = self._call(
            "head_object", f"cannot read {self.url(key)}", {"Key": key}, absent=True
        )
        return None if response is None else str(response["ETag"])

    def put(self, key: str, body: bytes, *, if_match: str | None) -> str:
        """Write ``key`` if its ETag is ``if_match`` (None: only if there is no such object).

        Returns the new ETag; ``Refused`` if the condition does not hold.
        """
        condition = {"IfMatch": if_match} if if_match is not None else {"IfNoneMatch": "*"}
        params = {"Key": key, "Body": body, **condition, **self.encryption}
        for attempt in range(_CONFLICT_ATTEMPTS):
            try:
                response = self._call("put_object", f"cannot write {self.url(key)}", params)
                return str(response["ETag"])
            except Refused as refused:
                if (
                    refused.code != "ConditionalRequestConflict"
                    or attempt + 1 == _CONFLICT_ATTEMPTS
                ):
                    break
                self.sleep(0.05 * 2**attempt)  # a concurrent conditional write: S3 says retry
        # A request retried after its response was lost is refused although it
        # went through: then the object holds exactly what was sent.
        current = self.get(key)
        if current is not None and current[0] == body:
            return current[1]
        raise Refused(key)

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

        def every_page(**params: Any) -> list[str]:
            pages = self.client.get_paginator("list_objects_v2").paginate(**params)
            return [str(item["Key"]) for page in pages for item in page.get("Contents", ())]

        keys: list[str] = self._call(
            every_page, f"cannot list {self.url(prefix)}", {"Prefix": prefix}
        )
        return sorted(keys)

    def _call(
        self,
        operation: str | Callable[..., Any],
        what: str,
        params: dict[str, Any],
        *,
        absent: bool = False,
    ) -> Any:
        """``client.<operation>`` (or ``operation`` itself), retried while it fails transiently.

        None for a missing object if ``absent``, else ``Refused`` when a condition
        fails; any other failure as a ReconcilerError about ``what``.
        """
        call = getattr(self.client, operation) if isinstance(operation, str) else operation
        for attempt in range(ATTEMPTS):
            try:
                return call(Bucket=self.bucket, **params)
            except botocore.exceptions.ClientError as exc:
                code = _code(exc)
                if absent and code in _ABSENT:
                    return None
                if code in _REFUSED or code in _ABSENT:
                    raise Refused(code) from None
                failure: Exception = exc
            except botocore.exceptions.BotoCoreError as exc:
                failure = exc
            if not transient(failure) or attempt + 1 == ATTEMPTS:
                raise self._error(failure, what, attempts=attempt + 1) from None
            log.debug("%s: %s; trying again", what, failure)
            self.sleep(backoff(attempt))
        raise AssertionError("unreachable")

    def _error(self, exc: Exception, what: str, *, attempts: int = 1) -> ReconcilerError:
        if isinstance(exc, botocore.exceptions.NoCredentialsError):
            return CredentialsError(
                f"{what}: no AWS credentials found",
                code="NoCredentials",
                hint="set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            )
        tried = f" (tried {attempts} times)" if attempts > 1 else ""
        if not isinstance(exc, botocore.exceptions.ClientError):
            return StorageError(
                f"{BACKEND}: {what}: {exc}{tried}",
                hint="check the network and the S3 endpoint, then run again",
            )
        code = _code(exc)
        if code == "NoSuchBucket":
            return StateError(
                f"{BACKEND}: {what}: bucket {self.bucket} does not exist",
                hint="create it (with versioning enabled), or fix the state location",
            )
        if code in ("AccessDenied", "403", "KMS.AccessDeniedException"):
            kms = self.encryption.get("ServerSideEncryption") == "aws:kms"
            return StateError(
                f"{BACKEND}: {what}: access denied",
                hint="allow s3:GetObject, s3:PutObject and s3:DeleteObject on the state key and "
                f"the keys that start with it, and s3:ListBucket on {self.bucket}"
                + (", and kms:GenerateDataKey and kms:Decrypt on the KMS key" if kms else ""),
            )
        message = exc.response.get("Error", {}).get("Message") or code
        if transient(exc):
            return StorageError(
                f"{BACKEND}: {what}: {message}{tried}",
                hint="S3 is failing or throttling; run again later",
            )
        return StorageError(f"{BACKEND}: {what}: {message}", hint="run again; -v shows more")


def _code(error: botocore.exceptions.ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
