"""`reconciler drift PATH...`: how far reality and the state have moved from the manifests.

Reads all three (the state without private keys), finds the drift
(``planning.drift``), prints it in the chosen format and, with
``--refresh``, takes what is live into the state. Exit 2 when there is drift.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reconciler.cli.arguments import common, output_format, paths_argument, scoping
from reconciler.errors import EXIT_CHANGES, EXIT_ERROR, EXIT_OK
from reconciler.model import (
    Address,
    DesiredSet,
    LiveInstance,
    LiveSnapshot,
    OpenIntent,
    StateEntry,
    Unread,
)
from reconciler.output.base import Kind

if TYPE_CHECKING:
    from reconciler.cli.options import Options
    from reconciler.custody import KeyProblem
    from reconciler.planning.drift import DriftFinding
    from reconciler.state import StateBackend


def add_arguments(parser: argparse.ArgumentParser) -> None:
    paths_argument(parser)
    output_format(parser, Kind.DRIFT)
    parser.add_argument(
        "--include-unmanaged",
        action="store_true",
        help="also report key pairs in Lightsail that neither the manifests nor the state name",
    )
    parser.add_argument(
        "--instances",
        action="store_true",
        help="read instances: report unused key pairs and instances using unmanaged ones",
    )
    parser.add_argument("--refresh", action="store_true", help="update the state to what is live")
    scoping(parser)
    common(parser)


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
    options: Options,
    *,
    include_unmanaged: bool,
    include_instances: bool = False,
) -> Observed:
    """Read all three (the state without private keys) and find the drift between them.

    With ``include_instances`` the instances of the regions read are read too
    (paginated GetInstances), for the ``unused`` and ``unmanaged-key-in-use`` kinds;
    a place whose instances cannot be read is left out of those (``instances_unread``).
    """
    from reconciler.aws.lightsail import InstanceReading
    from reconciler.cli import checks, workflow
    from reconciler.cli import custody as key_commands
    from reconciler.manifests.load import load_desired
    from reconciler.model import region_of
    from reconciler.output import reasons
    from reconciler.planning.drift import DriftKind, find_drift, instance_drift, worded

    desired = load_desired(checks.manifest_paths(paths), accounts=options.accounts)
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
    findings = worded(findings, reasons.cause)
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


def run(args: argparse.Namespace) -> int:
    from reconciler.cli import checks, options
    from reconciler.output.base import DriftView
    from reconciler.output.formats import get
    from reconciler.output.terminal import TERMINAL
    from reconciler.planning.drift import refreshed

    opts = options.from_args(args)
    seen = observe(
        args.paths,
        opts,
        include_unmanaged=args.include_unmanaged,
        include_instances=args.instances,
    )
    findings, live, backend, scope = seen.findings, seen.live, seen.backend, opts.scope
    report = checks.drift_report(findings, seen.desired, live)
    sources = {a: kp.source for a, kp in seen.desired.key_pairs.items()}
    view = DriftView(findings, live, report, sources)
    output = get(args.format)
    TERMINAL.out(output.drift(view))
    output.publish(view)
    if args.refresh:
        with backend.lock("drift --refresh", timeout=opts.lock_timeout):
            current = backend.begin()
            # Entries out of scope are kept exactly as they are.
            new_entries = {a: e for a, e in current.entries.items() if not scope.covers(a)}
            new_entries.update(refreshed(scope.only(current.entries), live))
            if new_entries != current.entries:
                current.entries = new_entries
                backend.write(current)
                TERMINAL.say("State refreshed from Lightsail.")
    for unread in seen.instances_unread:
        TERMINAL.error(f"{instances_unread_line(unread)}; no unused or in-use findings there")
    if live.failed_regions or seen.instances_unread or report.policy_errors:
        return EXIT_ERROR
    return EXIT_CHANGES if findings else EXIT_OK


def with_key_problems(
    findings: list[DriftFinding], problems: list[KeyProblem]
) -> list[DriftFinding]:
    """``findings`` and the key stores' problems, in report order."""
    from reconciler.custody import KeyProblemKind
    from reconciler.planning.drift import DriftFinding, DriftKind

    kinds = {
        KeyProblemKind.MISSING: DriftKind.KEY_MISSING,
        KeyProblemKind.FINGERPRINT: DriftKind.KEY_FINGERPRINT_CHANGED,
    }
    extra = [
        DriftFinding(kinds[p.kind], p.address, p.detail, p.expected, p.actual) for p in problems
    ]
    return sorted([*findings, *extra], key=lambda f: (f.address, list(DriftKind).index(f.kind)))
