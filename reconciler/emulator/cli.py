"""``reconciler emulator``: run the local Lightsail endpoint until SIGINT or SIGTERM.

``add_arguments`` declares the flags and ``run`` serves; the first line on
stdout is ``listening on http://HOST:PORT``, flushed at once, so a parent
process can read the address. Start-up failures are raised as
``EmulatorError`` for the caller to report.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from reconciler.emulator.accounts import parse_mapping
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.ratelimit import RateLimit
from reconciler.emulator.server import Emulator
from reconciler.errors import ReconcilerError


def _number(kind: Callable[[str], Any], low: float, high: float | None = None) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"{text} is not {bounds}")
        return value

    return parse


def _rate_limit(text: str) -> RateLimit:
    try:
        return RateLimit.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _account(text: str) -> tuple[str, str]:
    try:
        return parse_mapping(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = EmulatorConfig()
    rate = _number(float, 0.0, 1.0)
    parser.add_argument("--host", default=defaults.host, help="address to listen on")
    parser.add_argument(
        "--port", type=_number(int, 0, 65535), default=0, help="port; 0 picks a free one"
    )
    parser.add_argument(
        "--data", metavar="FILE", help="keep key pairs in this file across restarts"
    )
    parser.add_argument("--access-key", help="verify request signatures: the access key id")
    parser.add_argument("--secret-key", help="verify request signatures: the secret key")
    parser.add_argument(
        "--account-id",
        default=defaults.account_id,
        help="12-digit id of the default account (of access keys not mapped by --account)",
    )
    parser.add_argument(
        "--account",
        metavar="ACCESS_KEY_ID=ACCOUNT_ID",
        type=_account,
        action="append",
        default=[],
        help="requests signed with this access key belong to this account; repeatable",
    )
    parser.add_argument(
        "--sts-endpoint",
        metavar="URL",
        help="temporary credentials belong to the account this STS names for them "
        "(GetCallerIdentity; for moto's STS, which does not check signatures)",
    )
    parser.add_argument("--seed", type=int, help="seed for fault injection, for replayable runs")
    parser.add_argument(
        "--latency-ms", type=_number(float, 0.0), default=0.0, help="delay added to every call"
    )
    parser.add_argument("--throttle-rate", type=rate, default=0.0, help="share of calls throttled")
    parser.add_argument(
        "--error-rate", type=rate, default=0.0, help="share of calls answered a 500"
    )
    parser.add_argument(
        "--commit-then-fail-rate",
        type=rate,
        default=0.0,
        help="share of changes committed whose response is a 500 or a dropped connection",
    )
    parser.add_argument(
        "--page-size",
        type=_number(int, 1),
        default=defaults.page_size,
        help="GetKeyPairs page size",
    )
    parser.add_argument(
        "--key-pool",
        type=_number(int, 0),
        default=0,
        help="serve RSA keys round-robin from this many pre-generated ones (0: a new key each)",
    )
    parser.add_argument(
        "--rate-limit",
        metavar="[OPERATION=]RPS[:BURST]",
        type=_rate_limit,
        action="append",
        default=[],
        help="token bucket per account and region: RPS calls a second, bursts of BURST "
        "(default RPS); with OPERATION= only for that operation; repeatable",
    )
    parser.add_argument("--log-requests", action="store_true", help="log every request on stderr")


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    return EmulatorConfig(
        host=args.host,
        port=args.port,
        data_path=args.data,
        access_key=args.access_key,
        secret_key=args.secret_key,
        account_id=args.account_id,
        accounts=dict(args.account),
        sts_endpoint=args.sts_endpoint,
        seed=args.seed,
        latency_ms=args.latency_ms,
        throttle_rate=args.throttle_rate,
        error_rate=args.error_rate,
        commit_then_fail_rate=args.commit_then_fail_rate,
        page_size=args.page_size,
        key_pool=args.key_pool,
        rate_limits=tuple(args.rate_limit),
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; 0 after a clean shutdown."""
    config = config_from_args(args)
    if args.log_requests:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        emulator_logger = logging.getLogger("reconciler.emulator")
        emulator_logger.addHandler(handler)
        emulator_logger.setLevel(logging.DEBUG)
    stop = threading.Event()
    previous = _on_signals((signal.SIGINT, signal.SIGTERM), lambda *_: stop.set())
    try:
        emulator = Emulator(config).start()
        try:
            print(f"listening on {emulator.url}", flush=True)
            while not stop.wait():
                pass
        finally:
            emulator.stop()
    finally:
        for signum, handler_before in previous.items():
            signal.signal(signum, handler_before)
    return 0


def _on_signals(signums: Sequence[signal.Signals], handler: Callable[..., None]) -> dict[int, Any]:
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in signums:
            previous[signum] = signal.signal(signum, handler)
    return previous


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m reconciler.emulator``: the same flags, errors reported on stderr."""
    parser = argparse.ArgumentParser(
        prog="python -m reconciler.emulator", description="A local Lightsail key-pair endpoint."
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except ReconcilerError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
