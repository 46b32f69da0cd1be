"""The local backend's settings: a state file, named by reconciler.yaml or by a path.

It is the default backend: a ``--state`` location no other backend claims is
a path on the local disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from reconciler.state.settings import BackendSettings, Section


@dataclass(frozen=True, slots=True)
class LocalSettings(BackendSettings):
    """A state file on the local disk."""

    TYPE: ClassVar[str] = "local"
    NOUN: ClassVar[str] = "local state"
    FIELDS: ClassVar[tuple[str, ...]] = ("path",)
    SCHEME: ClassVar[str] = ""
    LOCATION_NAME: ClassVar[str] = "a local path"

    path: str
    """As the user named it (messages repeat it); from a project file, under its folder."""

    @property
    def location(self) -> str:
        return self.path

    @classmethod
    def parse(cls, section: Section) -> LocalSettings | None:
        path = section.text("path", required=True)
        if path is None:
            return None
        owner = section.owner(path)
        if owner is not cls:
            section.problem("path", f"{owner.LOCATION_NAME} needs type: {owner.TYPE}")
        return cls(str(section.path(path)))

    @classmethod
    def at(cls, location: str, configured: LocalSettings | None) -> LocalSettings:
        return cls(location)  # a path says all there is to say
