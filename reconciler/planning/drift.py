"""Drift detection: how far reality and the state have moved from each other.

``find_drift`` is pure: (desired, state, live) -> findings, each with a kind:

- ``deleted``: in state, gone from Lightsail;
- ``tags-changed``: live tags differ from the state;
- ``fingerprint-changed``: key material was replaced outside the tool;
- ``pending``: the manifests differ from the state (an apply is due);
- ``lost-key``: a create went live but its private key never reached the state;
- ``unmanaged``: live, in neither state nor manifests (only when asked);
- ``key-missing``: the key store no longer holds the private key the state refers to;
- ``key-fingerprint-changed``: the stored key is labelled with another fingerprint;
- ``unused``: a managed key pair that no instance was launched with (``--instances``);
- ``unmanaged-key-in-use``: instances launched with a key pair the tool does not
  manage (``--instances``).

The last two come from the key stores' metadata (``keystore.Custody.check``),
never from reading a secret value.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, assert_never

from reconciler.model import (
    DEFAULT_KEY_PAIR_NAME,
    Address,
    DesiredSet,
    JournalOp,
    LiveInstance,
    LiveSnapshot,
    OpenIntent,
    StateEntry,
)
from reconciler.planning.planner import Cause, diff_tags, manifest_replace_reason


class DriftKind(StrEnum):
    DELETED = "deleted"
    TAGS_CHANGED = "tags-changed"
    FINGERPRINT_CHANGED = "fingerprint-changed"
    PENDING = "pending"
    LOST_KEY = "lost-key"
    UNMANAGED = "unmanaged"
    KEY_MISSING = "key-missing"
    KEY_FINGERPRINT_CHANGED = "key-fingerprint-changed"
    UNUSED = "unused"
    UNMANAGED_KEY_IN_USE = "unmanaged-key-in-use"


def is_error(kind: DriftKind) -> bool:
    """Whether a finding of ``kind`` needs the user (a key that may be lost) rather than an
    apply or a look: errors in reports, the others warnings."""
    match kind:
        case DriftKind.LOST_KEY | DriftKind.KEY_MISSING:
            return True
        case (
            DriftKind.DELETED
            | DriftKind.TAGS_CHANGED
            | DriftKind.FINGERPRINT_CHANGED
            | DriftKind.PENDING
            | DriftKind.UNMANAGED
            | DriftKind.KEY_FINGERPRINT_CHANGED
            | DriftKind.UNUSED
            | DriftKind.UNMANAGED_KEY_IN_USE
        ):
            return False
        case _:
            assert_never(kind)


@dataclass(frozen=True, slots=True)
class DriftFinding:
    kind: DriftKind
    address: Address
    detail: str
    expected: Any = None
    actual: Any = None
    # Why an apply is due, when it is the planner's replace reason: ``find_drift`` puts
    # its code in ``detail``, and ``worded`` has the caller's words put in (a plan's).
    cause: Cause | None = None

    @property
    def is_error(self) -> bool:
        return is_error(self.kind)


# Puts a planner's reason in words (``output.reasons.cause``): handed in by the commands,
# since planning words no reason itself.
WordCause = Callable[[Cause], str]


def find_drift(
    desired: DesiredSet,
    entries: Mapping[Address, StateEntry],
    pending: Mapping[Address, OpenIntent],
    live: LiveSnapshot,
    *,
    include_unmanaged: bool = False,
    regions: Collection[str] | None = None,
) -> list[DriftFinding]:
    out: list[DriftFinding] = []

    def considered(a: Address) -> bool:
        return a.where in live.regions and (regions is None or a.region in regions)

    for address in sorted(entries):
        if not considered(address):
            continue
        entry = entries[address]
        have = live.key_pairs.get(address)
        if have is None:
            out.append(DriftFinding(DriftKind.DELETED, address, "in state, gone from Lightsail"))
            continue
        if entry.fingerprint and have.fingerprint and entry.fingerprint != have.fingerprint:
            out.append(
                DriftFinding(
                    DriftKind.FINGERPRINT_CHANGED,
                    address,
                    "key material was replaced outside the tool",
                    entry.fingerprint,
                    have.fingerprint,
                )
            )
        if diff_tags(entry.tags, have.tags):
            out.append(
                DriftFinding(
                    DriftKind.TAGS_CHANGED,
                    address,
                    "tags were changed outside the tool",
                    dict(sorted(entry.tags.items())),
                    dict(sorted(have.tags.items())),
                )
            )
    for address in sorted(pending):
        if not considered(address) or address not in live.key_pairs or address in entries:
            continue
        operation = pending[address].operation
        match operation:
            case JournalOp.CREATE:
                out.append(
                    DriftFinding(
                        DriftKind.LOST_KEY,
                        address,
                        "created in Lightsail, but its private key never reached the state",
                    )
                )
            case JournalOp.GENERATE:
                # The key was generated here and is held: nothing is lost, but an
                # apply (or `reconciler import`) still has to record it.
                out.append(
                    DriftFinding(
                        DriftKind.PENDING,
                        address,
                        "imported by an interrupted run with a locally generated key; "
                        "not yet recorded in the state",
                    )
                )
            case _:
                assert_never(operation)
    for address in sorted(set(desired.key_pairs) | set(entries)):
        if not considered(address):
            continue
        want = desired.key_pairs.get(address)
        stated = entries.get(address)
        if want is None:
            out.append(DriftFinding(DriftKind.PENDING, address, "in state, not in the manifests"))
        elif stated is None:
            if address not in pending or address not in live.key_pairs:
                out.append(DriftFinding(DriftKind.PENDING, address, "declared, not yet applied"))
        elif diff_tags(stated.tags, want.tags):
            out.append(
                DriftFinding(
                    DriftKind.PENDING,
                    address,
                    "manifest tags differ from the state",
                    dict(sorted(want.tags.items())),
                    dict(sorted(stated.tags.items())),
                )
            )
        elif (cause := manifest_replace_reason(want, stated)) is not None:
            out.append(DriftFinding(DriftKind.PENDING, address, cause.code.value, cause=cause))
    if include_unmanaged:
        known = set(entries) | set(desired.key_pairs) | set(pending)
        for address in sorted(live.key_pairs):
            if address not in known and considered(address):
                out.append(DriftFinding(DriftKind.UNMANAGED, address, "in Lightsail, in neither"))
    return sorted(out, key=lambda f: (f.address, list(DriftKind).index(f.kind)))


def worded(findings: list[DriftFinding], word: WordCause) -> list[DriftFinding]:
    """``findings`` with each planner's reason put in words by ``word``."""
    return [f if f.cause is None else replace(f, detail=word(f.cause)) for f in findings]


def instance_drift(
    entries: Mapping[Address, StateEntry],
    live: LiveSnapshot,
    instances: Iterable[LiveInstance],
    *,
    regions: Collection[str] | None = None,
    not_read: Collection[str] = (),
) -> list[DriftFinding]:
    """Managed key pairs no instance uses, and instances using key pairs not managed.

    ``not_read``: places whose instances could not be read, where nothing is unused.
    """
    users: dict[Address, list[str]] = {}
    for instance in instances:
        if instance.key_pair is not None:
            users.setdefault(instance.key_pair, []).append(instance.name)
    out: list[DriftFinding] = []
    for address in sorted(entries):
        read = address.where in live.regions and (regions is None or address.region in regions)
        read = read and address.where not in not_read
        if read and address in live.key_pairs and address not in users:
            out.append(DriftFinding(DriftKind.UNUSED, address, "no instance was launched with it"))
    for address, names in sorted(users.items()):
        if address not in entries:
            default = (
                " (Lightsail's default key pair)" if address.name == DEFAULT_KEY_PAIR_NAME else ""
            )
            out.append(
                DriftFinding(
                    DriftKind.UNMANAGED_KEY_IN_USE,
                    address,
                    f"instances launched with a key pair the tool does not manage{default}: "
                    + ", ".join(sorted(names)),
                    None,
                    sorted(names),
                )
            )
    return out


def refreshed(
    entries: Mapping[Address, StateEntry], live: LiveSnapshot
) -> dict[Address, StateEntry]:
    """The state entries updated to what is live: gone ones dropped, tags taken."""
    out: dict[Address, StateEntry] = {}
    for address, entry in entries.items():
        if address.where not in live.regions:
            out[address] = entry
            continue
        have = live.key_pairs.get(address)
        if have is not None:
            out[address] = replace(entry, tags=dict(have.tags))
    return out
