"""A wrong command line, or an output file that cannot be written: one clear line, exit 1.

Exit 2 means "changes pending" to a pipeline (plan --detailed-exitcode,
drift), so a mistyped flag must not exit 2 the way argparse does by default.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.emulator import Emulator
from tests.helpers import run_cli, write_manifest


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("plan", "m", "--detailed-exitcode", "--bogus"), "unrecognized arguments: --bogus"),
        (("apply", "m", "--parallelism", "0"), "argument --parallelism: 0 is less than 1"),
        (("plan", "m", "--parallelism", "many"), "'many' is not a whole number"),
        (("plan", "m", "--max-deletes", "-1"), "argument --max-deletes: -1 is less than 0"),
        (("key", "get", "us-east-1/a", "--generation", "-2"), "-2 is less than 0"),
        (("drift", "m", "--format", "yaml"), "invalid choice: 'yaml'"),
        (("plna", "m"), "invalid choice: 'plna'"),
    ],
)
def test_a_wrong_command_line_exits_1_not_2(
    tmp_path: Path, args: tuple[str, ...], said: str
) -> None:
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "\nError: " in result.stderr and said in result.stderr
    assert "--help` lists the options" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


@pytest.mark.parametrize("command", ["plan", "report"])
@pytest.mark.parametrize("where", ["missing/out.file", "m"])
def test_an_out_file_that_cannot_be_written_is_one_line_naming_it(
    tmp_path: Path, emulator: Emulator, command: str, where: str
) -> None:
    write_manifest(tmp_path / "m" / "a.yaml", "us-east-1", "- name: web")
    result = run_cli(command, "m", "--out", where, cwd=tmp_path, endpoint=emulator.url)
    assert result.returncode == 1, result.stderr
    reason = "No such file or directory" if where.startswith("missing") else "Is a directory"
    assert f"Error: cannot write --out {where}: {reason}" in result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "missing").exists()  # a mistyped --out makes no folders
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # nothing left behind


def test_a_state_path_that_names_a_folder_is_one_line_naming_it(tmp_path: Path) -> None:
    (tmp_path / "states").mkdir()
    result = run_cli("state", "list", "--state", "states", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stderr == (
        "Error: state file states is a folder, not a regular file; refusing to use it\n"
        "  -> name a regular file, or move this one away: the tool makes the state file itself\n"
    )
