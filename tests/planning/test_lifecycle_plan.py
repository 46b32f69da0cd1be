"""The lifecycle rules of the pure planner: deletes, replaces, guards, tag diffs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.errors import PlanError
from reconciler.model import (
    Address,
    DesiredKeyPair,
    DesiredSet,
    LiveKeyPair,
    LiveSnapshot,
    Source,
    StateEntry,
)
from reconciler.output.reasons import why
from reconciler.planning.planner import (
    DEFAULT_MAX_DELETES_WITH_PRUNE,
    Action,
    Plan,
    diff_tags,
    make_plan,
)

R = "us-east-1"
SRC = Source("m.yaml", 1, 1)
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
OTHER = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFhx5Ha4jU8cwPEZu1WfKdUDCzPqwFXeFSVBm2bgJq7V"


def want(name: str, **kw: object) -> DesiredKeyPair:
    tags = kw.pop("tags", {})
    return DesiredKeyPair(Address(R, name), tags, SRC, **kw)  # type: ignore[arg-type]


def entry(name: str, fingerprint: str = "state-fp", **kw: object) -> StateEntry:
    base: dict[str, object] = {"origin": "created", "arn": f"arn:{name}", "created_at": 1.0}
    base.update(kw)
    base.setdefault("tags", {})
    return StateEntry(Address(R, name), fingerprint=fingerprint, **base)  # type: ignore[arg-type]


def live(name: str, fingerprint: str = "state-fp") -> LiveKeyPair:
    return LiveKeyPair(Address(R, name), f"arn:{name}", fingerprint, 1.0, {})


def plan(
    wants: list[DesiredKeyPair],
    entries: list[StateEntry],
    lives: list[LiveKeyPair],
    **kw: object,
) -> Plan:
    return make_plan(
        DesiredSet({w.address: w for w in wants}),
        {e.address: e for e in entries},
        {},
        LiveSnapshot({kp.address: kp for kp in lives}, (R,)),
        **kw,  # type: ignore[arg-type]
    )


def actions(p: Plan) -> list[tuple[Action, str]]:
    return [(c.action, c.address.name) for c in p.changes]


def test_a_delete_expects_the_fingerprint_recorded_in_state() -> None:
    p = plan([], [entry("old")], [live("old", "replaced-outside")], prune=True)
    assert actions(p) == [(Action.DELETE, "old")]
    assert p.changes[0].expected_fingerprint == "state-fp"
    assert "Lightsail will refuse to delete it" in why(p.changes[0])
    same = plan([], [entry("old")], [live("old")], prune=True)
    assert why(same.changes[0]) == "removed from the manifests"


def test_a_replace_expects_exactly_the_fingerprint_it_saw_live() -> None:
    p = plan([want("kp")], [entry("kp")], [live("kp", "replaced-outside")])
    assert actions(p) == [(Action.REPLACE, "kp")]
    change = p.changes[0]
    assert change.expected_fingerprint == "replaced-outside"
    assert change.then is Action.CREATE and "replaced outside" in why(change)


def test_only_a_real_public_key_change_replaces() -> None:
    imported = entry("kp", origin="imported", imported_public_key=KEY)
    assert plan([want("kp", public_key=KEY)], [imported], [live("kp")]).changes == ()
    p = plan([want("kp", public_key=OTHER)], [imported], [live("kp")])
    assert actions(p) == [(Action.REPLACE, "kp")] and p.changes[0].then is Action.IMPORT
    assert why(p.changes[0]) == "the public key changed"


def test_asking_for_another_kind_of_key_replaces_and_says_so() -> None:
    p = plan([want("kp", public_key=KEY)], [entry("kp")], [live("kp")])
    assert why(p.changes[0]) == "the manifest now asks for an imported key pair (was created)"


def test_an_adopted_key_pair_is_never_replaced_for_its_manifest_key() -> None:
    adopted = entry("kp", origin="adopted")
    assert plan([want("kp", public_key=KEY)], [adopted], [live("kp")]).changes == ()


def test_orphans_are_kept_without_prune() -> None:
    p = plan([want("keep")], [entry("keep"), entry("gone")], [live("keep"), live("gone")])
    assert p.changes == () and p.orphaned == (Address(R, "gone"),)
    p.raise_if_unsafe()


def test_an_orphan_already_gone_live_is_only_forgotten() -> None:
    p = plan([], [entry("gone")], [], prune=True, max_deletes=0)
    assert actions(p) == [(Action.FORGET, "gone")] and p.changes[0].live is None
    assert why(p.changes[0]) == "gone live; forget it" and p.delete_count == 0
    p.raise_if_unsafe()  # a forget deletes nothing: --max-deletes 0 lets it through


def test_prune_has_a_default_max_deletes_that_can_be_raised() -> None:
    n = DEFAULT_MAX_DELETES_WITH_PRUNE + 1
    entries = [entry(f"kp-{i:02}") for i in range(n)]
    lives = [live(f"kp-{i:02}") for i in range(n)]
    p = plan([], entries, lives, prune=True)
    with pytest.raises(PlanError, match=f"deletes {n} key pairs, more than --max-deletes"):
        p.raise_if_unsafe()
    plan([], entries[:-1], lives[:-1], prune=True).raise_if_unsafe()
    plan([], entries, lives, prune=True, max_deletes=n).raise_if_unsafe()
    with pytest.raises(PlanError):
        plan([], entries[:2], lives[:2], prune=True, max_deletes=1).raise_if_unsafe()


def test_replaces_are_not_counted_as_deletes() -> None:
    p = plan([want("kp")], [entry("kp")], [live("kp", "other")], max_deletes=0)
    p.raise_if_unsafe()


def test_prevent_destroy_refuses_replace_and_destroy_but_not_tag_updates() -> None:
    guarded = want("kp", prevent_destroy=True, tags={"a": "1"})
    with pytest.raises(PlanError, match=r"preventDestroy: us-east-1/kp \(replace\)"):
        plan([guarded], [entry("kp")], [live("kp", "other")]).raise_if_unsafe()
    with pytest.raises(PlanError, match=r"preventDestroy: us-east-1/kp \(delete\)"):
        plan([guarded], [entry("kp")], [live("kp")], destroy=True).raise_if_unsafe()
    p = plan([guarded], [entry("kp")], [live("kp")])
    assert actions(p) == [(Action.UPDATE_TAGS, "kp")]
    p.raise_if_unsafe()


def test_destroy_touches_only_declared_key_pairs_in_state() -> None:
    p = plan(
        [want("mine"), want("not-applied")],
        [entry("mine"), entry("undeclared")],
        [live("mine"), live("undeclared"), live("not-applied"), live("stranger")],
        destroy=True,
    )
    assert actions(p) == [(Action.DELETE, "mine")]
    p.raise_if_unsafe()  # destroy's own deletes are not capped


def test_key_pairs_in_neither_state_nor_manifests_are_never_planned() -> None:
    p = plan(
        [],
        [],
        [live("stranger")],
        prune=True,
        replace=[Address(R, "stranger")],
        max_deletes=100,
    )
    assert p.changes == () and p.findings == () and p.orphaned == ()


tag_keys = st.sampled_from(["a", "b", "c", "d", "env", "owner"])
tag_values = st.one_of(st.none(), st.sampled_from(["", "x", "prod", "null"]))
tag_maps = st.dictionaries(tag_keys, tag_values, max_size=6)


@given(tag_maps, tag_maps)
def test_untag_then_tag_turns_any_tags_into_the_wanted_ones(
    current: dict[str, str | None], wanted: dict[str, str | None]
) -> None:
    diff = diff_tags(current, wanted)
    assert not set(diff.set) & set(diff.remove)
    after = {k: v for k, v in current.items() if k not in diff.remove}
    after.update(diff.set)
    assert after == wanted
    assert bool(diff) == (current != wanted)
    # Only what differs is sent: unchanged tags are not rewritten.
    assert all(k not in current or current[k] != v for k, v in diff.set.items())
