"""The project file, ``reconciler.yaml``: where the state lives when ``--state`` is not given.

It is looked for in the working directory, then in each parent up to the root
of the git repository around it (the working directory alone outside a
repository), so a command run anywhere in a repository finds the same state.
It is read as warily as a manifest (bounded aliases, no custom tags, limited size),
and every problem is reported at once with its file, line and column. The
``backend`` section is read by the state backend its ``type`` names (see
``reconciler.state.registry``)::

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
imports nothing of the state backends.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.errors import Problem, UsageError
from reconciler.manifests.accounts import Accounts, parse_accounts
from reconciler.manifests.yamlsafe import Document, JsonPath, parse_documents, read_text
from reconciler.model import tag_problems
from reconciler.policy import Policy, parse_policy

if TYPE_CHECKING:
    from reconciler.custody.custody import KeySetting
    from reconciler.state.settings import BackendSettings

from reconciler.manifests.load import PROJECT_FILE as PROJECT_FILE

_SECTIONS = ("backend", "policy", "keys", "accounts", "ownership", "manifests")


@dataclass(frozen=True, slots=True)
class Ownership:
    """The tag every key pair the tool creates or imports carries, so that IAM can tell them
    apart (``aws:RequestTag`` on create, ``aws:ResourceTag`` on delete and retag)."""

    tag: str
    value: str


@dataclass(frozen=True, slots=True)
class ProjectConfig:
    """A project file that was found and is valid."""

    path: Path
    backend: BackendSettings | None
    """The state backend's settings (``state.registry`` reads them); None: the file names none."""
    policy: Policy = field(default_factory=Policy)
    keys: KeySetting | None = None
    accounts: Accounts = field(default_factory=Accounts)
    ownership: Ownership | None = None
    # Where the manifests are (``manifests:``), relative to the working directory: what
    # plan, validate, drift and report read when they are given no PATH.
    manifests: tuple[str, ...] = ()

    def state_url(self) -> str | None:
        """The state location, as ``--state`` would name it (None: the file names none)."""
        return None if self.backend is None else self.backend.location


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
    ownership: Ownership | None = None
    manifests: tuple[str, ...] = ()
    accounts = Accounts()
    if not problems:
        document = documents[0] if documents else Document(None, {}, {})
        checker = _Checker(document, file, path.parent)
        backend, problems = checker.backend() if check_backend else checker.fields()
        if check_backend:
            keys = checker.keys()
        ownership = checker.ownership()
        manifests = checker.manifests()
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
    return ProjectConfig(
        path, backend if check_backend else None, policy, keys, accounts, ownership, manifests
    )


def resolve_state(
    flag: str | None, project: ProjectConfig | None
) -> tuple[str | None, BackendSettings | None]:
    """The state location (``--state`` wins over the project file) and the project's
    backend settings, which ``state.registry`` applies to a location of their backend."""
    if project is None:
        return flag, None
    return (project.state_url() if flag is None else flag), project.backend


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

    def backend(self) -> tuple[BackendSettings | None, list[Problem]]:
        self.fields()
        data = self.document.data
        if not isinstance(data, Mapping) or "backend" not in data:
            return None, self.problems
        section = data["backend"]
        if not isinstance(section, Mapping):
            self._problem(("backend",), "'backend' must be a mapping with a 'type'")
            return None, self.problems
        # Imported here: offline commands that read only the policy never load the backends.
        from reconciler.state.registry import read_backend

        result = read_backend(section, self.directory, self._report)
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
        from reconciler.state.settings import Section

        for name in section:
            if name not in ("store", "kmsKeyId", "timeout"):
                self._problem(
                    ("keys", name),
                    f"unknown field 'keys.{name}' (expected: store, kmsKeyId, timeout)",
                    key=True,
                )
        fields = Section("keys", section, self.directory, self._report)
        store = fields.text("store", required=True)
        kms_key_id = fields.text("kmsKeyId")
        timeout = fields.seconds("timeout")
        if store is None:
            return None
        # Imported here: offline commands that read only the policy never load the stores.
        from reconciler.custody.custody import KeySetting
        from reconciler.custody.registry import spec_problem

        problem = spec_problem(store, kms_key_id)
        if problem is not None:
            self._problem(("keys", "store"), problem)
            return None
        return KeySetting(store, kms_key_id, timeout)

    def manifests(self) -> tuple[str, ...]:
        """The ``manifests`` section: a folder or file, or a list of them, relative to this
        file; given back relative to the working directory."""
        data = self.document.data
        if not isinstance(data, Mapping) or "manifests" not in data:
            return ()
        section = data["manifests"]
        items = [section] if isinstance(section, str) else section
        if (
            not isinstance(items, list)
            or not items
            or not all(isinstance(i, str) and i for i in items)
        ):
            self._problem(("manifests",), "manifests must be a path or a list of paths")
            return ()
        return tuple(_relative(self.directory / item) for item in items)

    def ownership(self) -> Ownership | None:
        """The ``ownership`` section, if any: a tag key and value Lightsail would accept."""
        data = self.document.data
        if not isinstance(data, Mapping) or "ownership" not in data:
            return None
        section = data["ownership"]
        if not isinstance(section, Mapping):
            self._problem(("ownership",), "ownership must be a mapping: {tag: KEY, value: VALUE}")
            return None
        for name in section:
            if name not in ("tag", "value"):
                self._problem(
                    ("ownership", name),
                    f"unknown field 'ownership.{name}' (expected: tag, value)",
                    key=True,
                )
        tag, value = section.get("tag"), section.get("value")
        for name, text in (("tag", tag), ("value", value)):
            if not isinstance(text, str) or not text:
                self._problem(("ownership", name), f"ownership.{name} must be a non-empty string")
        if not isinstance(tag, str) or not isinstance(value, str) or not tag or not value:
            return None
        for problem in tag_problems({tag: value}):
            self._problem(("ownership",), f"ownership: {problem}")
        return Ownership(tag, value)

    def _problem(self, path: JsonPath, message: str, *, key: bool = False) -> None:
        line, column = self.document.key_position(path) if key else self.document.position(path)
        self.problems.append(Problem(self.file, line, column, message, "project"))

    def _report(self, path: tuple[str, ...], message: str, key: bool) -> None:
        self._problem(path, message, key=key)


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


def _relative(path: Path) -> str:
    """``path`` as the working directory reaches it (relative when it can be)."""
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)
