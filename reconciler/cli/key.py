"""`reconciler key get REGION/NAME`: a private key (or, with --public, the public key) on stdout.

The one command, with `state show --reveal`, that prints key material: the
user asked for exactly this key.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from reconciler.cli.arguments import at_least, common
from reconciler.errors import EXIT_OK, StateError

if TYPE_CHECKING:
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="key_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("get", help="write the private key PEM (or --public) to stdout")
    p.add_argument("address", metavar="REGION/NAME", help="the key pair")
    p.add_argument("--public", action="store_true", help="the public key instead (OpenSSH)")
    p.add_argument(
        "--generation",
        type=at_least(0),
        default=0,
        metavar="N",
        help="an earlier key kept by rotation: 1 is the previous one (default 0, the current)",
    )
    common(p)


def run(args: argparse.Namespace) -> int:
    from reconciler.cli import generations, options, workflow
    from reconciler.output.terminal import TERMINAL

    opts = options.from_args(args)
    doc = workflow.open_backend(opts).read()
    entry = generations.pick(generations.entry_of(doc, args.address), args.generation)
    if args.public:
        if not entry.public_key_base64:
            raise StateError(f"{entry.address}: the state holds no public key for it")
        TERMINAL.out(entry.public_key_base64.strip() + "\n")
        return EXIT_OK
    pem = generations.private_key(entry, opts, doc)
    if pem is None:
        raise StateError(
            f"{entry.address} has no private key in the state or a key store "
            f"(origin: {entry.origin})",
            hint="imported and adopted key pairs keep their private key wherever it was made",
        )
    TERMINAL.out(pem if pem.endswith("\n") else pem + "\n", secret=True)
    return EXIT_OK
