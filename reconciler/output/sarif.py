"""Findings as a SARIF 2.1.0 log, for GitHub code scanning and other SARIF readers.

One run, one tool (``lightsail-reconciler``) whose driver lists the rules the
findings name, with their help text and default level. Each result points at
its manifest: the file relative to the repository root (``uriBaseId``
``SRCROOT``), ``startLine`` and ``startColumn``. Findings without a file (a
region that could not be read, a key pair only in the state) carry a logical
location, the key pair's address, instead.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from reconciler import __version__
from reconciler.findings import Finding, Report

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
TOOL = "lightsail-reconciler"
_LEVEL = {"error": "error", "warning": "warning"}


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
    if finding.file is not None:
        location["physicalLocation"] = {
            "artifactLocation": _artifact(report.relative(finding.file)),
            "region": {"startLine": max(1, finding.line), "startColumn": max(1, finding.column)},
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
