"""Encryption at rest of the private keys in the state (envelope encryption).

A run that stores private keys makes one random 256-bit data key and wraps it
for every recipient: an AWS KMS key (GenerateDataKey / Encrypt) or an age X25519
recipient. Each private key is then sealed locally with AES-256-GCM, its key
pair's address as associated data, so a sealed blob moved onto another entry
fails to open. KMS is called only when the ``Sealer`` is made, so no network call
stands between a CreateKeyPair response and its journal write. Everything else
in the state stays readable JSON.

This module seals and opens; who the recipients are (specs, age identities) is
``crypto_specs``, and wrapping the data key for each of them is ``crypto_wrap``.
Never log, print or raise a private key, a data key or an age identity: messages
name only addresses, recipients, KMS key IDs and AWS error codes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from reconciler.errors import EncryptionError
from reconciler.model import Address, OpenIntent, StateEntry
from reconciler.state.crypto_specs import (
    AGE_IDENTITY_ENV,
    AGE_IDENTITY_FILE_ENV,
    KINDS,
    SPEC_HINT,
    EncryptionSpec,
    SpecKind,
    kms_region,
    load_identities,
    parse_spec,
    parse_specs,
    specs_from_json,
)
from reconciler.state.crypto_wrap import (
    DATA_KEY_BYTES,
    KMS_ENCRYPTION_CONTEXT,
    KmsClientFactory,
    KmsClients,
    NotOpened,
    WrappedKey,
    b64,
    generate_data_key,
    parse_wrapped_key,
    recipient_ids,
    unb64,
    unwrap_age,
    unwrap_kms,
    wrap_age,
    wrap_kms,
)

__all__ = [
    "AGE_IDENTITY_ENV",
    "AGE_IDENTITY_FILE_ENV",
    "ALGORITHM",
    "DATA_KEY_BYTES",
    "KINDS",
    "KMS_ENCRYPTION_CONTEXT",
    "NONCE_BYTES",
    "RESTORE_HINT",
    "SEALED_VERSION",
    "SPEC_HINT",
    "TAG_BYTES",
    "WARNING_TEXT",
    "EncryptionSpec",
    "KmsClientFactory",
    "Sealer",
    "SpecKind",
    "Unsealer",
    "kms_region",
    "parse_spec",
    "parse_specs",
    "seal_entries",
    "sealed_recipient_ids",
    "specs_from_json",
    "unencrypted_count",
    "unencrypted_warning",
    "unseal",
    "unseal_entries",
]

SEALED_VERSION = 1
ALGORITHM = "AES-256-GCM"
NONCE_BYTES = 12
TAG_BYTES = 16

WARNING_TEXT = (
    "Warning: state {location} holds {count} private key{s} in clear; encrypt {them} with "
    "`reconciler state encrypt --encrypt-with kms:KEY_ID` (or --encrypt-with age:RECIPIENT)"
)
RESTORE_HINT = (
    "restore the state from a previous version (a local state keeps one beside it as .backup)"
)


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
        clients = KmsClients(kms_client_factory)
        wrapped: dict[EncryptionSpec, dict[str, str]] = {}
        first_kms = next((s for s in unique if s.kind == "kms"), None)
        if first_kms is not None:
            # KMS's generator, where there is one, rather than ours.
            data_key, wrapped[first_kms] = generate_data_key(first_kms, clients)
        else:
            data_key = os.urandom(DATA_KEY_BYTES)
        for spec in unique:
            if spec not in wrapped:
                wrap = wrap_kms if spec.kind == "kms" else wrap_age
                wrapped[spec] = wrap(spec, data_key, clients)
        self.specs: tuple[EncryptionSpec, ...] = tuple(unique)
        self.recipients: tuple[Mapping[str, str], ...] = tuple(wrapped[s] for s in unique)
        self._aead = AESGCM(data_key)

    def __repr__(self) -> str:
        return f"Sealer({', '.join(str(s) for s in self.specs)})"

    @property
    def recipient_ids(self) -> frozenset[tuple[str, str]]:
        """Who can open what this seals (KMS keys by ARN)."""
        return recipient_ids(self.recipients)

    def seal(self, address: Address, private_key_pem: str) -> dict[str, Any]:
        """``private_key_pem`` sealed for ``address``: a JSON-able dict, no secret in clear."""
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = self._aead.encrypt(nonce, private_key_pem.encode("utf-8"), _aad(address))
        return {
            "v": SEALED_VERSION,
            "alg": ALGORITHM,
            "nonce": b64(nonce),
            "ciphertext": b64(ciphertext),
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
        self._kms = None if kms_client_factory is None else KmsClients(kms_client_factory)
        self._data_keys: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Unsealer(identity_files={len(self._identity_files)}, kms={self._kms is not None})"

    def unseal(self, sealed: Mapping[str, Any], address: Address) -> str:
        """The PEM text sealed for ``address``; EncryptionError if it cannot be opened."""
        box = _parse_sealed(sealed, address)
        data_key = self._data_key(box, address)
        plaintext: bytes | None
        try:
            plaintext = AESGCM(data_key).decrypt(box.nonce, box.ciphertext, _aad(address))
        except InvalidTag:
            plaintext = self._sealed_before_its_account(box, data_key, address)
        if plaintext is None:
            if box.aad is not None and box.aad != str(address):
                raise EncryptionError(
                    f"the sealed private key at {address} was sealed for {box.aad}: "
                    "it does not belong to this entry",
                    hint=RESTORE_HINT,
                )
            raise EncryptionError(
                f"the sealed private key of {address} fails its integrity check: "
                "it was altered, or belongs to another entry",
                hint=RESTORE_HINT,
            )
        return plaintext.decode("utf-8")

    @staticmethod
    def _sealed_before_its_account(box: _Box, data_key: bytes, address: Address) -> bytes | None:
        """A key sealed as ``REGION/NAME`` in a single-account state, whose entry
        now names its account (see ``workflow.place_in_accounts``); None otherwise."""
        if not address.account:
            return None
        try:
            unplaced = Address(address.region, address.name)
            return AESGCM(data_key).decrypt(box.nonce, box.ciphertext, _aad(unplaced))
        except InvalidTag:
            return None

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
                        key = unwrap_age(recipient, self._load_identities)
                    else:
                        key = unwrap_kms(recipient, self._kms)
                except NotOpened as why:
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

    def _load_identities(self, pyrage: Any) -> list[Any]:
        if self._identities is None:
            self._identities = load_identities(pyrage, self._identity_files, self._environ)
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

    def seal(entry: StateEntry) -> StateEntry | None:
        if entry.private_key is not None:
            pem = entry.private_key
        elif (
            entry.private_key_sealed is not None
            and unsealer is not None
            and sealed_recipient_ids(entry.private_key_sealed) != sealer.recipient_ids
        ):
            pem = unsealer.unseal(entry.private_key_sealed, entry.address)
        else:
            return None
        return replace(entry, private_key=None, private_key_sealed=sealer.seal(entry.address, pem))

    return _each_key(entries, seal)


def _each_key(
    entries: Mapping[Address, StateEntry], change: Callable[[StateEntry], StateEntry | None]
) -> dict[Address, StateEntry]:
    """The entries ``change`` changes, applied to each entry and each of its generations."""
    changed: dict[Address, StateEntry] = {}
    for address, entry in entries.items():
        generations = tuple(
            g if (new := change(g.entry)) is None else replace(g, entry=new)
            for g in entry.generations
        )
        current = change(entry) or entry
        if current is not entry or generations != entry.generations:
            changed[address] = replace(current, generations=generations)
    return changed


def unseal_entries(
    entries: Mapping[Address, StateEntry], unsealer: Unsealer
) -> dict[Address, StateEntry]:
    """The entries that change when their sealed private keys are put back in clear."""

    def unseal(entry: StateEntry) -> StateEntry | None:
        if entry.private_key_sealed is None:
            return None
        pem = unsealer.unseal(entry.private_key_sealed, entry.address)
        return replace(entry, private_key=pem, private_key_sealed=None)

    return _each_key(entries, unseal)


def sealed_recipient_ids(sealed: Mapping[str, Any]) -> frozenset[tuple[str, str]]:
    """Who can open a sealed private key, as ``Sealer.recipient_ids`` names them."""
    recipients = sealed.get("recipients")
    if not isinstance(recipients, list):
        return frozenset()
    return recipient_ids([r for r in recipients if isinstance(r, Mapping)])


def unencrypted_count(items: Iterable[StateEntry | OpenIntent]) -> int:
    """How many private keys the state holds in clear: of entries, of the earlier
    generations each keeps, and of open intents."""
    count = 0
    for item in items:
        count += item.private_key is not None
        if isinstance(item, StateEntry):
            count += unencrypted_count(g.entry for g in item.generations)
    return count


def unencrypted_warning(count: int, location: str) -> str | None:
    """The one-line warning for ``count`` clear private keys, or None when there are none."""
    if count <= 0:
        return None
    one = count == 1
    return WARNING_TEXT.format(
        location=location, count=count, s="" if one else "s", them="it" if one else "them"
    )


# -- internals ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Box:
    nonce: bytes
    ciphertext: bytes
    aad: str | None
    recipients: tuple[WrappedKey, ...]


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
    nonce = unb64(sealed.get("nonce"))
    ciphertext = unb64(sealed.get("ciphertext"))
    if nonce is None or len(nonce) != NONCE_BYTES:
        raise bad(f"'nonce' must be base64 of {NONCE_BYTES} bytes")
    if ciphertext is None or len(ciphertext) < TAG_BYTES:
        raise bad("'ciphertext' must be base64 of an AES-GCM ciphertext")
    aad = sealed.get("aad")
    items = sealed.get("recipients")
    if not isinstance(items, list) or not items:
        raise bad("'recipients' must be a non-empty list")
    recipients: list[WrappedKey] = []
    for n, item in enumerate(items):
        recipient = parse_wrapped_key(item)
        if recipient is None:
            raise bad(f"recipients[{n}] must be a kms or age recipient with a 'wrappedKey'")
        recipients.append(recipient)
    return _Box(nonce, ciphertext, aad if isinstance(aad, str) else None, tuple(recipients))


def _aad(address: Address) -> bytes:
    return str(address).encode("utf-8")
