"""Carries out a Plan against Lightsail with bounded parallelism.

Every mutating call is preceded by a durable intent in the write-ahead
journal, and every result is journaled before anything else happens with it:
a private key returned by CreateKeyPair is on disk (fsync) before the worker
so much as logs that the call succeeded. A create whose outcome is unknown is
checked with GetKeyPair and never blindly repeated; if it went live without
its key reaching us, its intent is left open so the next plan reports it as
``key material lost``.

Room comes before the call: each change reserves the journal bytes its
records can take (``RecordBudget``) before anything is sent, so a full disk
stops the run before a key pair is created that would have no home. The first
storage failure (a reservation refused, a journal write failing) stops the
run: no new change starts, changes in flight finish into their reserved room,
and the failure is reported once. Lightsail itself going away (connection
refused or timed out after the retries) stops the run the same way: changes
under way keep their intents open for the next plan to check, and the run
reports it once. Other failures stop only their own change.

The executor reaches Lightsail only through ``KeyPairCalls``, the few calls it
makes; ``aws.lightsail.Lightsail`` is one, a test's fake is another.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, assert_never

from reconciler.aws.lightsail import UNREACHABLE, AmbiguousOutcome
from reconciler.aws.retry import backoff
from reconciler.aws.wire import CreatedKeyPair, ImportedKeyPair
from reconciler.custody.base import KeyStoreError, held_in_state
from reconciler.errors import LightsailError, ReconcilerError, StorageError
from reconciler.keys import generate_rsa
from reconciler.model import (
    Address,
    Generation,
    JournalOp,
    LiveKeyPair,
    Origin,
    StateEntry,
    Tags,
)
from reconciler.planning.planner import Action, Change, Plan, diff_tags
from reconciler.planning.rotation import dropped, prune, succeed
from reconciler.state.backend import JournalWriter
from reconciler.state.records import RecordBudget

log = logging.getLogger(__name__)

# A create or import whose outcome was unknown (5xx, dropped connection) and
# that GetKeyPair shows did not happen is sent again, with backoff, up to this
# many times in all: at a 20% error rate that fails one create in ~400,000.
CREATE_ATTEMPTS = 8


_Outcome = Literal["done", "not started", "unrecorded", "cut off"]

# Seals a private key for its key pair's address; must not touch the network.
Seal = Callable[[Address, str], Mapping[str, Any]]
# Hands an entry whose key is journaled to the key store; returns the entry to record.
Keep = Callable[[StateEntry], StateEntry]


class KeyPairCalls(Protocol):
    """The Lightsail calls the executor makes, and nothing else (``aws.lightsail.Lightsail``
    is one; the mutating calls raise ``AmbiguousOutcome`` when they may have taken effect)."""

    def create_key_pair(self, address: Address, tags: Tags) -> CreatedKeyPair: ...

    def import_key_pair(self, address: Address, public_key: str) -> ImportedKeyPair: ...

    def get_key_pair(self, address: Address) -> LiveKeyPair | None: ...

    def tag(self, address: Address, tags: Tags) -> None: ...

    def untag(self, address: Address, keys: Iterable[str]) -> None: ...

    def delete_key_pair(self, address: Address, expected_fingerprint: str | None) -> bool:
        """Delete; False when it was already gone. A fingerprint mismatch raises."""
        ...

    def sleep(self, seconds: float, /) -> None:
        """Wait between attempts (a fake records the wait instead)."""
        ...


@dataclass(frozen=True, slots=True)
class Failure:
    address: Address
    action: Action
    message: str
    hint: str | None = None
    lost_key: bool = False


@dataclass
class ApplyResult:
    succeeded: list[Change] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    stopped: StorageError | None = None
    """The storage failure that stopped the run, if one did."""
    not_started: list[Change] = field(default_factory=list)
    """Changes for which nothing was sent because the run had stopped."""
    unrecorded: list[Change] = field(default_factory=list)
    """Changes under way whose outcome could not be journaled: the next plan checks them."""
    unreachable: LightsailError | None = None
    """Lightsail stopped answering (connection refused or timed out): the run stopped."""
    cut_off: list[Change] = field(default_factory=list)
    """Changes under way when Lightsail went away: open intents the next plan checks."""

    @property
    def ok(self) -> bool:
        return not self.failed and self.stopped is None and self.unreachable is None


class KeyMaterialLost(Exception):
    """A create took effect in Lightsail but its private key never reached us."""

    def __init__(self, message: str, *, storage: StorageError | None = None) -> None:
        super().__init__(message)
        self.storage = storage


class Executor:
    def __init__(
        self,
        lightsail: KeyPairCalls,
        journal: JournalWriter,
        *,
        parallelism: int = 10,
        seal: Seal | None = None,
        on_progress: Callable[[Change, Failure | None], None] | None = None,
        keep: Keep | None = None,
        forget: Callable[[StateEntry], None] | None = None,
    ) -> None:
        self.lightsail = lightsail
        self.journal = journal
        self.parallelism = max(1, parallelism)
        self.seal = seal
        self.keep = keep
        self.forget = forget
        self.on_progress = on_progress
        self.budget = RecordBudget(sealed=seal is not None)
        self._lock = threading.Lock()
        self._stopped: StorageError | None = None
        self._unreachable: LightsailError | None = None

    def reserve_bytes(self, plan: Plan) -> int:
        """The journal room the whole plan can take: what a preflight checks for."""
        return sum(self.change_bytes(change) for change in plan.changes)

    def change_bytes(self, change: Change) -> int:
        """The most journal bytes one change's records can take (reserved before its calls)."""
        address, budget = change.address, self.budget
        tags = change.after_tags or {}
        deleting = budget.intent(address) + budget.failed()
        deleting += budget.result(address, {}, private_key=False)
        action = change.action
        match action:
            case Action.ADOPT | Action.UPDATE_TAGS:
                return budget.intent(address) + 2 * budget.result(address, tags, private_key=True)
            case Action.FORGET:
                # The removal, or (kept while instances use it) the entry with every key.
                prior = change.prior
                if prior is None:
                    return budget.intent(address) + budget.result(address, {}, private_key=False)
                earlier = 1 + len(prior.generations)
                kept = earlier * budget.result(address, prior.tags, private_key=True)
                return budget.intent(address) + kept
            case Action.DELETE:
                total = deleting
            case Action.REPLACE | Action.ROTATE:
                total = deleting + self._making_bytes(change)
            case Action.CREATE | Action.IMPORT | Action.GENERATE:
                total = self._making_bytes(change)
            case _:
                assert_never(action)
        if change.prior is not None:
            # Succeeding a recorded entry: every result may also carry its earlier keys
            # (retired, deleted, created, stored, pruned), and the retire has an intent.
            earlier = 1 + len(change.prior.generations)
            keys = earlier * budget.result(address, tags, private_key=True)
            total += budget.intent(address) + 5 * keys
        return total

    def _making_bytes(self, change: Change) -> int:
        """The journal bytes of the create-like step of ``change``."""
        address, budget = change.address, self.budget
        result = budget.result(address, change.after_tags or {}, private_key=True)
        step = change.creates
        match step:
            case Action.CREATE:
                return budget.intent(address) + budget.failed() + result
            case Action.IMPORT | Action.GENERATE:
                return (
                    budget.intent(address) + budget.keygen(address) + budget.failed() + 2 * result
                )
            case None:
                return 0
            case _:
                assert_never(step)

    def run(self, plan: Plan) -> ApplyResult:
        result = ApplyResult()
        try:
            for pending in plan.stale_pending:
                # The interrupted call never took effect: close its intent.
                self.journal.failed(pending.intent_id, "not live at the next plan; no effect")
        except StorageError as e:
            result.stopped = e
            result.not_started = list(plan.changes)
            return result
        if not plan.changes:
            return result
        with ThreadPoolExecutor(max_workers=min(self.parallelism, len(plan.changes))) as pool:
            for change, failure, how in pool.map(self._run_one, plan.changes):
                if how == "not started":
                    result.not_started.append(change)
                elif how == "unrecorded":
                    result.unrecorded.append(change)
                elif how == "cut off":
                    result.cut_off.append(change)
                elif failure is None:
                    result.succeeded.append(change)
                else:
                    result.failed.append(failure)
        # A worker may have seen the journal's first refusal before the journal said
        # where the records it could not write went: report the journal's own account.
        result.stopped = (self.journal.stopped_by or self._stopped) if self._stopped else None
        result.unreachable = self._unreachable
        return result

    def _halt(self, error: StorageError) -> None:
        with self._lock:
            if self._stopped is None:
                log.debug("stopping: %s", error.message)
                self._stopped = error

    def _run_one(self, change: Change) -> tuple[Change, Failure | None, _Outcome]:
        if self._stopped is not None or self._unreachable is not None:
            return change, None, "not started"
        try:
            # Nothing is sent for a change unless its records have room.
            reservation = self.journal.reserve(self.change_bytes(change))
        except StorageError as e:
            self._halt(e)  # reported once for the run, not per change
            return change, None, "not started"
        failure: Failure | None = None
        try:
            with reservation:
                self._apply(change)
        except StorageError as e:
            self._halt(e)
            return change, None, "unrecorded"
        except KeyMaterialLost as e:
            if e.storage is not None:
                self._halt(e.storage)
            failure = Failure(
                change.address,
                change.action,
                str(e),
                hint=f"replace it: `reconciler apply --replace {change.address}`",
                lost_key=True,
            )
        except LightsailError as e:
            if e.code == UNREACHABLE:
                # The endpoint is gone (retries spent): no new change starts, and
                # this one is reported with the run, once, not as its own failure.
                with self._lock:
                    if self._unreachable is None:
                        self._unreachable = e
                return change, None, "cut off"
            failure = Failure(change.address, change.action, e.message, e.hint)
        except KeyStoreError as e:
            failure = Failure(change.address, change.action, e.message, e.hint)
        except ReconcilerError as e:  # e.g. a key that cannot be sealed: its own message
            failure = Failure(change.address, change.action, e.message, e.hint)
        except Exception as e:  # a bug must not hide the other workers' results
            log.debug("unexpected error applying %s", change.address, exc_info=True)
            failure = Failure(change.address, change.action, f"internal error: {type(e).__name__}")
        if self.on_progress is not None:
            with self._lock:
                self.on_progress(change, failure)
        return change, failure, "done"

    # -- one change ---------------------------------------------------------

    def _apply(self, change: Change) -> None:
        match change.action:
            case Action.DELETE:
                self._delete(change)
            case Action.FORGET:
                self._forget(change)
            case Action.REPLACE | Action.ROTATE:
                self._delete(change, kept=self._retire(change))
                self._make(change)
            case Action.CREATE | Action.IMPORT | Action.GENERATE:
                self._make(change)
            case Action.ADOPT:
                self.adopt(change)
            case Action.UPDATE_TAGS:
                self._update_tags(change)
            case _:
                assert_never(change.action)

    def _make(self, change: Change) -> None:
        step = change.creates
        match step:
            case Action.CREATE:
                self._create(change)
            case Action.IMPORT:
                assert change.public_key is not None
                self._import(change, change.public_key, private_key=None)
            case Action.GENERATE:
                self._generate(change)
            case None:
                raise AssertionError(f"{change.action} {change.address} makes no key pair")
            case _:
                assert_never(step)

    def _retire(self, change: Change) -> StateEntry | None:
        """Journal the key about to be replaced as a generation, before Lightsail forgets it.

        Until the new key is durable the state then records the old key twice (as
        the current key and as generation 1); ``rotation.succeed`` merges the two.
        """
        prior = change.prior
        if prior is None or not prior.has_private_key:
            return prior
        intent = self.journal.intent(JournalOp.RETIRE, change.address)
        generation = Generation(replace(prior, generations=()), time.time())
        retired = _declared(change, replace(prior, generations=(generation, *prior.generations)))
        self.journal.result(intent, retired)
        return retired

    def _protect(self, entry: StateEntry) -> StateEntry:
        """``entry`` with every key it holds in clear (its own, its generations') sealed."""
        if self.seal is None:
            return entry
        generations = tuple(replace(g, entry=self._protect(g.entry)) for g in entry.generations)
        if entry.private_key is not None:
            sealed = self.seal(entry.address, entry.private_key)
            entry = replace(entry, private_key=None, private_key_sealed=sealed)
        return replace(entry, generations=generations) if generations else entry

    def _record(self, intent: str, entry: StateEntry, change: Change | None = None) -> StateEntry:
        """Journal ``entry`` (its key sealed when sealing is on), then hand the key to the
        key store and journal the entry it returns (a reference, no key).

        An entry succeeding a recorded one (``change.prior``) first carries every
        earlier key; those beyond ``change.keep`` that no instance uses are dropped
        only once the new key is in its store.
        """
        entry = self._successor(change, entry)
        protected = self._protect(entry)
        self.journal.result(intent, protected)  # durable before anything else
        return self._hand_off(entry, intent, protected, change)

    def _successor(self, change: Change | None, entry: StateEntry) -> StateEntry:
        """``entry`` as ``change`` records it: with the protection the manifests declare
        (in the record that makes its key durable), carrying every earlier key of the
        entry it succeeds, if any."""
        if change is None:
            return entry
        entry = _declared(change, entry)
        if change.prior is None:
            return entry
        return succeed(change.prior, entry, retired_at=time.time())

    def _hand_off(
        self, entry: StateEntry, intent: str, protected: StateEntry, change: Change | None
    ) -> StateEntry:
        """Give a journaled key to the key store and journal the reference it returns; then
        drop the earlier keys ``change`` does not keep (once the new key is in its store)."""
        recorded = protected
        if self.keep is not None and held_in_state(protected):
            try:
                kept = self.keep(entry)
            except KeyStoreError as e:
                raise KeyStoreError(
                    f"{entry.address} was {entry.origin}, but its private key could not be "
                    f"stored: {e.message}",
                    hint="the key is kept in the state; the next apply stores it",
                ) from None
            if kept is not entry:
                recorded = self._protect(kept)
                self.journal.result(intent, recorded)
        if change is None or change.prior is None:
            return recorded
        pruned = prune(recorded, keep=change.keep, instances=change.instances)
        if pruned.generations != recorded.generations:
            self.journal.result(intent, pruned)
            if self.forget is not None:
                for generation in dropped(recorded, pruned):
                    self.forget(generation.entry)
        return pruned

    def _create(self, change: Change) -> None:
        address = change.address
        tags = dict(change.after_tags or {})
        intent = self.journal.intent(JournalOp.CREATE, address)
        ambiguous: AmbiguousOutcome | None = None
        for attempt in range(CREATE_ATTEMPTS):
            try:
                created = self.lightsail.create_key_pair(address, tags)
            except AmbiguousOutcome as e:
                log.info("%s: create outcome unknown (%s); checking", address, e.cause)
                ambiguous = e
                if self.lightsail.get_key_pair(address) is not None:
                    raise KeyMaterialLost(_lost_message(address)) from None
                self.lightsail.sleep(backoff(attempt))
                continue
            except LightsailError as e:
                if e.detail == "NameExists" and ambiguous is not None:
                    raise KeyMaterialLost(_lost_message(address)) from None
                self.journal.failed(intent, e.message)
                if e.detail == "NameExists":
                    raise LightsailError(
                        f"creating {address}: the name was taken in Lightsail after the plan "
                        "was made",
                        code=e.code,
                        detail=e.detail,
                        hint=f"run `reconciler plan` again; adopt it with "
                        f"`reconciler import {address}` if it is yours",
                    ) from None
                raise
            entry = self._successor(change, _created_entry(address, created, tags))
            protected = self._protect(entry)
            try:
                self.journal.result(intent, protected)  # durable before anything else
            except StorageError as e:
                raise KeyMaterialLost(
                    f"{address}: key material lost: Lightsail created the key pair but its "
                    f"private key could not be journaled ({e.message})",
                    storage=e,
                ) from None
            entry = self._hand_off(entry, intent, protected, change)
            if not entry.fingerprint:
                live = self.lightsail.get_key_pair(address)
                if live is not None:
                    self.journal.result(intent, _filled(entry, live))
            if created.problem is not None:
                # Its key is durable and nothing malformed was recorded: now say so.
                raise created.problem
            return
        # Every attempt's outcome was unknown and the key pair is not live:
        # nothing was created, so the intent is closed.
        code = ambiguous.code if ambiguous is not None else "ServiceException"
        self.journal.failed(intent, "CreateKeyPair kept failing")
        raise LightsailError(
            f"creating {address}: Lightsail failed {CREATE_ATTEMPTS} times and did not "
            f"create it ({code})",
            code=code,
            hint="nothing was created; run again later",
        )

    def _generate(self, change: Change) -> None:
        key = generate_rsa()
        self._import(change, key.public_openssh, private_key=key.private_pem)

    def _import(self, change: Change, public_key: str, *, private_key: str | None) -> None:
        address = change.address
        op = JournalOp.GENERATE if private_key is not None else JournalOp.IMPORT
        intent = self.journal.intent(op, address)
        if private_key is not None:
            # Sealed before it is journaled: the key is never on disk in clear.
            sealed = None if self.seal is None else self.seal(address, private_key)
            clear = private_key if sealed is None else None
            self.journal.keygen(intent, address, clear, public_key, private_key_sealed=sealed)
        operation: Mapping[str, Any] | None = None
        problem: LightsailError | None = None
        for attempt in range(CREATE_ATTEMPTS):
            try:
                imported = self.lightsail.import_key_pair(address, public_key)
                operation, problem = imported.operation, imported.problem
                break
            except AmbiguousOutcome as e:
                if self.lightsail.get_key_pair(address) is not None:
                    break  # our import went through; the key is one we hold
                if attempt + 1 == CREATE_ATTEMPTS:
                    self.journal.failed(intent, "ImportKeyPair kept failing")
                    raise LightsailError(
                        f"importing {address}: Lightsail failed {CREATE_ATTEMPTS} times and "
                        f"did not import it ({e.code})",
                        code=e.code,
                        hint="nothing was imported; run again later",
                    ) from None
                self.lightsail.sleep(backoff(attempt))
            except LightsailError as e:
                if e.detail == "NameExists" and attempt > 0:
                    break  # an earlier attempt with an unknown outcome went through
                self.journal.failed(intent, e.message)
                raise
        live = self._must_get(address)
        origin: Origin = "generated" if private_key is not None else "imported"
        entry = StateEntry(
            address=address,
            origin=origin,
            arn=live.arn,
            fingerprint=live.fingerprint,
            created_at=live.created_at,
            tags=dict(live.tags),
            public_key_base64=public_key,
            private_key=private_key,
            support_code=live.support_code,
            location={"availabilityZone": "all", "regionName": address.region},
            operation=operation,
            imported_public_key=_normalized(public_key),
        )
        entry = self._record(intent, entry, change)
        self._set_tags(intent, entry, live.tags, change.after_tags or {})
        if problem is not None:
            raise problem  # the import is recorded without what was malformed

    def adopt(self, change: Change) -> None:
        live = change.live
        assert live is not None
        recovered = change.recovered
        intent = self.journal.intent(JournalOp.ADOPT, change.address)
        entry = StateEntry(
            address=change.address,
            origin="generated" if recovered is not None else "adopted",
            arn=live.arn,
            fingerprint=live.fingerprint,
            created_at=live.created_at,
            tags=dict(live.tags),
            public_key_base64=recovered.public_key if recovered else None,
            private_key=recovered.private_key if recovered else None,
            private_key_sealed=recovered.private_key_sealed if recovered else None,
            support_code=live.support_code,
            location={"availabilityZone": "all", "regionName": change.address.region},
            imported_public_key=_normalized(recovered.public_key) if recovered else None,
        )
        entry = self._record(intent, entry, change)
        self._set_tags(intent, entry, live.tags, change.after_tags or {})

    def _update_tags(self, change: Change) -> None:
        assert change.prior is not None and change.live is not None
        intent = self.journal.intent(JournalOp.UPDATE_TAGS, change.address)
        entry = _declared(change, change.prior)
        self._set_tags(intent, entry, change.live.tags, change.after_tags or {})

    def _set_tags(self, intent: str, entry: StateEntry, current: Tags, wanted: Tags) -> None:
        diff = diff_tags(current, wanted)
        if not diff:
            return
        try:
            # Removals first: a key pair at Lightsail's 50-tag limit can only
            # swap a tag for another if the old one is gone before the new one lands.
            self.lightsail.untag(entry.address, diff.remove)
            self.lightsail.tag(entry.address, diff.set)
        except LightsailError:
            # Record what is really there now, then report the failure.
            live = self.lightsail.get_key_pair(entry.address)
            if live is not None:
                self.journal.result(intent, replace(entry, tags=dict(live.tags)))
            raise
        self.journal.result(intent, replace(entry, tags=dict(wanted)))

    def _delete(self, change: Change, *, kept: StateEntry | None = None) -> None:
        """Delete the live key pair; ``kept`` is what the state keeps of it when it is
        replaced under the same name (its keys, until the new one is recorded)."""
        address = change.address
        intent = self.journal.intent(JournalOp.DELETE, address)
        try:
            self.lightsail.delete_key_pair(address, change.expected_fingerprint)
        except LightsailError as e:
            self.journal.failed(intent, e.message)
            if e.detail == "FingerprintMismatch":
                raise LightsailError(
                    f"deleting {address}: its key material was replaced outside the tool "
                    "since it was recorded; not deleted",
                    code=e.code,
                    detail=e.detail,
                    hint="run `reconciler drift` to inspect it",
                ) from None
            raise
        prior = change.prior
        if kept is None and prior is not None and change.instances and _holds_keys(prior):
            # Deleted with --allow-in-use: instances still hold its public key, so the
            # state keeps its private keys until no instance names it (a later
            # `apply --prune` then forgets it).
            log.warning("%s: deleted; its private key is kept while instances use it", address)
            kept = prior
        if kept is not None:
            # Its keys stay (until the new one is in).
            self.journal.result(intent, _declared(change, kept))
            return
        self._removed(intent, address, prior)

    def _forget(self, change: Change) -> None:
        """Drop the state entry of a key pair already gone from Lightsail: no call is made.

        Journaled like a delete (an intent, then the removal), so a run cut short in
        between leaves the entry, and the next plan forgets it again.
        """
        address, prior = change.address, change.prior
        intent = self.journal.intent(JournalOp.FORGET, address)
        if prior is not None and change.instances and _holds_keys(prior):
            # Forgotten with --allow-in-use: instances still hold its public key, so the
            # state keeps its private keys until no instance names it.
            log.warning(
                "%s: not forgotten; its private key is kept while instances use it", address
            )
            self.journal.result(intent, _declared(change, prior))
            return
        self._removed(intent, address, prior)

    def _removed(self, intent: str, address: Address, prior: StateEntry | None) -> None:
        """Journal that the entry at ``address`` is gone, then drop its stored keys."""
        self.journal.removed(intent, address)
        if self.forget is not None and prior is not None:
            for stored in (prior, *(g.entry for g in prior.generations)):
                self.forget(stored)  # its stored keys, now that the key pair is gone

    def _must_get(self, address: Address) -> LiveKeyPair:
        live = self.lightsail.get_key_pair(address)
        if live is None:
            raise LightsailError(
                f"{address}: imported but not readable afterwards", code="NotFoundException"
            )
        return live


def _declared(change: Change, entry: StateEntry) -> StateEntry:
    """``entry`` with the preventDestroy ``change`` declares; as recorded if it declares none."""
    if change.protection is None or change.protection == entry.prevent_destroy:
        return entry
    return replace(entry, prevent_destroy=change.protection)


def _holds_keys(entry: StateEntry) -> bool:
    return entry.has_private_key or any(g.entry.has_private_key for g in entry.generations)


def _lost_message(address: Address) -> str:
    return (
        f"{address}: key material lost: Lightsail created the key pair but the response "
        "carrying its private key was lost"
    )


def _normalized(public_key: str | None) -> str | None:
    if public_key is None:
        return None
    parts = public_key.split()
    return " ".join(parts[:2])


def _created_entry(address: Address, created: CreatedKeyPair, tags: Tags) -> StateEntry:
    """The state entry of a created key pair: what the answer said (decoded strictly), its
    asked-for tags where it said none; a malformed key pair leaves only its keys."""
    kp = created.key_pair
    return StateEntry(
        address=address,
        origin="created",
        arn=kp.arn if kp else "",
        fingerprint=kp.fingerprint if kp else "",
        created_at=kp.created_at if kp else 0.0,
        tags=dict(created.tags) if created.tags is not None else dict(tags),
        public_key_base64=created.public_key_base64,
        private_key=created.private_key,
        support_code=kp.support_code if kp else "",
        location=dict(created.location) if created.location is not None else None,
        resource_type=created.resource_type,
        operation=created.operation,
    )


def _filled(entry: StateEntry, live: LiveKeyPair) -> StateEntry:
    """``entry`` with what its answer left out (a fingerprint, or a malformed key pair's
    fields) as GetKeyPair reads it back."""
    return replace(
        entry,
        fingerprint=entry.fingerprint or live.fingerprint,
        arn=entry.arn or live.arn,
        created_at=entry.created_at or live.created_at,
        support_code=entry.support_code or live.support_code,
    )
