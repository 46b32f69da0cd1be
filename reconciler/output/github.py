"""The github format: GitHub Actions workflow commands (``::error``, ``::warning``, ``::notice``).

Findings become errors and warnings at their manifest line; a plan's changes
become notices at the line declaring each key pair, and its summary a notice
of its own, so a pull request shows what an apply would do where it is
written. Values are escaped as the workflow-command syntax requires.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import ClassVar

from reconciler.findings import Finding, Report
from reconciler.model import Address, Source
from reconciler.output.base import DriftView, Format, Kind, PlanView
from reconciler.output.common import no_changes_line, summary_line
from reconciler.output.escape import lines, visible
from reconciler.output.reasons import why
from reconciler.planning.changes import SYMBOLS, Change


class Github(Format):
    name = "github"
    help = "GitHub Actions workflow annotations (::error / ::warning / ::notice)"
    kinds: ClassVar[frozenset[Kind]] = frozenset({Kind.CHECK, Kind.PLAN, Kind.DRIFT})

    def check(self, report: Report) -> str:
        return "".join(annotation(f, report.anchor) for f in report.everything)

    def plan(self, view: PlanView) -> str:
        plan = view.plan
        notices = "".join(_change_notice(c, view.sources) for c in plan.listed)
        summary = summary_line(plan) if plan.changes else no_changes_line(plan)
        return notices + self.check(view.report) + f"::notice::{_esc(summary)}\n"

    def drift(self, view: DriftView) -> str:
        # Drift findings are in the report, at the line declaring each key pair.
        return self.check(view.report)

    def publish(self, view: PlanView | DriftView) -> None:
        """The markdown report, appended to the job summary when the run has one."""
        from reconciler.output.markdown import Markdown

        markdown = Markdown()
        step_summary(markdown.plan(view) if isinstance(view, PlanView) else markdown.drift(view))


def _esc(value: str) -> str:
    # Newlines stay newlines of the annotation (%0A); every other control is shown escaped.
    return lines(value).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _esc_prop(value: str) -> str:
    return _esc(visible(value)).replace(":", "%3A").replace(",", "%2C")


def _where(file: str | None, line: int, column: int) -> str:
    return f" file={_esc_prop(file)},line={line},col={column}" if file else ""


def annotation(f: Finding, anchor: str | None = None) -> str:
    """One workflow command for ``f``: at its place, else at the top of ``anchor``, its
    message naming its key pair once."""
    named = f.file or not f.address or f.address in f.message
    text = f.message if named else f"{f.address}: {f.message}"
    where = _where(f.file, f.line, f.column) if f.file else _where(anchor, 1, 1)
    return f"::{f.severity}{where}::{_esc(text)} [{f.rule}]\n"


def step_summary(markdown: str) -> None:
    """Append ``markdown`` to the job summary when GitHub Actions names one
    (``GITHUB_STEP_SUMMARY``): the report shows on the run's page."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with open(path, "a", encoding="utf-8") as summary:
            summary.write(markdown + ("" if markdown.endswith("\n") else "\n"))


def _change_notice(change: Change, sources: Mapping[Address, Source]) -> str:
    source = sources.get(change.address)
    where = _where(source.file, source.line, source.column) if source else ""
    text = f"{SYMBOLS[change.action]} {change.address} ({change.action}): {why(change)}"
    return f"::notice{where}::{_esc(text)}\n"
