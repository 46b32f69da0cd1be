"""State backends by ``type``: one entry per backend, and the only place that lists them.

An entry is the backend's settings class (``settings.BackendSettings``: it
reads the ``backend:`` section of reconciler.yaml and ``--state`` locations,
and says how the backend names itself) and its opener, which chooses the lock.
A location no other backend claims (by its ``SCHEME``) is the default
backend's: a local path. A new backend is its object store (``core``), its
settings class, and one entry here. Nothing here loads the AWS SDK: an opener
imports what its backend needs when it is called.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from reconciler.state.backend import StateBackend
from reconciler.state.local import LocalBackend
from reconciler.state.local_settings import LocalSettings
from reconciler.state.lock import FileLock
from reconciler.state.s3_settings import S3Settings
from reconciler.state.settings import BackendSettings, Report, Section, StateContext

S = TypeVar("S", bound=BackendSettings)


@dataclass(frozen=True, slots=True)
class Backend(Generic[S]):
    """One backend: its settings, and how it opens with them (lock and all)."""

    settings: type[S]
    open: Callable[[S, StateContext], StateBackend]


def _s3(settings: S3Settings, context: StateContext) -> StateBackend:
    # boto3 loads here, and only for a run that reaches an S3 state.
    from reconciler.state.s3 import S3Backend
    from reconciler.state.s3_lock import S3Lock

    # The lock is an object beside the state, created only where none exists.
    return S3Backend.open(settings, context, lock=S3Lock)


def _local(settings: LocalSettings, context: StateContext) -> StateBackend:
    # An flock, released by the kernel when its holder dies.
    return LocalBackend.open(settings, context, lock=FileLock)


BACKENDS: dict[str, Backend[Any]] = {
    S3Settings.TYPE: Backend(S3Settings, _s3),
    LocalSettings.TYPE: Backend(LocalSettings, _local),
}
DEFAULT = LocalSettings.TYPE


def backend_at(location: str) -> type[BackendSettings]:
    """The settings class of the backend a ``--state`` location belongs to."""
    return _entry_at(location).settings


def read_backend(
    data: Mapping[str, Any], directory: Path, report: Report
) -> BackendSettings | None:
    """The settings a project file's ``backend:`` mapping names (its paths are under
    ``directory``). Each problem goes to ``report``; settings read despite one are
    for the caller to drop. None if there is no backend of that ``type``."""
    section = Section("backend", data, directory, report, owner=backend_at)
    kind = data.get("type")
    backend = BACKENDS.get(kind) if isinstance(kind, str) else None
    if backend is None:
        *first, last = [f"'{name}'" for name in BACKENDS]
        choices = f"{', '.join(first)} or {last}" if first else last
        section.problem("type" if "type" in data else None, f"backend.type must be {choices}")
        return None
    settings: type[BackendSettings] = backend.settings
    for name in data:
        if name != "type" and name not in settings.FIELDS:
            section.problem(
                name,
                f"unknown field 'backend.{name}' for a {kind} backend "
                f"(expected: {', '.join(settings.FIELDS)})",
                key=True,
            )
    return settings.parse(section)


def settings_at(location: str, configured: BackendSettings | None = None) -> BackendSettings:
    """The settings of a ``--state`` location. The project file's settings
    (``configured``) fill in what the location does not say when they are the
    same backend's: another S3 location keeps the project's region and encryption."""
    settings: BackendSettings = _settings_at(_entry_at(location), location, configured)
    return settings


def open_state(
    location: str, configured: BackendSettings | None, context: StateContext
) -> StateBackend:
    """The backend of a ``--state`` location, opened with its settings (see ``settings_at``)."""
    backend = _entry_at(location)
    return backend.open(_settings_at(backend, location, configured), context)


def _entry_at(location: str) -> Backend[Any]:
    for backend in BACKENDS.values():
        if backend.settings.SCHEME and location.startswith(backend.settings.SCHEME):
            return backend
    return BACKENDS[DEFAULT]


def _settings_at(backend: Backend[S], location: str, configured: BackendSettings | None) -> S:
    kind = backend.settings
    return kind.at(location, configured if isinstance(configured, kind) else None)
