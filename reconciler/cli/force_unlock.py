"""`reconciler force-unlock LOCK_ID`: remove a state lock a dead run left behind."""

from __future__ import annotations

import argparse

from reconciler.cli.arguments import common
from reconciler.errors import EXIT_OK


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("lock_id", metavar="LOCK_ID", help="the ID the lock error names")
    parser.add_argument(
        "--force", action="store_true", help="even if the holder still runs on this host"
    )
    common(parser)


def run(args: argparse.Namespace) -> int:
    from reconciler.cli import options, workflow
    from reconciler.output.terminal import TERMINAL

    backend = workflow.open_backend(options.from_args(args))
    backend.force_unlock(args.lock_id, force=args.force)
    TERMINAL.say(f"Lock {args.lock_id} removed from {backend.location}.")
    return EXIT_OK
