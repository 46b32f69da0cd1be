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

``run`` is the `drift` command: read, report, optionally refresh the state.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, assert_never

from reconciler.aws.lightsail import InstanceReading
from reconciler.cli import checks, workflow
from reconciler.cli import custody as key_commands
from reconciler.custody import KeyProblem, KeyProblemKind
from reconciler.errors import EXIT_CHANGES, EXIT_ERROR, EXIT_OK
from reconciler.manifests.load import load_desired
from reconciler.model import (
    DEFAULT_KEY_PAIR_NAME,
    Address,
    DesiredSet,
    JournalOp,
    LiveInstance,
    LiveSnapshot,
    OpenIntent,
    StateEntry,
    Unread,
    region_of,
)
from reconciler.output import formats, render
from reconciler.planning.planner import Cause, diff_tags, manifest_replace_reason
from reconciler.state import StateBackend

DRIFT_FORMAT_VERSION = 1
MARKER = "<!-- lightsail-reconciler:drift -->"


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


def with_key_problems(
    findings: list[DriftFinding], problems: list[KeyProblem]
) -> list[DriftFinding]:
    """``findings`` and the key stores' problems, in report order."""
    kinds = {
        KeyProblemKind.MISSING: DriftKind.KEY_MISSING,
        KeyProblemKind.FINGERPRINT: DriftKind.KEY_FINGERPRINT_CHANGED,
    }
    extra = [
        DriftFinding(kinds[p.kind], p.address, p.detail, p.expected, p.actual) for p in problems
    ]
    return sorted([*findings, *extra], key=lambda f: (f.address, list(DriftKind).index(f.kind)))


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


def report_json(findings: list[DriftFinding], live: LiveSnapshot) -> dict[str, Any]:
    counts = {kind.value: 0 for kind in DriftKind}
    for f in findings:
        counts[f.kind.value] += 1
    return {
        "formatVersion": DRIFT_FORMAT_VERSION,
        # A region that could not be read may hide drift: not in sync.
        "inSync": not findings and not live.failed_regions,
        "regions": list(live.regions),
        "failedRegions": dict(live.failed_regions),
        "failedAccounts": {u.place: u.message for u in live.unread() if u.account},
        "summary": counts,
        "findings": [
            {
                "kind": f.kind.value,
                "address": str(f.address),
                **({"account": f.address.account} if f.address.account else {}),
                "region": f.address.region,
                "name": f.address.name,
                "detail": f.detail,
                "expected": f.expected,
                "actual": f.actual,
            }
            for f in findings
        ],
    }


def report_text(findings: list[DriftFinding], live: LiveSnapshot) -> str:
    lines = [f"Regions read: {', '.join(live.regions) or '(none)'}"]
    lines.extend(f"Error: {u.describe()}" for u in live.unread())
    if not findings:
        if live.failed_regions:
            lines.append("No drift in the regions read; the others could not be checked.")
        else:
            lines.append("No drift: manifests, state and Lightsail agree.")
        return "\n".join(lines) + "\n"
    lines.append("")
    for f in findings:
        lines.append(f"  {f.kind.value:<20} {f.address}  {f.detail}")
        if f.expected is not None or f.actual is not None:
            lines.append(f"  {'':<20} expected {_short(f.expected)}; actual {_short(f.actual)}")
    lines.append("")
    lines.append(f"Drift: {len(findings)} finding(s).")
    return "\n".join(lines) + "\n"


def _short(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def report_markdown(findings: list[DriftFinding], live: LiveSnapshot) -> str:
    head = [MARKER]
    failed = [f"- :x: {u.describe()}" for u in live.unread()]
    if not findings:
        where = " in the regions read" if failed else ""
        head.append(f"### Lightsail key pairs: no drift{where}")
        return "\n".join(head + (["", *failed] if failed else [])) + "\n"
    head.append(f"### Lightsail key pairs: {len(findings)} drift finding(s)")
    if failed:
        head.extend(["", *failed])
    head.extend(["", "| kind | key pair | detail |", "| --- | --- | --- |"])
    head.extend(f"| `{f.kind}` | `{f.address}` | {f.detail} |" for f in findings)
    detail = ["", "<details><summary>Details</summary>", "", "```json"]
    detail.append(render.dumps(report_json(findings, live)).rstrip())
    detail.extend(["```", "", "</details>"])
    return render.cap_markdown("\n".join(head + detail) + "\n", command="reconciler drift")


@dataclass(frozen=True, slots=True)
class Observed:
    """Manifests, state and Lightsail as one run sees them (narrowed to its scope)."""

    desired: DesiredSet
    entries: Mapping[Address, StateEntry]
    pending: Mapping[Address, OpenIntent]
    live: LiveSnapshot
    findings: list[DriftFinding]
    backend: StateBackend
    # With ``include_instances``: the instances in scope, the regions they were read in,
    # and the places whose instances could not be read.
    instances: tuple[LiveInstance, ...] = ()
    instance_regions: tuple[str, ...] | None = None
    instances_unread: tuple[Unread, ...] = ()


def observe(
    paths: list[str],
    options: workflow.Options,
    *,
    include_unmanaged: bool,
    include_instances: bool = False,
    word: WordCause,
) -> Observed:
    """Read all three (the state without private keys) and find the drift between them.

    With ``include_instances`` the instances of the regions read are read too
    (paginated GetInstances), for the ``unused`` and ``unmanaged-key-in-use`` kinds;
    a place whose instances cannot be read is left out of those (``instances_unread``).
    """
    desired = load_desired(workflow.manifest_paths(paths), accounts=options.accounts)
    backend = workflow.open_backend(options)
    reading = InstanceReading((), (), {})
    read: tuple[str, ...] | None = None
    with workflow.lightsail_for(options) as lightsail:
        doc, live = workflow.observe(
            desired, workflow.read_without_secrets(backend), lightsail, options
        )
        if include_instances:
            filter_ = options.region_filter
            reading = lightsail.read_instances(
                r for r in live.regions if filter_ is None or region_of(r) in filter_
            )
            read = reading.read
    instances = reading.instances
    scope = options.scope
    desired, live = scope.desired(desired), scope.live(live)
    entries, pending = scope.only(doc.entries), scope.only(doc.pending)
    findings = find_drift(
        desired,
        entries,
        pending,
        live,
        include_unmanaged=include_unmanaged,
        regions=options.region_filter,
    )
    findings = worded(findings, word)
    findings = with_key_problems(
        findings, key_commands.check(options, doc, options.region_filter, entries=entries)
    )
    in_scope = [i for i in instances if i.key_pair is None or scope.covers(i.key_pair)]
    if include_instances:
        extra = instance_drift(
            entries, live, in_scope, regions=options.region_filter, not_read=reading.failed
        )
        findings = sorted(
            [*findings, *extra], key=lambda f: (f.address, list(DriftKind).index(f.kind))
        )
    return Observed(
        desired,
        entries,
        pending,
        live,
        findings,
        backend,
        tuple(in_scope),
        read,
        reading.unread(),
    )


def instances_unread_line(unread: Unread) -> str:
    """Where instances could not be read, in one line: an account once, or a region."""
    if unread.account:
        return f"instances of {unread.message}"
    return f"instances in {unread.place} could not be read: {unread.message}"


def run(args: argparse.Namespace, options: workflow.Options, *, word: WordCause) -> int:
    """The drift command; ``word`` puts the planner's reasons in words."""
    seen = observe(
        args.paths,
        options,
        include_unmanaged=args.include_unmanaged,
        include_instances=args.instances,
        word=word,
    )
    findings, live, backend, scope = seen.findings, seen.live, seen.backend, options.scope
    report = checks.drift_report(findings, seen.desired, live)
    sys.stdout.write(formats.get(args.format).drift(findings, live, report))
    if args.refresh:
        with backend.lock("drift --refresh", timeout=options.lock_timeout):
            current = backend.begin()
            # Entries out of scope are kept exactly as they are.
            new_entries = {a: e for a, e in current.entries.items() if not scope.covers(a)}
            new_entries.update(refreshed(scope.only(current.entries), live))
            if new_entries != current.entries:
                current.entries = new_entries
                backend.write(current)
                sys.stderr.write("State refreshed from Lightsail.\n")
    for unread in seen.instances_unread:
        sys.stderr.write(
            f"Error: {instances_unread_line(unread)}; no unused or in-use findings there\n"
        )
    if live.failed_regions or seen.instances_unread or report.policy_errors:
        return EXIT_ERROR
    return EXIT_CHANGES if findings else EXIT_OK
