"""Check SARIF logs against the official SARIF 2.1.0 schema (vendored, see tests/data)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA = Path(__file__).parent / "data" / "sarif-schema-2.1.0.json"


@functools.cache
def _validator() -> Any:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def valid_sarif(text: str) -> dict[str, Any]:
    """The SARIF log in ``text``, after checking it against the official schema."""
    log: dict[str, Any] = json.loads(text)
    _validator().validate(log)
    assert log["version"] == "2.1.0"
    (run,) = log["runs"]
    rules = run["tool"]["driver"]["rules"]
    for result in run["results"]:
        rule = rules[result["ruleIndex"]]
        assert rule["id"] == result["ruleId"]
        # GitHub code scanning refuses a result without a physical location.
        assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"], result
        assert rule["help"]["text"] and rule["shortDescription"]["text"]
    return log


def results(log: dict[str, Any]) -> list[tuple[str, str, str | None, int | None, int | None]]:
    """(ruleId, level, uri, startLine, startColumn) of each result."""
    out: list[tuple[str, str, str | None, int | None, int | None]] = []
    for result in log["runs"][0]["results"]:
        physical = (result.get("locations") or [{}])[0].get("physicalLocation")
        if physical is None:
            out.append((result["ruleId"], result["level"], None, None, None))
            continue
        region = physical["region"]
        uri = physical["artifactLocation"]["uri"]
        out.append(
            (result["ruleId"], result["level"], uri, region["startLine"], region["startColumn"])
        )
    return out
