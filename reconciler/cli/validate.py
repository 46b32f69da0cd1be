"""`reconciler validate PATH...`: check manifests offline, with the team's policy.

Runs on every commit (pre-commit hooks, pull-request checks): offline, no
credentials, and fast to start (nothing of AWS is imported).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from reconciler.cli.arguments import output_format, paths_argument, verbose
from reconciler.cli.checks import manifest_paths, today
from reconciler.errors import EXIT_ERROR, EXIT_OK, ManifestError, UsageError
from reconciler.findings import Report, from_problems
from reconciler.manifests.load import default_root, load_desired
from reconciler.manifests.project import PROJECT_FILE, find_project, read_project
from reconciler.output.base import Kind
from reconciler.output.formats import get
from reconciler.output.terminal import TERMINAL
from reconciler.policy import Policy


def add_arguments(parser: argparse.ArgumentParser) -> None:
    paths_argument(parser)
    parser.add_argument(
        "--manifests",
        action="append",
        default=[],
        metavar="FOLDER",
        help="folder of manifests (repeatable); PATHs are then changed files (as pre-commit "
        "passes them), and the folders are validated when one is inside them",
    )
    output_format(parser, Kind.CHECK)
    verbose(parser)


def run(args: argparse.Namespace) -> int:
    paths = args.paths
    if args.manifests:
        paths = changed_manifests(args.manifests, args.paths)
        if not paths:
            return EXIT_OK  # nothing changed under the manifest folders
    return validate(manifest_paths(paths), args.format)


def changed_manifests(folders: Sequence[str], changed: Sequence[str]) -> list[str]:
    """The folders to validate when ``changed`` files touch them (or the project file).

    A pre-commit hook sees every changed YAML file of the repository, CI files
    included; only those under a manifests folder are manifests. The whole
    folders are validated then, so that a name declared twice across files is
    still caught when only one of them changed.
    """
    roots = [Path(folder).resolve() for folder in folders]
    for name in changed:
        path = Path(name).resolve()
        if path.name == PROJECT_FILE or any(path.is_relative_to(root) for root in roots):
            return list(folders)
    return []


def validate(paths: Sequence[str], fmt: str) -> int:
    if not paths:
        raise UsageError("no manifest paths given", hint="pass files or folders, e.g. `manifests/`")
    path = find_project()
    project = None if path is None else read_project(path, check_backend=False)
    policy = Policy() if project is None else project.policy
    report = Report("validate", root=default_root(paths))
    try:
        desired = load_desired(
            paths, root=report.root, accounts=None if project is None else project.accounts
        )
    except ManifestError as error:
        report.findings = from_problems(error.problems)
    else:
        report.key_pairs, report.files = len(desired.key_pairs), len(desired.files)
        report.policy = policy.check(desired, today=today(time.time()))
    TERMINAL.out(get(fmt).check(report))
    if report.errors:
        TERMINAL.say(f"Error: {_counts(report)} found")
        return EXIT_ERROR
    warned = f"; {_counts(report)}" if report.warnings else ""
    TERMINAL.say(f"Valid: {report.key_pairs} key pair(s) in {report.files} file(s){warned}.")
    return EXIT_OK


def _counts(report: Report) -> str:
    parts = []
    if report.errors:
        parts.append(f"{report.errors} problem{'s' if report.errors != 1 else ''}")
    if report.warnings:
        parts.append(f"{report.warnings} warning{'s' if report.warnings != 1 else ''}")
    return ", ".join(parts)
