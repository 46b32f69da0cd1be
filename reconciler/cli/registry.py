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
    completion,
    destroy,
    drift,
    emulator,
    force_unlock,
    iam_policy,
    import_,
    key,
    plan,
    policy,
    report,
    show,
    state,
    validate,
)


class Command(Protocol):
    """A command module: its options, and the run that takes them."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


@dataclass(frozen=True, slots=True)
class Entry:
    """One command: its name, its line in ``--help``, the paragraph, examples and exit codes
    of its own ``--help``, its module; ``costly`` options (the emulator's import the
    emulator) are built only when it is the command run."""

    name: str
    help: str
    module: Command
    about: str
    examples: tuple[str, ...]
    exit_codes: tuple[tuple[int, str], ...] = ()
    costly: bool = False


OK = (0, "success")
FAILED = (1, "an error (bad input, a failed call, a refused plan); what was done is printed")
CHANGES = (2, "with --detailed-exitcode: the plan has changes")
DRIFTED = (2, "drift: manifests, state and Lightsail do not agree")

COMMANDS: tuple[Entry, ...] = (
    Entry(
        "validate",
        "check manifests offline",
        validate,
        "Check manifests against the schema, Lightsail's rules and the team's policy in "
        "reconciler.yaml, offline and without credentials, reporting every problem at its "
        "file:line:column. Made for pre-commit hooks and pull-request checks.",
        ("reconciler validate manifests/", "reconciler validate --format sarif manifests/"),
        (OK, FAILED),
    ),
    Entry(
        "policy",
        "the policy rules of reconciler.yaml",
        policy,
        "Show the policy rules reconciler.yaml switches on, each with its severity, where it "
        "is configured, and which commands check it.",
        ("reconciler policy list", "reconciler -h"),
        (OK, FAILED),
    ),
    Entry(
        "plan",
        "show what apply would change",
        plan,
        "Read the manifests, the state and what Lightsail holds, and show the changes an "
        "apply would make, like `terraform plan`. Nothing is changed. With --out, the plan "
        "is saved for `reconciler apply FILE`, which applies exactly it or refuses.",
        (
            "reconciler plan manifests/ --detailed-exitcode",
            "reconciler plan manifests/ --format markdown --out plan.json",
        ),
        (OK, FAILED, CHANGES),
    ),
    Entry(
        "show",
        "show a saved plan",
        show,
        "Show a plan saved by `plan --out FILE` as text, JSON or markdown, as `plan` showed it "
        "when it was saved, like `terraform show`. Nothing is called; a file changed since it "
        "was saved is refused.",
        ("reconciler show plan.json", "reconciler show plan.json --format markdown"),
        (OK, FAILED),
    ),
    Entry(
        "apply",
        "make Lightsail match the manifests",
        apply,
        "Plan, show the plan, ask, and carry it out: CreateKeyPair (the private key is "
        "journaled and kept before anything else), ImportKeyPair, tagging and guarded "
        "deletes. Given a saved plan, apply that plan, or refuse if the world moved.",
        ("reconciler apply manifests/", "reconciler apply plan.json"),
        (OK, FAILED),
    ),
    Entry(
        "destroy",
        "delete every key pair the manifests declare",
        destroy,
        "Delete every key pair the manifests declare that the state records, with the "
        "guards of apply: preventDestroy, instances launched with a key pair, confirmation.",
        ("reconciler destroy manifests/", "reconciler destroy manifests/ --target 'eu-west-1/*'"),
        (OK, FAILED),
    ),
    Entry(
        "drift",
        "compare manifests, state and Lightsail",
        drift,
        "Compare the manifests, the state and Lightsail, and report every difference: key "
        "pairs deleted or retagged outside the tool, replaced key material, stored keys "
        "missing, pending changes. For scheduled jobs; --refresh takes what is live into "
        "the state.",
        ("reconciler drift manifests/ --format json", "reconciler drift manifests/ --instances"),
        (OK, FAILED, DRIFTED),
    ),
    Entry(
        "report",
        "write an HTML page of the key pairs for scheduled jobs",
        report,
        "Write one self-contained HTML page of every key pair known anywhere (declared, "
        "recorded, live, named by an instance) with its instances, rotation date and "
        "findings.",
        ("reconciler report manifests/ --out report.html", "reconciler report m/ --out r.html"),
        (OK, FAILED),
    ),
    Entry(
        "import",
        "adopt existing key pairs into the state",
        import_,
        "Adopt a key pair that exists in Lightsail into the state (no private key: Lightsail "
        "never gives it out again), or with --all every live key pair, writing manifests "
        "for them.",
        (
            "reconciler import us-east-1/legacy --tags-from manifests/",
            "reconciler import --all --write-manifests manifests/",
        ),
        (OK, FAILED),
    ),
    Entry(
        "state",
        "inspect or edit the state",
        state,
        "List or show what the state records, or edit it under its lock: forget a key pair, "
        "drop a recorded preventDestroy, encrypt or decrypt its private keys, move them to "
        "another key store.",
        ("reconciler state list", "reconciler state show us-east-1/web-prod"),
        (OK, FAILED),
    ),
    Entry(
        "key",
        "private and public keys from the state",
        key,
        "Write one key pair's private key (or its public key) to stdout, from the state or "
        "its key store: the one command, with `state show --reveal`, that prints key material.",
        (
            "reconciler key get us-east-1/bastion > bastion.pem",
            "reconciler key get us-east-1/bastion --generation 1 --public",
        ),
        (OK, FAILED),
    ),
    Entry(
        "force-unlock",
        "remove a state lock left behind",
        force_unlock,
        "Remove the state lock a run that died left behind, by the ID the lock error names. "
        "Refused while its holder still runs on this host, unless --force.",
        ("reconciler force-unlock 6f1c...", "reconciler force-unlock 6f1c... --state s3://b/k"),
        (OK, FAILED),
    ),
    Entry(
        "iam-policy",
        "print the IAM policy a role of the tool needs",
        iam_policy,
        "Print a least-privilege IAM policy for the plan role (reads, no secret), the apply "
        "role (changes, bound to the ownership tag of reconciler.yaml when it has one) or the "
        "key-reader role (the stored private keys only), for the manifests, state and key "
        "store at hand.",
        (
            "reconciler iam-policy --role plan manifests/",
            "reconciler iam-policy --role apply manifests/ --key-store ssm:/ssh/{region}/{name}",
        ),
        (OK, FAILED),
    ),
    Entry(
        "completion",
        "print the shell completion script (bash, zsh)",
        completion,
        "Print a completion script for bash or zsh: commands, subcommands, options and their "
        "choices. Install it once where your shell looks for completions.",
        (
            "reconciler completion bash > ~/.local/share/bash-completion/completions/reconciler",
            "reconciler completion zsh > ~/.zfunc/_reconciler",
        ),
        (OK, FAILED),
    ),
    Entry(
        "emulator",
        "run a local Lightsail endpoint",
        emulator,
        "Run a local Lightsail endpoint that boto3 and the AWS CLI can talk to (key pairs and "
        "instances), for tests and demos. It never talks to AWS.",
        ("reconciler emulator --port 8080", "reconciler emulator --data emu.json --latency-ms 20"),
        (OK, FAILED),
        costly=True,
    ),
)
