"""What exactly differs between two views of a key pair: per tag and per field, with both values.

Drift and stale saved plans say which tags were added, removed or changed and
which fields moved, not only that something did. The comparison that finds a
difference stays cheap (``==`` on plain data, in the planner and in drift);
``explain`` runs only on what is already known to differ, and lets deepdiff
say how.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from reconciler.planning.drift import DriftFinding


class Change(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


@dataclass(frozen=True, slots=True)
class Difference:
    """One thing that differs: where (``tags.env``, ``fingerprint``), how, both values."""

    change: Change
    path: str
    before: Any = None
    after: Any = None

    def to_json(self) -> dict[str, Any]:
        return {
            "change": self.change.value,
            "path": self.path,
            "before": self.before,
            "after": self.after,
        }


def explain(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[Difference, ...]:
    """Every difference from ``before`` to ``after`` (nested mappings become dotted paths),
    in path order; nothing when they are equal."""
    if before == after:
        return ()
    from deepdiff import DeepDiff  # only for what already differs: it is not cheap

    found: list[Difference] = []
    tree = DeepDiff(dict(before), dict(after), view="tree", verbose_level=2)
    for kind, levels in tree.items():
        for level in levels:
            path = ".".join(str(part) for part in level.path(output_format="list"))
            if kind.endswith("_added"):
                found.append(Difference(Change.ADDED, path, None, level.t2))
            elif kind.endswith("_removed"):
                found.append(Difference(Change.REMOVED, path, level.t1, None))
            else:  # values_changed, type_changes (a tag with no value given one)
                found.append(Difference(Change.CHANGED, path, level.t1, level.t2))
    return tuple(sorted(found, key=lambda d: d.path))


def tag_differences(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[Difference, ...]:
    """``explain`` of two tag sets, paths named ``tags.KEY``."""
    return explain({"tags": dict(before)}, {"tags": dict(after)})


def of_finding(finding: DriftFinding) -> tuple[Difference, ...]:
    """What a drift finding's expected and actual values differ in: per tag for tag sets, the
    field for anything else (a fingerprint)."""
    expected, actual = finding.expected, finding.actual
    if isinstance(expected, Mapping) and isinstance(actual, Mapping):
        return tag_differences(expected, actual)
    if (expected is None and actual is None) or expected == actual:
        return ()
    field = "fingerprint" if "fingerprint" in finding.kind.value else "value"
    return (Difference(Change.CHANGED, field, expected, actual),)
