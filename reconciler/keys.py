"""SSH key helpers: parse and normalise OpenSSH public keys, generate key pairs.

Used by manifest validation (is this public key one Lightsail accepts?), by the
planner (did the public key really change, or only its comment?), by local
generation, and by the emulator. Never logs key material. Parsing public keys
needs no crypto backend; ``cryptography`` is imported only to generate or load
private keys, so ``validate`` starts without it.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

ACCEPTED_TYPES = ("ssh-rsa", "ssh-ed25519")
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 4096


class PublicKeyError(ValueError):
    """An OpenSSH public key Lightsail would refuse; the message says why."""


@dataclass(frozen=True, slots=True)
class PublicKey:
    key_type: str
    blob: bytes
    bits: int

    @property
    def normalized(self) -> str:
        """``type base64`` with no comment: equal strings mean equal keys."""
        return f"{self.key_type} {base64.b64encode(self.blob).decode('ascii')}"


def _read_string(blob: bytes, offset: int) -> tuple[bytes, int]:
    if offset + 4 > len(blob):
        raise PublicKeyError("the key data is truncated")
    (length,) = struct.unpack(">I", blob[offset : offset + 4])
    end = offset + 4 + length
    if end > len(blob):
        raise PublicKeyError("the key data is truncated")
    return blob[offset + 4 : end], end


def parse_public_key(text: str) -> PublicKey:
    """Parse one OpenSSH public-key line (``type base64 [comment]``)."""
    parts = text.strip().split()
    if len(parts) < 2:
        raise PublicKeyError("expected an OpenSSH public key line: 'ssh-rsa AAAA... [comment]'")
    key_type, data = parts[0], parts[1]
    if key_type not in ACCEPTED_TYPES:
        raise PublicKeyError(
            f"key type {key_type[:40]!r} is not accepted by Lightsail "
            f"(accepted: {', '.join(ACCEPTED_TYPES)})"
        )
    try:
        blob = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise PublicKeyError("the key data is not valid base64") from None
    inner_type, offset = _read_string(blob, 0)
    if inner_type.decode("ascii", "replace") != key_type:
        raise PublicKeyError(f"the key data does not hold a {key_type} key")
    if key_type == "ssh-rsa":
        exponent, offset = _read_string(blob, offset)
        modulus, offset = _read_string(blob, offset)
        bits = int.from_bytes(modulus, "big").bit_length()
        if not exponent or not (MIN_RSA_BITS <= bits <= MAX_RSA_BITS):
            raise PublicKeyError(
                f"RSA keys must be {MIN_RSA_BITS} to {MAX_RSA_BITS} bits; this one is {bits}"
            )
    else:
        point, offset = _read_string(blob, offset)
        if len(point) != 32:
            raise PublicKeyError("an ssh-ed25519 key must hold 32 bytes")
        bits = 256
    if offset != len(blob):
        raise PublicKeyError("the key data has trailing bytes")
    return PublicKey(key_type, blob, bits)


def normalize_public_key(text: str) -> str:
    return parse_public_key(text).normalized


@dataclass(frozen=True, slots=True)
class GeneratedKey:
    private_pem: str
    public_openssh: str


def generate_rsa(bits: int = 2048) -> GeneratedKey:
    """A fresh RSA key: PKCS#1 PEM private half, OpenSSH public half."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    return serialize_rsa(rsa.generate_private_key(public_exponent=65537, key_size=bits))


def serialize_rsa(key: rsa.RSAPrivateKey) -> GeneratedKey:
    """An RSA key as Lightsail hands keys out: PKCS#1 PEM and an OpenSSH line."""
    from cryptography.hazmat.primitives import serialization

    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode("ascii")
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return GeneratedKey(private_pem, public.decode("ascii"))


def public_key_of(private_pem: str) -> str:
    """The normalised OpenSSH public key matching a PEM private key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    key = serialization.load_pem_private_key(private_pem.encode("ascii"), password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise PublicKeyError("unsupported private key type")
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return normalize_public_key(public.decode("ascii"))
