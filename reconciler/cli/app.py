"""Command line: parse, call one function, map errors to exit codes.

This is the only module (with ``render``'s output helpers) that writes to the
terminal. Every ReconcilerError becomes one line plus a hint and exit 1; any
other exception becomes "internal error" (traceback only with -v). Private
keys are written only by `key get` and `state show --reveal`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from reconciler import __version__
from reconciler.errors import EXIT_ERROR, ManifestError, ReconcilerError
from reconciler.output import formats

log = logging.getLogger("reconciler")


class Parser(argparse.ArgumentParser):
    """argparse, but a wrong command line exits 1 like any invalid input: to a
    pipeline, exit 2 means "changes pending" (plan --detailed-exitcode, drift)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"Error: {message}\n  -> `{self.prog} --help` lists the options\n")


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


def _common(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("common options")
    g.add_argument(
        "--state",
        help="file path or s3://BUCKET/KEY (default: the backend in reconciler.yaml, "
        "else reconciler.state.json)",
    )
    g.add_argument(
        "--region", action="append", default=[], metavar="REGION", help="only this region"
    )
    g.add_argument(
        "--account",
        action="append",
        default=[],
        metavar="ALIAS",
        help="only this account of those reconciler.yaml declares (repeatable)",
    )
    g.add_argument(
        "--local", action="store_true", help="use an embedded Lightsail emulator (.reconciler/)"
    )
    g.add_argument("--allow-insecure-state", action="store_true", help=argparse.SUPPRESS)
    g.add_argument(
        "--lock-timeout", type=float, default=0.0, metavar="SECONDS", help="wait for the lock"
    )
    g.add_argument(
        "--age-identity",
        action="append",
        default=[],
        metavar="FILE",
        help="age identity file that opens sealed private keys (repeatable)",
    )
    g.add_argument("-v", "--verbose", action="count", default=0, help="more detail on stderr")


def _encryption(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--encrypt-with",
        action="append",
        default=[],
        metavar="SPEC",
        help="encrypt private keys in the state for kms:KEY_ID or age:RECIPIENT "
        "(repeatable; remembered in the state)",
    )


def _key_store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key-store",
        metavar="STORE",
        help="keep new private keys in state, ssm:/PATH/{region}/{name} or "
        "secretsmanager:PREFIX/{region}/{name} (remembered in the state)",
    )
    parser.add_argument(
        "--key-store-kms-key-id", metavar="KEY_ID", help="KMS key for the ssm/secretsmanager store"
    )


def _quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="without a prompt, print no line per change: only the summaries and errors",
    )


def _scoping(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="only this key pair, REGION/NAME, globs allowed (repeatable)",
    )
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="leave out this key pair, REGION/NAME, globs allowed (repeatable)",
    )


def _planning(parser: argparse.ArgumentParser) -> None:
    _scoping(parser)
    parser.add_argument(
        "--prune", action="store_true", help="delete key pairs removed from the manifests"
    )
    parser.add_argument(
        "--max-deletes", type=at_least(0), metavar="N", help="refuse plans deleting more"
    )
    parser.add_argument(
        "--replace",
        action="append",
        default=[],
        metavar="REGION/NAME",
        help="replace this key pair (e.g. one whose key material was lost)",
    )
    parser.add_argument(
        "--rotate",
        action="append",
        default=[],
        metavar="REGION/NAME",
        help="rotate this key pair now, keeping its private key as a generation",
    )
    parser.add_argument(
        "--allow-in-use",
        action="store_true",
        help="delete, replace or rotate key pairs instances were launched with",
    )
    parser.add_argument("--parallelism", type=at_least(1), default=10, metavar="N")


def _format(parser: argparse.ArgumentParser) -> None:
    names = formats.choices()
    parser.add_argument(
        "--format", choices=names, default=names[0], help=f"output format ({', '.join(names)})"
    )


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; the emulator's flags are added only when ``argv`` runs it (or is None).

    ``validate``, ``policy list`` and ``--help`` must start fast and offline:
    nothing here imports boto3, botocore, the emulator or cryptography.
    """
    parser = Parser(
        prog="reconciler",
        description="Declarative reconciler for AWS Lightsail SSH key pairs.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("validate", help="check manifests offline")
    p.add_argument("paths", nargs="*", metavar="PATH")
    p.add_argument(
        "--manifests",
        action="append",
        default=[],
        metavar="FOLDER",
        help="folder of manifests (repeatable); PATHs are then changed files (as pre-commit "
        "passes them), and the folders are validated when one is inside them",
    )
    _format(p)
    p.add_argument("-v", "--verbose", action="count", default=0)

    p = sub.add_parser("policy", help="the policy rules of reconciler.yaml")
    psub = p.add_subparsers(dest="policy_command", metavar="SUBCOMMAND", required=True)
    pp = psub.add_parser("list", help="print the rules in force and where each is configured")
    pp.add_argument("-v", "--verbose", action="count", default=0)

    p = sub.add_parser("plan", help="show what apply would change")
    p.add_argument("paths", nargs="+", metavar="PATH")
    _format(p)
    p.add_argument(
        "--detailed-exitcode", action="store_true", help="exit 2 when changes are pending"
    )
    p.add_argument("--out", metavar="FILE", help="save the plan for `reconciler apply FILE`")
    _planning(p)
    _common(p)

    p = sub.add_parser("apply", help="make Lightsail match the manifests")
    p.add_argument("paths", nargs="+", metavar="PLAN_FILE|PATH")
    p.add_argument("--auto-approve", action="store_true", help="do not ask for confirmation")
    _quiet(p)
    _planning(p)
    _encryption(p)
    _key_store(p)
    _common(p)

    p = sub.add_parser("destroy", help="delete every key pair the manifests declare")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--auto-approve", action="store_true")
    _quiet(p)
    p.add_argument("--parallelism", type=at_least(1), default=10, metavar="N")
    _scoping(p)
    _common(p)

    p = sub.add_parser("drift", help="compare manifests, state and Lightsail")
    p.add_argument("paths", nargs="+", metavar="PATH")
    _format(p)
    p.add_argument("--include-unmanaged", action="store_true")
    p.add_argument(
        "--instances",
        action="store_true",
        help="read instances: report unused key pairs and instances using unmanaged ones",
    )
    p.add_argument("--refresh", action="store_true", help="update the state to what is live")
    _scoping(p)
    _common(p)

    p = sub.add_parser("report", help="write an HTML page of the key pairs for scheduled jobs")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--out", metavar="FILE", help="the HTML file to write")
    _scoping(p)
    _common(p)

    p = sub.add_parser("import", help="adopt existing key pairs into the state")
    p.add_argument("address", nargs="?", metavar="REGION/NAME")
    p.add_argument("--tags-from", metavar="PATH", help="manifests whose tags it should get")
    p.add_argument(
        "--all", action="store_true", help="every live key pair (in the --region(s) given)"
    )
    p.add_argument(
        "--write-manifests", metavar="DIR", help="with --all: write one manifest per region here"
    )
    p.add_argument("--force", action="store_true", help="with --all: overwrite differing files")
    p.add_argument("--auto-approve", action="store_true", help="do not ask for confirmation")
    p.add_argument("--parallelism", type=at_least(1), default=10, metavar="N")
    _common(p)

    p = sub.add_parser("state", help="inspect or edit the state")
    ssub = p.add_subparsers(dest="state_command", metavar="SUBCOMMAND", required=True)
    sp = ssub.add_parser("list", help="list key pairs in the state")
    _common(sp)
    sp = ssub.add_parser("show", help="show one key pair")
    sp.add_argument("address", metavar="REGION/NAME")
    sp.add_argument("--reveal", action="store_true", help="include the private key")
    _common(sp)
    sp = ssub.add_parser("encrypt", help="encrypt the private keys in the state")
    _encryption(sp)
    _common(sp)
    sp = ssub.add_parser("decrypt", help="store the private keys in clear again")
    _common(sp)
    sp = ssub.add_parser("migrate-keys", help="move every private key to another key store")
    sp.add_argument(
        "--to", required=True, metavar="STORE", help="state, ssm:... or secretsmanager:..."
    )
    sp.add_argument("--kms-key-id", metavar="KEY_ID", help="KMS key for the new store")
    sp = ssub.add_parser("unprotect", help="drop the preventDestroy recorded for a key pair")
    sp.add_argument("address", metavar="REGION/NAME")
    _common(sp)
    sp = ssub.add_parser("rm", help="forget a key pair (Lightsail is not touched)")
    sp.add_argument("address", metavar="REGION/NAME")
    _common(sp)

    p = sub.add_parser("key", help="private and public keys from the state")
    ksub = p.add_subparsers(dest="key_command", metavar="SUBCOMMAND", required=True)
    kp = ksub.add_parser("get", help="write the private key PEM (or --public) to stdout")
    kp.add_argument("address", metavar="REGION/NAME")
    kp.add_argument("--public", action="store_true")
    kp.add_argument(
        "--generation",
        type=at_least(0),
        default=0,
        metavar="N",
        help="an earlier key kept by rotation: 1 is the previous one (default 0, the current)",
    )
    _common(kp)

    p = sub.add_parser("force-unlock", help="remove a state lock left behind")
    p.add_argument("lock_id", metavar="LOCK_ID")
    p.add_argument(
        "--force", action="store_true", help="even if the holder still runs on this host"
    )
    _common(p)

    p = sub.add_parser("emulator", help="run a local Lightsail endpoint")
    if argv is None or next((a for a in argv if not a.startswith("-")), None) == "emulator":
        from reconciler.emulator import cli as emulator_cli

        emulator_cli.add_arguments(p)
    return parser


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("reconciler")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # botocore at DEBUG logs response bodies, which may hold private keys.
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _error(err: ReconcilerError) -> None:
    sys.stderr.write(f"Error: {err.message}\n")
    if isinstance(err, ManifestError):
        sys.stderr.write("".join(f"{p}\n" for p in err.problems))
    if err.hint:
        sys.stderr.write(f"  -> {err.hint}\n")


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    verbose = getattr(args, "verbose", 0) or 0
    _setup_logging(verbose)
    try:
        return dispatch(args)
    except ReconcilerError as err:
        _error(err)
        return err.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        return 130
    except BrokenPipeError:
        return EXIT_ERROR
    except Exception as err:
        log.debug("internal error", exc_info=True)
        sys.stderr.write(
            f"Error: internal error ({type(err).__name__}); run again with -vv for details\n"
        )
        return EXIT_ERROR


def dispatch(args: argparse.Namespace) -> int:
    if args.command in ("validate", "policy"):  # offline commands: a fast start, no AWS modules
        from reconciler.cli import checks

        return checks.run(args)
    from reconciler.cli import commands

    handlers: dict[str, Any] = {
        "plan": commands.plan,
        "apply": commands.apply,
        "destroy": commands.destroy,
        "drift": commands.drift,
        "import": commands.import_,
        "report": commands.report,
        "state": commands.state,
        "key": commands.key,
        "force-unlock": commands.force_unlock,
    }
    if args.command == "emulator":
        from reconciler.emulator import cli as emulator_cli

        return emulator_cli.run(args)
    result: int = handlers[args.command](args)
    return result
