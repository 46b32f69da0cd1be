"""The one exception tree of the reconciler, and the exit codes it maps to.

Every error a user can cause or meet is a ``ReconcilerError``; the CLI turns
it into one line on stderr (plus its hint) and its ``exit_code``. Nothing else
may reach the user as a traceback. Messages never carry private key material.

    ReconcilerError                     exit 1
    ├── UsageError                      bad flags or arguments
    ├── ManifestError                   invalid manifests (carries every Problem)
    ├── StateError                      unreadable / unsafe / incompatible state
    │   ├── InsecureStateError          group/world-readable state, symlinks
    │   ├── LockHeldError               another run holds the state lock
    │   ├── StaleStateError             the state moved underneath a write
    │   └── StorageError                a state or journal write failed (disk full, S3 down)
    ├── PlanError                       the plan is refused (guards, conflicts)
    │   └── StalePlanError              a saved plan no longer matches the world
    ├── LightsailError                  an API call failed (names the key pair)
    │   └── CredentialsError            no usable AWS credentials
    ├── ApplyError                      some actions failed; the rest are in state
    └── EncryptionError                 key material cannot be encrypted/decrypted
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input file, with its place and the rule broken."""

    file: str
    line: int
    column: int
    message: str
    rule: str = ""

    def __str__(self) -> str:
        rule = f" [{self.rule}]" if self.rule else ""
        return f"{self.file}:{self.line}:{self.column}: {self.message}{rule}"


class ReconcilerError(Exception):
    """Root of every error the user may see. ``hint`` says what to do about it."""

    exit_code = EXIT_ERROR

    def __init__(
        self, message: str, *, hint: str | None = None, details: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        # Lines shown under the message, one each (every problem of a file, say).
        self.details = details

    def __str__(self) -> str:
        return "\n".join((self.message, *self.details))


class UsageError(ReconcilerError):
    """The command line itself is wrong."""


class OutputError(ReconcilerError):
    """A file the user asked for (a saved plan, a report, a manifest) could not be written."""


class ManifestError(ReconcilerError):
    """Manifests are invalid; ``problems`` holds every one found, in file order."""

    def __init__(self, problems: list[Problem]) -> None:
        count = len(problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} found in the manifests")
        self.problems = problems


class StateError(ReconcilerError):
    """The state cannot be read, trusted or written."""


class InsecureStateError(StateError):
    """The state file's permissions or path are unsafe for private keys."""


class LockHeldError(StateError):
    """Another run holds the state lock."""


class StaleStateError(StateError):
    """The state changed underneath us between read and write."""


class StorageError(StateError):
    """Writing the state or its journal failed: full disk, read-only folder, S3 failing.

    Its message names the backend, the file or object, and what failed; its
    hint says what to do. An apply stops at the first one.
    """


class PlanError(ReconcilerError):
    """The plan cannot be made or is refused by a safety guard."""


class StalePlanError(PlanError):
    """A saved plan was made against a state or live snapshot that has moved."""


class LightsailError(ReconcilerError):
    """A Lightsail call failed. ``code`` is the service's error code."""

    def __init__(
        self, message: str, *, code: str = "", detail: str = "", hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.code = code
        # Lightsail's finer-grained ``code`` body member, e.g. NameExists.
        self.detail = detail


class CredentialsError(LightsailError):
    """No usable AWS credentials were found."""


class ApplyError(ReconcilerError):
    """Some actions failed during apply; what succeeded is recorded in state."""


class EncryptionError(ReconcilerError):
    """Private key material could not be encrypted or decrypted."""
