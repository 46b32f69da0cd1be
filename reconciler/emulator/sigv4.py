"""AWS Signature Version 4: read the Authorization header, and verify it when asked.

Every request must carry a SigV4 ``Authorization`` header, because the
region of the call comes from its credential scope
(``Credential=AKID/20261129/us-east-1/lightsail/aws4_request``). With a secret
key configured the signature is recomputed the way botocore computes it
(canonical request, string to sign, derived signing key) and compared in
constant time. Every failure is an ``UnauthenticatedException`` whose ``code``
says what was wrong.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message

from reconciler.emulator.errors import ApiError, unauthenticated

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "lightsail"
MAX_CLOCK_SKEW_SECONDS = 15 * 60
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True, slots=True)
class Authorization:
    access_key: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def _incomplete(detail: str) -> ApiError:
    return unauthenticated("IncompleteSignature", detail)


def parse_authorization(header: str | None) -> Authorization:
    if not header:
        raise unauthenticated("MissingAuthenticationToken", "Missing Authentication Token")
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise _incomplete(f"Unsupported authorization algorithm; use {ALGORITHM}")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, value = part.strip().partition("=")
        if sep:
            fields[key] = value
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if not fields.get(k)]
    if missing:
        raise _incomplete(
            " ".join(f"Authorization header requires '{k}' parameter." for k in missing)
        )
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request" or not all(scope):
        raise _incomplete(
            "Credential must have the form <access key>/<date>/<region>/<service>/aws4_request"
        )
    access_key, date, region, service, _ = scope
    if service != SERVICE:
        raise unauthenticated(
            "InvalidSignature", f"Credential should be scoped to correct service: '{SERVICE}'."
        )
    signed = tuple(fields["SignedHeaders"].split(";"))
    return Authorization(access_key, date, region, service, signed, fields["Signature"])


def verify(
    auth: Authorization,
    *,
    access_key: str,
    secret_key: str,
    method: str,
    path: str,
    headers: Message,
    body: bytes,
    now: datetime | None = None,
) -> None:
    """Raise ``UnauthenticatedException`` unless the request is signed with this key."""
    if not hmac.compare_digest(auth.access_key.encode(), access_key.encode()):
        raise unauthenticated(
            "InvalidClientTokenId", "The security token included in the request is invalid."
        )
    amz_date = headers.get("X-Amz-Date")
    if not amz_date:
        raise _incomplete("Authorization requires the X-Amz-Date header.")
    try:
        signed_at = datetime.strptime(amz_date, AMZ_DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise _incomplete(f"X-Amz-Date {amz_date[:40]!r} is not an ISO-8601 basic date") from None
    if amz_date[:8] != auth.date:
        raise _incomplete(
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{auth.date[:20]}' != '{amz_date[:8]}'"
        )
    current = now or datetime.now(UTC)
    if abs((current - signed_at).total_seconds()) > MAX_CLOCK_SKEW_SECONDS:
        raise unauthenticated(
            "SignatureExpired",
            f"Signature expired: {amz_date} is more than 15 minutes away from "
            f"{current.strftime(AMZ_DATE_FORMAT)}",
        )
    payload_hash = hashlib.sha256(body).hexdigest()
    declared = headers.get("X-Amz-Content-SHA256")
    if declared is not None and declared not in (payload_hash, UNSIGNED_PAYLOAD):
        raise unauthenticated(
            "XAmzContentSHA256Mismatch",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        )
    canonical = canonical_request(
        method, path, headers, auth.signed_headers, declared or payload_hash
    )
    expected = signature(secret_key, auth, amz_date, canonical)
    if not hmac.compare_digest(expected.encode(), auth.signature.encode()):
        raise unauthenticated(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method.",
        )


def canonical_request(
    method: str, path: str, headers: Message, signed: tuple[str, ...], payload_hash: str
) -> str:
    raw_path, _, query = path.partition("?")
    pairs = sorted(pair.partition("=")[::2] for pair in query.split("&")) if query else []
    lines = [
        f"{name}:{','.join(' '.join(v.split()) for v in headers.get_all(name, []))}"
        for name in signed
    ]
    return "\n".join(
        [
            method.upper(),
            raw_path or "/",
            "&".join(f"{k}={v}" for k, v in pairs),
            "\n".join(lines) + "\n",
            ";".join(signed),
            payload_hash,
        ]
    )


def signature(secret_key: str, auth: Authorization, amz_date: str, canonical: str) -> str:
    scope = f"{auth.date}/{auth.region}/{auth.service}/aws4_request"
    string_to_sign = "\n".join(
        [ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()]
    )
    key = f"AWS4{secret_key}".encode()
    for part in (auth.date, auth.region, auth.service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
