"""What every format says the same way: tag values, the summary line, a change's detail lines.

Nothing here ever sees a private key: Change and Plan carry none (a recovered
generated key is held in ``Change.recovered`` and is deliberately never read
here).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, assert_never

from reconciler.model import Tags
from reconciler.output.escape import json_safe
from reconciler.output.terminal import and_more
from reconciler.planning.planner import Action, Change, Plan, diff_tags

PLAN_FORMAT_VERSION = 1


def color_of(action: Action) -> str:
    """The palette colour of a change: green adds, yellow changes in place, red deletes."""
    match action:
        case Action.CREATE | Action.IMPORT | Action.GENERATE | Action.ADOPT:
            return "green"
        case Action.UPDATE_TAGS | Action.ROTATE | Action.FORGET:
            return "yellow"
        case Action.REPLACE | Action.DELETE:
            return "red"
        case _:
            assert_never(action)


COLOR_OF = {action: color_of(action) for action in Action}


def format_tag_value(value: str | None) -> str:
    return "(no value)" if value is None else json.dumps(value, ensure_ascii=False)


def format_tags(tags: Tags) -> str:
    if not tags:
        return "(none)"
    return ", ".join(
        f"{k} (no value)" if v is None else f"{k} = {json.dumps(v, ensure_ascii=False)}"
        for k, v in sorted(tags.items())
    )


@dataclass(frozen=True, slots=True)
class Tally:
    """Changes counted as Terraform counts resources: a replace or rotate is one added and
    one destroyed; an adoption is an import; a forget destroys nothing."""

    imported: int = 0
    added: int = 0
    changed: int = 0
    destroyed: int = 0
    forgotten: int = 0

    def words(self, tense: Literal["to", "done"]) -> str:
        """``1 to import, 2 to add, 0 to change, 1 to destroy`` (or ``1 imported, ...``)."""

        def word(n: int, future: str, past: str) -> str:
            return f"{n} to {future}" if tense == "to" else f"{n} {past}"

        parts = [word(self.imported, "import", "imported")] if self.imported else []
        parts += [
            word(self.added, "add", "added"),
            word(self.changed, "change", "changed"),
            word(self.destroyed, "destroy", "destroyed"),
        ]
        if self.forgotten:
            parts.append(word(self.forgotten, "forget", "forgotten"))
        return ", ".join(parts)


def tally(changes: Iterable[Change]) -> Tally:
    """What ``changes`` add, change, destroy, import and forget; the plan's summary and the
    apply's count with it, so a plan and the apply that carries it all out agree."""
    imported = added = changed = destroyed = forgotten = 0
    for change in changes:
        action = change.action
        match action:
            case Action.CREATE | Action.IMPORT | Action.GENERATE:
                added += 1
            case Action.REPLACE | Action.ROTATE:
                added += 1
                destroyed += 1
            case Action.UPDATE_TAGS:
                changed += 1
            case Action.DELETE:
                destroyed += 1
            case Action.ADOPT:
                imported += 1
            case Action.FORGET:
                forgotten += 1
            case _:
                assert_never(action)
    return Tally(imported, added, changed, destroyed, forgotten)


def summary_line(plan: Plan) -> str:
    """``Plan: 1 to add, 2 to change, 1 to destroy.``, as Terraform says it."""
    return f"Plan: {tally(plan.changes).words('to')}."


def no_changes_line(plan: Plan) -> str:
    """What a plan without changes says: never "No changes." while findings stand."""
    if plan.findings:
        count = len(plan.findings)
        return (
            f"{summary_line(plan)} {count} error{'s' if count != 1 else ''} above to resolve first."
        )
    return f"No changes. {plan.unchanged} unchanged."


def change_lines(change: Change) -> list[str]:
    lines: list[str] = []
    action = change.action
    match action:
        case Action.UPDATE_TAGS | Action.ADOPT:
            diff = diff_tags(change.before_tags or {}, change.after_tags or {})
            before = change.before_tags or {}
            for key, value in diff.set.items():
                if key in before:
                    old = format_tag_value(before[key])
                    lines.append(f"~ tag {key}: {old} -> {format_tag_value(value)}")
                else:
                    lines.append(f"+ tag {key}: {format_tag_value(value)}")
            lines.extend(f"- tag {key}" for key in diff.remove)
        case Action.DELETE | Action.FORGET:
            pass  # no tags after it
        case Action.CREATE | Action.IMPORT | Action.GENERATE | Action.REPLACE | Action.ROTATE:
            lines.append(f"tags: {format_tags(change.after_tags or {})}")
        case _:
            assert_never(action)
    if change.then is not None:
        lines.append(f"replaced by: {change.then}")
    if change.keep:
        lines.append(f"earlier keys kept: {change.keep}")
    if change.instances:
        names = ", ".join(i.name for i in change.instances)
        lines.append(f"instances launched with it: {names}")
    if change.expected_fingerprint and change.deletes:
        lines.append(f"expected fingerprint: {change.expected_fingerprint}")
    return lines


LEFT_OUT_LISTED = 20


def left_out_line(plan: Plan) -> str:
    """What a --target/--exclude plan leaves out, so nobody mistakes it for the whole."""
    return (
        f"Scoped plan: {len(plan.left_out)} other key pair(s) with pending changes or "
        f"findings were left out by --target/--exclude: {and_more(plan.left_out, LEFT_OUT_LISTED)}."
    )


def dumps(data: Mapping[str, Any] | list[Any]) -> str:
    """JSON for people and machines: readable Unicode, but nothing a terminal acts on."""
    return json_safe(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False)) + "\n"
