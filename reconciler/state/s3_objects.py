"""The S3 calls the state backend makes: conditional reads, writes, copies and removals.

``Bucket`` wraps a boto3 client for one bucket. Writes are conditional
(``If-None-Match: *`` to create, ``If-Match`` on an ETag to replace or remove),
and a condition that does not hold is ``Refused``; every other failure becomes a
ReconcilerError that names the object and says what to do. Bodies may hold
private keys: none is ever logged or put in a message.
"""

from __future__ import annotations

import time
from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config

from reconciler.errors import CredentialsError, ReconcilerError, StateError

_CONFLICT_ATTEMPTS = 5
_DELETE_BATCH = 1000
_BotoErrors = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)
_ABSENT = ("NoSuchKey", "404")  # with If-Match, S3 answers 404 when the object is gone
_REFUSED = ("PreconditionFailed", "412", "ConditionalRequestConflict")


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
                time.sleep(0.05 * 2**attempt)  # a concurrent conditional write: S3 says retry
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
        """``client.<operation>``: None for a missing object if ``absent``, else ``Refused``
        when a condition fails; any other failure as a ReconcilerError about ``what``."""
        try:
            return getattr(self.client, operation)(Bucket=self.bucket, **params)
        except botocore.exceptions.ClientError as exc:
            code = _code(exc)
            if absent and code in _ABSENT:
                return None
            if code in _REFUSED or code in _ABSENT:
                raise Refused(code) from None
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


def _code(error: botocore.exceptions.ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
