"""Output formats, one class each, chosen by name from one registry.

Every format renders the three things a command may report: the findings of
``validate`` (``check``), a plan with its findings (``plan``) and a drift
report (``drift``). The CLI's ``--format`` choices are ``FORMATS``' names;
adding a format is one class here plus one entry in ``FORMATS``. Renderers
return strings and never print; nothing here sees a private key. Imports of
the plan renderers and the drift module are deferred: ``validate`` must start
fast and without AWS modules.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from reconciler.findings import Finding, Report

if TYPE_CHECKING:
    from reconciler.model import LiveSnapshot
    from reconciler.planning.drift import DriftFinding
    from reconciler.planning.planner import Plan

REPORT_FORMAT_VERSION = 1


class Format:
    """One output format; subclasses override what they render differently."""

    name: ClassVar[str]
    help: ClassVar[str]

    def check(self, report: Report) -> str:
        raise NotImplementedError

    def plan(self, plan: Plan, report: Report, *, color: bool = False) -> str:
        return self.check(report)

    def drift(self, found: list[DriftFinding], live: LiveSnapshot, report: Report) -> str:
        return self.check(report)


def _lines(findings: Iterable[Finding]) -> str:
    return "".join(f"{f}\n" for f in findings)


class Text(Format):
    name = "text"
    help = "FILE:LINE:COL: message [rule], one line each"

    def check(self, report: Report) -> str:
        return _lines(report.everything)

    def plan(self, plan: Plan, report: Report, *, color: bool = False) -> str:
        from reconciler.output import render

        policy = f"\nPolicy:\n{_lines(report.policy)}" if report.policy else ""
        return render.plan_text(plan, color=color) + policy

    def drift(self, found: list[DriftFinding], live: LiveSnapshot, report: Report) -> str:
        from reconciler.planning.drift import report_text

        policy = f"\nPolicy:\n{_lines(report.policy)}" if report.policy else ""
        return report_text(found, live) + policy


class Github(Format):
    name = "github"
    help = "GitHub Actions workflow annotations (::error / ::warning)"

    def check(self, report: Report) -> str:
        return "".join(_annotation(f) for f in report.everything)


def _annotation(f: Finding) -> str:
    def esc(value: str) -> str:
        return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")

    def esc_prop(value: str) -> str:
        return esc(value).replace(":", "%3A").replace(",", "%2C")

    where = f" file={esc_prop(f.file)},line={f.line},col={f.column}" if f.file else ""
    text = f.message if f.file or not f.address else f"{f.address}: {f.message}"
    return f"::{f.severity}{where}::{esc(text)} [{f.rule}]\n"


class Json(Format):
    name = "json"
    help = "JSON (findings as in schemas/finding.schema.json)"

    def check(self, report: Report) -> str:
        from reconciler.output import render

        return render.dumps(
            {
                "formatVersion": REPORT_FORMAT_VERSION,
                "valid": report.errors == 0,
                "keyPairs": report.key_pairs,
                "errors": report.errors,
                "warnings": report.warnings,
                "problems": [f.to_json() for f in report.everything],
            }
        )

    def plan(self, plan: Plan, report: Report, *, color: bool = False) -> str:
        from reconciler.output import render

        data = render.plan_json(plan)
        data["policy"] = [f.to_json() for f in report.policy]
        return render.dumps(data)

    def drift(self, found: list[DriftFinding], live: LiveSnapshot, report: Report) -> str:
        from reconciler.output import render
        from reconciler.planning.drift import report_json

        data = report_json(found, live)
        data["policy"] = [f.to_json() for f in report.policy]
        return render.dumps(data)


class Markdown(Format):
    name = "markdown"
    help = "Markdown for pull-request comments"

    def check(self, report: Report) -> str:
        if not report.everything:
            return f"### Lightsail key pairs: {report.key_pairs} valid, no findings\n"
        head = f"### Lightsail key pairs: {report.errors} error(s), {report.warnings} warning(s)"
        return head + "\n\n" + _table(report.everything)

    def plan(self, plan: Plan, report: Report, *, color: bool = False) -> str:
        from reconciler.output import render

        text = render.plan_markdown(plan)
        if report.policy:
            text += "\n**Policy:**\n\n" + _table(report.policy)
        return render.cap_markdown(text)

    def drift(self, found: list[DriftFinding], live: LiveSnapshot, report: Report) -> str:
        from reconciler.output import render
        from reconciler.planning.drift import report_markdown

        text = report_markdown(found, live)
        if report.policy:
            text += "\n**Policy:**\n\n" + _table(report.policy)
        return render.cap_markdown(text, command="reconciler drift")


def _table(findings: Iterable[Finding]) -> str:
    rows = ["| | where | rule | finding |", "| --- | --- | --- | --- |"]
    for f in findings:
        mark = ":x:" if f.severity == "error" else ":warning:"
        where = f"`{f.file}:{f.line}:{f.column}`" if f.file else f"`{f.address or ''}`"
        message = f.message.replace("|", "\\|").replace("\n", " ")
        rows.append(f"| {mark} | {where} | `{f.rule}` | {message} |")
    return "\n".join(rows) + "\n"


class Sarif(Format):
    name = "sarif"
    help = "SARIF 2.1.0 for code scanning (GitHub upload-sarif)"

    def check(self, report: Report) -> str:
        from reconciler.output.sarif import sarif_log

        log: dict[str, Any] = sarif_log(report)
        return json.dumps(log, indent=2, ensure_ascii=False) + "\n"


FORMATS: dict[str, Format] = {f.name: f for f in (Text(), Github(), Json(), Markdown(), Sarif())}


def choices() -> list[str]:
    """The names ``--format`` accepts."""
    return list(FORMATS)


def get(name: str) -> Format:
    return FORMATS[name]
