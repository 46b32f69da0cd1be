"""Rotation and generations in the planner and in ``rotation``: pure, built by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.errors import PlanError
from reconciler.keys import generate_rsa
from reconciler.manifests.load import load_desired
from reconciler.model import Address, Generation, LiveInstance, Rotation, StateEntry, parse_duration
from reconciler.output.common import COLOR_OF
from reconciler.output.jsondoc import plan_json
from reconciler.output.reasons import why
from reconciler.planning.planner import SYMBOLS, Action, Reason, deletes, make_plan
from reconciler.planning.rotation import describe_age, prune, rotation_due, succeed
from reconciler.state import crypto, entry_to_json
from reconciler.state.crypto import Unsealer
from tests.manifests.test_manifest import manifest, problems, write
from tests.planning.test_plan import R, desired, entry, index, live, snap, want
from tests.state.test_crypto import AgeKey, age_sealer

DAY = 86400.0
NOW = 1_000 * DAY


def aged(name: str, days: float, fp: str = "aa:bb"):  # type: ignore[no-untyped-def]
    kp = live(name, fp=fp)
    return type(kp)(kp.address, kp.arn, kp.fingerprint, NOW - days * DAY, kp.tags)


def test_durations_in_days_and_hours() -> None:
    assert parse_duration("90d") == 90 * DAY
    assert parse_duration("36h") == 36 * 3600.0
    assert parse_duration("0d") is None and parse_duration("9w") is None
    assert describe_age(97.5 * DAY) == "97 days" and describe_age(36 * 3600.0) == "36 hours"


def test_a_key_pair_older_than_after_is_rotated_with_the_reason() -> None:
    plan = make_plan(
        desired(want("web", rotation=Rotation(90 * DAY, 2)), want("new", rotation=Rotation(DAY))),
        index([entry("web"), entry("new")]),
        {},
        snap(aged("web", 97), aged("new", 0.5)),
        now=NOW,
    )
    [change] = plan.changes
    assert change.action is Action.ROTATE and change.address.name == "web"
    assert change.code is Reason.ROTATION_DUE
    assert why(change) == "created 97 days ago; rotate after 90 days"
    assert change.then is Action.CREATE and change.keep == 2
    assert change.expected_fingerprint == "aa:bb" and change.deletes
    assert plan.unchanged == 1
    data = plan_json(plan)
    assert data["summary"]["rotate"] == 1
    assert data["changes"][0]["reasonCode"] == "rotation-due"
    assert data["changes"][0]["action"] == "rotate"


def test_rotate_on_request_and_replace_wins_over_rotation() -> None:
    kps = desired(want("a"), want("b", rotation=Rotation(DAY)))
    plan = make_plan(
        kps,
        index([entry("a"), entry("b")]),
        {},
        snap(aged("a", 1), aged("b", 5)),
        rotate={Address(R, "a")},
        replace={Address(R, "b")},
        now=NOW,
    )
    got = {c.address.name: (c.action, c.code) for c in plan.changes}
    assert got == {
        "a": (Action.ROTATE, Reason.ROTATE_REQUESTED),
        "b": (Action.REPLACE, Reason.REPLACE_REQUESTED),
    }


def test_preventdestroy_does_not_block_a_rotation() -> None:
    plan = make_plan(
        desired(want("web", prevent_destroy=True, rotation=Rotation(DAY))),
        index([entry("web")]),
        {},
        snap(aged("web", 3)),
        now=NOW,
    )
    plan.raise_if_unsafe()
    assert [c.action for c in plan.changes] == [Action.ROTATE]


def test_instances_block_deleting_changes_only() -> None:
    plan = make_plan(
        desired(want("web", rotation=Rotation(DAY)), want("db", {"a": "1"})),
        index([entry("web"), entry("db")]),
        {},
        snap(aged("web", 3), aged("db", 0)),
        now=NOW,
    )
    assert plan.instance_regions == (R,)
    users = [
        LiveInstance(R, "vm-1", Address(R, "web"), NOW - DAY),
        LiveInstance(R, "vm-2", Address(R, "db"), NOW - DAY),
        LiveInstance(R, "vm-3", None, NOW - DAY),
    ]
    seen = plan.with_instances(users)
    by_name = {c.address.name: c for c in seen.changes}
    assert [i.name for i in by_name["web"].instances] == ["vm-1"]
    assert by_name["db"].instances == ()  # a tag update cannot lock anyone out
    with pytest.raises(PlanError, match=r"refusing to rotate us-east-1/web: 1 instance\(s\)"):
        seen.raise_if_in_use()
    plan.raise_if_in_use()  # nothing read, nothing refused


def test_creating_again_over_a_recorded_key_pair_reads_instances_but_is_not_refused() -> None:
    plan = make_plan(desired(want("web")), index([entry("web")]), {}, snap(), now=NOW)
    [change] = plan.changes
    assert change.code is Reason.DELETED_OUTSIDE and not change.deletes
    assert plan.instance_regions == (R,)  # its earlier keys are pruned: instances count
    seen = plan.with_instances([LiveInstance(R, "vm", Address(R, "web"), NOW)])
    assert [i.name for i in seen.changes[0].instances] == ["vm"]
    seen.raise_if_in_use()  # nothing is deleted


def test_forgetting_a_key_pair_instances_still_use_is_refused() -> None:
    # Gone from Lightsail, but an instance still holds its public key: its private key
    # is the way in, so the plan that would drop it is refused like a delete.
    plan = make_plan(desired(), index([entry("web")]), {}, snap(), prune=True, now=NOW)
    [change] = plan.changes
    assert change.action is Action.FORGET and not change.deletes and change.retires_keys
    assert plan.instance_regions == (R,)
    seen = plan.with_instances([LiveInstance(R, "vm", Address(R, "web"), NOW)])
    with pytest.raises(PlanError, match=r"refusing to forget us-east-1/web: 1 instance\(s\)"):
        seen.raise_if_in_use()
    plan.raise_if_unsafe()  # with no instance naming it, no guard stops it


def retire(
    prior: StateEntry,
    new: StateEntry,
    *,
    keep: int,
    retired_at: float,
    instances: list[LiveInstance] | None = None,
) -> StateEntry:
    """What the executor records: ``new`` succeeding ``prior``, pruned to ``keep``."""
    succeeded = succeed(prior, new, retired_at=retired_at)
    return prune(succeeded, keep=keep, instances=instances or [])


def test_retire_keeps_keep_generations_and_those_instances_use() -> None:
    def gen(fp: str, created: float, retired: float) -> Generation:
        return Generation(
            entry("web", fingerprint=fp, created_at=created, private_key="k"), retired
        )

    old = entry(
        "web",
        fingerprint="g0",
        created_at=30.0,
        private_key="k0",
        generations=(gen("g1", 20.0, 30.0), gen("g2", 10.0, 20.0), gen("g3", 0.5, 10.0)),
    )
    new = entry("web", fingerprint="n", created_at=40.0, private_key="kn")
    assert [g.entry.fingerprint for g in retire(old, new, keep=2, retired_at=40.0).generations] == [
        "g0",
        "g1",
    ]
    # An instance launched while g3 was current keeps g3 however small keep is.
    vm = LiveInstance(R, "vm", Address(R, "web"), 5.0)
    kept = retire(old, new, keep=1, retired_at=40.0, instances=[vm])
    assert [g.entry.fingerprint for g in kept.generations] == ["g0", "g3"]
    # The state's double record of the old key (current and generation 1) is merged.
    twice = entry("web", fingerprint="g0", private_key="k0", generations=(gen("g0", 30.0, 40.0),))
    assert [g.entry.fingerprint for g in retire(twice, new, keep=5, retired_at=41).generations] == [
        "g0"
    ]


def test_every_action_has_a_symbol_a_colour_and_a_deletes_answer() -> None:
    for action in Action:
        assert SYMBOLS[action] and COLOR_OF[action]
        assert deletes(action) == (action in (Action.DELETE, Action.REPLACE, Action.ROTATE))


def test_rotation_due_needs_a_known_creation_time() -> None:
    assert rotation_due(Rotation(DAY), 0.0, NOW) is None
    assert rotation_due(Rotation(DAY), NOW - DAY, NOW) == "created 1 day ago; rotate after 1 day"


def test_state_encrypt_and_decrypt_reach_the_keys_of_generations(tmp_path: Path) -> None:
    age = AgeKey(tmp_path)
    old = generate_rsa().private_pem
    gen = Generation(entry("web", fingerprint="g1", private_key=old), 5.0)
    current = entry("web", fingerprint="n", private_key="k-now", generations=(gen,))
    sealed = crypto.seal_entries({current.address: current}, age_sealer(age))[current.address]
    assert sealed.private_key is None and sealed.generations[0].entry.private_key is None
    assert old not in dumps_entry(sealed)
    unsealer = Unsealer(age_identities=[str(age.file)], kms_client_factory=None)
    opened = crypto.unseal_entries({current.address: sealed}, unsealer)[current.address]
    assert opened.generations[0].entry.private_key == old and opened.private_key == "k-now"


def dumps_entry(value: StateEntry) -> str:
    return json.dumps(entry_to_json(value))


def test_rotate_in_manifests_defaults_and_its_errors_name_their_place(tmp_path: Path) -> None:
    good = manifest(
        "  - name: own\n    rotate: {after: 36h, keep: 3}\n",
        "  - name: inherits\n",
        "  - name: imported\n    publicKey: " + generate_rsa().public_openssh + "\n",
        extra="defaults:\n  rotate: {after: 90d}\n",
    )
    kps = load_desired([write(tmp_path / "ok.yaml", good)], root=tmp_path).key_pairs
    assert kps[Address(R, "own")].rotation == Rotation(36 * 3600.0, 3)
    assert kps[Address(R, "inherits")].rotation == Rotation(90 * DAY, 0)
    assert kps[Address(R, "imported")].rotation is None  # rotated by changing its key
    bad = manifest(
        "  - name: a\n    rotate: {after: 90 days}\n",
        "  - name: b\n    rotate: {after: 9d, keep: -1}\n",
        "  - name: c\n    publicKey: ssh-ed25519 AAAA\n    rotate: {after: 9d}\n",
    )
    found = problems([write(tmp_path / "bad.yaml", bad)], tmp_path)
    messages = [(p.line, p.message) for p in found if "rotate" in p.message]
    assert messages[:3] == [
        (6, "keyPairs[0].rotate.after must be a duration in whole days or hours, such as 90d "
         "or 36h, not '90 days'"),
        (8, "keyPairs[1].rotate.keep: -1 is less than the minimum of 0"),
        (11, "rotate cannot be combined with publicKey (give at most one of them)"),
    ]  # fmt: skip
