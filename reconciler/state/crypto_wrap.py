"""The data key, wrapped for each recipient and unwrapped again: AWS KMS or age.

Wrapping returns the recipient as the state stores it (``type``, the key ARN or
age recipient, ``wrappedKey`` in base64); ``parse_wrapped_key`` reads it back
and ``unwrap_age`` / ``unwrap_kms`` open it. Every KMS call carries
``KMS_ENCRYPTION_CONTEXT``. Never log, print or raise a data key or an age
identity: errors quote only KMS key IDs and AWS error codes (and AWS's message
where no key was sent).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from reconciler.errors import EncryptionError, ReconcilerError
from reconciler.state.crypto_specs import (
    KINDS,
    SPEC_HINT,
    EncryptionSpec,
    import_pyrage,
    kms_region,
    target_field,
)

KmsClientFactory = Callable[[str | None], Any]
"""Returns a boto3 KMS client for a region (None: the default region)."""

DATA_KEY_BYTES = 32
# Sent with every KMS call, so key policies and CloudTrail can single out our data keys.
KMS_ENCRYPTION_CONTEXT: Mapping[str, str] = {"lightsail-reconciler": "state-private-keys"}


class KmsClients:
    """KMS clients by region, made on first use."""

    def __init__(self, factory: KmsClientFactory) -> None:
        self._factory = factory
        self._clients: dict[str | None, Any] = {}

    def get(self, region: str | None) -> Any:
        """The client for ``region``; an EncryptionError if it cannot be made."""
        if region not in self._clients:
            try:
                self._clients[region] = self._factory(region)
            except ReconcilerError:
                raise
            except Exception as exc:
                raise EncryptionError(
                    f"cannot make a KMS client for region {region or '(default)'}: "
                    f"{aws_failure(exc)}",
                    hint="set AWS_REGION (or use a key ARN) and check the AWS configuration",
                ) from None
        return self._clients[region]


def generate_data_key(spec: EncryptionSpec, clients: KmsClients) -> tuple[bytes, dict[str, str]]:
    """A new data key from KMS key ``spec``, and that key's recipient of it."""
    client = clients.get(kms_region(spec.target))
    try:
        response = client.generate_data_key(
            KeyId=spec.target, KeySpec="AES_256", EncryptionContext=dict(KMS_ENCRYPTION_CONTEXT)
        )
    except Exception as exc:  # botocore's errors; this module does not import it
        raise _kms_error("make a data key with", spec, exc, "kms:GenerateDataKey") from None
    data_key = cast(bytes, response["Plaintext"])
    if len(data_key) != DATA_KEY_BYTES:
        raise EncryptionError(f"KMS key {spec.target} returned a data key of the wrong length")
    return data_key, _kms_recipient(response, client)


def wrap_kms(spec: EncryptionSpec, data_key: bytes, clients: KmsClients) -> dict[str, str]:
    """``data_key`` wrapped by KMS key ``spec`` (kms:Encrypt)."""
    client = clients.get(kms_region(spec.target))
    try:
        response = client.encrypt(
            KeyId=spec.target, Plaintext=data_key, EncryptionContext=dict(KMS_ENCRYPTION_CONTEXT)
        )
    except Exception as exc:
        # The request carried the data key: quote only the error code.
        raise _kms_error("wrap the data key with", spec, exc, "kms:Encrypt", quote=False) from None
    return _kms_recipient(response, client)


def _kms_recipient(response: Mapping[str, Any], client: Any) -> dict[str, str]:
    key_arn = str(response["KeyId"])  # the key's ARN, even when an alias was named
    region = kms_region(key_arn) or str(client.meta.region_name)
    blob = cast(bytes, response["CiphertextBlob"])
    return {"type": "kms", "keyId": key_arn, "region": region, "wrappedKey": b64(blob)}


def wrap_age(spec: EncryptionSpec, data_key: bytes, _clients: KmsClients) -> dict[str, str]:
    """``data_key`` encrypted to age recipient ``spec``; no network call."""
    pyrage = import_pyrage()
    try:
        recipient = pyrage.x25519.Recipient.from_str(spec.target)
    except pyrage.RecipientError:
        raise EncryptionError(f"{spec} is not an age X25519 recipient", hint=SPEC_HINT) from None
    blob = cast(bytes, pyrage.encrypt(data_key, [recipient]))
    return {"type": "age", "recipient": spec.target, "wrappedKey": b64(blob)}


def _kms_error(
    action: str, spec: EncryptionSpec, exc: Exception, permission: str, *, quote: bool = True
) -> EncryptionError:
    return EncryptionError(
        f"cannot {action} KMS key {spec.target}: {aws_failure(exc, quote=quote)}",
        hint=f"use AWS credentials allowed {permission} on that key, in the key's region "
        "(a key ARN names it; otherwise AWS_REGION)",
    )


def aws_failure(exc: Exception, *, quote: bool = True) -> str:
    """An AWS error as 'Code: message' (the service's own text), or the exception's type."""
    response = getattr(exc, "response", None)
    error = response.get("Error") if isinstance(response, Mapping) else None
    if isinstance(error, Mapping) and error.get("Code"):
        message = str(error.get("Message") or "")[:300] if quote else ""
        return f"{error['Code']}: {message}" if message else str(error["Code"])
    text = str(exc)[:300] if quote else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class NotOpened(Exception):
    """One recipient could not unwrap the data key; the message says why (no secrets)."""


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """The data key as wrapped for one recipient of a sealed private key."""

    kind: str
    target: str  # KMS key ARN, or age recipient
    region: str | None
    wrapped_key: str  # base64, as stored: the cache key
    blob: bytes = b""

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}"


def unwrap_age(wrapped: WrappedKey, load_identities: Callable[[Any], list[Any]]) -> bytes:
    """The data key wrapped for an age recipient, opened with ``load_identities(pyrage)``."""
    try:
        pyrage = import_pyrage()
    except EncryptionError:
        raise NotOpened("age support is not installed") from None
    identities = load_identities(pyrage)
    if not identities:
        raise NotOpened("no age identity given")
    matching = [i for i in identities if str(i.to_public()) == wrapped.target]
    if not matching:
        raise NotOpened(f"none of the {len(identities)} age identities given matches it")
    try:
        return cast(bytes, pyrage.decrypt(wrapped.blob, matching))
    except pyrage.DecryptError:
        raise NotOpened("its identity could not open the wrapped data key") from None


def unwrap_kms(wrapped: WrappedKey, clients: KmsClients | None) -> bytes:
    """The data key wrapped for a KMS key, opened with kms:Decrypt."""
    if clients is None:
        raise NotOpened("no KMS access configured")
    try:
        client = clients.get(kms_region(wrapped.target) or wrapped.region)
        response = client.decrypt(
            CiphertextBlob=wrapped.blob,
            KeyId=wrapped.target,
            EncryptionContext=dict(KMS_ENCRYPTION_CONTEXT),
        )
    except EncryptionError as exc:
        raise NotOpened(exc.message) from None
    except Exception as exc:  # botocore's errors; this module does not import it
        raise NotOpened(aws_failure(exc)) from None
    return cast(bytes, response["Plaintext"])


def parse_wrapped_key(item: object) -> WrappedKey | None:
    """One item of a sealed key's ``recipients``; None if it is not a well-formed one."""
    if not isinstance(item, Mapping):
        return None
    kind = item.get("type")
    target = item.get(target_field(kind))
    wrapped = item.get("wrappedKey")
    blob = unb64(wrapped)
    region = item.get("region")
    if kind not in KINDS or not isinstance(target, str) or blob is None:
        return None
    if region is not None and not isinstance(region, str):
        return None
    return WrappedKey(kind, target, region, cast(str, wrapped), blob)


def recipient_ids(recipients: Iterable[Mapping[str, Any]]) -> frozenset[tuple[str, str]]:
    """Who the stored ``recipients`` are, as (type, KMS key ARN or age recipient) pairs."""
    ids: set[tuple[str, str]] = set()
    for r in recipients:
        kind = str(r.get("type"))
        ids.add((kind, str(r.get(target_field(kind)))))
    return frozenset(ids)


def b64(data: bytes) -> str:
    """``data`` in base64, as the state stores wrapped keys, nonces and ciphertexts."""
    return base64.b64encode(data).decode("ascii")


def unb64(value: object) -> bytes | None:
    """The bytes of a base64 string; None if ``value`` is not one."""
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
