"""The table of commands: one module each, in the order ``--help`` lists them.

A command module has ``add_arguments(parser)`` and ``run(args) -> int``; it
imports what only its run needs inside ``run``, so that building the parser
stays fast and offline. Adding a command is one module and one line here.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
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
    """A command module: its options, and the run that takes them."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


@dataclass(frozen=True, slots=True)
class Entry:
    """One command: its name, its line in ``--help``, its module; ``costly`` options (the
    emulator's import the emulator) are built only when it is the command run."""

    name: str
    help: str
    module: Command
    costly: bool = False


COMMANDS: tuple[Entry, ...] = (
    Entry("validate", "check manifests offline", validate),
    Entry("policy", "the policy rules of reconciler.yaml", policy),
    Entry("plan", "show what apply would change", plan),
    Entry("apply", "make Lightsail match the manifests", apply),
    Entry("destroy", "delete every key pair the manifests declare", destroy),
    Entry("drift", "compare manifests, state and Lightsail", drift),
    Entry("report", "write an HTML page of the key pairs for scheduled jobs", report),
    Entry("import", "adopt existing key pairs into the state", import_),
    Entry("state", "inspect or edit the state", state),
    Entry("key", "private and public keys from the state", key),
    Entry("force-unlock", "remove a state lock left behind", force_unlock),
    Entry("emulator", "run a local Lightsail endpoint", emulator, costly=True),
)
