"""The planner: a pure function of (desired, state, live) -> Plan.

It never calls Lightsail, never opens a file and never sees private keys
(except to carry a locally generated key found in an interrupted run's
journal into the state). Plans are deterministic: changes sorted by a fixed
action order, then by address, so the same inputs always print the same plan.

Safety belongs here too: ``Plan.raise_if_unsafe`` refuses plans that would
destroy a ``preventDestroy`` key pair, delete more than ``max_deletes``, or
delete, replace or rotate a key pair that instances were launched with.

Each change carries its action and, apart from it, a machine-readable
``Reason`` (the text shown beside it is rendered for people). ``make_plan``
walks every address once and hands it to one function per case.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import assert_never

from reconciler.errors import PlanError
from reconciler.model import (
    Address,
    DesiredKeyPair,
    DesiredSet,
    LiveInstance,
    LiveKeyPair,
    LiveSnapshot,
    Origin,
    PendingCreate,
    StateEntry,
    Tags,
)
from reconciler.rotation import rotation_due

DEFAULT_MAX_DELETES_WITH_PRUNE = 10


class Action(StrEnum):
    REPLACE = "replace"
    ROTATE = "rotate"
    DELETE = "delete"
    CREATE = "create"
    IMPORT = "import"
    GENERATE = "generate"
    ADOPT = "adopt"
    UPDATE_TAGS = "update-tags"


ACTION_ORDER = {action: i for i, action in enumerate(Action)}


def symbol(action: Action) -> str:
    """The mark a plan shows beside a change (Terraform's)."""
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
        case _:
            assert_never(action)


SYMBOLS = {action: symbol(action) for action in Action}
CREATING = {Action.CREATE: "created", Action.IMPORT: "imported", Action.GENERATE: "generated"}


class Reason(StrEnum):
    """Why a change is planned, for machines; ``Change.reason`` says it for people."""

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


class FindingKind(StrEnum):
    LOST_KEY = "lost-key"
    CONFLICT = "conflict"
    REGION_FAILED = "region-failed"


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
    reason: str
    # The reason as a closed set, for the JSON plan; ``reason`` is its text.
    code: Reason
    # Tags before (live) and after (desired); None where there is no such side.
    before_tags: Tags | None = None
    after_tags: Tags | None = None
    # For replace: how the new key pair comes to be (create/import/generate).
    then: Action | None = None
    public_key: str | None = None
    # DeleteKeyPair's expectedFingerprint, so an out-of-band replacement is not deleted.
    expected_fingerprint: str | None = None
    # What to record for adopt; a pending generated key's material for recovery.
    live: LiveKeyPair | None = None
    prior: StateEntry | None = field(default=None, repr=False)
    recovered: PendingCreate | None = field(default=None, repr=False)
    prevent_destroy: bool = False
    # Earlier private keys to keep besides the new one (replace and rotate).
    keep: int = 0
    # Instances launched with this key pair (read only for changes that delete).
    instances: tuple[LiveInstance, ...] = ()

    @property
    def tag_diff(self) -> TagDiff:
        return diff_tags(self.before_tags or {}, self.after_tags or {})

    @property
    def creates(self) -> Action | None:
        """The create-like step this change performs, if any."""
        if self.action in CREATING:
            return self.action
        return self.then

    @property
    def deletes(self) -> bool:
        return deletes(self.action)

    @property
    def origin(self) -> Origin:
        step = self.creates
        if step is not None:
            return "created" if step is Action.CREATE else CREATING[step]  # type: ignore[return-value]
        if self.prior is not None:
            return self.prior.origin
        if self.recovered is not None:
            return "generated"
        return "adopted"

    def sort_key(self) -> tuple[int, Address]:
        return ACTION_ORDER[self.action], self.address


@dataclass(frozen=True, slots=True)
class Plan:
    changes: tuple[Change, ...]
    findings: tuple[Finding, ...]
    unchanged: int
    # In state, gone from the manifests, kept because --prune was not given.
    orphaned: tuple[Address, ...]
    # Pending creates that never went live: the executor clears their intents.
    stale_pending: tuple[PendingCreate, ...]
    regions: tuple[str, ...]
    lineage: str
    serial: int
    live_digest: str
    prune: bool = False
    max_deletes: int = 0
    # Key pairs with changes or findings that a --target/--exclude scope left out.
    left_out: tuple[Address, ...] = ()
    # Whether the instances of ``instance_regions`` were read (``with_instances``).
    instances_read: bool = False
    # --allow-in-use: touch key pairs instances were launched with (their keys are kept).
    allow_in_use: bool = False

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def counts(self) -> dict[str, int]:
        out = {action.value: 0 for action in Action}
        for change in self.changes:
            out[change.action.value] += 1
        return out

    @property
    def delete_count(self) -> int:
        return sum(1 for c in self.changes if c.action is Action.DELETE)

    @property
    def instance_regions(self) -> tuple[str, ...]:
        """Regions whose instances must be read before this plan may be applied."""
        return tuple(sorted({c.address.region for c in self.changes if c.deletes}))

    def with_instances(self, instances: Collection[LiveInstance]) -> Plan:
        """This plan with each deleting change told which instances name its key pair."""
        by_key: dict[Address, list[LiveInstance]] = {}
        for instance in instances:
            if instance.key_pair is not None:
                by_key.setdefault(instance.key_pair, []).append(instance)
        changes = tuple(
            replace(c, instances=tuple(sorted(by_key.get(c.address, ())))) if c.deletes else c
            for c in self.changes
        )
        return replace(self, changes=changes, instances_read=True)

    def raise_if_in_use(self) -> None:
        """Refuse to delete, replace or rotate a key pair that instances were launched with."""
        used = [c for c in self.changes if c.deletes and c.instances]
        if not used:
            return
        first = used[0]
        names = [i.name for i in first.instances]
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        others = f" (and {len(used) - 1} other key pair(s) in use)" if len(used) > 1 else ""
        verb = "rotate" if first.action is Action.ROTATE else "delete or replace"
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
        case Action.CREATE | Action.IMPORT | Action.GENERATE | Action.ADOPT | Action.UPDATE_TAGS:
            return False
        case _:
            assert_never(action)


def _create_action(desired: DesiredKeyPair) -> Action:
    if desired.public_key is not None:
        return Action.IMPORT
    if desired.generate_local:
        return Action.GENERATE
    return Action.CREATE


def _replace_reason(
    desired: DesiredKeyPair, prior: StateEntry, live: LiveKeyPair
) -> tuple[Reason, str] | None:
    if live.fingerprint and prior.fingerprint and live.fingerprint != prior.fingerprint:
        return (
            Reason.FINGERPRINT_CHANGED,
            "the live fingerprint differs from state: key material was replaced outside",
        )
    return _manifest_replace(desired, prior)


def manifest_replace_reason(desired: DesiredKeyPair, prior: StateEntry) -> str | None:
    """Why the manifests' key pair can only be had by replacing the recorded one, if so.

    Shared with drift detection, so that drift reports an apply as due exactly
    when the planner would replace.
    """
    found = _manifest_replace(desired, prior)
    return None if found is None else found[1]


def _manifest_replace(desired: DesiredKeyPair, prior: StateEntry) -> tuple[Reason, str] | None:
    if prior.origin == "adopted":
        return None
    if desired.origin != prior.origin:
        article = "an" if desired.origin[0] in "aeiou" else "a"
        return (
            Reason.ORIGIN_CHANGED,
            f"the manifest now asks for {article} {desired.origin} key pair (was {prior.origin})",
        )
    if desired.public_key is not None and desired.public_key != prior.imported_public_key:
        return Reason.PUBLIC_KEY_CHANGED, "the public key changed"
    return None


@dataclass(frozen=True, slots=True)
class _Asked:
    """What the command asked for beyond the manifests."""

    prune: bool
    replace: Collection[Address]
    rotate: Collection[Address]
    destroy: bool
    now: float


@dataclass
class _Collected:
    """What planning each address adds up to."""

    changes: list[Change] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    orphaned: list[Address] = field(default_factory=list)
    stale: list[PendingCreate] = field(default_factory=list)
    unchanged: int = 0


@dataclass(frozen=True, slots=True)
class _Sides:
    """One address as the manifests, the state, Lightsail and the journal see it."""

    address: Address
    want: DesiredKeyPair | None
    prior: StateEntry | None
    have: LiveKeyPair | None
    waiting: PendingCreate | None


def make_plan(
    desired: DesiredSet,
    entries: Mapping[Address, StateEntry],
    pending: Mapping[Address, PendingCreate],
    live: LiveSnapshot,
    *,
    lineage: str = "",
    serial: int = 0,
    prune: bool = False,
    max_deletes: int | None = None,
    replace: Collection[Address] = (),
    rotate: Collection[Address] = (),
    regions: Collection[str] | None = None,
    destroy: bool = False,
    now: float | None = None,
) -> Plan:
    """Diff desired, state and live into a Plan.

    ``regions`` filters what is considered; key pairs in regions that could
    not be read are left out and reported as findings. ``destroy`` plans the
    deletion of every desired key pair in state (``reconciler destroy``).
    ``rotate`` rotates those key pairs now; ``now`` is the clock rotation ages
    are measured against (the current time when not given).
    """
    asked = _Asked(prune, replace, rotate, destroy, time.time() if now is None else now)
    out = _Collected()
    out.findings.extend(_region_failures(live, regions))
    for address in sorted(set(desired.key_pairs) | set(entries) | set(pending)):
        if (regions is None or address.region in regions) and address.region in live.regions:
            sides = _Sides(
                address,
                desired.key_pairs.get(address),
                entries.get(address),
                live.key_pairs.get(address),
                pending.get(address),
            )
            _plan_address(sides, asked, out)
    if max_deletes is None:
        max_deletes = DEFAULT_MAX_DELETES_WITH_PRUNE if prune else 0
        if destroy:
            max_deletes = max(max_deletes, len(out.changes))
    return Plan(
        changes=tuple(sorted(out.changes, key=Change.sort_key)),
        findings=tuple(out.findings),
        unchanged=out.unchanged,
        orphaned=tuple(out.orphaned),
        stale_pending=tuple(out.stale),
        regions=tuple(sorted(r for r in live.regions if regions is None or r in regions)),
        lineage=lineage,
        serial=serial,
        live_digest=live.digest(),
        prune=prune,
        max_deletes=max_deletes,
    )


def _region_failures(live: LiveSnapshot, regions: Collection[str] | None) -> list[Finding]:
    return [
        Finding(
            FindingKind.REGION_FAILED,
            None,
            f"{region}: {message}",
            "its key pairs were not planned; run again when the region answers",
        )
        for region, message in sorted(live.failed_regions.items())
        if regions is None or region in regions
    ]


def _plan_address(sides: _Sides, asked: _Asked, out: _Collected) -> None:
    """Hand one address to the function for its case."""
    if asked.destroy:
        _plan_destroy(sides, out)
    elif sides.prior is None and sides.waiting is not None and sides.have is not None:
        _plan_interrupted(sides, asked, out)
    else:
        if sides.prior is None and sides.waiting is not None:
            out.stale.append(sides.waiting)  # the interrupted call never took effect
        if sides.want is None:
            _plan_undeclared(sides, asked, out)
        elif sides.prior is None:
            _plan_unrecorded(sides, sides.want, asked, out)
        elif sides.have is None:
            out.changes.append(_recreate(sides.address, sides.want, sides.prior))
        else:
            _plan_recorded(sides.address, sides.want, sides.prior, sides.have, asked, out)


def _plan_destroy(sides: _Sides, out: _Collected) -> None:
    """``reconciler destroy``: every declared key pair the state records goes."""
    if sides.want is None or sides.prior is None:
        return
    if sides.have is None:
        out.changes.append(_forget(sides.address, sides.prior))
    else:
        out.changes.append(
            _delete(sides.address, sides.prior, sides.have, sides.want, Reason.DESTROY, "destroy")
        )


def _plan_interrupted(sides: _Sides, asked: _Asked, out: _Collected) -> None:
    """Live, not in state, with an open intent: a create or generate an interrupted run made."""
    assert sides.waiting is not None and sides.have is not None
    address, want, have, waiting = sides.address, sides.want, sides.have, sides.waiting
    if waiting.operation == "generate":
        if want is None:
            out.findings.append(_lost(address, recoverable=True))
            return
        out.changes.append(
            Change(
                Action.ADOPT,
                address,
                "recovering a locally generated key from an interrupted run",
                Reason.RECOVER_GENERATED,
                before_tags=have.tags,
                after_tags=want.tags,
                live=have,
                recovered=waiting,
                public_key=waiting.public_key,
            )
        )
    elif address in asked.replace and want is not None:
        out.changes.append(
            _replace(
                address,
                want,
                have,
                (Reason.REPLACE_LOST_KEY, "replacing a key pair whose key was lost"),
            )
        )
    else:
        out.findings.append(_lost(address))


def _plan_undeclared(sides: _Sides, asked: _Asked, out: _Collected) -> None:
    """In state, gone from the manifests: orphaned, or deleted with --prune."""
    if sides.prior is None:
        return
    if not asked.prune:
        out.orphaned.append(sides.address)
    elif sides.have is None:
        out.changes.append(_forget(sides.address, sides.prior))
    else:
        out.changes.append(
            _delete(
                sides.address,
                sides.prior,
                sides.have,
                None,
                Reason.REMOVED_FROM_MANIFESTS,
                "removed from the manifests",
            )
        )


def _plan_unrecorded(sides: _Sides, want: DesiredKeyPair, asked: _Asked, out: _Collected) -> None:
    """Declared, not in state: create it, adopt it, replace it, or report a conflict."""
    address, have = sides.address, sides.have
    if have is None:
        out.changes.append(
            Change(
                _create_action(want),
                address,
                "declared in the manifests",
                Reason.DECLARED,
                after_tags=want.tags,
                public_key=want.public_key,
            )
        )
    elif want.adopt:
        out.changes.append(
            Change(
                Action.ADOPT,
                address,
                "adopt: true in the manifest",
                Reason.ADOPT_REQUESTED,
                before_tags=have.tags,
                after_tags=want.tags,
                live=have,
            )
        )
    elif address in asked.replace:
        out.changes.append(
            _replace(address, want, have, (Reason.REPLACE_REQUESTED, "replace requested"))
        )
    else:
        out.findings.append(
            Finding(
                FindingKind.CONFLICT,
                address,
                f"{address} already exists in Lightsail but is not in the state",
                f"adopt it with `reconciler import {address}` (or `adopt: true` in "
                f"{want.source}), or choose another name",
            )
        )


def _plan_recorded(
    address: Address,
    want: DesiredKeyPair,
    prior: StateEntry,
    have: LiveKeyPair,
    asked: _Asked,
    out: _Collected,
) -> None:
    """Declared, in state and live: replace, rotate, retag, or leave it be."""
    if address in asked.replace:
        why: tuple[Reason, str] | None = (Reason.REPLACE_REQUESTED, "replace requested")
    else:
        why = _replace_reason(want, prior, have)
    if why is not None:
        out.changes.append(_replace(address, want, have, why, prior))
        return
    rotation = _rotation_reason(want, have, asked)
    if rotation is not None:
        out.changes.append(_replace(address, want, have, rotation, prior, action=Action.ROTATE))
    elif diff_tags(have.tags, want.tags):
        out.changes.append(
            Change(
                Action.UPDATE_TAGS,
                address,
                "tags differ",
                Reason.TAGS_DIFFER,
                before_tags=have.tags,
                after_tags=want.tags,
                live=have,
                prior=prior,
            )
        )
    else:
        out.unchanged += 1


def _rotation_reason(
    want: DesiredKeyPair, have: LiveKeyPair, asked: _Asked
) -> tuple[Reason, str] | None:
    if have.address in asked.rotate:
        return Reason.ROTATE_REQUESTED, "rotation requested (--rotate)"
    if want.rotation is None:
        return None
    due = rotation_due(want.rotation, have.created_at, asked.now)
    return None if due is None else (Reason.ROTATION_DUE, due)


def _recreate(address: Address, want: DesiredKeyPair, prior: StateEntry) -> Change:
    return Change(
        _create_action(want),
        address,
        "in state but deleted outside the tool; creating it again",
        Reason.DELETED_OUTSIDE,
        after_tags=want.tags,
        public_key=want.public_key,
        prior=prior,
        keep=_keep(want),
    )


def _forget(address: Address, prior: StateEntry) -> Change:
    return Change(Action.DELETE, address, "gone live; forget it", Reason.GONE_LIVE, prior=prior)


def _lost(address: Address, *, recoverable: bool = False) -> Finding:
    if recoverable:
        return Finding(
            FindingKind.LOST_KEY,
            address,
            f"{address}: a locally generated key was imported by an interrupted run, "
            "and the key pair is no longer in the manifests",
            f"declare {address} again to record it, or delete it in Lightsail",
        )
    return Finding(
        FindingKind.LOST_KEY,
        address,
        f"{address}: key material lost: Lightsail created the key pair but its private "
        "key never reached the state (the run was interrupted or the response was lost)",
        f"replace it: `reconciler apply --replace {address}` "
        f"(or `reconciler import {address}` to keep it without a private key)",
    )


def _delete(
    address: Address,
    prior: StateEntry,
    have: LiveKeyPair,
    want: DesiredKeyPair | None,
    code: Reason,
    reason: str,
) -> Change:
    if prior.fingerprint and have.fingerprint and prior.fingerprint != have.fingerprint:
        reason += (
            "; its key material was replaced outside the tool, so Lightsail will refuse "
            "to delete it (expectedFingerprint)"
        )
    return Change(
        Action.DELETE,
        address,
        reason,
        code,
        before_tags=have.tags,
        expected_fingerprint=prior.fingerprint or have.fingerprint,
        live=have,
        prior=prior,
        # Gone from the manifests, a key pair keeps the protection the state recorded.
        prevent_destroy=want.prevent_destroy if want is not None else prior.prevent_destroy,
    )


def _keep(want: DesiredKeyPair) -> int:
    return 0 if want.rotation is None else want.rotation.keep


def _replace(
    address: Address,
    want: DesiredKeyPair,
    have: LiveKeyPair,
    why: tuple[Reason, str],
    prior: StateEntry | None = None,
    *,
    action: Action = Action.REPLACE,
) -> Change:
    return Change(
        action,
        address,
        why[1],
        why[0],
        before_tags=have.tags,
        after_tags=want.tags,
        then=_create_action(want),
        public_key=want.public_key,
        # Delete exactly what we saw live, nothing that appeared since.
        expected_fingerprint=have.fingerprint,
        live=have,
        prior=prior,
        # A rotation keeps the old private key as a generation: nothing is lost.
        prevent_destroy=want.prevent_destroy and action is Action.REPLACE,
        keep=_keep(want),
    )
