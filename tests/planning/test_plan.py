"""The planner is pure: these tests build desired/state/live by hand."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.errors import PlanError
from reconciler.model import (
    Address,
    DesiredKeyPair,
    DesiredSet,
    JournalOp,
    LiveKeyPair,
    LiveSnapshot,
    OpenIntent,
    Source,
    StateEntry,
)
from reconciler.output.reasons import why
from reconciler.planning.planner import Action, FindingKind, diff_tags, make_plan

SRC = Source("m.yaml", 1, 1)
R = "us-east-1"


def want(name: str, tags: dict[str, str | None] | None = None, **kw: object) -> DesiredKeyPair:
    return DesiredKeyPair(Address(R, name), tags or {}, SRC, **kw)  # type: ignore[arg-type]


def live(name: str, tags: dict[str, str | None] | None = None, fp: str = "aa:bb") -> LiveKeyPair:
    return LiveKeyPair(Address(R, name), f"arn:{name}", fp, 1.0, tags or {})


def entry(name: str, tags: dict[str, str | None] | None = None, **kw: object) -> StateEntry:
    base: dict[str, object] = {
        "origin": "created",
        "arn": f"arn:{name}",
        "fingerprint": "aa:bb",
        "created_at": 1.0,
        "tags": tags or {},
    }
    base.update(kw)
    return StateEntry(Address(R, name), **base)  # type: ignore[arg-type]


def desired(*kps: DesiredKeyPair) -> DesiredSet:
    return DesiredSet({kp.address: kp for kp in kps})


def snap(*kps: LiveKeyPair) -> LiveSnapshot:
    return LiveSnapshot({kp.address: kp for kp in kps}, (R,))


def index(entries: list[StateEntry]) -> dict[Address, StateEntry]:
    return {e.address: e for e in entries}


def test_absent_everywhere_is_created_with_tags() -> None:
    plan = make_plan(desired(want("web", {"env": "prod"})), {}, {}, snap())
    assert [(c.action, c.address.name) for c in plan.changes] == [(Action.CREATE, "web")]
    assert plan.changes[0].after_tags == {"env": "prod"}
    assert plan.has_changes


def test_in_sync_is_counted_unchanged() -> None:
    plan = make_plan(
        desired(want("web", {"a": "1"})),
        index([entry("web", {"a": "1"})]),
        {},
        snap(live("web", {"a": "1"})),
    )
    assert plan.changes == ()
    assert plan.unchanged == 1


def test_live_but_not_in_state_is_a_conflict_not_a_create() -> None:
    plan = make_plan(desired(want("web")), {}, {}, snap(live("web")))
    assert plan.changes == ()
    assert [f.kind for f in plan.findings] == [FindingKind.CONFLICT]
    assert "reconciler import us-east-1/web" in plan.findings[0].hint


def test_adopt_true_adopts_and_sets_tags() -> None:
    plan = make_plan(desired(want("web", {"a": "1"}, adopt=True)), {}, {}, snap(live("web")))
    (change,) = plan.changes
    assert change.action is Action.ADOPT
    assert change.tag_diff.set == {"a": "1"}


def test_tag_changes_distinguish_null_from_empty_string() -> None:
    diff = diff_tags({"a": None, "b": "x", "gone": "1"}, {"a": "", "b": "x", "new": None})
    assert diff.set == {"a": "", "new": None}
    assert diff.remove == ("gone",)


def test_pending_create_live_is_lost_key_and_replace_fixes_it() -> None:
    pending = {Address(R, "web"): OpenIntent(Address(R, "web"), "i1", 1.0)}
    plan = make_plan(desired(want("web")), {}, pending, snap(live("web")))
    assert plan.changes == ()
    assert plan.findings[0].kind is FindingKind.LOST_KEY
    assert "key material lost" in plan.findings[0].message
    assert "--replace us-east-1/web" in plan.findings[0].hint
    fixed = make_plan(
        desired(want("web")), {}, pending, snap(live("web")), replace={Address(R, "web")}
    )
    (change,) = fixed.changes
    assert change.action is Action.REPLACE and change.then is Action.CREATE
    assert change.expected_fingerprint == "aa:bb"


def test_pending_create_not_live_is_created_and_the_intent_closed() -> None:
    pending = {Address(R, "web"): OpenIntent(Address(R, "web"), "i1", 1.0)}
    plan = make_plan(desired(want("web")), {}, pending, snap())
    assert [c.action for c in plan.changes] == [Action.CREATE]
    assert [p.intent_id for p in plan.stale_pending] == ["i1"]


def test_pending_generate_live_is_recovered_not_lost() -> None:
    a = Address(R, "db")
    pending = {a: OpenIntent(a, "i1", 1.0, JournalOp.GENERATE, "PEM", "ssh-rsa AAAA")}
    plan = make_plan(desired(want("db", generate_local=True)), {}, pending, snap(live("db")))
    (change,) = plan.changes
    assert change.action is Action.ADOPT and change.recovered is not None
    assert change.origin == "generated"


def test_removed_from_manifests_kept_without_prune_deleted_with_it() -> None:
    state = index([entry("old")])
    plan = make_plan(desired(), state, {}, snap(live("old")))
    assert plan.changes == () and plan.orphaned == (Address(R, "old"),)
    pruned = make_plan(desired(), state, {}, snap(live("old", fp="zz")), prune=True)
    (change,) = pruned.changes
    assert change.action is Action.DELETE
    assert change.expected_fingerprint == "aa:bb"  # from the state, not what is live


def test_max_deletes_guard() -> None:
    state = index([entry(f"k{i}") for i in range(3)])
    live_all = snap(*(live(f"k{i}") for i in range(3)))
    with pytest.raises(PlanError, match="more than --max-deletes 2"):
        make_plan(desired(), state, {}, live_all, prune=True, max_deletes=2).raise_if_unsafe()
    make_plan(desired(), state, {}, live_all, prune=True, max_deletes=3).raise_if_unsafe()


def test_prevent_destroy_refuses_replace() -> None:
    kp = want("db", public_key="ssh-ed25519 NEW", prevent_destroy=True)
    state = index([entry("db", origin="imported", imported_public_key="ssh-ed25519 OLD")])
    plan = make_plan(desired(kp), state, {}, snap(live("db")))
    assert plan.changes[0].action is Action.REPLACE
    with pytest.raises(PlanError, match="preventDestroy"):
        plan.raise_if_unsafe()


def test_fingerprint_changed_outside_is_replaced() -> None:
    plan = make_plan(desired(want("web")), index([entry("web")]), {}, snap(live("web", fp="cc:dd")))
    (change,) = plan.changes
    assert change.action is Action.REPLACE and "outside" in why(change)


def test_deleted_outside_is_created_again() -> None:
    plan = make_plan(desired(want("web")), index([entry("web")]), {}, snap())
    assert [c.action for c in plan.changes] == [Action.CREATE]


def test_unmanaged_key_pairs_are_never_touched() -> None:
    plan = make_plan(desired(), {}, {}, snap(live("theirs")), prune=True)
    assert plan.changes == () and plan.findings == ()


def test_failed_region_is_a_finding_and_its_key_pairs_are_skipped() -> None:
    kp = DesiredKeyPair(Address("eu-west-1", "x"), {}, SRC)
    live_snap = LiveSnapshot({}, (R,), {"eu-west-1": "RegionSetupInProgressException"})
    plan = make_plan(desired(kp, want("web")), {}, {}, live_snap)
    assert [c.address.name for c in plan.changes] == ["web"]
    assert plan.findings[0].kind is FindingKind.REGION_FAILED


tag_values = st.one_of(st.none(), st.text(max_size=3))
tag_dicts = st.dictionaries(st.text(min_size=1, max_size=3), tag_values, max_size=6)


@given(tag_dicts, tag_dicts)
def test_applying_a_tag_diff_yields_the_wanted_tags(current: dict, wanted: dict) -> None:  # type: ignore[type-arg]
    diff = diff_tags(current, wanted)
    result = {k: v for k, v in current.items() if k not in diff.remove}
    result.update(diff.set)
    assert result == wanted
    assert bool(diff) == (current != wanted)


names = st.sets(st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True), max_size=8)


@given(names, names, names)
def test_plans_are_deterministic_and_sorted(wanted: set, stated: set, lived: set) -> None:  # type: ignore[type-arg]
    d = desired(*(want(n) for n in wanted))
    s = index([entry(n) for n in stated])
    l_ = snap(*(live(n) for n in lived))
    first = make_plan(d, s, {}, l_, prune=True, max_deletes=100)
    second = make_plan(d, s, {}, l_, prune=True, max_deletes=100)
    assert first == second
    assert list(first.changes) == sorted(first.changes, key=lambda c: c.sort_key())
    touched = {c.address.name for c in first.changes}
    # Never touch what is live but in neither manifests nor state.
    assert not touched & (lived - wanted - stated)
    # Every desired key pair is planned, unchanged, or a conflict.
    conflicts = {f.address.name for f in first.findings if f.address}
    assert wanted <= touched | conflicts | (wanted & stated & lived)
