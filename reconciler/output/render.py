"""Plans and apply summaries as text, JSON or markdown (``formats`` chooses among them).

Renderers return strings; only the CLI writes them out. Nothing here ever
sees a private key: Change and Plan carry none (a recovered generated key is
held in ``Change.recovered`` and is deliberately never read here).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import Any, TextIO, assert_never

from reconciler.model import Tags
from reconciler.output.reasons import why
from reconciler.planning.planner import SYMBOLS, Action, Change, Plan, diff_tags

PLAN_FORMAT_VERSION = 1
COMMENT_MARKER = "<!-- lightsail-reconciler:plan -->"
MARKDOWN_LIMIT = 65_000
MARKDOWN_ORPHANS_LISTED = 50


def use_color(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    return hasattr(stream, "isatty") and stream.isatty()


class Palette:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled else text

    def green(self, text: str) -> str:
        return self._wrap("32", text)

    def yellow(self, text: str) -> str:
        return self._wrap("33", text)

    def red(self, text: str) -> str:
        return self._wrap("31", text)

    def bold(self, text: str) -> str:
        return self._wrap("1", text)


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


def summary_line(plan: Plan) -> str:
    counts = plan.counts()
    to_add = counts[Action.CREATE] + counts[Action.IMPORT] + counts[Action.GENERATE]
    parts = [
        f"{to_add} to add",
        f"{counts[Action.ADOPT]} to adopt",
        f"{counts[Action.UPDATE_TAGS]} to update",
        f"{counts[Action.REPLACE]} to replace",
        *([f"{counts[Action.ROTATE]} to rotate"] if counts[Action.ROTATE] else []),
        f"{counts[Action.DELETE]} to delete",
        *([f"{counts[Action.FORGET]} to forget"] if counts[Action.FORGET] else []),
    ]
    return f"Plan: {', '.join(parts)}; {plan.unchanged} unchanged."


def _change_lines(change: Change) -> list[str]:
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


def plan_text(plan: Plan, *, color: bool = False) -> str:
    p = Palette(color)
    out: list[str] = []
    regions = ", ".join(plan.regions) or "(none)"
    out.append(f"Regions read: {regions}")
    if plan.changes:
        out.append("")
        out.append("Changes:")
        for change in plan.changes:
            paint = getattr(p, COLOR_OF[change.action])
            symbol = SYMBOLS[change.action]
            out.append(f"  {paint(symbol)} {p.bold(str(change.address))}  ({change.action})")
            out.append(f"      why: {why(change)}")
            out.extend(f"      {line}" for line in _change_lines(change))
    if plan.orphaned:
        out.append("")
        out.append(
            f"{len(plan.orphaned)} key pair(s) are in the state but no longer in the manifests "
            "(kept; pass --prune to delete them):"
        )
        out.extend(f"  {address}" for address in plan.orphaned)
    if plan.findings:
        out.append("")
        for finding in plan.findings:
            out.append(p.red(f"Error: {finding.message}"))
            out.append(f"  -> {finding.hint}")
    out.append("")
    out.append(summary_line(plan) if plan.changes else f"No changes. {plan.unchanged} unchanged.")
    if plan.left_out:
        out.append(left_out_line(plan))
    return "\n".join(out) + "\n"


LEFT_OUT_LISTED = 20


def left_out_line(plan: Plan) -> str:
    """What a --target/--exclude plan leaves out, so nobody mistakes it for the whole."""
    names = ", ".join(str(a) for a in plan.left_out[:LEFT_OUT_LISTED])
    more = len(plan.left_out) - LEFT_OUT_LISTED
    return (
        f"Scoped plan: {len(plan.left_out)} other key pair(s) with pending changes or "
        f"findings were left out by --target/--exclude: {names}"
        + (f" and {more} more" if more > 0 else "")
        + "."
    )


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
        "changes": [change_json(c) for c in plan.changes],
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


def plan_markdown(plan: Plan) -> str:
    """A PR comment: marker, summary line, table, collapsible detail, size-capped."""
    head = [COMMENT_MARKER, f"### Lightsail key pairs: {summary_line(plan)}", ""]
    if plan.left_out:
        head.extend([left_out_line(plan), ""])
    if plan.findings:
        head.append("**Needs attention:**")
        head.extend(f"- :x: {f.message} — {f.hint}" for f in plan.findings)
        head.append("")
    if plan.orphaned:
        listed = ", ".join(f"`{a}`" for a in plan.orphaned[:MARKDOWN_ORPHANS_LISTED])
        more = len(plan.orphaned) - MARKDOWN_ORPHANS_LISTED
        head.append(
            f"{len(plan.orphaned)} key pair(s) are in the state but no longer in the manifests "
            f"(kept; pass `--prune` to delete them): {listed}"
            + (f" and {more} more" if more > 0 else "")
        )
        head.append("")
    if not plan.changes:
        head.append("No changes.")
        return cap_markdown("\n".join(head) + "\n")
    rows = ["| action | key pair | why |", "| --- | --- | --- |"]
    detail = ["<details><summary>Details</summary>", "", "```diff"]
    for change in plan.changes:
        rows.append(f"| `{change.action}` | `{change.address}` | {_md_escape(why(change))} |")
        detail.append(f"{SYMBOLS[change.action][0]} {change.address} ({change.action})")
        detail.extend(f"    {line}" for line in _change_lines(change))
    detail.extend(["```", "", "</details>"])
    return cap_markdown("\n".join(head + rows + [""] + detail) + "\n")


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def cap_markdown(text: str, *, command: str = "reconciler plan") -> str:
    """``text`` cut to fit a PR comment, with a note saying so; the marker line stays first."""
    if len(text) <= MARKDOWN_LIMIT:
        return text
    note = f"\n\n_… output truncated to fit a comment; run `{command}` locally for all of it._\n"
    cut = text[: MARKDOWN_LIMIT - len(note) - 20]
    cut = cut[: cut.rfind("\n")]
    if cut.count("```") % 2:
        cut += "\n```"
    if "<details>" in cut and "</details>" not in cut:
        cut += "\n</details>"
    return cut + note


def dumps(data: Mapping[str, Any] | list[Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


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
            self.stream.write(f"{change.action} {change.address}: {state}\n")
        self.stream.flush()
