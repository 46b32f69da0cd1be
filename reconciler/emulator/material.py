"""Key material for the emulator: real RSA keys and the fingerprints Lightsail reports.

Created keys are RSA-2048 (e=65537), returned as a PKCS#1 PEM private key and
an OpenSSH public-key line; their fingerprint is the SHA-1 of the PKCS#8 DER
private key. Imported keys are fingerprinted by the MD5 of the decoded
OpenSSH blob. Both follow the reference's "Choices for the emulator" table.
Never logs key material.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from reconciler.keys import PublicKey, serialize_rsa

RSA_BITS = 2048


@dataclass(frozen=True, slots=True)
class KeyMaterial:
    """One key pair as CreateKeyPair returns it."""

    private_pem: str = field(repr=False)
    public_openssh: str
    fingerprint: str

    @property
    def public_key_base64(self) -> str:
        # The service's OpenSSH line has no comment but keeps a trailing space.
        return self.public_openssh + " "


def colon_hex(digest: bytes) -> str:
    return digest.hex(":")


def created_fingerprint(key: rsa.RSAPrivateKey) -> str:
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return colon_hex(hashlib.sha1(der, usedforsecurity=False).digest())


def imported_fingerprint(public_key: PublicKey) -> str:
    return colon_hex(hashlib.md5(public_key.blob, usedforsecurity=False).digest())


def generate_key() -> KeyMaterial:
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    halves = serialize_rsa(key)
    return KeyMaterial(halves.private_pem, halves.public_openssh, created_fingerprint(key))


class KeySource:
    """Hands out RSA keys: a fresh one per call, or round-robin from a pool.

    The pool exists because RSA-2048 generation costs tens of milliseconds,
    which a load test or benchmark would otherwise measure instead of the
    code under test. Pooled keys repeat, and so do their fingerprints.
    """

    def __init__(self, pool_size: int = 0) -> None:
        if pool_size < 0:
            raise ValueError("key pool size must be >= 0")
        self._pool = [generate_key() for _ in range(pool_size)]
        self._next = itertools.cycle(range(pool_size)) if pool_size else None
        self._lock = threading.Lock()

    def new_key(self) -> KeyMaterial:
        if self._next is None:
            return generate_key()
        with self._lock:
            index = next(self._next)
        return self._pool[index]
