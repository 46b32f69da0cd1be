"""The table of commands: one module each, in the order ``--help`` lists them.

A command module has ``NAME``, ``HELP``, ``COSTLY`` (its options are worth
building only when it runs), ``add_arguments(parser)`` and
``run(args) -> int``. Adding a command is one module and one line here.
"""

from __future__ import annotations

import argparse
from typing import Protocol

from reconciler.cli import (
    apply,
    destroy,
    drift,
    emulator,
    force_unlock,
    import_,
    key,
    plan,
    policy,
    report,
    state,
    validate,
)


class Command(Protocol):
    NAME: str
    HELP: str
    COSTLY: bool

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


COMMANDS: tuple[Command, ...] = (
    validate,
    policy,
    plan,
    apply,
    destroy,
    drift,
    report,
    import_,
    state,
    key,
    force_unlock,
    emulator,
)
