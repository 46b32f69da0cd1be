"""The repository checks: ``validate``, ``policy list``, and the policy findings of plan and drift.

``validate`` and ``policy list`` run on every commit (pre-commit hooks, pull
request checks), so this module and everything it imports at the top stays
offline and light: no boto3, botocore, emulator or ``cryptography``. The
report of each command is rendered by the format chosen from ``formats``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.errors import EXIT_ERROR, EXIT_OK, ManifestError, UsageError
from reconciler.findings import Finding, Report, describe, from_problems
from reconciler.manifests.load import default_root, load_desired
from reconciler.manifests.project import PROJECT_FILE, find_project, read_project
from reconciler.model import DesiredSet
from reconciler.output import formats
from reconciler.policy import Policy

if TYPE_CHECKING:
    from reconciler.model import LiveSnapshot
    from reconciler.planning.drift import DriftFinding
    from reconciler.planning.planner import Plan


def run(args: argparse.Namespace) -> int:
    if args.command == "policy":
        return policy_list()
    paths = args.paths
    if args.manifests:
        paths = changed_manifests(args.manifests, args.paths)
        if not paths:
            return EXIT_OK  # nothing changed under the manifest folders
    return validate(paths, args.format)


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


def load_policy(start: Path | None = None) -> tuple[Policy, Path | None]:
    """The policy of the project file for ``start`` (the working directory), and that file."""
    path = find_project(start)
    if path is None:
        return Policy(), None
    return read_project(path, check_backend=False).policy, path


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
        report.policy = policy.check(desired, today=_today(time.time()))
    _out(formats.get(fmt).check(report))
    if report.errors:
        sys.stderr.write(f"Error: {_counts(report)} found\n")
        return EXIT_ERROR
    warned = f"; {_counts(report)}" if report.warnings else ""
    sys.stderr.write(f"Valid: {report.key_pairs} key pair(s) in {report.files} file(s){warned}.\n")
    return EXIT_OK


def _counts(report: Report) -> str:
    parts = []
    if report.errors:
        parts.append(f"{report.errors} problem{'s' if report.errors != 1 else ''}")
    if report.warnings:
        parts.append(f"{report.warnings} warning{'s' if report.warnings != 1 else ''}")
    return ", ".join(parts)


def policy_list() -> int:
    policy, path = load_policy()
    if path is None:
        sys.stderr.write("No policy: no reconciler.yaml here or up to the repository root.\n")
        return EXIT_OK
    if not policy.rules:
        sys.stderr.write(f"No policy rules in {_display(path)}.\n")
        return EXIT_OK
    rows = [
        (c.rule.id, c.severity, str(c.source), ("plan, drift" if c.rule.live else "validate"))
        for c in policy.rules
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for configured, row in zip(policy.rules, rows, strict=True):
        cells = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        detail = configured.rule.describe()
        _out(f"{cells}  {detail}".rstrip() + "\n")
    return EXIT_OK


def plan_report(plan: Plan, desired: DesiredSet, live: LiveSnapshot) -> Report:
    """The plan's own findings and the policy's (offline rules and max-key-age) as a Report."""
    report = Report("plan", root=default_root(list(desired.files)))
    for finding in plan.findings:
        address = finding.address
        want = desired.key_pairs.get(address) if address is not None else None
        source = want.source if want is not None else None
        report.findings.append(
            Finding(
                finding.kind.value,
                finding.message,
                "error",
                source.file if source else None,
                source.line if source else 1,
                source.column if source else 1,
                str(address) if address is not None else None,
                finding.hint,
            )
        )
    report.policy = _policy_findings(desired, live)
    return report


def drift_report(found: list[DriftFinding], desired: DesiredSet, live: LiveSnapshot) -> Report:
    """What could not be read (an error per failing account or region), drift findings
    (errors for lost keys, warnings otherwise) and the policy's."""
    report = Report("drift", root=default_root(list(desired.files)))
    report.findings.extend(
        Finding(u.rule, u.describe(), "error", hint=describe(u.rule).help) for u in live.unread()
    )
    for f in found:
        want = desired.key_pairs.get(f.address)
        report.findings.append(
            Finding(
                f.kind.value,
                f"{f.address}: {f.detail}",
                "error" if f.is_error else "warning",
                want.source.file if want else None,
                want.source.line if want else 1,
                want.source.column if want else 1,
                str(f.address),
            )
        )
    report.policy = _policy_findings(desired, live)
    return report


def manifest_policy(desired: DesiredSet) -> list[Finding]:
    """The policy's findings on the manifests alone (what validate reports)."""
    policy, _ = load_policy()
    return policy.check(desired, today=_today(time.time()))


def _policy_findings(desired: DesiredSet, live: LiveSnapshot) -> list[Finding]:
    return policy_findings(desired, live, now=time.time())


def policy_findings(desired: DesiredSet, live: LiveSnapshot, *, now: float) -> list[Finding]:
    """The policy's findings at ``now``: offline rules, expired exceptions and max-key-age."""
    policy, _ = load_policy()
    return policy.check(desired, today=_today(now)) + policy.check_live(desired, live, now=now)


def _today(now: float) -> datetime.date:
    """The date an exception's ``expires`` is judged against: UTC, the same in every command."""
    return datetime.datetime.fromtimestamp(now, datetime.UTC).date()


def _out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _display(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)
