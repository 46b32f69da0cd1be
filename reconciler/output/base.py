"""What a format is: the kinds of report, the views they render, the ``Format`` base class.

A format renders the kinds of report it supports: the findings of
``validate`` (``Kind.CHECK``), a plan with its findings (``Kind.PLAN``), a
drift report (``Kind.DRIFT``). Each class owns all of its format's rendering;
nothing falls back to another kind. A command's ``--format`` choices are the
formats that support its kind (``choices``), so an unsupported pairing is
refused when the command line is parsed. Adding a format is one class in its
own module plus one entry in ``FORMATS``. Renderers return strings and never
print; nothing here sees a private key.

This module is imported when the command line is built: it and the format
modules import nothing of AWS, so ``validate`` starts fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar

from reconciler.findings import Report
from reconciler.model import Address, OpenIntent, Source, StateEntry

if TYPE_CHECKING:
    from reconciler.model import LiveSnapshot
    from reconciler.planning.changes import Plan
    from reconciler.planning.drift import DriftFinding

REPORT_FORMAT_VERSION = 1


class Kind(StrEnum):
    """What a command reports."""

    CHECK = "check"  # validate's findings
    PLAN = "plan"
    DRIFT = "drift"
    STATE = "state"  # state list


@dataclass(frozen=True)
class PlanView:
    """A plan as a command shows it: with its findings and where each key pair is declared."""

    plan: Plan
    report: Report
    sources: Mapping[Address, Source] = field(default_factory=dict)
    color: bool = False


@dataclass(frozen=True)
class DriftView:
    """A drift report: its findings, the snapshot they came from, findings as a Report."""

    findings: list[DriftFinding]
    live: LiveSnapshot
    report: Report
    sources: Mapping[Address, Source] = field(default_factory=dict)


@dataclass(frozen=True)
class StateView:
    """What ``state list`` shows: each entry, open intents, instances per key pair (None
    where instances could not be counted)."""

    entries: Mapping[Address, StateEntry]
    pending: Mapping[Address, OpenIntent]
    instances: Mapping[Address, int] | None


def held(entry: StateEntry) -> str:
    """Where an entry's private key is: ``held`` (in clear), ``sealed``, ``none``, or the
    scheme of the key store holding it (``ssm``, ``secretsmanager``)."""
    if entry.private_key_ref is not None:
        return str(entry.private_key_ref.get("store", "")).split(":", 1)[0]
    return "sealed" if entry.private_key_sealed else "held" if entry.private_key else "none"


class Unsupported(Exception):
    """A format asked for a kind it does not render (the parser's choices prevent it)."""


class Format:
    """One output format. ``kinds`` names what it renders; the rest raise ``Unsupported``."""

    name: ClassVar[str]
    help: ClassVar[str]
    kinds: ClassVar[frozenset[Kind]]

    def check(self, report: Report) -> str:
        raise Unsupported(f"{self.name} does not render {Kind.CHECK}")

    def plan(self, view: PlanView) -> str:
        raise Unsupported(f"{self.name} does not render {Kind.PLAN}")

    def drift(self, view: DriftView) -> str:
        raise Unsupported(f"{self.name} does not render {Kind.DRIFT}")

    def state(self, view: StateView) -> str:
        raise Unsupported(f"{self.name} does not render {Kind.STATE}")

    def publish(self, view: PlanView | DriftView) -> None:
        """Anything the format writes besides its output (GitHub's job summary); most write
        nothing."""
