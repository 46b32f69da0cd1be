"""The executor's retry and lost-key logic against an in-process Lightsail.

``FakeLightsail`` answers the calls the executor makes (``KeyPairCalls``: it
does not subclass the real client, so nothing can reach boto3) from a dict,
with scripted failures, and records every wait instead of sleeping; the journal
and state are the real local backend on disk. The same paths over real HTTP
against the emulator are in test_crash.py, test_emulator_faults.py and
test_cli_e2e.py; these pin the exact call sequences, quickly.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from reconciler.apply.executor import CREATE_ATTEMPTS, ApplyResult, Executor, KeyPairCalls
from reconciler.aws.lightsail import AmbiguousOutcome
from reconciler.aws.wire import CreatedKeyPair, ImportedKeyPair
from reconciler.errors import LightsailError
from reconciler.keys import GeneratedKey, generate_rsa
from reconciler.model import Address, JournalOp, LiveInstance, LiveKeyPair, StateEntry, Tags
from reconciler.planning.planner import Action, Change, CreateStep, Plan, Reason
from reconciler.state import LocalBackend
from reconciler.state.journal import read_journal

A = Address("us-east-1", "kp-a")


@functools.cache
def rsa_key() -> GeneratedKey:
    return generate_rsa()


class FakeLightsail:
    """Key pairs in a dict. ``script[(operation, name)]`` lists what successive
    calls do: "ok", "lost" (takes effect, the response is lost), "unknown"
    (no effect, the outcome looks unknown) or "name-exists"."""

    def __init__(self, script: Mapping[tuple[str, str], list[str]] | None = None) -> None:
        self.live: dict[Address, LiveKeyPair] = {}
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.calls: list[tuple[str, str]] = []
        self.waits: list[float] = []
        self.sleep: Callable[[float], None] = self.waits.append

    def _next(self, operation: str, address: Address) -> str:
        self.calls.append((operation, address.name))
        steps = self.script.get((operation, address.name))
        return steps.pop(0) if steps else "ok"

    def _make_live(self, address: Address, tags: Tags) -> LiveKeyPair:
        live = LiveKeyPair(
            address=address,
            arn=f"arn:aws:lightsail:{address.region}:123456789012:KeyPair/{address.name}",
            fingerprint="ab:cd",
            created_at=1.0,
            tags=dict(tags),
            support_code="x/y",
        )
        self.live[address] = live
        return live

    def _outcome(self, step: str, address: Address, tags: Tags) -> LiveKeyPair:
        if step == "name-exists" or (step != "unknown" and address in self.live):
            raise LightsailError(
                f"creating {address}: exists", code="InvalidInputException", detail="NameExists"
            )
        if step == "unknown":
            raise AmbiguousOutcome("Lightsail had an internal error", "ServiceException")
        live = self._make_live(address, tags)
        if step == "lost":
            raise AmbiguousOutcome("connection dropped", "ConnectionError")
        return live

    def create_key_pair(self, address: Address, tags: Tags) -> CreatedKeyPair:
        live = self._outcome(self._next("create", address), address, tags)
        return CreatedKeyPair(
            key_pair=live,
            tags=None,
            location=None,
            resource_type="KeyPair",
            public_key_base64=rsa_key().public_openssh,
            private_key=rsa_key().private_pem,
            operation=None,
        )

    def import_key_pair(self, address: Address, public_key: str) -> ImportedKeyPair:
        self._outcome(self._next("import", address), address, {})
        return ImportedKeyPair(None)

    def get_key_pair(self, address: Address) -> LiveKeyPair | None:
        self.calls.append(("get", address.name))
        return self.live.get(address)

    def tag(self, address: Address, tags: Tags) -> None:
        self.calls.append(("tag", address.name))
        live = self.live[address]
        self.live[address] = LiveKeyPair(
            live.address, live.arn, live.fingerprint, live.created_at, {**live.tags, **tags}
        )

    def untag(self, address: Address, keys: Iterable[str]) -> None:
        self.calls.append(("untag", address.name))

    def delete_key_pair(self, address: Address, expected_fingerprint: str | None) -> bool:
        self.calls.append(("delete", address.name))
        return self.live.pop(address, None) is not None


def test_the_fake_is_only_the_calls_the_executor_makes() -> None:
    fake: KeyPairCalls = FakeLightsail()  # mypy checks it is one, structurally
    assert not any(hasattr(fake, name) for name in ("client", "snapshot", "read"))


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[LocalBackend]:
    state = LocalBackend(tmp_path / "reconciler.state.json")
    with state.lock("apply"):
        yield state


def plan_of(*changes: Change) -> Plan:
    return Plan(
        changes=changes,
        findings=(),
        unchanged=0,
        orphaned=(),
        stale_pending=(),
        regions=("us-east-1",),
        lineage="test",
        serial=0,
        live_digest="",
    )


def apply(backend: LocalBackend, fake: FakeLightsail, *changes: Change) -> ApplyResult:
    backend.begin()
    try:
        return Executor(fake, backend.journal(), parallelism=2).run(plan_of(*changes))
    finally:
        backend.commit()


def create(address: Address = A) -> Change:
    return Change(Action.CREATE, address, Reason.DECLARED, after_tags={"team": "ops"})


def test_a_create_that_did_not_happen_is_sent_again_after_backoff(
    backend: LocalBackend,
) -> None:
    fake = FakeLightsail({("create", "kp-a"): ["unknown", "unknown", "ok"]})
    result = apply(backend, fake, create())
    assert result.ok
    # Each unknown outcome is checked with GetKeyPair before the create is repeated.
    assert fake.calls == [("create", "kp-a"), ("get", "kp-a")] * 2 + [("create", "kp-a")]
    assert len(fake.waits) == 2 and all(w >= 0 for w in fake.waits)
    doc = backend.read()
    assert doc.entries[A].private_key == rsa_key().private_pem
    assert doc.entries[A].tags == {"team": "ops"}
    assert not doc.pending


def test_a_create_that_happened_without_its_response_is_a_lost_key(
    backend: LocalBackend,
) -> None:
    fake = FakeLightsail({("create", "kp-a"): ["lost"]})
    result = apply(backend, fake, create())
    assert [f.lost_key for f in result.failed] == [True]
    assert "key material lost" in result.failed[0].message
    assert fake.calls == [("create", "kp-a"), ("get", "kp-a")]  # never sent twice
    doc = backend.read()
    assert A not in doc.entries
    assert list(doc.pending) == [A]  # left open for the next plan


def test_name_exists_after_an_unknown_outcome_is_a_lost_key(backend: LocalBackend) -> None:
    # The first create took effect after GetKeyPair looked (a slow commit).
    fake = FakeLightsail({("create", "kp-a"): ["unknown", "name-exists"]})
    result = apply(backend, fake, create())
    assert [f.lost_key for f in result.failed] == [True]
    assert list(backend.read().pending) == [A]


def test_a_create_that_keeps_failing_gives_up_and_closes_its_intent(
    backend: LocalBackend,
) -> None:
    fake = FakeLightsail({("create", "kp-a"): ["unknown"] * CREATE_ATTEMPTS})
    result = apply(backend, fake, create())
    assert [f.lost_key for f in result.failed] == [False]
    assert f"failed {CREATE_ATTEMPTS} times" in result.failed[0].message
    assert fake.calls.count(("create", "kp-a")) == CREATE_ATTEMPTS
    assert len(fake.waits) == CREATE_ATTEMPTS
    doc = backend.read()
    assert not doc.pending and A not in doc.entries


def test_name_taken_since_the_plan_fails_that_key_pair_only(backend: LocalBackend) -> None:
    b = Address("us-east-1", "kp-b")
    fake = FakeLightsail({("create", "kp-a"): ["name-exists"]})
    result = apply(backend, fake, create(), create(b))
    assert [f.address for f in result.failed] == [A]
    assert "taken in Lightsail after the plan" in result.failed[0].message
    assert [c.address for c in result.succeeded] == [b]
    doc = backend.read()
    assert set(doc.entries) == {b} and not doc.pending


def test_an_import_that_went_through_despite_an_error_is_not_sent_again(
    backend: LocalBackend,
) -> None:
    fake = FakeLightsail({("import", "kp-a"): ["lost"]})
    change = Change(
        Action.IMPORT,
        A,
        Reason.DECLARED,
        after_tags={},
        public_key=rsa_key().public_openssh,
    )
    result = apply(backend, fake, change)
    assert result.ok
    assert fake.calls == [("import", "kp-a"), ("get", "kp-a"), ("get", "kp-a")]
    entry = backend.read().entries[A]
    assert entry.origin == "imported" and entry.private_key is None


def protected_change(action: Action, fake: FakeLightsail, *, protection: bool | None) -> Change:
    """``action`` on kp-a declaring ``protection``; kp-a is live (and recorded, unprotected,
    with its key) for the actions that start from a live key pair."""
    prior = StateEntry(A, "created", "arn", "00:11", 1.0, {}, private_key=rsa_key().private_pem)
    starts_live: dict[Action, tuple[StateEntry | None, CreateStep | None]] = {
        Action.ADOPT: (None, None),
        Action.UPDATE_TAGS: (prior, None),
        Action.REPLACE: (prior, Action.CREATE),
        Action.ROTATE: (prior, Action.CREATE),
    }
    if action not in starts_live:
        public_key = rsa_key().public_openssh if action is Action.IMPORT else None
        return Change(action, A, Reason.DECLARED, public_key=public_key, protection=protection)
    recorded, then = starts_live[action]
    return Change(
        action,
        A,
        Reason.REPLACE_REQUESTED,
        after_tags={"team": "ops"},
        then=then,
        live=fake._make_live(A, {}),
        prior=recorded,
        protection=protection,
    )


@pytest.mark.parametrize(
    "action",
    [
        Action.CREATE,
        Action.IMPORT,
        Action.GENERATE,
        Action.ADOPT,
        Action.REPLACE,
        Action.ROTATE,
        Action.UPDATE_TAGS,
    ],
)
def test_every_entry_a_change_journals_carries_its_declared_protection(
    backend: LocalBackend, tmp_path: Path, action: Action
) -> None:
    fake = FakeLightsail()
    backend.begin()
    try:
        executor = Executor(fake, backend.journal(), parallelism=1)
        change = protected_change(action, fake, protection=True)
        assert executor.run(plan_of(change)).ok
        results = [
            r
            for r in read_journal(tmp_path / "reconciler.state.json.journal")
            if r["kind"] == "result"
        ]
    finally:
        backend.commit()
    # The first result is the one that makes the key durable: a crash after it keeps it.
    assert results and all(r["entry"].get("preventDestroy") is True for r in results)
    assert backend.read().entries[A].prevent_destroy


def test_a_change_declaring_no_protection_keeps_what_the_state_recorded(
    backend: LocalBackend,
) -> None:
    fake = FakeLightsail()
    change = protected_change(Action.UPDATE_TAGS, fake, protection=None)
    assert change.prior is not None
    change = dataclasses.replace(
        change, prior=dataclasses.replace(change.prior, prevent_destroy=True)
    )
    assert apply(backend, fake, change).ok
    assert backend.read().entries[A].prevent_destroy


def forget_run(
    backend: LocalBackend, tmp_path: Path, fake: FakeLightsail, change: Change
) -> tuple[ApplyResult, list[dict[str, Any]]]:
    """``change`` applied, with the journal records it made."""
    backend.begin()
    try:
        result = Executor(fake, backend.journal(), parallelism=1).run(plan_of(change))
        records = read_journal(tmp_path / "reconciler.state.json.journal")
    finally:
        backend.commit()
    return result, records


def test_a_forget_drops_the_entry_of_a_key_pair_gone_outside_with_no_call(
    backend: LocalBackend, tmp_path: Path
) -> None:
    fake = FakeLightsail()
    assert apply(backend, fake, create()).ok
    prior = backend.read().entries[A]
    del fake.live[A]  # deleted outside the tool
    fake.calls.clear()
    change = Change(Action.FORGET, A, Reason.GONE_LIVE, prior=prior)
    result, records = forget_run(backend, tmp_path, fake, change)
    assert result.ok and result.succeeded == [change]
    assert fake.calls == []  # nothing is sent: no DeleteKeyPair, not even a GetKeyPair
    assert [(r["kind"], r.get("op"), r.get("removed")) for r in records] == [
        ("intent", "forget", None),
        ("result", None, True),
    ]
    assert A not in backend.read().entries


def test_a_forget_keeps_the_keys_of_a_key_pair_instances_still_use(
    backend: LocalBackend, tmp_path: Path
) -> None:
    fake = FakeLightsail()
    assert apply(backend, fake, create()).ok
    prior = backend.read().entries[A]
    del fake.live[A]
    fake.calls.clear()
    instance = LiveInstance("us-east-1", "web-1", A, 2.0)
    change = Change(Action.FORGET, A, Reason.GONE_LIVE, prior=prior, instances=(instance,))
    result, records = forget_run(backend, tmp_path, fake, change)
    assert result.ok and fake.calls == []
    assert [r["kind"] for r in records] == ["intent", "result"] and "entry" in records[1]
    assert backend.read().entries[A].private_key == rsa_key().private_pem


def test_a_forget_cut_short_before_its_removal_leaves_the_entry(
    backend: LocalBackend, tmp_path: Path
) -> None:
    fake = FakeLightsail()
    assert apply(backend, fake, create()).ok
    backend.begin()
    try:
        backend.journal().intent(JournalOp.FORGET, A)  # the run dies here
    finally:
        backend.commit()
    assert A in backend.read().entries  # the next plan forgets it again
