"""`reconciler policy list`: the rules of reconciler.yaml in force, and where each is set."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from reconciler.cli.arguments import verbose
from reconciler.cli.checks import load_policy
from reconciler.errors import EXIT_OK
from reconciler.output.terminal import TERMINAL


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="policy_command", metavar="SUBCOMMAND", required=True)
    listing = sub.add_parser("list", help="print the rules in force and where each is configured")
    verbose(listing)


def run(args: argparse.Namespace) -> int:
    return policy_list()


def policy_list() -> int:
    policy, path = load_policy()
    if path is None:
        TERMINAL.say("No policy: no reconciler.yaml here or up to the repository root.")
        return EXIT_OK
    if not policy.rules:
        TERMINAL.say(f"No policy rules in {_display(path)}.")
        return EXIT_OK
    rows = [
        (c.rule.id, c.severity, str(c.source), ("plan, drift" if c.rule.live else "validate"))
        for c in policy.rules
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for configured, row in zip(policy.rules, rows, strict=True):
        cells = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        detail = configured.rule.describe()
        TERMINAL.out(f"{cells}  {detail}".rstrip() + "\n")
    return EXIT_OK


def _display(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)
