"""`reconciler emulator`: run the local Lightsail endpoint, its own program (``emulator.cli``)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reconciler.emulator import cli as emulator_cli

    emulator_cli.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from reconciler.emulator import cli as emulator_cli

    return emulator_cli.run(args)
