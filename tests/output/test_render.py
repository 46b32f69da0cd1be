"""Plans rendered for people and for PR comments (text and markdown)."""

from __future__ import annotations

from reconciler.model import (
    Address,
    DesiredKeyPair,
    DesiredSet,
    LiveKeyPair,
    LiveSnapshot,
    Source,
    StateEntry,
)
from reconciler.output import common, markdown
from reconciler.output import text as text_format
from reconciler.output.jsondoc import plan_json
from reconciler.planning.planner import Plan, make_plan

R = "us-east-1"
SRC = Source("m.yaml", 1, 1)


def _plan(creates: int = 0, *, conflict: bool = False, orphan: bool = False) -> Plan:
    wants = {
        Address(R, f"key-pair-{i:05}"): DesiredKeyPair(
            Address(R, f"key-pair-{i:05}"), {"team": "platform", "env": None}, SRC
        )
        for i in range(creates)
    }
    live: dict[Address, LiveKeyPair] = {}
    entries: dict[Address, StateEntry] = {}
    if conflict:
        address = Address(R, "taken")
        wants[address] = DesiredKeyPair(address, {}, SRC)
        live[address] = LiveKeyPair(address, "arn", "aa", 1.0, {})
    if orphan:
        address = Address(R, "left-over")
        entries[address] = StateEntry(address, "created", "arn", "bb", 1.0, {})
        live[address] = LiveKeyPair(address, "arn", "bb", 1.0, {})
    return make_plan(DesiredSet(wants), entries, {}, LiveSnapshot(live, (R,)))


def test_markdown_has_marker_summary_table_and_collapsible_detail() -> None:
    text = markdown.plan_markdown(_plan(2))
    lines = text.splitlines()
    assert lines[0] == markdown.COMMENT_MARKER
    assert lines[1] == ("### Lightsail key pairs: Plan: 2 to add, 0 to change, 0 to destroy.")
    assert "| action | key pair | why |" in lines
    assert f"| `create` | `{R}/key-pair-00000` | declared in the manifests |" in lines
    assert "<details><summary>Details</summary>" in lines and lines[-1] == "</details>"
    assert '    tags: env (no value), team = "platform"' in lines


def test_markdown_without_changes_says_so_under_the_marker() -> None:
    lines = markdown.plan_markdown(_plan()).splitlines()
    assert lines[0] == markdown.COMMENT_MARKER
    assert lines[-1] == "No changes."


def test_markdown_lists_findings_and_kept_key_pairs() -> None:
    text = markdown.plan_markdown(_plan(1, conflict=True, orphan=True))
    assert "**Needs attention:**" in text
    assert f"{R}/taken already exists in Lightsail but is not in the state" in text
    assert f"reconciler import {R}/taken" in text
    assert f"`{R}/left-over`" in text and "--prune" in text


def test_long_markdown_is_cut_with_a_note_and_keeps_its_marker() -> None:
    text = markdown.plan_markdown(_plan(2000))
    assert len(text) <= markdown.MARKDOWN_LIMIT
    lines = text.splitlines()
    assert lines[0] == markdown.COMMENT_MARKER
    assert lines[1].startswith("### Lightsail key pairs: Plan: 2000 to add")
    assert "output truncated" in lines[-1] and "`reconciler plan`" in lines[-1]
    # The cut never leaves a code block or the collapsible section open.
    assert text.count("```") % 2 == 0
    assert text.count("<details>") == text.count("</details>")


def test_markdown_up_to_the_limit_is_kept_whole() -> None:
    whole = markdown.COMMENT_MARKER + "\n" + "x" * (markdown.MARKDOWN_LIMIT - 36) + "\n"
    assert len(whole) == markdown.MARKDOWN_LIMIT
    assert markdown.cap_markdown(whole) == whole
    longer = whole + "y\n"
    cut = markdown.cap_markdown(longer, command="reconciler drift")
    assert len(cut) <= markdown.MARKDOWN_LIMIT and cut.startswith(markdown.COMMENT_MARKER + "\n")
    assert "run `reconciler drift` locally" in cut


def test_text_plan_shows_kept_key_pairs_and_findings() -> None:
    text = text_format.plan_text(_plan(0, conflict=True, orphan=True))
    assert "Error: us-east-1/taken already exists in Lightsail" in text
    assert "(kept; pass --prune to delete them)" in text and "us-east-1/left-over" in text
    assert "\x1b[" not in text
    assert "\x1b[" in text_format.plan_text(_plan(1), color=True)


def test_tag_values_null_and_empty_are_shown_differently() -> None:
    assert common.format_tag_value(None) == "(no value)"
    assert common.format_tag_value("") == '""'
    assert common.format_tags({"b": "", "a": None}) == 'a (no value), b = ""'
    assert common.format_tags({}) == "(none)"


def test_a_forget_is_shown_apart_from_deletes_and_counted_only_when_there_is_one() -> None:
    address = Address(R, "gone")
    entries = {address: StateEntry(address, "created", "arn", "bb", 1.0, {})}
    plan = make_plan(DesiredSet({}), entries, {}, LiveSnapshot({}, (R,)), prune=True)
    text = text_format.plan_text(plan)
    assert f"  x {R}/gone  (forget)\n      why: gone live; forget it\n" in text
    assert "tags:" not in text and "expected fingerprint" not in text
    assert text.rstrip().endswith("Plan: 0 to add, 0 to change, 0 to destroy, 1 to forget.")
    assert f"| `forget` | `{R}/gone` | gone live; forget it |" in markdown.plan_markdown(plan)
    summary = plan_json(plan)["summary"]
    assert (summary["forget"], summary["delete"]) == (1, 0)
