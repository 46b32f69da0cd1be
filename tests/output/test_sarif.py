"""validate --format sarif: checked against the official SARIF 2.1.0 schema."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.sarif_helpers import results, valid_sarif

POLICY = """\
policy:
  rules:
    - id: required-tags
      keys: {owner: null}
    - id: name-pattern
      severity: warning
      pattern: "^[a-z-]+$"
"""
MANIFEST = """\
apiVersion: reconciler.lightsail/v1
kind: KeyPairSet
region: us-east-1
keyPairs:
  - name: web_1
    tags: {owner: ana}
  - name: api
"""


def validate(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", "--format", "sarif", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_policy_findings_as_sarif_with_levels_and_repo_relative_locations(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "reconciler.yaml").write_text(POLICY)
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "m.yaml").write_text(MANIFEST)
    (tmp_path / "sub").mkdir()
    # Run from a sub-folder: locations stay relative to the repository root.
    result = validate(tmp_path / "sub", "../manifests")
    assert result.returncode == 1, result.stderr
    log = valid_sarif(result.stdout)
    assert results(log) == [
        ("name-pattern", "warning", "manifests/m.yaml", 5, 5),
        ("required-tags", "error", "manifests/m.yaml", 7, 5),
    ]
    rules = {r["id"]: r for r in log["runs"][0]["tool"]["driver"]["rules"]}
    assert rules["required-tags"]["defaultConfiguration"]["level"] == "error"
    assert rules["name-pattern"]["defaultConfiguration"]["level"] == "warning"
    assert "Rename the key pair" in rules["name-pattern"]["help"]["text"]


def test_manifest_problems_and_a_clean_run_are_valid_sarif(tmp_path: Path) -> None:
    bad = Path(__file__).parents[1] / "data" / "manifests" / "bad"
    result = validate(bad, "name-pattern.yaml", "duplicate-name.yaml", "tag-boolean-key.yaml")
    assert result.returncode == 1
    found = results(valid_sarif(result.stdout))
    assert ("name", "error", "tests/data/manifests/bad/name-pattern.yaml", 6, 11) in found
    assert {rule for rule, *_ in found} == {"name", "duplicate", "yaml"}

    good = Path(__file__).parents[1] / "data" / "manifests" / "good"
    clean = validate(good, ".")
    assert clean.returncode == 0, clean.stderr
    assert valid_sarif(clean.stdout)["runs"][0]["results"] == []


def test_a_file_outside_the_repository_gets_an_absolute_uri(tmp_path: Path) -> None:
    from reconciler.findings import Finding, Report
    from reconciler.output import formats

    outside = tmp_path / "other place" / "m.yaml"
    report = Report("validate", root=tmp_path / "repo")
    report.findings = [
        Finding("name", "bad name", "error", str(outside), 5, 11),
        Finding("name", "bad name", "error", str(tmp_path / "repo" / "in side.yaml"), 2, 3),
    ]
    log = valid_sarif(formats.get("sarif").check(report))
    first, second = (r["locations"][0]["physicalLocation"] for r in log["runs"][0]["results"])
    assert first["artifactLocation"] == {"uri": outside.as_uri()}
    assert second["artifactLocation"] == {"uri": "in%20side.yaml", "uriBaseId": "SRCROOT"}
    assert log["runs"][0]["originalUriBaseIds"]["SRCROOT"]["uri"].endswith("/repo/")
