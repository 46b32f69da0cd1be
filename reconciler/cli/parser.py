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
from reconciler.cli.registry import COMMANDS, Entry


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
        p = sub.add_parser(
            entry.name,
            help=entry.help,
            description=entry.about,
            epilog=_epilog(entry),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(run=entry.module.run)
        if not entry.costly or chosen in (None, entry.name, "completion"):
            entry.module.add_arguments(p)
    _own_errors(parser)
    parser.set_defaults(root=parser)  # the whole command line, for `completion`
    return parser


def _epilog(entry: Entry) -> str:
    examples = "".join(f"  {line}\n" for line in entry.examples)
    exits = "".join(f"  {code}  {meaning}\n" for code, meaning in entry.exit_codes)
    return f"examples:\n{examples}\nexit codes:\n{exits}"


def _own_errors(parser: argparse.ArgumentParser) -> None:
    """Each (sub)command parser names itself in the parsed arguments, so that an unknown
    option is reported by the innermost command it was given to."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.set_defaults(parser=sub)
                _own_errors(sub)
