"""The options more than one command takes, each defined once, and the parser class.

A command module adds the groups it needs (``common``, ``planning``,
``scoping``, ...) in its ``add_arguments``, then its own options.
``--format`` choices come from the output registry for the kind of report
the command prints. Nothing here imports AWS libraries.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from reconciler.errors import EXIT_ERROR
from reconciler.output.base import Kind
from reconciler.output.formats import choices


class Parser(argparse.ArgumentParser):
    """argparse, but a wrong command line exits 1 like any invalid input (to a pipeline,
    exit 2 means "changes pending": plan --detailed-exitcode, drift), and an unknown
    option is reported by the (sub)command it was given to, with its usage and the
    closest of its own options."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # No abbreviations: a flag cut short is a typo to report, not the longer one taken.
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"Error: {message}\n  -> `{self.prog} --help` lists the options\n")

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            owner: argparse.ArgumentParser = getattr(parsed, "parser", self)
            owner.error(unrecognized(owner, extras))
        return parsed


def unrecognized(parser: argparse.ArgumentParser, extras: Sequence[str]) -> str:
    """argparse's message for ``extras``, with a did-you-mean among ``parser``'s options."""
    message = f"unrecognized arguments: {' '.join(extras)}"
    flag = next((e.split("=", 1)[0] for e in extras if e.startswith("-")), None)
    if flag is None:
        return message
    known = [s for action in parser._actions for s in action.option_strings]
    close = difflib.get_close_matches(flag, known, n=1, cutoff=0.6)
    return message + (f" (did you mean {close[0]}?)" if close else "")


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number no smaller than ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is less than {minimum}")
        return value

    parse.__name__ = "count"  # argparse names the type in its message
    return parse


def repeated(parser: argparse._ActionsContainer, flag: str, metavar: str, help: str) -> None:
    """An option that may be given several times, collected in a list."""
    parser.add_argument(flag, action="append", default=[], metavar=metavar, help=help)


def common(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("common options")
    g.add_argument(
        "--state",
        help="file path or s3://BUCKET/KEY (default: the backend in reconciler.yaml, "
        "else reconciler.state.json)",
    )
    repeated(g, "--region", "REGION", "only this region (repeatable)")
    repeated(
        g, "--account", "ALIAS", "only this account of those reconciler.yaml declares (repeatable)"
    )
    g.add_argument(
        "--local", action="store_true", help="use an embedded Lightsail emulator (.reconciler/)"
    )
    g.add_argument(
        "--endpoint-url",
        metavar="URL",
        help="the Lightsail endpoint to call (default: AWS_ENDPOINT_URL_LIGHTSAIL, else AWS's)",
    )
    g.add_argument("--allow-insecure-state", action="store_true", help=argparse.SUPPRESS)
    g.add_argument(
        "--lock-timeout", type=float, default=0.0, metavar="SECONDS", help="wait for the lock"
    )
    repeated(
        g, "--age-identity", "FILE", "age identity file that opens sealed private keys (repeatable)"
    )
    verbose(g)


def encryption(parser: argparse.ArgumentParser) -> None:
    repeated(
        parser,
        "--encrypt-with",
        "SPEC",
        "encrypt private keys in the state for kms:KEY_ID or age:RECIPIENT "
        "(repeatable; remembered in the state)",
    )


def key_store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key-store",
        metavar="STORE",
        help="keep new private keys in state, ssm:/PATH/{region}/{name} or "
        "secretsmanager:PREFIX/{region}/{name} (remembered in the state)",
    )
    parser.add_argument(
        "--key-store-kms-key-id", metavar="KEY_ID", help="KMS key for the ssm/secretsmanager store"
    )


PATHS_HELP = "manifest files or folders (default: manifests: in reconciler.yaml, else .)"


def paths_argument(
    parser: argparse.ArgumentParser,
    *,
    required: bool = False,
    metavar: str = "PATH",
    help: str = PATHS_HELP,
) -> None:
    """The PATH... every command that reads manifests takes; ``required`` for apply and
    destroy, which never read manifests nobody named."""
    parser.add_argument("paths", nargs="+" if required else "*", metavar=metavar, help=help)


def quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="without a prompt, print no line per change: only the summaries and errors",
    )


def scoping(parser: argparse.ArgumentParser) -> None:
    repeated(
        parser, "--target", "ADDRESS", "only this key pair, REGION/NAME, globs allowed (repeatable)"
    )
    repeated(
        parser,
        "--exclude",
        "ADDRESS",
        "leave out this key pair, REGION/NAME, globs allowed (repeatable)",
    )


def planning(parser: argparse.ArgumentParser) -> None:
    scoping(parser)
    parser.add_argument(
        "--prune", action="store_true", help="delete key pairs removed from the manifests"
    )
    parser.add_argument(
        "--max-deletes", type=at_least(0), metavar="N", help="refuse plans deleting more"
    )
    repeated(
        parser,
        "--replace",
        "REGION/NAME",
        "replace this key pair (e.g. one whose key material was lost; repeatable)",
    )
    repeated(
        parser,
        "--rotate",
        "REGION/NAME",
        "rotate this key pair now, keeping its private key as a generation (repeatable)",
    )
    parser.add_argument(
        "--allow-in-use",
        action="store_true",
        help="delete, replace or rotate key pairs instances were launched with",
    )
    parallelism(parser)


def parallelism(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--parallelism",
        type=at_least(1),
        default=10,
        metavar="N",
        help="at most N Lightsail calls at a time (default 10)",
    )


def auto_approve(
    parser: argparse.ArgumentParser, help: str = "do not ask for confirmation"
) -> None:
    parser.add_argument("--auto-approve", action="store_true", help=help)


def verbose(parser: argparse._ActionsContainer) -> None:
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more detail on stderr")


def output_format(parser: argparse.ArgumentParser, kind: Kind) -> None:
    names = choices(kind)
    parser.add_argument(
        "--format", choices=names, default=names[0], help=f"output format ({', '.join(names)})"
    )
