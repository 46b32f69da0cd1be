"""The parser, built from the table of commands (``registry.COMMANDS``).

``validate``, ``policy list`` and ``--help`` must start fast and offline:
nothing here, nor any command module at import time, imports boto3,
botocore, the emulator or cryptography.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from reconciler import __version__
from reconciler.cli.arguments import Parser
from reconciler.cli.registry import COMMANDS


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every command in ``COMMANDS``; ``argv`` lets a command skip costly set-up
    when another one runs (the emulator's flags are added only when it is the command)."""
    parser = Parser(
        prog="reconciler",
        description="Declarative reconciler for AWS Lightsail SSH key pairs.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = None if argv is None else next((a for a in argv if not a.startswith("-")), "")
    for entry in COMMANDS:
        p = sub.add_parser(entry.name, help=entry.help)
        p.set_defaults(run=entry.module.run)
        if not entry.costly or chosen in (None, entry.name):
            entry.module.add_arguments(p)
    return parser
