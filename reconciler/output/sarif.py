"""Findings as a SARIF 2.1.0 log, for GitHub code scanning and other SARIF readers.

One run, one tool (``lightsail-reconciler``) whose driver lists the rules the
findings name, with their help text and default level. Each result points at
its manifest: the file relative to the repository root (``uriBaseId``
``SRCROOT``), ``startLine`` and ``startColumn``. Findings without a file (a
region that could not be read, a key pair only in the state) carry a logical
location, the key pair's address, instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any, ClassVar, assert_never
from urllib.parse import quote

from reconciler import __version__
from reconciler.findings import Finding, Report
from reconciler.model import Address, Source
from reconciler.output.base import DriftView, Format, Kind, PlanView
from reconciler.output.escape import json_safe
from reconciler.output.reasons import why
from reconciler.planning.changes import Action, Change

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
TOOL = "lightsail-reconciler"
_LEVEL = {"error": "error", "warning": "warning"}
CHANGE_RULE = "planned-change"


class Sarif(Format):
    name = "sarif"
    help = "SARIF 2.1.0 for code scanning (GitHub upload-sarif)"
    kinds: ClassVar[frozenset[Kind]] = frozenset({Kind.CHECK, Kind.PLAN, Kind.DRIFT})

    def check(self, report: Report) -> str:
        return _dumps(sarif_log(report))

    def plan(self, view: PlanView) -> str:
        log = sarif_log(view.report)
        if view.plan.changes:
            _add_changes(log, view.plan.listed, view.sources, view.report)
        return _dumps(log)

    def drift(self, view: DriftView) -> str:
        # Drift findings are in the report, at the line declaring each key pair.
        return self.check(view.report)


def _dumps(log: dict[str, Any]) -> str:
    return json_safe(json.dumps(log, indent=2, ensure_ascii=False)) + "\n"


def _add_changes(
    log: dict[str, Any],
    changes: tuple[Change, ...],
    sources: Mapping[Address, Source],
    report: Report,
) -> None:
    """The plan's changes as ``note`` results of one rule, each where its key pair is declared."""
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    index = len(rules)
    rules.append(
        _rule(
            CHANGE_RULE,
            "An apply would change this key pair.",
            "Review the change; `reconciler apply` makes it.",
            "note",
        )
    )
    for change in changes:
        source = sources.get(change.address)
        finding = Finding(
            CHANGE_RULE,
            f"{change.address} will be {_verb(change.action)}: {why(change)}",
            "warning",
            source.file if source else None,
            source.line if source else 1,
            source.column if source else 1,
            str(change.address),
        )
        result = _result(finding, index, report)
        result["level"] = "note"
        run["results"].append(result)


def _verb(action: Action) -> str:
    match action:
        case Action.CREATE:
            return "created"
        case Action.IMPORT:
            return "imported"
        case Action.GENERATE:
            return "generated here and imported"
        case Action.ADOPT:
            return "adopted"
        case Action.UPDATE_TAGS:
            return "retagged"
        case Action.REPLACE:
            return "replaced"
        case Action.ROTATE:
            return "rotated"
        case Action.DELETE:
            return "deleted"
        case Action.FORGET:
            return "dropped from the state (it is gone from Lightsail)"
        case _:
            assert_never(action)


def sarif_log(report: Report) -> dict[str, Any]:
    rules = report.rules()
    index = {rule: i for i, rule in enumerate(rules)}
    levels = _default_levels(report.everything)
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": TOOL,
                        "version": __version__,
                        "semanticVersion": __version__,
                        "rules": [
                            _rule(info.id, info.summary, info.help, levels[info.id])
                            for info in rules.values()
                        ],
                    }
                },
                "automationDetails": {"id": f"reconciler/{report.command}/"},
                "originalUriBaseIds": {"SRCROOT": {"uri": report.root.as_uri() + "/"}},
                "columnKind": "unicodeCodePoints",
                "results": [_result(f, index[f.rule], report) for f in report.everything],
            }
        ],
    }


def _default_levels(findings: list[Finding]) -> dict[str, str]:
    levels: dict[str, str] = {}
    for f in findings:
        if levels.get(f.rule) != "error":
            levels[f.rule] = _LEVEL[f.severity]
    return levels


def _rule(rule: str, summary: str, help_text: str, level: str) -> dict[str, Any]:
    return {
        "id": rule,
        "name": "".join(part.capitalize() for part in rule.split("-")),
        "shortDescription": {"text": summary},
        "fullDescription": {"text": summary},
        "help": {"text": help_text, "markdown": help_text},
        "defaultConfiguration": {"level": level},
    }


def _result(finding: Finding, rule_index: int, report: Report) -> dict[str, Any]:
    message = finding.message + (f" ({finding.hint})" if finding.hint and not finding.file else "")
    result: dict[str, Any] = {
        "ruleId": finding.rule,
        "ruleIndex": rule_index,
        "level": _LEVEL[finding.severity],
        "message": {"text": message},
    }
    location: dict[str, Any] = {}
    # Code scanning refuses a result without a physical location: one with no place of its
    # own is shown at the top of the report's anchor (reconciler.yaml, else a manifest).
    file, line, column = finding.file, finding.line, finding.column
    if file is None and report.anchor is not None:
        file, line, column = report.anchor, 1, 1
    if file is not None:
        location["physicalLocation"] = {
            "artifactLocation": _artifact(report.relative(file)),
            "region": {"startLine": max(1, line), "startColumn": max(1, column)},
        }
    if finding.address is not None:
        location["logicalLocations"] = [{"fullyQualifiedName": finding.address, "kind": "resource"}]
    if location:
        result["locations"] = [location]
    return result


def _artifact(path: str) -> dict[str, str]:
    """Relative to the repository root when inside it; else an absolute file URI."""
    if PurePosixPath(path).is_absolute():
        return {"uri": PurePosixPath(path).as_uri()}
    return {"uri": quote(path), "uriBaseId": "SRCROOT"}
