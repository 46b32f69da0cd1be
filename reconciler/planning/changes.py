"""What a plan is made of: actions, reasons, changes, findings, and the Plan with its guards.

Values only: nothing here reads or writes anything. ``Action`` is a closed
set and every switch over it ends in ``assert_never``, so a new action is
named by mypy wherever it must be handled. ``Reason`` says why a change is
planned, apart from the action, as Terraform's plans keep action and reason
apart; ``Facts`` carries what its wording needs, and
``reconciler.output.reasons`` words it for people. ``Plan.raise_if_unsafe``
refuses plans that would destroy a ``preventDestroy`` key pair, delete more
than ``max_deletes``, or delete, replace, rotate or forget a key pair that
instances were launched with. A ``forget`` (the state entry of a key pair
already gone from Lightsail) deletes nothing: it is not counted as a delete.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Literal, assert_never

from reconciler.errors import PlanError
from reconciler.model import (
    Address,
    LiveInstance,
    LiveKeyPair,
    OpenIntent,
    Origin,
    StateEntry,
    Tags,
)


class Action(StrEnum):
    REPLACE = "replace"
    ROTATE = "rotate"
    DELETE = "delete"
    # Drop the state entry of a key pair already gone from Lightsail: no call is made.
    FORGET = "forget"
    CREATE = "create"
    IMPORT = "import"
    GENERATE = "generate"
    ADOPT = "adopt"
    UPDATE_TAGS = "update-tags"


ACTION_ORDER = {action: i for i, action in enumerate(Action)}

# The actions that make a new key pair, on their own or after a replace or rotate.
CreateStep = Literal[Action.CREATE, Action.IMPORT, Action.GENERATE]


def symbol(action: Action) -> str:
    """The mark a plan shows beside a change (Terraform's; ``x`` for forget, which it has not)."""
    match action:
        case Action.CREATE | Action.IMPORT | Action.GENERATE:
            return "+"
        case Action.ADOPT:
            return "<="
        case Action.UPDATE_TAGS:
            return "~"
        case Action.REPLACE | Action.ROTATE:
            return "-/+"
        case Action.DELETE:
            return "-"
        case Action.FORGET:
            return "x"
        case _:
            assert_never(action)


SYMBOLS = {action: symbol(action) for action in Action}
CREATING: dict[CreateStep, Origin] = {
    Action.CREATE: "created",
    Action.IMPORT: "imported",
    Action.GENERATE: "generated",
}


class Reason(StrEnum):
    """Why a change is planned, for machines; ``output.reasons.why`` says it for people."""

    DECLARED = "declared"
    DELETED_OUTSIDE = "deleted-outside"
    ADOPT_REQUESTED = "adopt-requested"
    IMPORT_REQUESTED = "import-requested"
    RECOVER_GENERATED = "recover-generated"
    REPLACE_REQUESTED = "replace-requested"
    REPLACE_LOST_KEY = "replace-lost-key"
    FINGERPRINT_CHANGED = "fingerprint-changed"
    ORIGIN_CHANGED = "origin-changed"
    PUBLIC_KEY_CHANGED = "public-key-changed"
    TAGS_DIFFER = "tags-differ"
    REMOVED_FROM_MANIFESTS = "removed-from-manifests"
    GONE_LIVE = "gone-live"
    DESTROY = "destroy"
    ROTATION_DUE = "rotation-due"
    ROTATE_REQUESTED = "rotate-requested"


@dataclass(frozen=True, slots=True)
class Facts:
    """What a reason is worded from, beyond its code (``output.reasons`` words them)."""

    # ORIGIN_CHANGED: the origin the manifests ask for, and the one the state recorded.
    wanted: Origin | None = None
    recorded: Origin | None = None
    # ROTATION_DUE: the live key pair's age and the rotation's ``after``, in seconds.
    age: float | None = None
    after: float | None = None
    # A delete of a key pair whose live key material is not the recorded one: Lightsail
    # refuses it (expectedFingerprint).
    replaced_outside: bool = False
    # IMPORT_REQUESTED: by ``reconciler import --all`` (else ``reconciler import``).
    import_all: bool = False


NO_FACTS = Facts()


@dataclass(frozen=True, slots=True)
class Cause:
    """A reason and its facts, where there is no change to carry them (drift's pending)."""

    code: Reason
    facts: Facts = NO_FACTS


class FindingKind(StrEnum):
    LOST_KEY = "lost-key"
    CONFLICT = "conflict"
    REGION_FAILED = "region-failed"
    ACCOUNT_FAILED = "account-failed"


@dataclass(frozen=True, slots=True)
class Finding:
    """Something the plan cannot fix by itself; the user must act."""

    kind: FindingKind
    address: Address | None
    message: str
    hint: str


@dataclass(frozen=True, slots=True)
class TagDiff:
    set: Mapping[str, str | None]
    remove: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.set) or bool(self.remove)


def diff_tags(current: Tags, wanted: Tags) -> TagDiff:
    """Tags to set (added or changed, ``None`` kept distinct from "") and to remove."""
    missing = object()
    to_set = {k: v for k, v in sorted(wanted.items()) if current.get(k, missing) != v}
    to_remove = tuple(sorted(k for k in current if k not in wanted))
    return TagDiff(to_set, to_remove)


@dataclass(frozen=True, slots=True)
class Change:
    """One action on one key pair, with what it was and what it will be."""

    action: Action
    address: Address
    # Why, as a closed set (the JSON plan's ``reasonCode``); ``facts`` holds what its
    # wording needs, and ``output.reasons.why`` words both for people.
    code: Reason
    facts: Facts = NO_FACTS
    # Tags before (live) and after (desired); None where there is no such side.
    before_tags: Tags | None = None
    after_tags: Tags | None = None
    # For replace: how the new key pair comes to be (create/import/generate).
    then: CreateStep | None = None
    public_key: str | None = None
    # DeleteKeyPair's expectedFingerprint, so an out-of-band replacement is not deleted.
    expected_fingerprint: str | None = None
    # What to record for adopt; a pending generated key's material for recovery.
    live: LiveKeyPair | None = None
    prior: StateEntry | None = field(default=None, repr=False)
    recovered: OpenIntent | None = field(default=None, repr=False)
    prevent_destroy: bool = False
    # The preventDestroy the manifests declare for the entry this change records (in the
    # same journal record as its key); None, for a key pair no manifest declares, keeps
    # what the state recorded.
    protection: bool | None = None
    # Earlier private keys to keep besides the new one (replace and rotate).
    keep: int = 0
    # Instances launched with this key pair (read only for changes that delete).
    instances: tuple[LiveInstance, ...] = ()

    @property
    def tag_diff(self) -> TagDiff:
        return diff_tags(self.before_tags or {}, self.after_tags or {})

    @property
    def creates(self) -> CreateStep | None:
        """The create-like step this change performs, if any."""
        action = self.action
        match action:
            case Action.CREATE | Action.IMPORT | Action.GENERATE:
                return action
            case Action.REPLACE | Action.ROTATE:
                return self.then
            case Action.DELETE | Action.FORGET | Action.ADOPT | Action.UPDATE_TAGS:
                return None
            case _:
                assert_never(action)

    @property
    def deletes(self) -> bool:
        return deletes(self.action)

    @property
    def removes(self) -> bool:
        """It takes the key pair out of Lightsail or out of the state (delete, replace,
        rotate, forget): what instances launched with it stop it from doing."""
        return self.deletes or self.action is Action.FORGET

    @property
    def retires_keys(self) -> bool:
        """It may drop private keys the state keeps: it deletes or forgets the key pair, or
        records a new key over a recorded one (whose earlier keys are then pruned to
        ``keep``)."""
        return self.removes or (self.prior is not None and self.creates is not None)

    @property
    def origin(self) -> Origin:
        step = self.creates
        if step is not None:
            return CREATING[step]
        if self.prior is not None:
            return self.prior.origin
        if self.recovered is not None:
            return "generated"
        return "adopted"

    def sort_key(self) -> tuple[int, Address]:
        return ACTION_ORDER[self.action], self.address

    def listing_key(self) -> tuple[Address, int]:
        """Where a change is listed for people: by address, as Terraform lists them (the
        plan's own order, ``sort_key``, is the order they are carried out in)."""
        return self.address, ACTION_ORDER[self.action]


@dataclass(frozen=True, slots=True)
class Plan:
    changes: tuple[Change, ...]
    findings: tuple[Finding, ...]
    unchanged: int
    # In state, gone from the manifests, kept because --prune was not given.
    orphaned: tuple[Address, ...]
    # Pending creates that never went live: the executor clears their intents.
    stale_pending: tuple[OpenIntent, ...]
    regions: tuple[str, ...]
    lineage: str
    serial: int
    live_digest: str
    prune: bool = False
    max_deletes: int = 0
    # Key pairs with changes or findings that a --target/--exclude scope left out.
    left_out: tuple[Address, ...] = ()
    # --allow-in-use: touch key pairs instances were launched with (their keys are kept).
    allow_in_use: bool = False

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    @property
    def listed(self) -> tuple[Change, ...]:
        """The changes in address order, for output."""
        return tuple(sorted(self.changes, key=Change.listing_key))

    def counts(self) -> Counter[Action]:
        """How many changes of each action (an action with none counts 0)."""
        return Counter(change.action for change in self.changes)

    @property
    def delete_count(self) -> int:
        """The key pairs the plan deletes outright (what --max-deletes bounds); replaces,
        rotations and forgets are not deletes."""
        return self.counts()[Action.DELETE]

    @property
    def instance_regions(self) -> tuple[str, ...]:
        """Regions (``ACCOUNT/REGION`` with several accounts) whose instances must be read
        before this plan may be applied."""
        return tuple(sorted({c.address.where for c in self.changes if c.retires_keys}))

    def with_instances(self, instances: Collection[LiveInstance]) -> Plan:
        """This plan with each change that may drop keys told which instances name its key
        pair (those keys are kept while an instance may use them)."""
        by_key: dict[Address, list[LiveInstance]] = {}
        for instance in instances:
            if instance.key_pair is not None:
                by_key.setdefault(instance.key_pair, []).append(instance)
        changes = tuple(
            replace(c, instances=tuple(sorted(by_key.get(c.address, ())))) if c.retires_keys else c
            for c in self.changes
        )
        return replace(self, changes=changes)

    def raise_if_in_use(self) -> None:
        """Refuse to delete, replace, rotate or forget a key pair that instances were
        launched with."""
        used = [c for c in self.changes if c.removes and c.instances]
        if not used:
            return
        first = used[0]
        names = [i.name for i in first.instances]
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        others = f" (and {len(used) - 1} other key pair(s) in use)" if len(used) > 1 else ""
        verb = _in_use_verb(first.action)
        raise PlanError(
            f"refusing to {verb} {first.address}: {len(names)} instance(s) were launched "
            f"with it ({shown}) and keep its public key{others}; nothing was changed",
            hint="delete or relaunch those instances first, or pass --allow-in-use (its private "
            "key is then kept as a generation while any instance names it)",
        )

    def raise_if_unsafe(self) -> None:
        """Refuse a plan that breaks a guard; nothing is applied from it."""
        protected = [c for c in self.changes if c.deletes and c.prevent_destroy]
        if protected:
            names = ", ".join(f"{c.address} ({c.action})" for c in protected)
            raise PlanError(
                f"the plan would destroy key pairs marked preventDestroy: {names}",
                hint="if this is really wanted, remove preventDestroy from the manifest first "
                "(for a key pair no longer in the manifests: `reconciler state unprotect "
                "REGION/NAME`)",
            )
        if not self.allow_in_use:
            self.raise_if_in_use()
        if self.delete_count > self.max_deletes:
            raise PlanError(
                f"the plan deletes {self.delete_count} key pairs, more than --max-deletes "
                f"{self.max_deletes}",
                hint=f"check the manifests; to go ahead, pass --max-deletes {self.delete_count}",
            )


def deletes(action: Action) -> bool:
    """Whether ``action`` deletes the live key pair (and so its public key from Lightsail)."""
    match action:
        case Action.DELETE | Action.REPLACE | Action.ROTATE:
            return True
        case (
            Action.FORGET
            | Action.CREATE
            | Action.IMPORT
            | Action.GENERATE
            | Action.ADOPT
            | Action.UPDATE_TAGS
        ):
            return False
        case _:
            assert_never(action)


def _in_use_verb(action: Action) -> str:
    """What a plan refused for instances would have done to the key pair."""
    match action:
        case Action.ROTATE:
            return "rotate"
        case Action.FORGET:
            return "forget"
        case Action.DELETE | Action.REPLACE:
            return "delete or replace"
        case Action.CREATE | Action.IMPORT | Action.GENERATE | Action.ADOPT | Action.UPDATE_TAGS:
            raise AssertionError(f"{action} does not remove a key pair")
        case _:
            assert_never(action)
