"""What every key store offers: put, get, describe (metadata only), delete.

A key store owns the private keys of key pairs: where a key goes once the
write-ahead journal holds it, how it is read back, and how it is checked.
The state itself is one store (the key in the state entry, clear or sealed);
SSM Parameter Store and Secrets Manager are others, and the state then keeps
only a reference (``StateEntry.private_key_ref``). Nothing here logs a key or
quotes one in a message.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from cryptography.hazmat.primitives import serialization

from reconciler.errors import ReconcilerError
from reconciler.model import Address, StateEntry

# Labels (tags) every stored key carries, so it can be checked by metadata alone.
LABEL_FINGERPRINT = "reconciler:fingerprint"
LABEL_REGION = "reconciler:region"
LABEL_NAME = "reconciler:name"
LABEL_LINEAGE = "reconciler:lineage"


class KeyStoreError(ReconcilerError):
    """A key store refused or failed a call; the message names the key pair."""


class KeyStoreUnavailable(KeyStoreError):
    """The store itself cannot be reached, keeps failing, or refuses us: not about one key."""


class KeyStoreConflict(KeyStoreError):
    """The store already holds a different key where this one should go."""


@dataclass(frozen=True, slots=True)
class KeyMetadata:
    """What a store says of a key without reading it: where, which version, labels."""

    location: str
    version: str
    fingerprint: str | None
    labels: Mapping[str, str]


class KeyStore(Protocol):
    """One place private keys live. ``spec`` is how reconciler.yaml and ``--key-store`` name it."""

    spec: str
    scheme: str

    def put(self, entry: StateEntry, pem: str, *, lineage: str, suffix: str = "") -> StateEntry:
        """Keep ``pem`` for ``entry``; the entry as the state should record it afterwards.

        ``suffix`` is appended to the location (a rotated key pair's new key, while
        an earlier generation still holds the plain location).

        Idempotent: a key already there with the same fingerprint label is
        success; a different one is a ``KeyStoreConflict`` (never overwritten).
        """
        ...

    def get(self, entry: StateEntry) -> str | None:
        """The private key PEM of ``entry`` (None when this store holds none for it)."""
        ...

    def describe(self, entry: StateEntry) -> KeyMetadata | None:
        """The stored key's metadata, never its value; None when it is missing."""
        ...

    def delete(self, entry: StateEntry) -> StateEntry:
        """Drop the key of ``entry`` from this store; the entry without it."""
        ...

    def location(self, address: Address, suffix: str = "") -> str:
        """Where ``put`` places the key of ``address`` with ``suffix`` ("" in the state)."""
        ...


def key_fingerprint(pem: str, origin: str) -> str:
    """The fingerprint Lightsail reports for the key pair whose private half is ``pem``.

    Keys Lightsail created: SHA-1 of the PKCS#8 DER private key; keys imported
    (generated here): MD5 of the OpenSSH public-key blob.
    """
    key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    if origin == "created":
        der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        digest = hashlib.sha1(der, usedforsecurity=False).digest()
    else:
        public = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        blob = base64.b64decode(public.split()[1])
        digest = hashlib.md5(blob, usedforsecurity=False).digest()
    return digest.hex(":")


def labels_for(address: Address, fingerprint: str, lineage: str) -> dict[str, str]:
    return {
        LABEL_FINGERPRINT: fingerprint,
        LABEL_REGION: address.region,
        LABEL_NAME: address.name,
        LABEL_LINEAGE: lineage,
    }


def expected_fingerprint(entry: StateEntry) -> str:
    """The fingerprint a stored key of ``entry`` must carry."""
    if entry.private_key_ref is not None and entry.private_key_ref.get("fingerprint"):
        return entry.private_key_ref["fingerprint"]
    return entry.fingerprint


def held_in_state(entry: StateEntry) -> bool:
    """Whether the state itself holds a private key of ``entry``: its own or a generation's."""
    return entry.holds_private_key or any(g.entry.holds_private_key for g in entry.generations)
