"""`reconciler destroy PATH...`: delete every key pair the manifests declare, guarded as apply."""

from __future__ import annotations

import argparse

from reconciler.cli.arguments import (
    auto_approve,
    common,
    parallelism,
    paths_argument,
    quiet,
    scoping,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    paths_argument(parser, required=True, help="manifest files or folders")
    auto_approve(parser)
    quiet(parser)
    parallelism(parser)
    scoping(parser)
    common(parser)


def run(args: argparse.Namespace) -> int:
    from reconciler.cli import options, workflow
    from reconciler.cli.apply import Asked, execute
    from reconciler.manifests.load import load_desired

    opts = options.from_args(args)
    desired = load_desired(workflow.manifest_paths(args.paths), accounts=opts.accounts)
    return execute(Asked("destroy", args.auto_approve, args.quiet, destroy=True), opts, desired)
