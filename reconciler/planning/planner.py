"""The planner: a pure function of (desired, state, live) -> Plan.

It never calls Lightsail, never opens a file and never sees private keys
(except to carry a locally generated key found in an interrupted run's
journal into the state). Plans are deterministic: changes sorted by a fixed
action order, then by address, so the same inputs always print the same plan.

``make_plan`` walks every address once and hands it to one function per
case; each change it plans carries an action, a ``Reason`` and the ``Facts``
its wording needs: no English is written here (``reconciler.output.reasons``
words them for people). The values a plan is made of, and its guards, are in
``reconciler.planning.changes``; they are re-exported here.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import assert_never

from reconciler.model import (
    Address,
    DesiredKeyPair,
    DesiredSet,
    JournalOp,
    LiveKeyPair,
    LiveSnapshot,
    OpenIntent,
    StateEntry,
    region_of,
)
from reconciler.planning.changes import (
    ACTION_ORDER,
    CREATING,
    NO_FACTS,
    SYMBOLS,
    Action,
    Cause,
    Change,
    CreateStep,
    Facts,
    Finding,
    FindingKind,
    Plan,
    Reason,
    TagDiff,
    deletes,
    diff_tags,
    symbol,
)
from reconciler.planning.rotation import overdue_age

__all__ = [
    "ACTION_ORDER",
    "CREATING",
    "DEFAULT_MAX_DELETES_WITH_PRUNE",
    "NO_FACTS",
    "SYMBOLS",
    "Action",
    "Cause",
    "Change",
    "CreateStep",
    "Facts",
    "Finding",
    "FindingKind",
    "Plan",
    "Reason",
    "TagDiff",
    "deletes",
    "diff_tags",
    "make_plan",
    "manifest_replace_reason",
    "symbol",
]

DEFAULT_MAX_DELETES_WITH_PRUNE = 10


def _create_action(desired: DesiredKeyPair) -> CreateStep:
    if desired.public_key is not None:
        return Action.IMPORT
    if desired.generate_local:
        return Action.GENERATE
    return Action.CREATE


def _replace_reason(desired: DesiredKeyPair, prior: StateEntry, live: LiveKeyPair) -> Cause | None:
    if live.fingerprint and prior.fingerprint and live.fingerprint != prior.fingerprint:
        return Cause(Reason.FINGERPRINT_CHANGED)
    return manifest_replace_reason(desired, prior)


def manifest_replace_reason(desired: DesiredKeyPair, prior: StateEntry) -> Cause | None:
    """Why the manifests' key pair can only be had by replacing the recorded one, if so
    (``output.reasons.words`` says it for people).

    Shared with drift detection, so that drift reports an apply as due exactly
    when the planner would replace.
    """
    if prior.origin == "adopted":
        return None
    if desired.origin != prior.origin:
        return Cause(Reason.ORIGIN_CHANGED, Facts(wanted=desired.origin, recorded=prior.origin))
    if desired.public_key is not None and desired.public_key != prior.imported_public_key:
        return Cause(Reason.PUBLIC_KEY_CHANGED)
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
    stale: list[OpenIntent] = field(default_factory=list)
    unchanged: int = 0


@dataclass(frozen=True, slots=True)
class _Sides:
    """One address as the manifests, the state, Lightsail and the journal see it."""

    address: Address
    want: DesiredKeyPair | None
    prior: StateEntry | None
    have: LiveKeyPair | None
    waiting: OpenIntent | None


def make_plan(
    desired: DesiredSet,
    entries: Mapping[Address, StateEntry],
    pending: Mapping[Address, OpenIntent],
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
        if (regions is None or address.region in regions) and address.where in live.regions:
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
        regions=tuple(
            sorted(r for r in live.regions if regions is None or region_of(r) in regions)
        ),
        lineage=lineage,
        serial=serial,
        live_digest=live.digest(),
        prune=prune,
        max_deletes=max_deletes,
    )


def _region_failures(live: LiveSnapshot, regions: Collection[str] | None) -> list[Finding]:
    """One finding per account that could not be read, and one per region failing alone."""
    return [
        Finding(
            FindingKind.ACCOUNT_FAILED,
            None,
            unread.message,
            "its key pairs were not planned; fix the account's credentials and run again "
            "(the other accounts are planned as usual)",
        )
        if unread.account
        else Finding(
            FindingKind.REGION_FAILED,
            None,
            f"{unread.place}: {unread.message}",
            "its key pairs were not planned; run again when the region answers",
        )
        for unread in live.unread(regions)
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
            _delete(sides.address, sides.prior, sides.have, sides.want, Reason.DESTROY)
        )


def _plan_interrupted(sides: _Sides, asked: _Asked, out: _Collected) -> None:
    """Live, not in state, with an open intent: a create or generate an interrupted run made."""
    assert sides.waiting is not None and sides.have is not None
    address, want, have, waiting = sides.address, sides.want, sides.have, sides.waiting
    match waiting.operation:
        case JournalOp.GENERATE:
            if want is None:
                out.findings.append(_lost(address, recoverable=True))
                return
            out.changes.append(
                Change(
                    Action.ADOPT,
                    address,
                    Reason.RECOVER_GENERATED,
                    before_tags=have.tags,
                    after_tags=want.tags,
                    live=have,
                    recovered=waiting,
                    public_key=waiting.public_key,
                    protection=want.prevent_destroy,
                )
            )
        case JournalOp.CREATE:
            if address in asked.replace and want is not None:
                out.changes.append(_replace(address, want, have, Cause(Reason.REPLACE_LOST_KEY)))
            else:
                out.findings.append(_lost(address))
        case _:
            assert_never(waiting.operation)


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
            _delete(sides.address, sides.prior, sides.have, None, Reason.REMOVED_FROM_MANIFESTS)
        )


def _plan_unrecorded(sides: _Sides, want: DesiredKeyPair, asked: _Asked, out: _Collected) -> None:
    """Declared, not in state: create it, adopt it, replace it, or report a conflict."""
    address, have = sides.address, sides.have
    if have is None:
        out.changes.append(
            Change(
                _create_action(want),
                address,
                Reason.DECLARED,
                after_tags=want.tags,
                public_key=want.public_key,
                protection=want.prevent_destroy,
            )
        )
    elif want.adopt:
        out.changes.append(
            Change(
                Action.ADOPT,
                address,
                Reason.ADOPT_REQUESTED,
                before_tags=have.tags,
                after_tags=want.tags,
                live=have,
                protection=want.prevent_destroy,
            )
        )
    elif address in asked.replace:
        out.changes.append(_replace(address, want, have, Cause(Reason.REPLACE_REQUESTED)))
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
        why: Cause | None = Cause(Reason.REPLACE_REQUESTED)
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
                Reason.TAGS_DIFFER,
                before_tags=have.tags,
                after_tags=want.tags,
                live=have,
                prior=prior,
                protection=want.prevent_destroy,
            )
        )
    else:
        out.unchanged += 1


def _rotation_reason(want: DesiredKeyPair, have: LiveKeyPair, asked: _Asked) -> Cause | None:
    if have.address in asked.rotate:
        return Cause(Reason.ROTATE_REQUESTED)
    if want.rotation is None:
        return None
    age = overdue_age(want.rotation, have.created_at, asked.now)
    if age is None:
        return None
    return Cause(Reason.ROTATION_DUE, Facts(age=age, after=want.rotation.after))


def _recreate(address: Address, want: DesiredKeyPair, prior: StateEntry) -> Change:
    return Change(
        _create_action(want),
        address,
        Reason.DELETED_OUTSIDE,
        after_tags=want.tags,
        public_key=want.public_key,
        prior=prior,
        keep=_keep(want),
        protection=want.prevent_destroy,
    )


def _forget(address: Address, prior: StateEntry) -> Change:
    """Drop the entry of a key pair gone from Lightsail: no call, not a delete."""
    return Change(Action.FORGET, address, Reason.GONE_LIVE, prior=prior)


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
) -> Change:
    replaced = bool(
        prior.fingerprint and have.fingerprint and prior.fingerprint != have.fingerprint
    )
    return Change(
        Action.DELETE,
        address,
        code,
        Facts(replaced_outside=replaced) if replaced else NO_FACTS,
        before_tags=have.tags,
        expected_fingerprint=prior.fingerprint or have.fingerprint,
        live=have,
        prior=prior,
        # Gone from the manifests, a key pair keeps the protection the state recorded.
        prevent_destroy=want.prevent_destroy if want is not None else prior.prevent_destroy,
        protection=None if want is None else want.prevent_destroy,
    )


def _keep(want: DesiredKeyPair) -> int:
    return 0 if want.rotation is None else want.rotation.keep


def _replace(
    address: Address,
    want: DesiredKeyPair,
    have: LiveKeyPair,
    why: Cause,
    prior: StateEntry | None = None,
    *,
    action: Action = Action.REPLACE,
) -> Change:
    return Change(
        action,
        address,
        why.code,
        why.facts,
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
        protection=want.prevent_destroy,
    )
