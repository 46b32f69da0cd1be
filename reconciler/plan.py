"""The planner: a pure function of (desired, state, live) -> Plan.

It never calls Lightsail, never opens a file and never sees private keys
(except to carry a locally generated key found in an interrupted run's
journal into the state). Plans are deterministic: changes sorted by a fixed
action order, then by address, so the same inputs always print the same plan.

Safety belongs here too: ``Plan.raise_if_unsafe`` refuses plans that would
destroy a ``preventDestroy`` key pair or delete more than ``max_deletes``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from reconciler.errors import PlanError
from reconciler.model import (
    Address,
    DesiredKeyPair,
    DesiredSet,
    LiveKeyPair,
    LiveSnapshot,
    Origin,
    PendingCreate,
    StateEntry,
    Tags,
    region_of,
)

DEFAULT_MAX_DELETES_WITH_PRUNE = 10


class Action(StrEnum):
    REPLACE = "replace"
    DELETE = "delete"
    CREATE = "create"
    IMPORT = "import"
    GENERATE = "generate"
    ADOPT = "adopt"
    UPDATE_TAGS = "update-tags"


ACTION_ORDER = {action: i for i, action in enumerate(Action)}
SYMBOLS = {
    Action.CREATE: "+",
    Action.IMPORT: "+",
    Action.GENERATE: "+",
    Action.ADOPT: "<=",
    Action.UPDATE_TAGS: "~",
    Action.REPLACE: "-/+",
    Action.DELETE: "-",
}
CREATING = {Action.CREATE: "created", Action.IMPORT: "imported", Action.GENERATE: "generated"}


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
        return self.action in (Action.DELETE, Action.REPLACE)

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
        if self.delete_count > self.max_deletes:
            raise PlanError(
                f"the plan deletes {self.delete_count} key pairs, more than --max-deletes "
                f"{self.max_deletes}",
                hint=f"check the manifests; to go ahead, pass --max-deletes {self.delete_count}",
            )


def _create_action(desired: DesiredKeyPair) -> Action:
    if desired.public_key is not None:
        return Action.IMPORT
    if desired.generate_local:
        return Action.GENERATE
    return Action.CREATE


def _replace_reason(desired: DesiredKeyPair, prior: StateEntry, live: LiveKeyPair) -> str | None:
    if live.fingerprint and prior.fingerprint and live.fingerprint != prior.fingerprint:
        return "the live fingerprint differs from state: key material was replaced outside"
    return manifest_replace_reason(desired, prior)


def manifest_replace_reason(desired: DesiredKeyPair, prior: StateEntry) -> str | None:
    """Why the manifests' key pair can only be had by replacing the recorded one, if so.

    Shared with drift detection, so that drift reports an apply as due exactly
    when the planner would replace.
    """
    if prior.origin == "adopted":
        return None
    if desired.origin != prior.origin:
        article = "an" if desired.origin[0] in "aeiou" else "a"
        return f"the manifest now asks for {article} {desired.origin} key pair (was {prior.origin})"
    if desired.public_key is not None and desired.public_key != prior.imported_public_key:
        return "the public key changed"
    return None


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
    regions: Collection[str] | None = None,
    destroy: bool = False,
) -> Plan:
    """Diff desired, state and live into a Plan.

    ``regions`` filters what is considered; key pairs in regions that could
    not be read are left out and reported as findings. ``destroy`` plans the
    deletion of every desired key pair in state (``reconciler destroy``).
    """
    changes: list[Change] = []
    findings: list[Finding] = []
    orphaned: list[Address] = []
    stale: list[PendingCreate] = []
    unchanged = 0

    def considered(address: Address) -> bool:
        return (regions is None or address.region in regions) and address.where in live.regions

    for region, message in sorted(live.failed_regions.items()):
        if regions is None or region_of(region) in regions:
            findings.append(
                Finding(
                    FindingKind.REGION_FAILED,
                    None,
                    f"{region}: {message}",
                    "its key pairs were not planned; run again when the region answers",
                )
            )

    addresses = sorted(set(desired.key_pairs) | set(entries) | set(pending))
    for address in addresses:
        if not considered(address):
            continue
        want = desired.key_pairs.get(address)
        prior = entries.get(address)
        have = live.key_pairs.get(address)
        waiting = pending.get(address)

        if destroy:
            if want is not None and prior is not None:
                if have is None:
                    changes.append(
                        Change(Action.DELETE, address, "gone live; forget it", prior=prior)
                    )
                else:
                    changes.append(_delete(address, prior, have, want, "destroy"))
            continue

        if prior is None and waiting is not None:
            if have is None:
                stale.append(waiting)  # the interrupted call never took effect
            elif waiting.operation == "generate":
                if want is None:
                    findings.append(_lost(address, recoverable=True))
                    continue
                changes.append(
                    Change(
                        Action.ADOPT,
                        address,
                        "recovering a locally generated key from an interrupted run",
                        before_tags=have.tags,
                        after_tags=want.tags,
                        live=have,
                        recovered=waiting,
                        public_key=waiting.public_key,
                    )
                )
                continue
            elif address in replace and want is not None:
                changes.append(
                    _replace(address, want, have, "replacing a key pair whose key was lost")
                )
                continue
            else:
                findings.append(_lost(address))
                continue

        if want is None:
            if prior is not None:
                if not prune:
                    orphaned.append(address)
                elif have is None:
                    changes.append(
                        Change(Action.DELETE, address, "gone live; forget it", prior=prior)
                    )
                else:
                    changes.append(
                        _delete(address, prior, have, None, "removed from the manifests")
                    )
            continue

        if prior is None:
            if have is None:
                action = _create_action(want)
                changes.append(
                    Change(
                        action,
                        address,
                        "declared in the manifests",
                        after_tags=want.tags,
                        public_key=want.public_key,
                    )
                )
            elif want.adopt:
                changes.append(
                    Change(
                        Action.ADOPT,
                        address,
                        "adopt: true in the manifest",
                        before_tags=have.tags,
                        after_tags=want.tags,
                        live=have,
                    )
                )
            elif address in replace:
                changes.append(_replace(address, want, have, "replace requested"))
            else:
                findings.append(
                    Finding(
                        FindingKind.CONFLICT,
                        address,
                        f"{address} already exists in Lightsail but is not in the state",
                        f"adopt it with `reconciler import {address}` (or `adopt: true` in "
                        f"{want.source}), or choose another name",
                    )
                )
            continue

        if have is None:
            changes.append(
                Change(
                    _create_action(want),
                    address,
                    "in state but deleted outside the tool; creating it again",
                    after_tags=want.tags,
                    public_key=want.public_key,
                    prior=prior,
                )
            )
            continue

        reason = "replace requested" if address in replace else _replace_reason(want, prior, have)
        if reason is not None:
            changes.append(_replace(address, want, have, reason, prior))
        elif diff_tags(have.tags, want.tags):
            changes.append(
                Change(
                    Action.UPDATE_TAGS,
                    address,
                    "tags differ",
                    before_tags=have.tags,
                    after_tags=want.tags,
                    live=have,
                    prior=prior,
                )
            )
        else:
            unchanged += 1

    if max_deletes is None:
        max_deletes = DEFAULT_MAX_DELETES_WITH_PRUNE if prune else 0
        if destroy:
            max_deletes = max(max_deletes, len(changes))
    return Plan(
        changes=tuple(sorted(changes, key=Change.sort_key)),
        findings=tuple(findings),
        unchanged=unchanged,
        orphaned=tuple(orphaned),
        stale_pending=tuple(stale),
        regions=tuple(
            sorted(r for r in live.regions if regions is None or region_of(r) in regions)
        ),
        lineage=lineage,
        serial=serial,
        live_digest=live.digest(),
        prune=prune,
        max_deletes=max_deletes,
    )


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
        before_tags=have.tags,
        expected_fingerprint=prior.fingerprint or have.fingerprint,
        live=have,
        prior=prior,
        # Gone from the manifests, a key pair keeps the protection the state recorded.
        prevent_destroy=want.prevent_destroy if want is not None else prior.prevent_destroy,
    )


def _replace(
    address: Address,
    want: DesiredKeyPair,
    have: LiveKeyPair,
    reason: str,
    prior: StateEntry | None = None,
) -> Change:
    return Change(
        Action.REPLACE,
        address,
        reason,
        before_tags=have.tags,
        after_tags=want.tags,
        then=_create_action(want),
        public_key=want.public_key,
        # Delete exactly what we saw live, nothing that appeared since.
        expected_fingerprint=have.fingerprint,
        live=have,
        prior=prior,
        prevent_destroy=want.prevent_destroy,
    )
