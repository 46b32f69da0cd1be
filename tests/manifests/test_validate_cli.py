"""`python -m reconciler validate` end to end, as a pipeline runs it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).parents[1] / "data" / "manifests"
GOOD = DATA / "good"
BAD = DATA / "bad"


def validate(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_valid_manifests_exit_0_and_print_no_problems() -> None:
    result = validate("good", cwd=DATA)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" or "problem" not in result.stdout
    assert "Traceback" not in result.stderr


def test_invalid_manifests_exit_1_with_one_file_line_column_per_problem() -> None:
    cases = ["unknown-field.yaml", "name-pattern.yaml", "region-unknown.yaml"]
    result = validate(*cases, cwd=BAD)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert lines == [
        line for line in lines if re.match(r"^\S+\.yaml:\d+:\d+: .+ \[[a-z-]+\]$", line)
    ]
    assert [line.split(": ", 1)[0] for line in lines] == [
        "name-pattern.yaml:6:11",
        "region-unknown.yaml:4:9",
        "unknown-field.yaml:7:5",
    ]
    assert "unknown field 'colour'" in lines[2]


def test_github_format_prints_workflow_annotations() -> None:
    result = validate("--format", "github", "duplicate-name.yaml", "name-pattern.yaml", cwd=BAD)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    first, second = result.stdout.splitlines()
    assert first == (
        "::error file=duplicate-name.yaml,line=8,col=5::key pair us-east-1/web is declared "
        "twice: here and at duplicate-name.yaml:6:5 [duplicate]"
    )
    assert second.startswith("::error file=name-pattern.yaml,line=6,col=11::name '-web' ")
    assert second.endswith(" [name]")


def test_hostile_files_fail_cleanly(tmp_path: Path) -> None:
    (tmp_path / "big.yaml").write_bytes(b"#" * (5 * 1024 * 1024))
    hostile = [str(BAD / n) for n in ("alias-bomb.yaml", "deep-nesting.yaml", "non-utf8.yaml")]
    result = validate(*hostile, "big.yaml", "missing.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    out = result.stdout
    assert "big.yaml:1:1: file is" in out and "[size]" in out
    assert "missing.yaml:1:1: no such file or folder [path]" in out
    assert "non-utf8.yaml:6:14:" in out and "[encoding]" in out
    assert "alias-bomb.yaml:9:12: aliases expand to more than 100000 nodes" in out
    assert "nesting is deeper than 64 levels" in out
