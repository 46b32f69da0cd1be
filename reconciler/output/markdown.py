"""The markdown format: pull-request comments, one marker comment first so a bot can update it."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import ClassVar

from reconciler.findings import Finding, Report
from reconciler.model import LiveSnapshot
from reconciler.output.base import DriftView, Format, Kind, PlanView
from reconciler.output.common import (
    change_lines,
    dumps,
    left_out_line,
    no_changes_line,
    summary_line,
)
from reconciler.output.escape import cell, code_span, fence_for, json_safe, prose, visible
from reconciler.output.jsondoc import drift_json
from reconciler.output.reasons import why
from reconciler.output.terminal import and_more
from reconciler.planning.changes import SYMBOLS, Plan
from reconciler.planning.drift import DriftFinding

COMMENT_MARKER = "<!-- lightsail-reconciler:plan -->"
DRIFT_MARKER = "<!-- lightsail-reconciler:drift -->"
MARKDOWN_LIMIT = 65_000
MARKDOWN_ORPHANS_LISTED = 50


class Markdown(Format):
    name = "markdown"
    help = "Markdown for pull-request comments"
    kinds: ClassVar[frozenset[Kind]] = frozenset({Kind.CHECK, Kind.PLAN, Kind.DRIFT})

    def check(self, report: Report) -> str:
        if not report.everything:
            return f"### Lightsail key pairs: {report.key_pairs} valid, no findings\n"
        head = f"### Lightsail key pairs: {report.errors} error(s), {report.warnings} warning(s)"
        return head + "\n\n" + table(report.everything)

    def plan(self, view: PlanView) -> str:
        text = plan_markdown(view.plan)
        if view.report.policy:
            text += "\n**Policy:**\n\n" + table(view.report.policy)
        return cap_markdown(text)

    def drift(self, view: DriftView) -> str:
        text = drift_markdown(view.findings, view.live)
        if view.report.policy:
            text += "\n**Policy:**\n\n" + table(view.report.policy)
        return cap_markdown(text, command="reconciler drift")


def table(findings: Iterable[Finding]) -> str:
    rows = ["| | where | rule | finding |", "| --- | --- | --- | --- |"]
    for f in findings:
        mark = ":x:" if f.severity == "error" else ":warning:"
        where = cell(f"{f.file}:{f.line}:{f.column}") if f.file else cell(f.address or "")
        rows.append(f"| {mark} | {where} | {cell(f.rule)} | {prose(f.message)} |")
    return "\n".join(rows) + "\n"


def plan_markdown(plan: Plan) -> str:
    """A PR comment: marker, summary line, table, collapsible detail, size-capped."""
    title = summary_line(plan) if plan.changes or plan.findings else "No changes."
    head = [COMMENT_MARKER, f"### Lightsail key pairs: {title}", ""]
    if plan.left_out:
        head.extend([prose(left_out_line(plan)), ""])
    if plan.findings:
        head.append("**Needs attention:**")
        head.extend(f"- :x: {prose(f.message)} — {prose(f.hint)}" for f in plan.findings)
        head.append("")
    if plan.orphaned:
        listed = and_more((code_span(a) for a in plan.orphaned), MARKDOWN_ORPHANS_LISTED)
        head.append(
            f"{len(plan.orphaned)} key pair(s) are in the state but no longer in the manifests "
            f"(kept; pass `--prune` to delete them): {listed}"
        )
        head.append("")
    if not plan.changes:
        head.append(no_changes_line(plan) if plan.findings else "No changes.")
        return cap_markdown("\n".join(head) + "\n")
    rows = ["| action | key pair | why |", "| --- | --- | --- |"]
    body: list[str] = []
    for change in plan.listed:
        rows.append(f"| {cell(change.action)} | {cell(change.address)} | {prose(why(change))} |")
        body.append(visible(f"{SYMBOLS[change.action][0]} {change.address} ({change.action})"))
        body.extend(visible(f"    {line}") for line in change_lines(change))
    return cap_markdown("\n".join(head + rows + [""] + _details(body, "diff")) + "\n")


def _details(body: list[str], info: str) -> list[str]:
    """``body`` in a collapsed code block whose fence no line of it can close."""
    fence = fence_for("\n".join(body))
    return ["<details><summary>Details</summary>", "", fence + info, *body, fence, "", "</details>"]


def cap_markdown(text: str, *, command: str = "reconciler plan") -> str:
    """``text`` cut to fit a PR comment, with a note saying so; the marker line stays first."""
    if len(text) <= MARKDOWN_LIMIT:
        return text
    note = f"\n\n_… output truncated to fit a comment; run `{command}` locally for all of it._\n"
    cut = text[: MARKDOWN_LIMIT - len(note) - 20]
    cut = cut[: cut.rfind("\n")]
    fences = re.findall(r"^(`{3,})", cut, re.M)
    if len(fences) % 2:
        cut += "\n" + fences[-1]
    if "<details>" in cut and "</details>" not in cut:
        cut += "\n</details>"
    return cut + note


def drift_markdown(findings: list[DriftFinding], live: LiveSnapshot) -> str:
    head = [DRIFT_MARKER]
    failed = [f"- :x: {prose(u.describe())}" for u in live.unread()]
    if not findings:
        where = " in the regions read" if failed else ""
        head.append(f"### Lightsail key pairs: no drift{where}")
        return "\n".join(head + (["", *failed] if failed else [])) + "\n"
    head.append(f"### Lightsail key pairs: {len(findings)} drift finding(s)")
    if failed:
        head.extend(["", *failed])
    head.extend(["", "| kind | key pair | detail |", "| --- | --- | --- |"])
    head.extend(f"| {cell(f.kind)} | {cell(f.address)} | {prose(f.detail)} |" for f in findings)
    # "<" only ever stands inside JSON strings: as \u003c no value can pass for the
    # tool's marker comment to whatever searches the comment for it.
    document = json_safe(dumps(drift_json(findings, live)).rstrip()).replace("<", "\\u003c")
    data = document.splitlines()
    detail = ["", *_details(data, "json")]
    return cap_markdown("\n".join(head + detail) + "\n", command="reconciler drift")
