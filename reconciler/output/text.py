"""The text format: plans, drift and findings as people read them at a terminal."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, ClassVar, assert_never

from reconciler.findings import Finding, Report
from reconciler.model import LiveSnapshot
from reconciler.output.base import DriftView, Format, Kind, PlanView, StateView, held
from reconciler.output.common import (
    COLOR_OF,
    change_lines,
    left_out_line,
    no_changes_line,
    summary_line,
)
from reconciler.output.escape import one_line, visible
from reconciler.output.reasons import why
from reconciler.output.terminal import Palette
from reconciler.planning.changes import SYMBOLS, Plan
from reconciler.planning.drift import DriftFinding
from reconciler.planning.explain import Change, Difference, of_finding


def lines(findings: Iterable[Finding]) -> str:
    return "".join(f"{visible(f)}\n" for f in findings)


class Text(Format):
    name = "text"
    help = "FILE:LINE:COL: message [rule], one line each"
    kinds: ClassVar[frozenset[Kind]] = frozenset(Kind)

    def check(self, report: Report) -> str:
        return lines(report.everything)

    def state(self, view: StateView) -> str:
        out = ["ADDRESS\tORIGIN\tFINGERPRINT\tPRIVATE KEY\tINSTANCES\tGENERATIONS"]
        for address in sorted(view.entries):
            e = view.entries[address]
            used = "?" if view.instances is None else str(view.instances.get(address, 0))
            columns = [address, e.origin, e.fingerprint, f"private-key:{held(e)}"]
            columns.append(f"instances:{used}")
            if e.generations:
                columns.append(f"generations:{len(e.generations)}")
            out.append("\t".join(visible(c) for c in columns))
        for address in sorted(view.pending):
            operation = view.pending[address].operation
            out.append(f"{visible(address)}\tpending\t-\tinterrupted {visible(operation)}")
        return "".join(f"{line}\n" for line in out)

    def plan(self, view: PlanView) -> str:
        return plan_text(view.plan, color=view.color) + _policy(view.report)

    def drift(self, view: DriftView) -> str:
        return drift_text(view.findings, view.live) + _policy(view.report)


def _policy(report: Report) -> str:
    return f"\nPolicy:\n{lines(report.policy)}" if report.policy else ""


def plan_text(plan: Plan, *, color: bool = False) -> str:
    p = Palette(color)
    out: list[str] = []
    regions = ", ".join(plan.regions) or "(none)"
    out.append(f"Regions read: {regions}")
    if plan.changes:
        out.append("")
        out.append("Changes:")
        for change in plan.listed:
            paint = getattr(p, COLOR_OF[change.action])
            symbol = SYMBOLS[change.action]
            out.append(f"  {paint(symbol)} {p.bold(visible(change.address))}  ({change.action})")
            out.append(f"      why: {why(change)}")
            out.extend(f"      {line}" for line in change_lines(change))
    if plan.orphaned:
        out.append("")
        out.append(
            f"{len(plan.orphaned)} key pair(s) are in the state but no longer in the manifests "
            "(kept; pass --prune to delete them):"
        )
        out.extend(f"  {address}" for address in plan.orphaned)
    if plan.findings:
        out.append("")
        for finding in plan.findings:
            out.append(p.red(f"Error: {visible(finding.message)}"))
            out.append(f"  -> {finding.hint}")
    out.append("")
    out.append(summary_line(plan) if plan.changes else no_changes_line(plan))
    if plan.left_out:
        out.append(left_out_line(plan))
    # Each entry is one line: a newline or a control character a value brought is shown
    # escaped, so no value can start a line of its own or steer the terminal.
    return "".join(one_line(line, colours=color) + "\n" for line in out)


def drift_text(findings: list[DriftFinding], live: LiveSnapshot) -> str:
    out = [f"Regions read: {', '.join(live.regions) or '(none)'}"]
    out.extend(f"Error: {u.describe()}" for u in live.unread())
    if not findings:
        if live.failed_regions:
            out.append("No drift in the regions read; the others could not be checked.")
        else:
            out.append("No drift: manifests, state and Lightsail agree.")
        return "".join(f"{visible(line)}\n" for line in out)
    out.append("")
    for f in findings:
        out.append(f"  {f.kind.value:<20} {f.address}  {f.detail}")
        out.extend(f"  {'':<20} {difference_line(d)}" for d in of_finding(f))
    out.append("")
    out.append(f"Drift: {len(findings)} finding(s).")
    return "".join(f"{visible(line)}\n" for line in out)


def _short(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def difference_line(d: Difference) -> str:
    """``tags.env: "a" -> "b"``, ``+ tags.owner: "ana"``, ``- tags.cost``."""
    match d.change:
        case Change.ADDED:
            return f"+ {d.path}: {_short(d.after)}"
        case Change.REMOVED:
            return f"- {d.path} (was {_short(d.before)})"
        case Change.CHANGED:
            return f"~ {d.path}: {_short(d.before)} -> {_short(d.after)}"
        case _:
            assert_never(d.change)
