"""The project file, ``reconciler.yaml``: where the state lives when ``--state`` is not given.

It is looked for in the working directory, then in each parent up to the root
of the git repository around it (the working directory alone outside a
repository), so a command run anywhere in a repository finds the same state.
It is read as warily as a manifest (bounded aliases, no custom tags, limited size),
and every problem is reported at once with its file, line and column::

    backend:
      type: s3                            # or: local
      bucket: my-state-bucket
      key: lightsail/reconciler.state.json
      region: eu-west-1                   # optional
      encrypt: aws:kms                    # optional: AES256, aws:kms, true (AES256), false
      kmsKeyId: alias/reconciler-state    # optional; implies aws:kms
      timeout: 20                         # optional: seconds to wait for S3 (default 60)
      spool: .reconciler/spool            # optional: where results wait while S3 fails

    backend:
      type: local
      path: state/reconciler.state.json   # relative to the project file

A ``keys`` section chooses where new private keys are kept (``--key-store``
overrides it)::

    keys:
      store: ssm:/lightsail/{region}/{name}   # or secretsmanager:PREFIX/{region}/{name}, state
      kmsKeyId: alias/lightsail-keys          # optional
      timeout: 10                             # optional: seconds to wait for the store (default 30)

``--state`` overrides the location; the S3 region and encryption settings
still apply when both name S3 locations. The file may also hold a team's
``policy:`` (see ``reconciler.policy``) and its ``accounts:`` (see
``reconciler.manifests.accounts``); any section may stand alone.
Nothing here touches the network, and reading the policy alone (``validate``)
imports nothing of the S3 backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.errors import Problem, UsageError
from reconciler.manifests.accounts import Accounts, parse_accounts
from reconciler.manifests.yamlsafe import Document, JsonPath, parse_documents, read_text
from reconciler.policy import Policy, parse_policy

if TYPE_CHECKING:
    from reconciler.custody.custody import KeySetting

PROJECT_FILE = "reconciler.yaml"
_SECTIONS = ("backend", "policy", "keys", "accounts")

_FIELDS = {
    "s3": ("type", "bucket", "key", "region", "encrypt", "kmsKeyId", "timeout", "spool"),
    "local": ("type", "path"),
}


@dataclass(frozen=True, slots=True)
class S3Settings:
    bucket: str
    key: str
    region: str | None = None
    sse: str | None = None
    kms_key_id: str | None = None
    timeout: float | None = None
    spool: Path | None = None


@dataclass(frozen=True, slots=True)
class LocalSettings:
    path: Path


@dataclass(frozen=True, slots=True)
class ProjectConfig:
    """A project file that was found and is valid."""

    path: Path
    backend: S3Settings | LocalSettings | None
    policy: Policy = field(default_factory=Policy)
    keys: KeySetting | None = None
    accounts: Accounts = field(default_factory=Accounts)

    def state_url(self) -> str | None:
        """The state location, as ``--state`` would name it (None: the file names none)."""
        if self.backend is None:
            return None
        if isinstance(self.backend, S3Settings):
            return f"s3://{self.backend.bucket}/{self.backend.key}"
        return str(self.backend.path)

    def extra(self) -> dict[str, str]:
        """Backend settings for ``Options.extra`` (empty for a local backend)."""
        if not isinstance(self.backend, S3Settings):
            return {}
        from reconciler.state.s3 import (
            OPTION_KMS_KEY_ID,
            OPTION_REGION,
            OPTION_SPOOL,
            OPTION_SSE,
            OPTION_TIMEOUT,
        )

        settings = {
            OPTION_REGION: self.backend.region,
            OPTION_SSE: self.backend.sse,
            OPTION_KMS_KEY_ID: self.backend.kms_key_id,
            OPTION_TIMEOUT: None if self.backend.timeout is None else str(self.backend.timeout),
            OPTION_SPOOL: None if self.backend.spool is None else str(self.backend.spool),
        }
        return {name: value for name, value in settings.items() if value is not None}


def load_project(start: Path | None = None) -> ProjectConfig | None:
    """The project file for ``start`` (the working directory), or None if there is none."""
    path = find_project(start)
    return None if path is None else read_project(path)


def find_project(start: Path | None = None) -> Path | None:
    here = (start or Path.cwd()).absolute()
    chain = [here, *here.parents]
    root = next((i for i, d in enumerate(chain) if _exists(d / ".git")), None)
    for directory in chain[: 1 if root is None else root + 1]:
        candidate = directory / PROJECT_FILE
        if _exists(candidate):
            return candidate
    return None


def read_project(path: Path, *, check_backend: bool = True) -> ProjectConfig:
    """Read and check one project file; a UsageError lists every problem in it.

    ``check_backend=False`` reads the policy only (the backend is left unchecked
    and unset), for offline commands that need no state.
    """
    file = _display(path)
    text, problems = read_text(path, file)
    documents: list[Document] = []
    if text is not None:
        documents, problems = parse_documents(text, file)
    if not problems and len(documents) > 1:
        problems = [Problem(file, 1, 1, "a project file holds one YAML document", "project")]
    backend = None
    policy = Policy()
    keys: KeySetting | None = None
    accounts = Accounts()
    if not problems:
        document = documents[0] if documents else Document(None, {}, {})
        checker = _Checker(document, file, path.parent)
        backend, problems = checker.backend() if check_backend else checker.fields()
        if check_backend:
            keys = checker.keys()
        policy, policy_problems = parse_policy(document, file)
        problems = problems + policy_problems
        accounts, account_problems = parse_accounts(document, file)
        problems = problems + account_problems
    if problems:
        count = f"{len(problems)} problems" if len(problems) != 1 else "a problem"
        raise UsageError(
            f"{count} in project file {file}:",
            details=tuple(f"  {p}" for p in problems),
            hint=f"fix {file}, or name the state with --state",
        )
    return ProjectConfig(path, backend if check_backend else None, policy, keys, accounts)


def resolve_state(
    flag: str | None, project: ProjectConfig | None
) -> tuple[str | None, dict[str, str]]:
    """The state location and backend settings: ``--state`` wins over the project file."""
    if project is None or project.backend is None:
        return flag, {}
    if flag is None:
        return project.state_url(), project.extra()
    if flag.startswith("s3://") and isinstance(project.backend, S3Settings):
        return flag, project.extra()
    return flag, {}


class _Checker:
    """Collects every problem in one project document, each at its place."""

    def __init__(self, document: Document, file: str, directory: Path) -> None:
        self.document = document
        self.file = file
        self.directory = directory
        self.problems: list[Problem] = []

    def fields(self) -> tuple[None, list[Problem]]:
        """Problems with the top-level fields: a mapping of known sections, at least one."""
        data = self.document.data
        if not isinstance(data, Mapping) or not set(data) & set(_SECTIONS):
            self._problem((), "a project file needs a 'backend' or a 'policy' section")
            return None, self.problems
        for name in data:
            if name not in _SECTIONS:
                expected = ", ".join(_SECTIONS)
                self._problem((name,), f"unknown field '{name}' (expected: {expected})", key=True)
        return None, self.problems

    def backend(self) -> tuple[S3Settings | LocalSettings | None, list[Problem]]:
        self.fields()
        data = self.document.data
        if not isinstance(data, Mapping) or "backend" not in data:
            return None, self.problems
        section = data["backend"]
        if not isinstance(section, Mapping):
            self._problem(("backend",), "'backend' must be a mapping with a 'type'")
            return None, self.problems
        kind = section.get("type")
        if not isinstance(kind, str) or kind not in _FIELDS:
            where = ("backend", "type") if "type" in section else ("backend",)
            self._problem(where, "backend.type must be 's3' or 'local'")
            return None, self.problems
        for name in section:
            if name not in _FIELDS[kind]:
                self._problem(
                    ("backend", name),
                    f"unknown field 'backend.{name}' for a {kind} backend "
                    f"(expected: {', '.join(_FIELDS[kind][1:])})",
                    key=True,
                )
        result = self._s3(section) if kind == "s3" else self._local(section)
        return (None if self.problems else result), self.problems

    def keys(self) -> KeySetting | None:
        """The ``keys`` section, if any; its problems join ``self.problems``."""
        data = self.document.data
        if not isinstance(data, Mapping) or "keys" not in data:
            return None
        section = data["keys"]
        if not isinstance(section, Mapping):
            self._problem(("keys",), "'keys' must be a mapping with a 'store'")
            return None
        for name in section:
            if name not in ("store", "kmsKeyId", "timeout"):
                self._problem(
                    ("keys", name),
                    f"unknown field 'keys.{name}' (expected: store, kmsKeyId, timeout)",
                    key=True,
                )
        store = self._text(section, "store", required=True, where="keys")
        kms_key_id = self._text(section, "kmsKeyId", where="keys")
        timeout = section.get("timeout")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
        ):
            self._problem(("keys", "timeout"), "keys.timeout must be a number of seconds > 0")
            timeout = None
        if store is None:
            return None
        # Imported here: offline commands that read only the policy never load the stores.
        from reconciler.custody.custody import KeySetting
        from reconciler.custody.registry import spec_problem

        problem = spec_problem(store, kms_key_id)
        if problem is not None:
            self._problem(("keys", "store"), problem)
            return None
        return KeySetting(store, kms_key_id, None if timeout is None else float(timeout))

    def _s3(self, section: Mapping[str, Any]) -> S3Settings | None:
        from reconciler.state.s3 import BUCKET_NAME, valid_key

        bucket = self._text(section, "bucket", required=True)
        key = self._text(section, "key", required=True)
        region = self._text(section, "region")
        kms_key_id = self._text(section, "kmsKeyId")
        if bucket is not None and not BUCKET_NAME.fullmatch(bucket):
            self._problem(("backend", "bucket"), f"{bucket!r} is not an S3 bucket name")
        if key is not None and not valid_key(key):
            self._problem(("backend", "key"), "backend.key must not start or end with '/'")
        sse = self._encryption(section.get("encrypt"), kms_key_id)
        timeout = section.get("timeout")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
        ):
            self._problem(("backend", "timeout"), "backend.timeout must be a number of seconds > 0")
            timeout = None
        spool = self._text(section, "spool")
        if bucket is None or key is None:
            return None
        return S3Settings(
            bucket,
            key,
            region,
            sse,
            kms_key_id,
            None if timeout is None else float(timeout),
            None if spool is None else self.directory / spool,
        )

    def _encryption(self, encrypt: Any, kms_key_id: str | None) -> str | None:
        from reconciler.state.s3 import SSE_ALGORITHMS

        where: JsonPath = ("backend", "encrypt")
        if encrypt is False:
            if kms_key_id is not None:
                self._problem(where, "backend.kmsKeyId needs encryption; drop encrypt: false")
            return None
        if encrypt is None or encrypt is True:
            if kms_key_id is not None:
                return "aws:kms"
            return "AES256" if encrypt else None
        if encrypt not in SSE_ALGORITHMS:
            choices = ", ".join(SSE_ALGORITHMS)
            self._problem(where, f"backend.encrypt must be {choices}, true or false")
            return None
        if kms_key_id is not None and encrypt != "aws:kms":
            self._problem(where, f"backend.kmsKeyId needs encrypt: aws:kms, not {encrypt}")
        return str(encrypt)

    def _local(self, section: Mapping[str, Any]) -> LocalSettings | None:
        path = self._text(section, "path", required=True)
        if path is None:
            return None
        if path.startswith("s3://"):
            self._problem(("backend", "path"), "an s3:// location needs type: s3")
        return LocalSettings(self.directory / path)

    def _text(
        self,
        section: Mapping[str, Any],
        name: str,
        *,
        required: bool = False,
        where: str = "backend",
    ) -> str | None:
        value = section.get(name)
        if value is None:
            if required:
                self._problem((where,), f"{where}.{name} is required for this {where}")
            return None
        if not isinstance(value, str) or not value.strip():
            self._problem((where, name), f"{where}.{name} must be a non-empty string")
            return None
        return value

    def _problem(self, path: JsonPath, message: str, *, key: bool = False) -> None:
        line, column = self.document.key_position(path) if key else self.document.position(path)
        self.problems.append(Problem(self.file, line, column, message, "project"))


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # e.g. a parent directory we may not search
        return False


def _display(path: Path) -> str:
    """``path`` relative to the working directory when it is inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
