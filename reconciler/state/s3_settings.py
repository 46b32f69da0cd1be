"""The S3 backend's settings, from reconciler.yaml or an ``s3://BUCKET/KEY`` location.

Imports nothing of boto3: a command that only reads the project file must not
load the AWS SDK.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from reconciler.errors import UsageError
from reconciler.state.settings import BackendSettings, Section

SSE_ALGORITHMS = ("AES256", "aws:kms")
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
class S3Settings(BackendSettings):
    """A state object in S3: where it is, and how it is reached and encrypted."""

    TYPE: ClassVar[str] = "s3"
    NOUN: ClassVar[str] = "S3 state"
    FIELDS: ClassVar[tuple[str, ...]] = (
        "bucket",
        "key",
        "region",
        "encrypt",
        "kmsKeyId",
        "timeout",
        "spool",
    )
    SCHEME: ClassVar[str] = "s3://"
    LOCATION_NAME: ClassVar[str] = "an s3:// location"

    bucket: str
    key: str
    region: str | None = None
    sse: str | None = None
    kms_key_id: str | None = None
    timeout: float | None = None
    """Seconds to wait for S3 (None: the client's defaults)."""
    spool: Path | None = None
    """Where results wait while S3 fails (None: the default spool)."""

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @classmethod
    def parse(cls, section: Section) -> S3Settings | None:
        bucket = section.text("bucket", required=True)
        key = section.text("key", required=True)
        region = section.text("region")
        kms_key_id = section.text("kmsKeyId")
        if bucket is not None and not BUCKET_NAME.fullmatch(bucket):
            section.problem("bucket", f"{bucket!r} is not an S3 bucket name")
        if key is not None and not valid_key(key):
            section.problem("key", "backend.key must not start or end with '/'")
        sse = _encryption(section, section.get("encrypt"), kms_key_id)
        timeout = section.seconds("timeout")
        spool = section.text("spool")
        if bucket is None or key is None:
            return None
        return cls(
            bucket,
            key,
            region,
            sse,
            kms_key_id,
            timeout,
            None if spool is None else section.path(spool),
        )

    @classmethod
    def at(cls, location: str, configured: S3Settings | None) -> S3Settings:
        # Another bucket or key keeps the project's region, encryption and spool.
        bucket, key = parse_url(location)
        return (
            cls(bucket, key) if configured is None else replace(configured, bucket=bucket, key=key)
        )


def _encryption(section: Section, encrypt: Any, kms_key_id: str | None) -> str | None:
    """The server-side encryption ``encrypt`` and ``kmsKeyId`` ask for together."""
    if encrypt is False:
        if kms_key_id is not None:
            section.problem("encrypt", "backend.kmsKeyId needs encryption; drop encrypt: false")
        return None
    if encrypt is None or encrypt is True:
        if kms_key_id is not None:
            return "aws:kms"
        return "AES256" if encrypt else None
    if encrypt not in SSE_ALGORITHMS:
        choices = ", ".join(SSE_ALGORITHMS)
        section.problem("encrypt", f"backend.encrypt must be {choices}, true or false")
        return None
    if kms_key_id is not None and encrypt != "aws:kms":
        section.problem("encrypt", f"backend.kmsKeyId needs encrypt: aws:kms, not {encrypt}")
    return str(encrypt)
