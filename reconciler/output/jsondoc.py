"""The JSON format: documents for machines (plan, drift, findings), each with a format version."""

from __future__ import annotations

from typing import Any, ClassVar

from reconciler.findings import Report
from reconciler.model import Address, LiveSnapshot, Tags
from reconciler.output.base import (
    REPORT_FORMAT_VERSION,
    DriftView,
    Format,
    Kind,
    PlanView,
    StateView,
    held,
)
from reconciler.output.common import PLAN_FORMAT_VERSION, dumps
from reconciler.output.reasons import why
from reconciler.planning.changes import Action, Change, Plan
from reconciler.planning.drift import DriftFinding, DriftKind
from reconciler.planning.explain import of_finding

DRIFT_FORMAT_VERSION = 1
STATE_LIST_FORMAT_VERSION = 1


class Json(Format):
    name = "json"
    help = "JSON (findings as in schemas/finding.schema.json)"
    kinds: ClassVar[frozenset[Kind]] = frozenset(Kind)

    def check(self, report: Report) -> str:
        return dumps(
            {
                "formatVersion": REPORT_FORMAT_VERSION,
                "valid": report.errors == 0,
                "keyPairs": report.key_pairs,
                "errors": report.errors,
                "warnings": report.warnings,
                "problems": [f.to_json() for f in report.everything],
            }
        )

    def plan(self, view: PlanView) -> str:
        data = plan_json(view.plan)
        data["policy"] = [f.to_json() for f in view.report.policy]
        return dumps(data)

    def drift(self, view: DriftView) -> str:
        data = drift_json(view.findings, view.live)
        data["policy"] = [f.to_json() for f in view.report.policy]
        return dumps(data)

    def state(self, view: StateView) -> str:
        counts = view.instances
        return dumps(
            {
                "formatVersion": STATE_LIST_FORMAT_VERSION,
                "keyPairs": [
                    {
                        **_where(address),
                        "origin": e.origin,
                        "fingerprint": e.fingerprint,
                        "arn": e.arn,
                        "privateKey": held(e),
                        "instances": None if counts is None else counts.get(address, 0),
                        "generations": len(e.generations),
                        "preventDestroy": e.prevent_destroy,
                    }
                    for address, e in sorted(view.entries.items())
                ],
                "pending": [
                    {**_where(address), "operation": intent.operation}
                    for address, intent in sorted(view.pending.items())
                ],
            }
        )


def _where(address: Address) -> dict[str, str]:
    return {
        "address": str(address),
        **({"account": address.account} if address.account else {}),
        "region": address.region,
        "name": address.name,
    }


def change_json(change: Change) -> dict[str, Any]:
    diff = change.tag_diff
    return {
        "action": change.action.value,
        "address": str(change.address),
        **({"account": change.address.account} if change.address.account else {}),
        "region": change.address.region,
        "name": change.address.name,
        "reason": why(change),
        "reasonCode": change.code.value,
        "tags": {
            "before": _tags_json(change.before_tags),
            "after": _tags_json(change.after_tags),
            "set": dict(diff.set),
            "remove": list(diff.remove),
        },
        "replaceWith": change.then.value if change.then else None,
        "expectedFingerprint": change.expected_fingerprint,
        "preventDestroy": change.prevent_destroy,
        "keep": change.keep,
        "instances": [i.name for i in change.instances],
    }


def _tags_json(tags: Tags | None) -> dict[str, str | None] | None:
    return None if tags is None else dict(sorted(tags.items()))


def plan_json(plan: Plan) -> dict[str, Any]:
    counts = plan.counts()
    return {
        "formatVersion": PLAN_FORMAT_VERSION,
        "lineage": plan.lineage,
        "serial": plan.serial,
        "liveDigest": plan.live_digest,
        "regions": list(plan.regions),
        "summary": {
            **{action.value: counts[action] for action in Action},
            "unchanged": plan.unchanged,
            "findings": len(plan.findings),
        },
        "changes": [change_json(c) for c in plan.listed],
        "findings": [
            {
                "kind": f.kind.value,
                "address": str(f.address) if f.address else None,
                "message": f.message,
                "hint": f.hint,
            }
            for f in plan.findings
        ],
        "orphaned": [str(a) for a in plan.orphaned],
        "leftOut": [str(a) for a in plan.left_out],
    }


def drift_json(findings: list[DriftFinding], live: LiveSnapshot) -> dict[str, Any]:
    counts = {kind.value: 0 for kind in DriftKind}
    for f in findings:
        counts[f.kind.value] += 1
    return {
        "formatVersion": DRIFT_FORMAT_VERSION,
        # A region that could not be read may hide drift: not in sync.
        "inSync": not findings and not live.failed_regions,
        "regions": list(live.regions),
        "failedRegions": dict(live.failed_regions),
        "failedAccounts": {u.place: u.message for u in live.unread() if u.account},
        "summary": counts,
        "findings": [
            {
                "kind": f.kind.value,
                "address": str(f.address),
                **({"account": f.address.account} if f.address.account else {}),
                "region": f.address.region,
                "name": f.address.name,
                "detail": f.detail,
                "expected": f.expected,
                "actual": f.actual,
                "differences": [d.to_json() for d in of_finding(f)],
            }
            for f in findings
        ],
    }
