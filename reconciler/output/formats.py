"""Output formats, one class each, chosen by name from one registry.

A format renders the kinds of report it supports (``base.Kind``): the
findings of ``validate``, a plan, a drift report. Each class owns all of its
format's rendering and nothing falls back to another kind: a command's
``--format`` choices are the formats that support its kind (``choices``), so
an unsupported pairing is refused when the command line is parsed. Adding a
format is one class in its own module plus one entry in ``FORMATS``.

Imported when the command line is built: nothing here or in the format
modules imports AWS libraries, so ``validate`` starts fast.
"""

from __future__ import annotations

from reconciler.output.base import Format, Kind
from reconciler.output.github import Github
from reconciler.output.jsondoc import Json
from reconciler.output.markdown import Markdown
from reconciler.output.sarif import Sarif
from reconciler.output.text import Text

FORMATS: dict[str, Format] = {f.name: f for f in (Text(), Github(), Json(), Markdown(), Sarif())}


def choices(kind: Kind) -> list[str]:
    """The names ``--format`` accepts for a command reporting ``kind``, the default first."""
    return [name for name, f in FORMATS.items() if kind in f.kinds]


def get(name: str) -> Format:
    return FORMATS[name]
