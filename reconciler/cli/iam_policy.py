"""`reconciler iam-policy --role plan|apply|key-reader`: the IAM policy a role of the tool needs.

Written for the manifests and reconciler.yaml at hand: their regions, the
state's S3 object, the key store's path or prefix and its KMS key, and the
ownership tag (``ownership: {tag, value}``) that create, import, delete and
retag are then bound to. Nothing is called.
"""

from __future__ import annotations

import argparse

from reconciler.cli.arguments import common, key_store, paths_argument
from reconciler.errors import EXIT_OK


def add_arguments(parser: argparse.ArgumentParser) -> None:
    paths_argument(
        parser, help="manifest files or folders whose regions the policy covers (default: all)"
    )
    parser.add_argument(
        "--role",
        required=True,
        choices=["plan", "apply", "key-reader"],
        help="plan: read only, no secret; apply: changes, bound to the ownership tag; "
        "key-reader: the stored private keys only",
    )
    key_store(parser)
    common(parser)


def run(args: argparse.Namespace) -> int:
    import json

    from reconciler.cli import options
    from reconciler.iam import Project, Role, policy
    from reconciler.manifests.load import load_desired
    from reconciler.manifests.project import load_project
    from reconciler.output.terminal import TERMINAL
    from reconciler.state.s3_settings import parse_url

    opts = options.from_args(args)
    regions: tuple[str, ...] = ()
    if args.paths:
        desired = load_desired(args.paths, accounts=opts.accounts)
        regions = tuple(sorted({a.region for a in desired.key_pairs}))
    bucket = key = None
    if opts.state is not None and opts.state.startswith("s3://"):
        bucket, key = parse_url(opts.state)
    project = load_project()
    owner = None if project is None else project.ownership
    document = policy(
        Project(
            regions=regions,
            state_bucket=bucket,
            state_key=key,
            key_store=opts.key_store or "state",
            key_store_kms_key_id=opts.key_store_kms_key_id,
            ownership_tag=None if owner is None else owner.tag,
            ownership_value=None if owner is None else owner.value,
        ),
        Role(args.role),
    )
    TERMINAL.out(json.dumps(document, indent=2) + "\n")
    return EXIT_OK
