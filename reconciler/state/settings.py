"""A state backend's settings: how they are read from reconciler.yaml and from ``--state``.

Each backend has one frozen settings class deriving from ``BackendSettings``:
it reads its ``backend:`` section of the project file (``parse``) and a
``--state`` location (``at``), and names the backend in messages (``NOUN``).
The backend is opened with its settings (``registry`` pairs each settings
class with how its backend opens). Settings import no storage code (no AWS
SDK): reading a project file must stay cheap.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

# Where in the project file (the keys from its root), the problem, and whether
# it is placed on the key rather than on its value.
Report = Callable[[tuple[str, ...], str, bool], None]


@dataclass(frozen=True, slots=True)
class StateContext:
    """What opening a backend takes beside its settings: the run's flags."""

    profile: str | None = None
    """The AWS profile of a backend reached through AWS (None: the standard chain)."""
    allow_insecure: bool = False
    """Accept a local state file others may read (--allow-insecure-state)."""
    make_parents: bool = False
    """Create the missing folders of a local state (--local keeps its own)."""


class Section:
    """One section of a project file (``backend``, ``keys``), read field by field.

    Each problem goes to ``report`` with its place, so the file's reader can
    list every problem in the file at once, each with its line and column.
    """

    def __init__(
        self,
        name: str,
        data: Mapping[str, Any],
        directory: Path,
        report: Report,
        owner: Callable[[str], type[BackendSettings]] | None = None,
    ) -> None:
        self.name = name
        self.data = data
        self.directory = directory
        self._report = report
        self._owner = owner

    def get(self, field: str) -> Any:
        return self.data.get(field)

    def text(self, field: str, *, required: bool = False) -> str | None:
        """A non-empty string field; None (and a problem if required or mistyped) otherwise."""
        value = self.data.get(field)
        if value is None:
            if required:
                self.problem(None, f"{self.name}.{field} is required for this {self.name}")
            return None
        if not isinstance(value, str) or not value.strip():
            self.problem(field, f"{self.name}.{field} must be a non-empty string")
            return None
        return value

    def seconds(self, field: str) -> float | None:
        """A duration in seconds, greater than 0; None if absent or wrong (a problem)."""
        value = self.data.get(field)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            self.problem(field, f"{self.name}.{field} must be a number of seconds > 0")
            return None
        return float(value)

    def path(self, text: str) -> Path:
        """A path the file names: relative to the file's folder."""
        return self.directory / text

    def owner(self, location: str) -> type[BackendSettings]:
        """The backend a location belongs to, as ``--state`` would take it."""
        assert self._owner is not None, "only backend sections know the backends"
        return self._owner(location)

    def problem(self, field: object, message: str, *, key: bool = False) -> None:
        """Report ``message`` at ``field`` (None: the section itself); ``key``: at its name."""
        where = (self.name,) if field is None else (self.name, str(field))
        self._report(where, message, key)


class BackendSettings(abc.ABC):
    """A state backend's settings: a frozen dataclass, read and checked before the backend opens."""

    __slots__ = ()

    TYPE: ClassVar[str]
    """Its ``type:`` in reconciler.yaml."""
    NOUN: ClassVar[str]
    """How messages name it: "S3 state"."""
    FIELDS: ClassVar[tuple[str, ...]]
    """The fields its ``backend:`` section may hold beside ``type``."""
    SCHEME: ClassVar[str]
    """The prefix of the ``--state`` locations it takes ("" for the default: a path)."""
    LOCATION_NAME: ClassVar[str]
    """How messages name one of its locations: "an s3:// location"."""

    @classmethod
    @abc.abstractmethod
    def parse(cls, section: Section) -> Self | None:
        """Its settings from the ``backend:`` section; None if a field is missing or wrong
        (each problem reported to ``section``)."""

    @classmethod
    @abc.abstractmethod
    def at(cls, location: str, configured: Self | None) -> Self:
        """The settings of a ``--state`` location; ``configured`` (the project file's,
        of this backend) gives what a location does not say. A UsageError if the
        location is not one of this backend's."""

    @property
    @abc.abstractmethod
    def location(self) -> str:
        """Where the state lives, as ``--state`` would name it."""
