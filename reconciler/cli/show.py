"""`reconciler show PLAN_FILE`: a saved plan as text, JSON or markdown, like `terraform show`.

Nothing is called and nothing is planned: the file's binding is checked, and its
plan shown as `plan` rendered it when it was saved.
"""

from __future__ import annotations

import argparse

from reconciler.cli.plan import SHOWN
from reconciler.errors import EXIT_OK, UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("plan_file", metavar="PLAN_FILE", help="a plan saved by `plan --out`")
    parser.add_argument(
        "--format", choices=SHOWN, default=SHOWN[0], help=f"output format ({', '.join(SHOWN)})"
    )


def run(args: argparse.Namespace) -> int:
    from reconciler.output.terminal import TERMINAL
    from reconciler.planning import savedplan

    saved = savedplan.load_if_saved([args.plan_file])
    if saved is None:
        raise UsageError(
            f"{args.plan_file} is not a saved plan",
            hint="save one with `reconciler plan PATH... --out FILE`",
        )
    TERMINAL.out(saved.shown[args.format])
    return EXIT_OK
