"""The program: parse the command line, run the command, map errors to exit codes.

Every ReconcilerError becomes one line plus a hint and its exit code; any
other exception becomes "internal error" (traceback only with -vv). Private
keys are written only by `key get` and `state show --reveal`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from reconciler.cli.parser import build_parser
from reconciler.errors import EXIT_ERROR, ReconcilerError
from reconciler.output.terminal import TERMINAL

log = logging.getLogger("reconciler")

__all__ = ["build_parser", "main"]


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


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    verbose = getattr(args, "verbose", 0) or 0
    _setup_logging(verbose)
    try:
        result: int = args.run(args)
        return result
    except ReconcilerError as err:
        TERMINAL.failure(err)
        return err.exit_code
    except KeyboardInterrupt:
        TERMINAL.say("Interrupted.")
        return 130
    except BrokenPipeError:
        return EXIT_ERROR
    except Exception as err:
        log.debug("internal error", exc_info=True)
        TERMINAL.error(f"internal error ({type(err).__name__}); run again with -vv for details")
        return EXIT_ERROR
