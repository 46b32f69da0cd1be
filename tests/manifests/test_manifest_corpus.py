"""The corpus of bad manifests: each file says, in its own header, what must be reported.

A header line ``# expect: LINE:COL RULE text`` asks for a problem in that file
at that place, with that rule, whose message contains ``text``. A file reports
exactly the problems its header lists, so adding a case is adding a file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.errors import ManifestError, Problem
from reconciler.manifests import yamlsafe
from reconciler.manifests.load import load_desired

DATA = Path(__file__).parents[1] / "data" / "manifests"
BAD = DATA / "bad"
EXPECT = re.compile(rb"# expect: (\d+):(\d+) (\S+) (.+)")


@dataclass(frozen=True)
class Expected:
    line: int
    column: int
    rule: str
    text: str

    def matches(self, problem: Problem, file: str) -> bool:
        return (
            problem.file == file
            and (problem.line, problem.column) == (self.line, self.column)
            and problem.rule == self.rule
            and self.text in problem.message
        )


def expectations(path: Path) -> list[Expected]:
    found = []
    for raw in path.read_bytes().splitlines():
        match = EXPECT.fullmatch(raw.strip())
        if not match:
            break
        line, column, rule, text = match.groups()
        found.append(Expected(int(line), int(column), rule.decode(), text.decode()))
    return found


CASES = sorted(BAD.glob("*.yaml"))


def problems_of(paths: list[str], root: Path) -> list[Problem]:
    with pytest.raises(ManifestError) as caught:
        load_desired(paths, root=root)
    return caught.value.problems


def test_the_corpus_is_large_and_every_case_has_expectations() -> None:
    assert len(CASES) >= 30
    for case in CASES:
        assert expectations(case), f"{case.name} has no '# expect:' header"


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_bad_manifest_reports_exactly_its_expected_problems(case: Path) -> None:
    file = str(case)
    problems = problems_of([file], BAD)
    expected = expectations(case)
    rendered = "\n".join(str(p) for p in problems)
    for each in expected:
        assert any(each.matches(p, file) for p in problems), f"missing {each}; got:\n{rendered}"
    assert len(problems) == len(expected), f"unexpected extra problems:\n{rendered}"


@pytest.mark.parametrize(
    "case",
    [BAD / name for name in ("alias-bomb.yaml", "deep-nesting.yaml", "python-object-tag.yaml")],
    ids=lambda p: p.stem,
)
def test_hostile_cases_are_refused_the_same_without_libyaml(
    case: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    monkeypatch.setattr(yamlsafe, "_Loader", yaml.SafeLoader)
    file = str(case)
    problems = problems_of([file], BAD)
    for each in expectations(case):
        assert any(each.matches(p, file) for p in problems), problems


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# padding\n" * (yamlsafe.MAX_FILE_BYTES // 10 + 1))
    problems = problems_of([str(big)], tmp_path)
    assert [(p.file, p.line, p.column, p.rule) for p in problems] == [(str(big), 1, 1, "size")]
    assert "4 MiB" in problems[0].message


def test_a_file_at_the_size_limit_is_read(tmp_path: Path) -> None:
    header = b"apiVersion: reconciler.lightsail/v1\nkind: KeyPairSet\nregion: us-east-1\n"
    header += b"keyPairs: []\n"
    padding = b"#" * (yamlsafe.MAX_FILE_BYTES - len(header) - 1) + b"\n"
    path = tmp_path / "edge.yaml"
    path.write_bytes(header + padding)
    assert path.stat().st_size == yamlsafe.MAX_FILE_BYTES
    assert load_desired([str(path)], root=tmp_path).key_pairs == {}


def test_duplicates_across_files_name_both_places() -> None:
    first, second = str(DATA / "bad_pairs" / "a.yaml"), str(DATA / "bad_pairs" / "b.yaml")
    problems = problems_of([str(DATA / "bad_pairs")], DATA)
    assert [(p.file, p.line, p.column, p.rule) for p in problems] == [(second, 6, 5, "duplicate")]
    assert problems[0].message == (
        f"key pair eu-west-1/shared is declared twice: here and at {first}:7:5"
    )
