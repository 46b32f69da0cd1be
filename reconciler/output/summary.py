"""What an apply says as it goes and when it ends: progress, the closing summary, why it stopped.

An apply goes ahead with the changes that do not depend on an unresolved
finding (a conflict, a lost key, a region or an account that could not be
read); the summary counts those findings beside the failures, with the
command that resolves each where there is one, so "0 failed" is never the
whole story.
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any, TextIO

from reconciler.apply.executor import ApplyResult
from reconciler.errors import StorageError
from reconciler.output.common import tally
from reconciler.output.escape import visible
from reconciler.output.terminal import and_more, error_lines
from reconciler.planning.changes import Change, Finding, FindingKind, Plan
from reconciler.state.files import kib

LISTED = 5

# How a kind of finding is counted: (singular, plural). Kinds not named here
# are counted as "<kind> finding(s)".
NOUNS: dict[str, tuple[str, str]] = {
    FindingKind.CONFLICT.value: ("conflict", "conflicts"),
    FindingKind.LOST_KEY.value: ("lost key", "lost keys"),
    FindingKind.REGION_FAILED.value: ("unread region", "unread regions"),
    FindingKind.ACCOUNT_FAILED.value: ("unread account", "unread accounts"),
}


def _noun(kind: str, n: int) -> str:
    singular, plural = NOUNS.get(kind, (f"{kind} finding", f"{kind} findings"))
    return singular if n == 1 else plural


def _remedy(kind: str, findings: list[Finding]) -> str:
    if kind != FindingKind.CONFLICT.value:
        return ""
    return ": run " + and_more((f"`reconciler import {f.address}`" for f in findings), LISTED)


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


def summary(plan: Plan, outcome: ApplyResult | None, *, destroy: bool = False) -> str:
    """The closing line, as Terraform's: ``Apply complete! Resources: 1 added, 0 changed,
    0 destroyed.`` (``Destroy complete! Resources: N destroyed.``), then what failed and
    every unresolved finding."""
    done = tally(outcome.succeeded if outcome is not None else ())
    failed = len(outcome.failed) if outcome is not None else 0
    ok = failed == 0 and not plan.findings and (outcome is None or outcome.ok)
    verb = "Destroy" if destroy else "Apply"
    head = f"{verb} complete!" if ok else f"{verb} finished with errors!"
    resources = f"{done.destroyed} destroyed" if destroy else done.words("done")
    left = [*([f"{failed} failed"] if failed else []), *left_over(plan.findings)]
    return f"{head} Resources: {resources}" + (f"; {', '.join(left)}." if left else ".")


def succeeded(plan: Plan, outcome: ApplyResult | None) -> bool:
    return (outcome is None or outcome.ok) and not plan.findings


def closing(plan: Plan, outcome: ApplyResult | None, *, destroy: bool = False) -> str:
    """The summary line, then each failure and each unresolved finding with its hint."""
    text = f"\n{visible(summary(plan, outcome, destroy=destroy))}\n"
    for failure in outcome.failed if outcome is not None else ():
        text += error_lines(failure.message, failure.hint)
    for finding in plan.findings:
        text += error_lines(finding.message, finding.hint)
    return text


def stopped(error: StorageError, outcome: ApplyResult, room: int) -> str:
    """One message for the storage failure that stopped the run, however many it stopped."""
    text = error_lines(error.message, error.hint)
    if outcome.unrecorded:
        count = len(outcome.unrecorded)
        text += (
            f"{count} change{'s were' if count != 1 else ' was'} under way and could not be "
            "recorded; the next plan checks them against Lightsail.\n"
        )
    if outcome.not_started:
        count = len(outcome.not_started)
        text += (
            f"Stopped before {count} change{'s' if count != 1 else ''} (they need about "
            f"{kib(room)} of journal room): nothing was sent to Lightsail for them; the next "
            "run makes them.\n"
        )
    return text


def unreachable(outcome: ApplyResult) -> str:
    """One message for Lightsail going away, however many changes it cut off."""
    error = outcome.unreachable
    assert error is not None
    reason = error.message.rpartition(": ")[2]  # "cannot reach Lightsail at URL (...)"
    parts = []
    if outcome.cut_off:
        parts.append(
            f"{len(outcome.cut_off)} change(s) under way are checked by the next plan (GetKeyPair)"
        )
    if outcome.not_started:
        parts.append(f"{len(outcome.not_started)} not started (nothing was sent for them)")
    return error_lines(
        f"{reason}; the apply stopped: {', '.join(parts) or 'nothing left'}", error.hint
    )


class Progress:
    """Apply progress on stderr: a live counter on a terminal, lines otherwise."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.done = 0
        self.failed = 0

    def __call__(self, change: Change, failure: Any) -> None:
        self.done += 1
        if failure is not None:
            self.failed += 1
        if self.tty:
            end = "\n" if self.done == self.total else ""
            self.stream.write(
                f"\r\x1b[2K[{self.done}/{self.total}] applied, {self.failed} failed{end}"
            )
        else:
            state = "failed" if failure is not None else "done"
            self.stream.write(visible(f"{change.action} {change.address}: {state}") + "\n")
        self.stream.flush()
