"""`reconciler import REGION/NAME` and `reconciler import --all`: adopt existing key pairs.

One key pair is adopted into the state (its tags brought in line with
``--tags-from`` manifests when given); ``--all`` reads every key pair of the
chosen regions and accounts, writes manifests for them and adopts those the
state does not hold, all under one lock (``fleet.onboard``).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from reconciler.cli.arguments import auto_approve, common, parallelism
from reconciler.errors import EXIT_ERROR, EXIT_OK, UsageError

if TYPE_CHECKING:
    from reconciler.cli.options import Options
    from reconciler.fleet.onboard import Onboarding
    from reconciler.model import Unread


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("address", nargs="?", metavar="REGION/NAME", help="the key pair to adopt")
    parser.add_argument("--tags-from", metavar="PATH", help="manifests whose tags it should get")
    parser.add_argument(
        "--all", action="store_true", help="every live key pair (in the --region(s) given)"
    )
    parser.add_argument(
        "--write-manifests", metavar="DIR", help="with --all: write one manifest per region here"
    )
    parser.add_argument(
        "--force", action="store_true", help="with --all: overwrite differing files"
    )
    parser.add_argument(
        "--manifests",
        action="append",
        default=[],
        metavar="PATH",
        help="with --all: manifests already written; what they declare is adopted, not "
        "written again (repeatable)",
    )
    auto_approve(parser)
    parallelism(parser)
    common(parser)


def run(args: argparse.Namespace) -> int:
    from reconciler.cli import options

    if args.all:
        if args.address:
            raise UsageError("pass either REGION/NAME or --all, not both")
        return import_all(args, options.from_args(args))
    if not args.address:
        raise UsageError(
            "import needs REGION/NAME",
            hint="or --all --write-manifests DIR to adopt every live key pair",
        )
    return import_one(args.address, args.tags_from, options.from_args(args))


def import_one(text: str, tags_from: str | None, options: Options) -> int:
    from reconciler.cli import custody as key_commands
    from reconciler.cli import workflow
    from reconciler.errors import LightsailError, StateError
    from reconciler.fleet.adopt import adoption, recoverable
    from reconciler.manifests.load import load_desired
    from reconciler.model import REGIONS, Address, name_problem, region_problem
    from reconciler.output.terminal import TERMINAL

    address = options.accounts.check(Address.parse(text))
    if (problem := region_problem(address.region)) is not None:
        raise UsageError(
            problem,
            hint=f"write the address as REGION/NAME with one of: {', '.join(REGIONS)}",
        )
    if (problem := name_problem(address.name)) is not None:
        raise UsageError(f"{address}: {problem}")
    wanted_tags = None
    if tags_from:
        desired = load_desired([tags_from], accounts=options.accounts)
        declared = desired.key_pairs.get(address)
        if declared is None:
            raise UsageError(f"{address} is not declared in {tags_from}")
        wanted_tags = declared.tags
    backend = workflow.open_backend(options)
    with backend.lock("import", timeout=options.lock_timeout):
        doc = backend.begin()
        if address in doc.entries:
            raise StateError(
                f"{address} is already in the state (origin {doc.entries[address].origin})",
                hint="nothing to import; `reconciler state show` displays it",
            )
        with workflow.lightsail_for(options) as lightsail:
            live = lightsail.get_key_pair(address)
            if live is None:
                raise LightsailError(
                    f"{address} does not exist in Lightsail; nothing to import",
                    code="NotFoundException",
                    hint="check the region and name (`aws lightsail get-key-pairs`)",
                )
            # A key generated here by an interrupted run: keep its private half.
            recovered = recoverable(doc.pending.get(address))
            change = adoption(live, tags=wanted_tags, recovered=recovered)
            sealer = workflow.sealer_for(options, doc) if recovered is not None else None
            custody = key_commands.prepare(options, doc, backend)
            executor = workflow.executor(lightsail, backend, custody, 1, sealer=sealer)
            try:
                executor.adopt(change)
            finally:
                backend.commit()
    how = "origin adopted, no private key" if recovered is None else "origin generated, key kept"
    TERMINAL.say(f"Imported {address} into the state ({how}).")
    return EXIT_ERROR if key_commands.report(custody, backend.location) else EXIT_OK


def import_all(args: argparse.Namespace, options: Options) -> int:
    from pathlib import Path

    from reconciler.cli import custody as key_commands
    from reconciler.cli import workflow
    from reconciler.fleet.onboard import plan_onboarding, write_manifest_file
    from reconciler.manifests.load import load_desired
    from reconciler.output.onboarding import preview
    from reconciler.output.terminal import TERMINAL
    from reconciler.planning.changes import Plan

    if not args.write_manifests:
        raise UsageError(
            "import --all needs --write-manifests DIR",
            hint="the manifests written there become the key pairs' source of truth",
        )
    folder = Path(args.write_manifests)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--write-manifests {folder}: not a directory")
    regions = _regions(options)
    declared = load_desired(args.manifests, accounts=options.accounts) if args.manifests else None
    backend = workflow.open_backend(options)
    with (
        backend.lock("import --all", timeout=options.lock_timeout),
        workflow.lightsail_for(options) as lightsail,
    ):
        doc = backend.begin()
        live = lightsail.snapshot(regions, parallelism=options.parallelism)
        unread = live.unread()
        if workflow.place_in_accounts(doc, lightsail, options):
            backend.write(doc)
        onboarding = plan_onboarding(live, doc.entries, doc.pending, folder, declared)
        for address, why in onboarding.skipped:
            TERMINAL.warning(
                f"{address} is not written or adopted: no manifest could declare {why}"
            )
        if onboarding.empty:
            TERMINAL.say(
                f"Nothing to do: the manifests under {folder} and the state already hold "
                f"all {len(live.key_pairs)} live key pair(s)"
                + (" of the regions read" if unread else "")
                + "."
            )
            return EXIT_ERROR if report_unread(unread) else EXIT_OK
        TERMINAL.out(preview(onboarding, folder, unread))
        clashes = [f for f in onboarding.files if f.status == "overwrite"]
        if clashes and not args.force:
            raise UsageError(
                f"{clashes[0].path} exists and differs from what would be written"
                + (f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else "")
                + "; nothing was written or adopted",
                hint="pass --force to overwrite, or choose another --write-manifests folder",
            )
        TERMINAL.confirm(
            "write these manifests and adopt these key pairs", auto_approve=args.auto_approve
        )
        for manifest in onboarding.writes:
            write_manifest_file(manifest)
        sealer = workflow.sealer_for(options, doc) if _any_recovered(onboarding) else None
        custody = key_commands.prepare(options, doc, backend)
        executor = workflow.executor(
            lightsail, backend, custody, options.parallelism, sealer=sealer
        )
        batch = Plan(
            changes=onboarding.adoptions,
            findings=(),
            unchanged=0,
            orphaned=(),
            stale_pending=(),
            regions=live.regions,
            lineage=doc.lineage,
            serial=doc.serial,
            live_digest=live.digest(),
        )
        try:
            outcome = executor.run(batch)
        finally:
            backend.commit()
    head = "Import finished with errors!" if unread else "Import complete!"
    TERMINAL.say(
        f"\n{head} Wrote {len(onboarding.writes)} manifest file(s) under {folder}; "
        f"adopted {len(outcome.succeeded)} key pair(s), {len(outcome.failed)} failed."
    )
    for failure in outcome.failed:
        TERMINAL.error(failure.message)
    missed = report_unread(unread)
    # A failing key store: once, not per key pair.
    held = key_commands.report(custody, backend.location)
    return EXIT_ERROR if outcome.failed or held or missed else EXIT_OK


def _any_recovered(onboarding: Onboarding) -> bool:
    return any(c.recovered is not None for c in onboarding.adoptions)


def report_unread(unread: tuple[Unread, ...]) -> bool:
    """One error line per account or region that could not be read; whether there was any."""
    from reconciler.output.terminal import TERMINAL

    for u in unread:
        TERMINAL.error(f"{u.describe()}; nothing was written or adopted for it")
    if unread:
        TERMINAL.say(
            "  -> run `reconciler import --all` again when it answers; what was onboarded "
            "now is left as it is"
        )
    return bool(unread)


def _regions(options: Options) -> list[str]:
    """What to read: the regions, in each covered account when there are several."""
    from reconciler.model import REGIONS, where

    regions = list(options.regions) or list(REGIONS)
    if not options.accounts.several:
        return regions
    return [where(alias, r) for alias in options.accounts.selected for r in regions]
