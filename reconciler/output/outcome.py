"""The closing summary of an apply or destroy: what was done and what is left.

An apply goes ahead with the changes that do not depend on an unresolved
finding (a conflict, a lost key, a region or an account that could not be
read); the summary counts those findings beside the failures, with the
command that resolves each where there is one, so "0 failed" is never the
whole story.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from reconciler.apply.executor import ApplyResult
from reconciler.planning.planner import Action, Finding, FindingKind, Plan

LISTED = 5

# How a kind of finding is counted: (singular, plural). Kinds not named here
# are counted as "<kind> finding(s)".
NOUNS: dict[str, tuple[str, str]] = {
    FindingKind.CONFLICT.value: ("conflict", "conflicts"),
    FindingKind.LOST_KEY.value: ("lost key", "lost keys"),
    FindingKind.REGION_FAILED.value: ("unread region", "unread regions"),
    FindingKind.ACCOUNT_FAILED.value: ("unread account", "unread accounts"),
}


@dataclass(frozen=True, slots=True)
class Counts:
    added: int = 0
    changed: int = 0
    destroyed: int = 0
    failed: int = 0
    # State entries dropped for key pairs already gone from Lightsail: nothing was destroyed.
    forgotten: int = 0


def counts(outcome: ApplyResult | None) -> Counts:
    if outcome is None:
        return Counts()
    added = changed = destroyed = forgotten = 0
    for change in outcome.succeeded:
        if change.action is Action.FORGET:
            forgotten += 1
            continue
        if change.deletes:
            destroyed += 1
        if change.creates is not None:
            added += 1
        elif not change.deletes:
            changed += 1
    return Counts(added, changed, destroyed, len(outcome.failed), forgotten)


def _noun(kind: str, n: int) -> str:
    singular, plural = NOUNS.get(kind, (f"{kind} finding", f"{kind} findings"))
    return singular if n == 1 else plural


def _remedy(kind: str, findings: list[Finding]) -> str:
    if kind != FindingKind.CONFLICT.value:
        return ""
    commands = [f"`reconciler import {f.address}`" for f in findings[:LISTED]]
    more = len(findings) - LISTED
    return ": run " + ", ".join(commands) + (f" and {more} more" if more > 0 else "")


def left_over(findings: tuple[Finding, ...]) -> list[str]:
    """One phrase per kind of unresolved finding, e.g. "1 conflict left: run ..."."""
    by_kind: dict[str, list[Finding]] = {}
    for finding in findings:
        by_kind.setdefault(str(finding.kind), []).append(finding)
    order = Counter(str(f.kind) for f in findings)
    return [
        f"{len(by_kind[kind])} {_noun(kind, len(by_kind[kind]))} left{_remedy(kind, by_kind[kind])}"
        for kind in sorted(order, key=lambda k: (-order[k], k))
    ]


def summary(plan: Plan, outcome: ApplyResult | None) -> str:
    """The closing line: counts of what was done, then every unresolved finding."""
    done = counts(outcome)
    ok = done.failed == 0 and not plan.findings and (outcome is None or outcome.ok)
    head = "Apply complete!" if ok else "Apply finished with errors!"
    parts = [
        f"{done.added} added",
        f"{done.changed} changed",
        f"{done.destroyed} destroyed",
        *([f"{done.forgotten} forgotten"] if done.forgotten else []),
        f"{done.failed} failed",
        *left_over(plan.findings),
    ]
    return f"{head} {', '.join(parts)}."


def succeeded(plan: Plan, outcome: ApplyResult | None) -> bool:
    return (outcome is None or outcome.ok) and not plan.findings
