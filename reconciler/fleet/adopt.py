"""`reconciler import REGION/NAME`: record an existing key pair in the state.

The key pair is recorded with origin ``adopted`` and no private key (Lightsail
never gives it out again). With ``--tags-from``, its tags are then brought in
line with the manifests that declare it. A key pair whose key material was
lost by an interrupted run can be adopted this way too; one whose key was
generated here by an interrupted run keeps that key (origin ``generated``).
"""

from __future__ import annotations

import argparse
import sys

from reconciler.apply.executor import Executor
from reconciler.cli import custody as key_commands
from reconciler.cli import workflow
from reconciler.errors import EXIT_ERROR, EXIT_OK, LightsailError, StateError, UsageError
from reconciler.manifests.load import load_desired
from reconciler.model import REGIONS, Address, JournalOp, name_problem
from reconciler.planning.planner import Action, Change, Reason


def run(args: argparse.Namespace, options: workflow.Options) -> int:
    address = options.accounts.check(Address.parse(args.address))
    if address.region not in REGIONS:
        raise UsageError(
            f"{address.region!r} is not a Lightsail region",
            hint=f"write the address as REGION/NAME with one of: {', '.join(REGIONS)}",
        )
    if (problem := name_problem(address.name)) is not None:
        raise UsageError(f"{address}: {problem}")
    wanted_tags = None
    if args.tags_from:
        desired = load_desired([args.tags_from], accounts=options.accounts)
        declared = desired.key_pairs.get(address)
        if declared is None:
            raise UsageError(f"{address} is not declared in {args.tags_from}")
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
            waiting = doc.pending.get(address)
            recovered = (
                waiting if waiting is not None and waiting.operation is JournalOp.GENERATE else None
            )
            change = Change(
                Action.ADOPT,
                address,
                Reason.IMPORT_REQUESTED,
                before_tags=live.tags,
                after_tags=live.tags if wanted_tags is None else wanted_tags,
                live=live,
                recovered=recovered,
            )
            sealer = workflow.sealer_for(options, doc) if recovered is not None else None
            custody = key_commands.prepare(options, doc, backend)
            executor = Executor(
                lightsail,
                backend.journal(),
                parallelism=1,
                seal=None if sealer is None else sealer.seal,
                keep=custody.keep if custody.remote else None,
            )
            try:
                executor.adopt(change)
            finally:
                backend.commit()
    how = "origin adopted, no private key" if recovered is None else "origin generated, key kept"
    sys.stderr.write(f"Imported {address} into the state ({how}).\n")
    return EXIT_ERROR if custody.report(backend.location) else EXIT_OK
