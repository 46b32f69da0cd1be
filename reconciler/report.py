"""`reconciler report PATH... --out report.html`: an inventory page for scheduled jobs.

``build_report`` is pure: (desired, state, live, drift findings, now) -> a
``Report`` with one ``KeyPairRow`` per key pair known anywhere (declared,
recorded or live). Rows leave room for what other parts of the tool learn
(instances using a key pair, rotation due dates, policy findings): a field
that is ``None`` is shown as not known. ``report_html`` turns a Report into
the page; this module never sees a private key (the state is read without).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from reconciler import workflow
from reconciler.drift import DriftFinding, observe
from reconciler.errors import EXIT_ERROR, EXIT_OK, UsageError
from reconciler.model import (
    Address,
    DesiredSet,
    LiveSnapshot,
    OpenIntent,
    StateEntry,
    Tags,
    account_of,
)

# What a key pair is, seen from the tool: an origin recorded in the state, or
# one of these for key pairs the state does not hold.
UNMANAGED = "unmanaged"
DECLARED = "declared"


@dataclass(frozen=True, slots=True)
class KeyPairRow:
    """One key pair as the report shows it."""

    address: Address
    origin: str
    live: bool
    created_at: float | None
    tags: Tags
    findings: tuple[str, ...] = ()
    # Filled in by features that know them; None means "not known here".
    instances: tuple[str, ...] | None = None
    rotation_due: float | None = None
    policy: tuple[str, ...] = ()
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
) -> Report:
    by_address = _findings_by_address(findings)
    rows: list[KeyPairRow] = []
    for address in sorted({*desired.key_pairs, *entries, *pending, *live.key_pairs}):
        have = live.key_pairs.get(address)
        entry = entries.get(address)
        if entry is not None:
            origin: str = entry.origin
        elif have is not None and address not in desired.key_pairs:
            origin = UNMANAGED
        else:
            origin = DECLARED
        created = have.created_at if have is not None else entry.created_at if entry else None
        tags = have.tags if have is not None else entry.tags if entry else {}
        rows.append(
            KeyPairRow(
                address=address,
                origin=origin,
                live=have is not None,
                created_at=created or None,
                tags=dict(tags),
                findings=tuple(by_address.get(address, ())),
            )
        )
    return Report(
        generated_at=now,
        rows=tuple(rows),
        regions=live.regions,
        failed_regions=dict(live.failed_regions),
        source=source,
    )


def run(args: argparse.Namespace, options: workflow.Options) -> int:
    from reconciler import report_html

    if not args.out:
        raise UsageError("report needs --out FILE", hint="e.g. --out report.html")
    # Unmanaged key pairs show as such in their origin; not counted as findings.
    seen = observe(args.paths, options, include_unmanaged=False)
    live = seen.live
    report = build_report(
        seen.desired,
        seen.entries,
        seen.pending,
        live,
        seen.findings,
        now=time.time(),
        source=seen.backend.location,
    )
    page = report_html.render(report)
    tmp = f"{args.out}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(page)
    os.replace(tmp, args.out)
    sys.stderr.write(
        f"Wrote {args.out}: {len(report.rows)} key pair(s) in {len(report.regions)} region(s).\n"
    )
    for region, message in sorted(live.failed_regions.items()):
        sys.stderr.write(f"Error: {region} could not be read: {message}\n")
    return EXIT_ERROR if live.failed_regions else EXIT_OK
