"""The command line's edges: typos caught where they were made, help for every command and
option, every flag a message names exists, state list for people and for machines."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.cli.parser import build_parser
from reconciler.cli.registry import COMMANDS
from tests.helpers import run_cli, write_manifest

ROOT = Path(__file__).resolve().parents[2]


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def _flags() -> set[str]:
    return {
        flag
        for parser in _parsers(build_parser(None))
        for action in parser._actions
        for flag in action.option_strings
    }


@pytest.mark.parametrize(
    ("argv", "usage", "suggestion"),
    [
        (["plan", "m", "--detailed-exit-code"], "usage: reconciler plan ", "--detailed-exitcode"),
        (["state", "list", "--stat", "x"], "usage: reconciler state list ", "--state"),
        (["apply", "m", "--auto-aprove"], "usage: reconciler apply ", "--auto-approve"),
    ],
)
def test_a_mistyped_flag_is_reported_by_its_subcommand_with_a_suggestion(
    tmp_path: Path, argv: list[str], usage: str, suggestion: str
) -> None:
    result = run_cli(*argv, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith(usage), result.stderr
    assert f"(did you mean {suggestion}?)" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_flag_cut_short_is_not_taken_for_the_longer_one(tmp_path: Path) -> None:
    # argparse would take --stat for --state and list the wrong state, exit 0.
    result = run_cli("state", "list", "--stat", "elsewhere.json", cwd=tmp_path)
    assert result.returncode == 1 and "unrecognized arguments: --stat" in result.stderr


@pytest.mark.parametrize("entry", COMMANDS, ids=lambda e: e.name)
def test_every_command_help_has_a_description_examples_and_exit_codes(
    entry: object, capsys: pytest.CaptureFixture[str]
) -> None:
    name = getattr(entry, "name")  # noqa: B009 - the id function needs the object
    with pytest.raises(SystemExit):
        build_parser([name]).parse_args([name, "--help"])
    text = capsys.readouterr().out
    assert text.count("  reconciler ") >= 2, text  # two examples
    assert "exit codes:\n  0  success\n  1  " in text
    about = getattr(entry, "about")  # noqa: B009
    assert " ".join(about.split()[:5]) in " ".join(text.split())


def test_every_option_of_every_command_says_what_it_does() -> None:
    missing = [
        f"{parser.prog} {action.dest}"
        for parser in _parsers(build_parser(None))
        for action in parser._actions
        if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))
        and action.help is None
    ]
    assert missing == []


# Flags of other programs that the documents and messages quote (the AWS CLI's, mostly).
FOREIGN = re.compile(r"\baws \w|chromium|pip |pytest|git |make ")


def _named_flags() -> Iterator[tuple[str, str]]:
    texts = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    texts += [p for p in sorted((ROOT / "reconciler").rglob("*.py")) if p.name != "html.py"]
    for path in texts:
        text = path.read_text().splitlines()
        for number, line in enumerate(text, 1):
            # A message may quote another program's command over two lines.
            if FOREIGN.search(line) or (number > 1 and FOREIGN.search(text[number - 2])):
                continue
            for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*[a-z0-9]", line):
                yield flag, f"{path.relative_to(ROOT)}:{number}"


def test_every_flag_a_document_or_message_names_exists() -> None:
    known = _flags()
    unknown = sorted({f"{flag} ({where})" for flag, where in _named_flags() if flag not in known})
    assert unknown == []


def test_the_collector_sees_flags_in_hints() -> None:
    named = {flag for flag, _ in _named_flags()}
    assert {"--auto-approve", "--replace", "--endpoint-url", "--detailed-exitcode"} <= named


def test_local_and_an_endpoint_url_together_are_refused(tmp_path: Path) -> None:
    result = run_cli("state", "list", "--local", "--endpoint-url", "http://x", cwd=tmp_path)
    assert result.returncode == 1 and "--local and --endpoint-url" in result.stderr


def test_state_list_has_a_header_and_a_json_form(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(
        "apiVersion: reconciler.lightsail/v1\nkind: KeyPairSet\nregion: us-east-1\n"
        "keyPairs:\n  - name: web\n    tags: {team: a}\n"
    )
    env = {"RECONCILER_LOCAL_DIR": str(tmp_path / "local")}
    applied = run_cli("apply", "m.yaml", "--local", "--auto-approve", cwd=tmp_path, env=env)
    assert applied.returncode == 0, applied.stderr
    text = run_cli("state", "list", "--local", cwd=tmp_path, env=env)
    lines = text.stdout.splitlines()
    assert lines[0].split("\t")[:3] == ["ADDRESS", "ORIGIN", "FINGERPRINT"]
    assert lines[1].startswith("us-east-1/web\tcreated\t")
    listed = run_cli("state", "list", "--local", "--format", "json", cwd=tmp_path, env=env)
    data = json.loads(listed.stdout)
    [item] = data["keyPairs"]
    assert (item["address"], item["origin"], item["privateKey"]) == (
        "us-east-1/web",
        "created",
        "held",
    )
    assert item["fingerprint"] == lines[1].split("\t")[2]
    assert data["pending"] == [] and data["formatVersion"] == 1
    refused = run_cli("state", "list", "--local", "--format", "sarif", cwd=tmp_path, env=env)
    assert refused.returncode == 1 and "invalid choice: 'sarif'" in refused.stderr


def _complete(script: Path, *words: str) -> list[str]:
    """What bash offers for the last of ``words`` with the generated completion loaded."""
    line = " ".join(words)
    program = (
        f"source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; "
        f'COMP_LINE="{line}"; COMP_POINT=${{#COMP_LINE}}; _shtab_reconciler; '
        'printf "%s\\n" "${COMPREPLY[@]}"'
    )
    result = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True)
    return result.stdout.split()


def test_bash_completion_offers_commands_and_each_command_s_options(tmp_path: Path) -> None:
    script = tmp_path / "reconciler.bash"
    result = run_cli("completion", "bash", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    script.write_text(result.stdout)
    assert "plan" in _complete(script, "reconciler", "pl")
    assert _complete(script, "reconciler", "plan", "--detailed") == ["--detailed-exitcode"]
    assert "migrate-keys" in _complete(script, "reconciler", "state", "mi")


def test_commands_read_the_manifests_reconciler_yaml_names_else_the_current_folder(
    tmp_path: Path,
) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "reconciler.yaml").write_text("manifests: [teams/a, teams/b.yaml]\n")
    write_manifest(tmp_path / "teams" / "a" / "web.yaml", "us-east-1", "- name: web")
    write_manifest(tmp_path / "teams" / "b.yaml", "eu-west-1", "- name: api")
    write_manifest(tmp_path / "elsewhere.yaml", "us-east-1", "- name: -not-read")
    valid = run_cli("validate", cwd=tmp_path)
    assert valid.returncode == 0, valid.stderr
    assert "Valid: 2 key pair(s) in 2 file(s)." in valid.stderr
    env = {"RECONCILER_LOCAL_DIR": str(tmp_path / ".local")}
    plan = run_cli("plan", "--local", cwd=tmp_path, env=env)
    assert plan.returncode == 0 and "Plan: 2 to add" in plan.stdout, plan.stderr
    report = run_cli("report", "--local", cwd=tmp_path, env=env)
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "report.html").read_text().startswith("<!DOCTYPE html>")
    # Without a manifests: section, the current folder (the project file is not a manifest).
    (tmp_path / "reconciler.yaml").write_text("policy: {rules: []}\n")
    (tmp_path / "elsewhere.yaml").unlink()
    here = run_cli("validate", cwd=tmp_path)
    assert here.returncode == 0 and "Valid: 2 key pair(s) in 2 file(s)." in here.stderr
