"""Who may open the state's private keys: recipient specs, and the age identities that open them.

``parse_specs`` reads ``--encrypt-with`` values (``kms:KEY_ID``, ``age:RECIPIENT``)
and ``specs_from_json`` the state's own ``encryption`` setting; ``load_identities``
reads age identities from files and the environment for unsealing. A secret key
given where a public recipient belongs is refused without being quoted, and no
identity is ever logged, printed or put in a message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from reconciler.errors import EncryptionError, UsageError
from reconciler.regular import read_regular

SpecKind = Literal["kms", "age"]
KINDS: tuple[str, ...] = ("kms", "age")

AGE_IDENTITY_ENV = "RECONCILER_AGE_IDENTITY"
AGE_IDENTITY_FILE_ENV = "RECONCILER_AGE_IDENTITY_FILE"

SPEC_HINT = (
    "write kms:KEY_ID (a KMS key ID, key ARN, alias/NAME or alias ARN) "
    "or age:RECIPIENT (an age1... public key)"
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
        return {"type": self.kind, target_field(self.kind): self.target}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EncryptionSpec:
        hint = "set it again with `reconciler state encrypt --encrypt-with ...`"
        kind = data.get("type")
        target = data.get(target_field(kind))
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


def target_field(kind: object) -> str:
    """The JSON member naming a recipient of ``kind``: ``keyId`` for KMS, else ``recipient``."""
    return "keyId" if kind == "kms" else "recipient"


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
    pyrage = import_pyrage()
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


# An identity file holds a few AGE-SECRET-KEY-1... lines.
MAX_IDENTITY_FILE_BYTES = 1 << 20


def load_identities(
    pyrage: Any, identity_files: Sequence[str], environ: Mapping[str, str]
) -> list[Any]:
    """The age identities in ``$RECONCILER_AGE_IDENTITY`` and the files given or named."""
    sources: list[tuple[str, str]] = []
    inline = environ.get(AGE_IDENTITY_ENV)
    if inline:
        sources.append((f"${AGE_IDENTITY_ENV}", inline))
    files = list(identity_files)
    env_file = environ.get(AGE_IDENTITY_FILE_ENV)
    if env_file:
        files.append(env_file)
    for path in files:
        try:
            data, size = read_regular(Path(path).expanduser(), MAX_IDENTITY_FILE_BYTES)
            if size > MAX_IDENTITY_FILE_BYTES:
                raise EncryptionError(
                    f"cannot read age identity file {path}: {size} bytes is too large "
                    "for an identity file"
                )
            sources.append((f"age identity file {path}", data.decode("utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or "not UTF-8 text"
            raise EncryptionError(
                f"cannot read age identity file {path}: {reason}",
                hint="pass --age-identity with a file holding AGE-SECRET-KEY-1... lines",
            ) from None
    return [i for where, text in sources for i in _identities(pyrage, where, text)]


def import_pyrage() -> Any:
    """The pyrage module (age), an optional dependency; an EncryptionError without it."""
    try:
        import pyrage
    except ImportError:
        raise EncryptionError(
            "age encryption needs the pyrage package, which is not installed",
            hint="pip install 'lightsail-reconciler[age]', or use --encrypt-with kms:KEY_ID",
        ) from None
    return pyrage


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
