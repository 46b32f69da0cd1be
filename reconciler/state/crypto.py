"""Encryption at rest of the private keys in the state (envelope encryption).

A run that stores private keys makes one random 256-bit data key and wraps it
for every recipient: an AWS KMS key (GenerateDataKey / Encrypt) or an age X25519
recipient. Each private key is then sealed locally with AES-256-GCM, its key
pair's address as associated data, so a sealed blob moved onto another entry
fails to open. KMS is called only when the ``Sealer`` is made, so no network call
stands between a CreateKeyPair response and its journal write. Everything else
in the state stays readable JSON.

Never log, print or raise a private key, a data key or an age identity: messages
name only addresses, recipients, KMS key IDs and AWS error codes.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from reconciler.errors import EncryptionError, ReconcilerError, UsageError
from reconciler.model import Address, PendingCreate, StateEntry

KmsClientFactory = Callable[[str | None], Any]
"""Returns a boto3 KMS client for a region (None: the default region)."""

SpecKind = Literal["kms", "age"]
KINDS: tuple[str, ...] = ("kms", "age")

SEALED_VERSION = 1
ALGORITHM = "AES-256-GCM"
DATA_KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
# Sent with every KMS call, so key policies and CloudTrail can single out our data keys.
KMS_ENCRYPTION_CONTEXT: Mapping[str, str] = {"lightsail-reconciler": "state-private-keys"}

AGE_IDENTITY_ENV = "RECONCILER_AGE_IDENTITY"
AGE_IDENTITY_FILE_ENV = "RECONCILER_AGE_IDENTITY_FILE"

WARNING_TEXT = (
    "Warning: state {location} holds {count} private key{s} in clear; encrypt {them} with "
    "`reconciler state encrypt --encrypt-with kms:KEY_ID` (or --encrypt-with age:RECIPIENT)"
)

SPEC_HINT = (
    "write kms:KEY_ID (a KMS key ID, key ARN, alias/NAME or alias ARN) "
    "or age:RECIPIENT (an age1... public key)"
)
RESTORE_HINT = (
    "restore the state from a previous version (a local state keeps one beside it as .backup)"
)
_KMS_KEY_ID = re.compile(r"[A-Za-z0-9/_\-:]+")
_SECRET_MARKERS = ("SECRET-KEY", "PRIVATE KEY")


@dataclass(frozen=True, slots=True)
class EncryptionSpec:
    """One recipient of the data key: a KMS key, or an age X25519 recipient."""

    kind: SpecKind
    target: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}"

    def to_json(self) -> dict[str, str]:
        if self.kind == "kms":
            return {"type": "kms", "keyId": self.target}
        return {"type": "age", "recipient": self.target}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EncryptionSpec:
        hint = "set it again with `reconciler state encrypt --encrypt-with ...`"
        kind = data.get("type")
        target = data.get("keyId" if kind == "kms" else "recipient")
        if kind not in KINDS or not isinstance(target, str):
            raise EncryptionError(
                "the state's encryption setting is malformed: each item needs a 'type' "
                "(kms or age) and a 'keyId' or 'recipient'",
                hint=hint,
            )
        try:
            return parse_spec(f"{kind}:{target}")
        except UsageError as exc:
            raise EncryptionError(
                f"the state's encryption setting is invalid: {exc.message}", hint=hint
            ) from None


def parse_specs(specs: Sequence[str]) -> list[EncryptionSpec]:
    """Parse ``--encrypt-with`` values, in order, each recipient once."""
    return list(dict.fromkeys(parse_spec(text) for text in specs))


def parse_spec(text: str) -> EncryptionSpec:
    kind, sep, target = text.partition(":")
    kind, target = kind.strip().lower(), target.strip()
    shown = "value" if any(m in text.upper() for m in _SECRET_MARKERS) else repr(text)
    if any(m in target.upper() for m in _SECRET_MARKERS):
        raise UsageError(
            f"--encrypt-with {kind}: was given a secret key, not a public recipient",
            hint="give the public half (age-keygen -y FILE prints it); keep the secret one private",
        )
    if not sep or kind not in KINDS or not target:
        raise UsageError(f"--encrypt-with {shown} is not an encryption spec", hint=SPEC_HINT)
    if kind == "kms":
        if not _KMS_KEY_ID.fullmatch(target) or (
            target.startswith("arn:") and kms_region(target) is None
        ):
            raise UsageError(
                f"--encrypt-with {shown}: not a KMS key ID, ARN or alias", hint=SPEC_HINT
            )
        return EncryptionSpec("kms", target)
    pyrage = _pyrage()
    try:
        pyrage.x25519.Recipient.from_str(target)
    except pyrage.RecipientError:
        raise UsageError(
            f"--encrypt-with {shown}: not an age X25519 recipient", hint=SPEC_HINT
        ) from None
    return EncryptionSpec("age", target)


def specs_from_json(settings: Sequence[Mapping[str, Any]]) -> list[EncryptionSpec]:
    """The recipients a state document's ``encryption`` setting names."""
    return list(dict.fromkeys(EncryptionSpec.from_json(item) for item in settings))


def kms_region(key_id: str) -> str | None:
    """The region of a KMS key or alias ARN; None for IDs and aliases (default region)."""
    if not key_id.startswith("arn:"):
        return None
    parts = key_id.split(":", 5)
    if len(parts) != 6 or parts[2] != "kms" or not parts[3]:
        return None
    if not parts[5].startswith(("key/", "alias/")):
        return None
    return parts[3]


class Sealer:
    """Seals private keys for a fixed set of recipients under one data key.

    Making it calls KMS once per KMS key; ``seal`` never touches the network.
    """

    def __init__(
        self, specs: Sequence[EncryptionSpec], *, kms_client_factory: KmsClientFactory
    ) -> None:
        unique = list(dict.fromkeys(specs))
        if not unique:
            raise EncryptionError("encryption needs at least one recipient", hint=SPEC_HINT)
        clients = _KmsClients(kms_client_factory)
        wrapped: dict[EncryptionSpec, dict[str, str]] = {}
        first_kms = next((s for s in unique if s.kind == "kms"), None)
        if first_kms is not None:
            # KMS's generator, where there is one, rather than ours.
            data_key, wrapped[first_kms] = _generate_data_key(first_kms, clients)
        else:
            data_key = os.urandom(DATA_KEY_BYTES)
        for spec in unique:
            if spec not in wrapped:
                wrap = _wrap_kms if spec.kind == "kms" else _wrap_age
                wrapped[spec] = wrap(spec, data_key, clients)
        self.specs: tuple[EncryptionSpec, ...] = tuple(unique)
        self.recipients: tuple[Mapping[str, str], ...] = tuple(wrapped[s] for s in unique)
        self._aead = AESGCM(data_key)

    def __repr__(self) -> str:
        return f"Sealer({', '.join(str(s) for s in self.specs)})"

    @property
    def recipient_ids(self) -> frozenset[tuple[str, str]]:
        """Who can open what this seals (KMS keys by ARN)."""
        return _recipient_ids(self.recipients)

    def seal(self, address: Address, private_key_pem: str) -> dict[str, Any]:
        """``private_key_pem`` sealed for ``address``: a JSON-able dict, no secret in clear."""
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = self._aead.encrypt(nonce, private_key_pem.encode("utf-8"), _aad(address))
        return {
            "v": SEALED_VERSION,
            "alg": ALGORITHM,
            "nonce": _b64(nonce),
            "ciphertext": _b64(ciphertext),
            "aad": str(address),
            "recipients": [dict(r) for r in self.recipients],
        }


class Unsealer:
    """Opens sealed private keys with age identities or KMS, one unwrap per data key.

    Identities come from ``age_identities`` (files of AGE-SECRET-KEY-1... lines)
    and the environment (RECONCILER_AGE_IDENTITY, RECONCILER_AGE_IDENTITY_FILE),
    read only when an age recipient has to be tried. Age is tried before KMS.
    """

    def __init__(
        self,
        *,
        age_identities: Sequence[str] = (),
        kms_client_factory: KmsClientFactory | None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._identity_files = tuple(age_identities)
        self._environ: Mapping[str, str] = os.environ if environ is None else environ
        self._identities: list[Any] | None = None
        self._kms = None if kms_client_factory is None else _KmsClients(kms_client_factory)
        self._data_keys: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Unsealer(identity_files={len(self._identity_files)}, kms={self._kms is not None})"

    def unseal(self, sealed: Mapping[str, Any], address: Address) -> str:
        """The PEM text sealed for ``address``; EncryptionError if it cannot be opened."""
        box = _parse_sealed(sealed, address)
        data_key = self._data_key(box, address)
        try:
            plaintext = AESGCM(data_key).decrypt(box.nonce, box.ciphertext, _aad(address))
        except InvalidTag:
            if box.aad is not None and box.aad != str(address):
                raise EncryptionError(
                    f"the sealed private key at {address} was sealed for {box.aad}: "
                    "it does not belong to this entry",
                    hint=RESTORE_HINT,
                ) from None
            raise EncryptionError(
                f"the sealed private key of {address} fails its integrity check: "
                "it was altered, or belongs to another entry",
                hint=RESTORE_HINT,
            ) from None
        return plaintext.decode("utf-8")

    def _data_key(self, box: _Box, address: Address) -> bytes:
        with self._lock:
            for recipient in box.recipients:
                cached = self._data_keys.get(recipient.wrapped_key)
                if cached is not None:
                    return cached
            reasons: list[str] = []
            # Local identities first: they cost no network call.
            for recipient in sorted(box.recipients, key=lambda r: r.kind != "age"):
                try:
                    if recipient.kind == "age":
                        key = self._unwrap_age(recipient)
                    else:
                        key = self._unwrap_kms(recipient)
                except _NotOpened as why:
                    reasons.append(f"{recipient} ({why})")
                    continue
                if len(key) != DATA_KEY_BYTES:
                    reasons.append(f"{recipient} (the wrapped data key has the wrong length)")
                    continue
                self._data_keys[recipient.wrapped_key] = key
                return key
        raise EncryptionError(
            f"cannot decrypt the private key of {address}; tried " + "; ".join(reasons),
            hint=_unseal_hint(box),
        )

    def _unwrap_age(self, recipient: _Recipient) -> bytes:
        try:
            pyrage = _pyrage()
        except EncryptionError:
            raise _NotOpened("age support is not installed") from None
        identities = self._load_identities(pyrage)
        if not identities:
            raise _NotOpened("no age identity given")
        matching = [i for i in identities if str(i.to_public()) == recipient.target]
        if not matching:
            raise _NotOpened(f"none of the {len(identities)} age identities given matches it")
        try:
            return cast(bytes, pyrage.decrypt(recipient.blob, matching))
        except pyrage.DecryptError:
            raise _NotOpened("its identity could not open the wrapped data key") from None

    def _unwrap_kms(self, recipient: _Recipient) -> bytes:
        if self._kms is None:
            raise _NotOpened("no KMS access configured")
        try:
            client = self._kms.get(kms_region(recipient.target) or recipient.region)
            response = client.decrypt(
                CiphertextBlob=recipient.blob,
                KeyId=recipient.target,
                EncryptionContext=dict(KMS_ENCRYPTION_CONTEXT),
            )
        except EncryptionError as exc:
            raise _NotOpened(exc.message) from None
        except Exception as exc:  # botocore's errors; this module does not import it
            raise _NotOpened(_aws_failure(exc)) from None
        return cast(bytes, response["Plaintext"])

    def _load_identities(self, pyrage: Any) -> list[Any]:
        if self._identities is not None:
            return self._identities
        sources: list[tuple[str, str]] = []
        inline = self._environ.get(AGE_IDENTITY_ENV)
        if inline:
            sources.append((f"${AGE_IDENTITY_ENV}", inline))
        files = list(self._identity_files)
        env_file = self._environ.get(AGE_IDENTITY_FILE_ENV)
        if env_file:
            files.append(env_file)
        for path in files:
            try:
                sources.append(
                    (f"age identity file {path}", Path(path).expanduser().read_text("utf-8"))
                )
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or "not UTF-8 text"
                raise EncryptionError(
                    f"cannot read age identity file {path}: {reason}",
                    hint="pass --age-identity with a file holding AGE-SECRET-KEY-1... lines",
                ) from None
        self._identities = [i for where, text in sources for i in _identities(pyrage, where, text)]
        return self._identities


def unseal(
    sealed: Mapping[str, Any],
    address: Address,
    *,
    age_identities: Sequence[str] = (),
    kms_client_factory: KmsClientFactory | None,
) -> str:
    """Open one sealed private key; use an ``Unsealer`` to open many."""
    unsealer = Unsealer(age_identities=age_identities, kms_client_factory=kms_client_factory)
    return unsealer.unseal(sealed, address)


def seal_entries(
    entries: Mapping[Address, StateEntry], sealer: Sealer, *, unsealer: Unsealer | None = None
) -> dict[Address, StateEntry]:
    """The entries that change when their private keys are sealed for ``sealer``'s recipients.

    Keys held in clear are sealed. With an ``unsealer``, keys sealed for other
    recipients are opened and sealed again (a recipient added or rotated);
    without one they are left as they are.
    """
    changed: dict[Address, StateEntry] = {}
    for address, entry in entries.items():
        if entry.private_key is not None:
            pem = entry.private_key
        elif (
            entry.private_key_sealed is not None
            and unsealer is not None
            and sealed_recipient_ids(entry.private_key_sealed) != sealer.recipient_ids
        ):
            pem = unsealer.unseal(entry.private_key_sealed, address)
        else:
            continue
        sealed = sealer.seal(address, pem)
        changed[address] = replace(entry, private_key=None, private_key_sealed=sealed)
    return changed


def unseal_entries(
    entries: Mapping[Address, StateEntry], unsealer: Unsealer
) -> dict[Address, StateEntry]:
    """The entries that change when their sealed private keys are put back in clear."""
    changed: dict[Address, StateEntry] = {}
    for address, entry in entries.items():
        if entry.private_key_sealed is not None:
            pem = unsealer.unseal(entry.private_key_sealed, address)
            changed[address] = replace(entry, private_key=pem, private_key_sealed=None)
    return changed


def sealed_recipient_ids(sealed: Mapping[str, Any]) -> frozenset[tuple[str, str]]:
    """Who can open a sealed private key, as ``Sealer.recipient_ids`` names them."""
    recipients = sealed.get("recipients")
    if not isinstance(recipients, list):
        return frozenset()
    return _recipient_ids([r for r in recipients if isinstance(r, Mapping)])


def unencrypted_count(items: Iterable[StateEntry | PendingCreate]) -> int:
    """How many state entries (or pending creates) hold a private key in clear."""
    return sum(1 for item in items if item.private_key is not None)


def unencrypted_warning(count: int, location: str) -> str | None:
    """The one-line warning for ``count`` clear private keys, or None when there are none."""
    if count <= 0:
        return None
    one = count == 1
    return WARNING_TEXT.format(
        location=location, count=count, s="" if one else "s", them="it" if one else "them"
    )


# -- internals ----------------------------------------------------------------


class _NotOpened(Exception):
    """One recipient could not unwrap the data key; the message says why (no secrets)."""


@dataclass(frozen=True, slots=True)
class _Recipient:
    kind: str
    target: str  # KMS key ARN, or age recipient
    region: str | None
    wrapped_key: str  # base64, as stored: the cache key
    blob: bytes = b""

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}"


@dataclass(frozen=True, slots=True)
class _Box:
    nonce: bytes
    ciphertext: bytes
    aad: str | None
    recipients: tuple[_Recipient, ...]


class _KmsClients:
    """KMS clients by region, made on first use."""

    def __init__(self, factory: KmsClientFactory) -> None:
        self._factory = factory
        self._clients: dict[str | None, Any] = {}

    def get(self, region: str | None) -> Any:
        if region not in self._clients:
            try:
                self._clients[region] = self._factory(region)
            except ReconcilerError:
                raise
            except Exception as exc:
                raise EncryptionError(
                    f"cannot make a KMS client for region {region or '(default)'}: "
                    f"{_aws_failure(exc)}",
                    hint="set AWS_REGION (or use a key ARN) and check the AWS configuration",
                ) from None
        return self._clients[region]


def _generate_data_key(spec: EncryptionSpec, clients: _KmsClients) -> tuple[bytes, dict[str, str]]:
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


def _wrap_kms(spec: EncryptionSpec, data_key: bytes, clients: _KmsClients) -> dict[str, str]:
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
    return {"type": "kms", "keyId": key_arn, "region": region, "wrappedKey": _b64(blob)}


def _wrap_age(spec: EncryptionSpec, data_key: bytes, _clients: _KmsClients) -> dict[str, str]:
    pyrage = _pyrage()
    try:
        recipient = pyrage.x25519.Recipient.from_str(spec.target)
    except pyrage.RecipientError:
        raise EncryptionError(f"{spec} is not an age X25519 recipient", hint=SPEC_HINT) from None
    blob = cast(bytes, pyrage.encrypt(data_key, [recipient]))
    return {"type": "age", "recipient": spec.target, "wrappedKey": _b64(blob)}


def _kms_error(
    action: str, spec: EncryptionSpec, exc: Exception, permission: str, *, quote: bool = True
) -> EncryptionError:
    return EncryptionError(
        f"cannot {action} KMS key {spec.target}: {_aws_failure(exc, quote=quote)}",
        hint=f"use AWS credentials allowed {permission} on that key, in the key's region "
        "(a key ARN names it; otherwise AWS_REGION)",
    )


def _aws_failure(exc: Exception, *, quote: bool = True) -> str:
    """An AWS error as 'Code: message' (the service's own text), or the exception's type."""
    response = getattr(exc, "response", None)
    error = response.get("Error") if isinstance(response, Mapping) else None
    if isinstance(error, Mapping) and error.get("Code"):
        message = str(error.get("Message") or "")[:300] if quote else ""
        return f"{error['Code']}: {message}" if message else str(error["Code"])
    text = str(exc)[:300] if quote else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _identities(pyrage: Any, where: str, text: str) -> list[Any]:
    identities: list[Any] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        # Never quote the line: it is a secret, or a damaged one.
        if not line.startswith("AGE-SECRET-KEY-1"):
            raise EncryptionError(
                f"{where} line {number} is not an age X25519 identity",
                hint="an identity file holds AGE-SECRET-KEY-1... lines, as age-keygen writes them",
            )
        try:
            identities.append(pyrage.x25519.Identity.from_str(line))
        except pyrage.IdentityError:
            raise EncryptionError(
                f"{where} line {number} is a damaged age identity", hint="check the file"
            ) from None
    return identities


def _unseal_hint(box: _Box) -> str:
    ways: list[str] = []
    if any(r.kind == "age" for r in box.recipients):
        ways.append(
            "pass --age-identity FILE (or set RECONCILER_AGE_IDENTITY_FILE) with the identity "
            "of an age recipient named above"
        )
    for r in box.recipients:
        if r.kind == "kms":
            ways.append(f"use AWS credentials allowed kms:Decrypt on {r.target}")
    return "; or ".join(ways)


def _parse_sealed(sealed: Mapping[str, Any], address: Address) -> _Box:
    def bad(what: str) -> EncryptionError:
        return EncryptionError(
            f"the sealed private key of {address} is malformed: {what}", hint=RESTORE_HINT
        )

    version = sealed.get("v")
    if isinstance(version, int) and not isinstance(version, bool) and version > SEALED_VERSION:
        raise EncryptionError(
            f"the private key of {address} was sealed in format {version}, but this "
            f"reconciler reads format {SEALED_VERSION}",
            hint="upgrade lightsail-reconciler",
        )
    if version != SEALED_VERSION or sealed.get("alg") != ALGORITHM:
        raise bad(f"expected 'v' {SEALED_VERSION} and 'alg' {ALGORITHM}")
    nonce = _unb64(sealed.get("nonce"))
    ciphertext = _unb64(sealed.get("ciphertext"))
    if nonce is None or len(nonce) != NONCE_BYTES:
        raise bad(f"'nonce' must be base64 of {NONCE_BYTES} bytes")
    if ciphertext is None or len(ciphertext) < TAG_BYTES:
        raise bad("'ciphertext' must be base64 of an AES-GCM ciphertext")
    aad = sealed.get("aad")
    items = sealed.get("recipients")
    if not isinstance(items, list) or not items:
        raise bad("'recipients' must be a non-empty list")
    recipients: list[_Recipient] = []
    for n, item in enumerate(items):
        recipient = _parse_recipient(item)
        if recipient is None:
            raise bad(f"recipients[{n}] must be a kms or age recipient with a 'wrappedKey'")
        recipients.append(recipient)
    return _Box(nonce, ciphertext, aad if isinstance(aad, str) else None, tuple(recipients))


def _parse_recipient(item: object) -> _Recipient | None:
    if not isinstance(item, Mapping):
        return None
    kind = item.get("type")
    target = item.get("keyId" if kind == "kms" else "recipient")
    wrapped = item.get("wrappedKey")
    blob = _unb64(wrapped)
    region = item.get("region")
    if kind not in KINDS or not isinstance(target, str) or blob is None:
        return None
    if region is not None and not isinstance(region, str):
        return None
    return _Recipient(kind, target, region, cast(str, wrapped), blob)


def _recipient_ids(recipients: Iterable[Mapping[str, Any]]) -> frozenset[tuple[str, str]]:
    ids: set[tuple[str, str]] = set()
    for r in recipients:
        kind = str(r.get("type"))
        ids.add((kind, str(r.get("keyId" if kind == "kms" else "recipient"))))
    return frozenset(ids)


def _aad(address: Address) -> bytes:
    return str(address).encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _pyrage() -> Any:
    try:
        import pyrage  # an optional dependency
    except ImportError:
        raise EncryptionError(
            "age encryption needs the pyrage package, which is not installed",
            hint="pip install 'lightsail-reconciler[age]', or use --encrypt-with kms:KEY_ID",
        ) from None
    return pyrage
