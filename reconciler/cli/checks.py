"""Findings as commands report them: a plan's, drift's and the team policy's, as one ``Report``.

``validate`` uses this module too, so it and everything it imports stays
offline and light: no boto3, botocore, emulator or ``cryptography``.
"""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.findings import Finding, Report, describe
from reconciler.manifests.load import default_root
from reconciler.manifests.project import find_project, read_project
from reconciler.model import DesiredSet
from reconciler.policy import Policy

if TYPE_CHECKING:
    from reconciler.model import LiveSnapshot
    from reconciler.planning.drift import DriftFinding
    from reconciler.planning.planner import Plan


def manifest_paths(paths: Sequence[str]) -> list[str]:
    """The PATHs given; with none, ``manifests:`` of reconciler.yaml, else the current folder."""
    if paths:
        return [str(Path(p)) for p in paths]
    path = find_project()
    if path is not None:
        configured = read_project(path, check_backend=False).manifests
        if configured:
            return list(configured)
    return ["."]


def load_policy(start: Path | None = None) -> tuple[Policy, Path | None]:
    """The policy of the project file for ``start`` (the working directory), and that file."""
    path = find_project(start)
    if path is None:
        return Policy(), None
    return read_project(path, check_backend=False).policy, path


def plan_report(plan: Plan, desired: DesiredSet, live: LiveSnapshot) -> Report:
    """The plan's own findings and the policy's (offline rules and max-key-age) as a Report."""
    report = Report("plan", root=default_root(list(desired.files)), anchor=_anchor(desired))
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
    report = Report("drift", root=default_root(list(desired.files)), anchor=_anchor(desired))
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


def _anchor(desired: DesiredSet) -> str | None:
    """The file findings without a place are shown on: reconciler.yaml, else a manifest."""
    project = find_project()
    if project is not None:
        return os.path.relpath(project)
    return min(desired.files) if desired.files else None


def manifest_policy(desired: DesiredSet) -> list[Finding]:
    """The policy's findings on the manifests alone (what validate reports)."""
    policy, _ = load_policy()
    return policy.check(desired, today=today(time.time()))


def _policy_findings(desired: DesiredSet, live: LiveSnapshot) -> list[Finding]:
    return policy_findings(desired, live, now=time.time())


def policy_findings(desired: DesiredSet, live: LiveSnapshot, *, now: float) -> list[Finding]:
    """The policy's findings at ``now``: offline rules, expired exceptions and max-key-age."""
    policy, _ = load_policy()
    return policy.check(desired, today=today(now)) + policy.check_live(desired, live, now=now)


def today(now: float) -> datetime.date:
    """The date an exception's ``expires`` is judged against: UTC, the same in every command."""
    return datetime.datetime.fromtimestamp(now, datetime.UTC).date()
