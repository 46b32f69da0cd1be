"""The pure planner: (desired, state, live) -> Plan, with its guards, scope, saved plans, drift."""

from reconciler.planning.changes import Action, Change, Finding, FindingKind, Plan, Reason
from reconciler.planning.drift import DriftFinding, DriftKind, find_drift
from reconciler.planning.planner import make_plan
from reconciler.planning.scope import Scope

__all__ = [
    "Action",
    "Change",
    "DriftFinding",
    "DriftKind",
    "Finding",
    "FindingKind",
    "Plan",
    "Reason",
    "Scope",
    "find_drift",
    "make_plan",
]
