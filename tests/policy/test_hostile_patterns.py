"""Patterns from reconciler.yaml cannot hang the tool: policy patterns run in RE2.

A pull request may change reconciler.yaml, so its patterns are untrusted.
``^([a-z0-9]+-?)+$`` backtracks exponentially in Python's ``re`` against a
40-character near-match; RE2 answers at once. The checks run the real CLI in
a child process with a deadline, so a regression fails instead of hanging.
What RE2 cannot express is an error at its place in reconciler.yaml.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.manifests.regex import PatternError, compile_linear
from tests.helpers import run_cli

CATASTROPHIC = "^([a-z0-9]+-?)+$"
# 39 letters and an underscore: a valid Lightsail name that the pattern almost matches.
NEAR_MATCH = "a" * 39 + "_"


def project(tmp_path: Path, policy: str, key_pairs: str) -> Path:
    (tmp_path / ".git").mkdir()
    (tmp_path / "reconciler.yaml").write_text(policy, encoding="utf-8")
    (tmp_path / "m.yaml").write_text(
        "apiVersion: reconciler.lightsail/v1\nkind: KeyPairSet\nregion: us-east-1\n"
        f"keyPairs:\n{key_pairs}",
        encoding="utf-8",
    )
    return tmp_path


def test_catastrophic_name_pattern_against_a_near_match_returns_the_finding(
    tmp_path: Path,
) -> None:
    assert len(NEAR_MATCH) == 40
    policy = f"policy:\n  rules:\n    - id: name-pattern\n      pattern: '{CATASTROPHIC}'\n"
    key_pairs = f"  - name: {NEAR_MATCH}\n  - name: fine-name-01\n"
    cwd = project(tmp_path, policy, key_pairs)
    result = run_cli("validate", "m.yaml", cwd=cwd, timeout=60)
    assert result.returncode == 1, result.stderr
    assert result.stdout == (
        f"m.yaml:5:5: key pair name {NEAR_MATCH!r} does not match {CATASTROPHIC!r} [name-pattern]\n"
    )


def test_catastrophic_tag_value_pattern_against_a_near_match_returns_the_finding(
    tmp_path: Path,
) -> None:
    policy = f"policy:\n  rules:\n    - id: required-tags\n      keys: {{team: '{CATASTROPHIC}'}}\n"
    key_pairs = (
        f"  - name: web\n    tags: {{team: {NEAR_MATCH}}}\n  - name: db\n    tags: {{team: ok}}\n"
    )
    cwd = project(tmp_path, policy, key_pairs)
    result = run_cli("validate", "m.yaml", cwd=cwd, timeout=60)
    assert result.returncode == 1, result.stderr
    (line,) = result.stdout.splitlines()
    assert line.startswith("m.yaml:5:5: key pair us-east-1/web: tag 'team' is ")
    assert line.endswith("[required-tags]")


@pytest.mark.parametrize(
    ("pattern", "construct", "column"),
    [
        (r"^(web)-\1$", r"backreference \1", 16),
        ("^(?=web)[a-z]+$", "lookahead (?=...)", 16),
        ("^(?<!x)web$", "negative lookbehind (?<!...)", 16),
        ("^(?P<n>a)(?P=n)$", "named backreference (?P=...)", 16),
    ],
)
def test_a_pattern_re2_cannot_express_is_an_error_at_its_place(
    tmp_path: Path, pattern: str, construct: str, column: int
) -> None:
    policy = f"policy:\n  rules:\n    - id: name-pattern\n      pattern: '{pattern}'\n"
    cwd = project(tmp_path, policy, "  - name: web\n")
    result = run_cli("validate", "m.yaml", cwd=cwd, timeout=60)
    assert result.returncode == 1
    assert "internal error" not in result.stderr.lower()
    assert f"reconciler.yaml:4:{column}: 'pattern'" in result.stderr
    assert f"it uses a {construct}" in result.stderr
    assert "[policy]" in result.stderr
    # RE2's own complaint is not written to stderr beside the tool's.
    assert "re2.cc" not in result.stderr


def test_a_tag_value_pattern_error_points_at_the_tag_key(tmp_path: Path) -> None:
    policy = (
        "policy:\n  rules:\n    - id: required-tags\n      keys:\n"
        "        owner: null\n        env: '^(a)\\1$'\n"
    )
    cwd = project(tmp_path, policy, "  - name: web\n")
    result = run_cli("validate", "m.yaml", cwd=cwd, timeout=60)
    assert result.returncode == 1
    assert "reconciler.yaml:6:14: 'keys'" in result.stderr
    assert r"it uses a backreference \1" in result.stderr


def test_re2_matches_the_way_policy_patterns_are_used() -> None:
    pattern = compile_linear(CATASTROPHIC)
    assert pattern.fullmatch(NEAR_MATCH) is None
    assert pattern.fullmatch("web-01-x") is not None
    # RE2's $ is the end of the text; Python's would also match before a final newline.
    assert compile_linear("^prod$").search("prod\n") is None
    with pytest.raises(PatternError, match="RE2 cannot compile it: missing \\)"):
        compile_linear("(web")
