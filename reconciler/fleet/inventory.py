"""`reconciler report PATH... --out report.html`: an inventory page for scheduled jobs.

``build_report`` is pure: (desired, state, live, drift findings, instances,
policy findings, now) -> a ``Report`` with one ``KeyPairRow`` per key pair
known anywhere (declared, recorded, live or named by an instance). A row
holds the instances launched with its key pair (``None`` when its region's
instances were not read), when its rotation falls due (the planner's rule,
``rotation.due_at``) and the policy's findings about it. ``report_html``
turns a Report into the page; this module never sees a private key (the
state is read without).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.cli import workflow
from reconciler.cli.checks import policy_findings
from reconciler.errors import EXIT_ERROR, EXIT_OK, UsageError
from reconciler.findings import Finding
from reconciler.model import (
    Address,
    DesiredSet,
    LiveInstance,
    LiveSnapshot,
    OpenIntent,
    StateEntry,
    Tags,
    account_of,
)
from reconciler.output import reasons
from reconciler.planning.drift import DriftFinding, instances_unread_line, observe
from reconciler.planning.rotation import due_at, rotation_due
from reconciler.state.files import write_output

# What a key pair is, seen from the tool: an origin recorded in the state, or
# one of these for key pairs the state does not hold.
UNMANAGED = "unmanaged"
DECLARED = "declared"

# What the report does where instances could not be read.
INSTANCES_UNKNOWN = "the report shows the instances of its key pairs as not known"


@dataclass(frozen=True, slots=True)
class KeyPairRow:
    """One key pair as the report shows it."""

    address: Address
    origin: str
    live: bool
    created_at: float | None
    tags: Tags
    findings: tuple[str, ...] = ()
    # Names of the instances launched with it; None: its region's instances were not read.
    instances: tuple[str, ...] | None = None
    # When ``createdAt + rotate.after`` falls; None without ``rotate`` or a known age.
    rotation_due: float | None = None
    # Whether the planner would rotate it now (``rotation.rotation_due``).
    rotation_now: bool = False
    policy: tuple[Finding, ...] = ()
    account: str | None = None


@dataclass(frozen=True, slots=True)
class RegionCount:
    region: str
    total: int
    managed: int
    unmanaged: int
    with_findings: int


@dataclass(frozen=True, slots=True)
class Report:
    generated_at: float
    rows: tuple[KeyPairRow, ...]
    regions: tuple[str, ...]
    failed_regions: Mapping[str, str] = field(default_factory=dict)
    source: str = ""
    # Where instances could not be read, one line each: there they show as not known.
    instances_unread: tuple[str, ...] = ()

    def region_counts(self) -> list[RegionCount]:
        """Counts per region (``ACCOUNT/REGION`` when the project declares several accounts)."""
        out: dict[str, list[KeyPairRow]] = {region: [] for region in self.regions}
        for row in self.rows:
            out.setdefault(row.address.where, []).append(row)
        return [
            RegionCount(
                region,
                len(rows),
                sum(1 for r in rows if r.origin not in (UNMANAGED, DECLARED)),
                sum(1 for r in rows if r.origin == UNMANAGED),
                sum(1 for r in rows if r.findings or r.policy),
            )
            for region, rows in sorted(out.items())
        ]

    def account_counts(self) -> list[RegionCount]:
        """The region counts summed per account alias (empty without several accounts)."""
        out: dict[str, RegionCount] = {}
        for c in self.region_counts():
            alias = account_of(c.region)
            if not alias:
                continue
            was = out.get(alias, RegionCount(alias, 0, 0, 0, 0))
            out[alias] = RegionCount(
                alias,
                was.total + c.total,
                was.managed + c.managed,
                was.unmanaged + c.unmanaged,
                was.with_findings + c.with_findings,
            )
        return [out[alias] for alias in sorted(out)]

    def age_days(self, row: KeyPairRow) -> float | None:
        if row.created_at is None:
            return None
        return max(0.0, (self.generated_at - row.created_at) / 86400)


def _findings_by_address(findings: Iterable[DriftFinding]) -> dict[Address, list[str]]:
    out: dict[Address, list[str]] = {}
    for f in findings:
        out.setdefault(f.address, []).append(f"{f.kind.value}: {f.detail}")
    return out


def build_report(
    desired: DesiredSet,
    entries: Mapping[Address, StateEntry],
    pending: Mapping[Address, OpenIntent],
    live: LiveSnapshot,
    findings: Iterable[DriftFinding],
    *,
    now: float,
    source: str = "",
    instances: Iterable[LiveInstance] = (),
    instance_regions: Iterable[str] | None = None,
    policy: Iterable[Finding] = (),
    instances_unread: Iterable[str] = (),
) -> Report:
    """The report; ``instances`` were read in ``instance_regions`` (None: nowhere), and
    ``instances_unread`` says where they could not be."""
    by_address = _findings_by_address(findings)
    users: dict[Address, list[str]] = {}
    for instance in instances:
        if instance.key_pair is not None:
            users.setdefault(instance.key_pair, []).append(instance.name)
    # The regions GetInstances was called for, as ``live.regions`` names them.
    read = set(instance_regions or ())
    by_key_pair: dict[str, list[Finding]] = {}
    for finding in policy:
        if finding.address is not None:
            by_key_pair.setdefault(finding.address, []).append(finding)
    rows: list[KeyPairRow] = []
    known = {*desired.key_pairs, *entries, *pending, *live.key_pairs, *users, *by_address}
    for address in sorted(known):
        have = live.key_pairs.get(address)
        entry = entries.get(address)
        want = desired.key_pairs.get(address)
        if entry is not None:
            origin: str = entry.origin
        elif want is None and address not in pending:
            origin = UNMANAGED
        else:
            origin = DECLARED
        created = have.created_at if have is not None else entry.created_at if entry else None
        tags = have.tags if have is not None else entry.tags if entry else {}
        rotation = want.rotation if want is not None else None
        # The planner rotates by the live key pair's age: none while it is not live.
        live_created = have.created_at if have is not None else 0.0
        rows.append(
            KeyPairRow(
                address=address,
                origin=origin,
                live=have is not None,
                created_at=created or None,
                tags=dict(tags),
                findings=tuple(by_address.get(address, ())),
                instances=(
                    tuple(sorted(users.get(address, ()))) if address.where in read else None
                ),
                rotation_due=None if rotation is None else due_at(rotation, live_created),
                rotation_now=(
                    rotation is not None and rotation_due(rotation, live_created, now) is not None
                ),
                policy=tuple(by_key_pair.get(str(address), ())),
            )
        )
    return Report(
        generated_at=now,
        rows=tuple(rows),
        regions=live.regions,
        failed_regions=dict(live.failed_regions),
        source=source,
        instances_unread=tuple(instances_unread),
    )


def run(args: argparse.Namespace, options: workflow.Options) -> int:
    from reconciler.output import html as report_html

    if not args.out:
        raise UsageError("report needs --out FILE", hint="e.g. --out report.html")
    # Unmanaged key pairs show as such in their origin; not counted as findings.
    # Instances are read (paged GetInstances, once per region read) for the
    # instances column and the unused / unmanaged-key-in-use findings.
    seen = observe(
        args.paths, options, include_unmanaged=False, include_instances=True, word=reasons.cause
    )
    live = seen.live
    now = time.time()
    report = build_report(
        seen.desired,
        seen.entries,
        seen.pending,
        live,
        seen.findings,
        now=now,
        source=seen.backend.location,
        instances=seen.instances,
        instance_regions=seen.instance_regions,
        policy=policy_findings(seen.desired, live, now=now),
        instances_unread=[instances_unread_line(u) for u in seen.instances_unread],
    )
    page = report_html.render(report)
    write_output(Path(args.out), page.encode(), what="--out")
    sys.stderr.write(
        f"Wrote {args.out}: {len(report.rows)} key pair(s) in {len(report.regions)} region(s).\n"
    )
    for unread in live.unread():
        sys.stderr.write(f"Error: {unread.describe()}\n")
    for line in report.instances_unread:
        sys.stderr.write(f"Warning: {line}; {INSTANCES_UNKNOWN}\n")
    return EXIT_ERROR if live.failed_regions or report.instances_unread else EXIT_OK
