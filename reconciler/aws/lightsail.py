"""The only module that talks to Lightsail (through boto3).

It reads live snapshots (paginated GetKeyPairs, regions concurrently) and
carries out single mutating calls, turning every botocore failure into a
``LightsailError`` that names the key pair and says what to do. Every call to
a region goes through that region's ``Pacer`` (reconciler/retry.py), which
learns the rate Lightsail sustains from its throttles, so a throttled call
waits for its turn rather than sleeping through backoff. Reads also retry 5xx
and dropped connections with the project's one ``backoff``; mutating calls
retry only where that cannot create a duplicate (throttling is answered before
any effect; a create whose outcome is unknown is checked with GetKeyPair,
never blindly sent again).

Every answer the reconciler reads is decoded strictly by ``wire`` (botocore
parses none of them: ``take_members``); a malformed one is one LightsailError
naming the operation, the place and the field, and ends the run: it is not a
region left unread.

Never log request or response bodies: CreateKeyPair's holds a private key.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import boto3
import botocore.exceptions
import botocore.utils

from reconciler.aws import wire
from reconciler.aws.config import client_config
from reconciler.aws.retry import THROTTLING_CODES, Pacer, Retried, backoff, paced
from reconciler.aws.wire import CreatedKeyPair, ImportedKeyPair
from reconciler.errors import CredentialsError, LightsailError
from reconciler.manifests.accounts import Account, Accounts
from reconciler.model import (
    Address,
    LiveInstance,
    LiveKeyPair,
    LiveSnapshot,
    Tags,
    Unread,
    account_of,
    region_of,
    unread_places,
    where,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


HINTS: Mapping[str, str] = {
    "AccessDeniedException": (
        "the credentials lack permission; allow lightsail:*KeyPair* and lightsail:*Resource "
        "in the IAM policy of the profile in use"
    ),
    "AccountSetupInProgressException": (
        "the account is still being set up; wait a few minutes and run again"
    ),
    "RegionSetupInProgressException": (
        "Lightsail is still setting up this region for the account; wait and run again"
    ),
    "InvalidInputException": "fix the input named in the message and run again",
    "NotFoundException": "it no longer exists in Lightsail; run `reconciler plan` to see the state",
    "OperationFailureException": "Lightsail could not complete the operation; run again",
    "ServiceException": "Lightsail had an internal error; run again (completed work is in state)",
    "UnauthenticatedException": (
        "the credentials were not accepted; check AWS_PROFILE / AWS_ACCESS_KEY_ID and the clock"
    ),
    "UnrecognizedClientException": (
        "the access key is not known to AWS; check AWS_PROFILE / AWS_ACCESS_KEY_ID"
    ),
    "InvalidClientTokenId": "the access key is not known to AWS; check your credentials",
    "ExpiredTokenException": "the session token has expired; refresh your credentials",
}


# Failures of the account or credentials, not of one region: no point going on.
ACCOUNT_LEVEL_CODES = frozenset(
    {
        "AccessDeniedException",
        "AccountSetupInProgressException",
        "UnauthenticatedException",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredTokenException",
        "NoCredentials",
    }
)


def account_level(error: LightsailError) -> bool:
    """The failure is the account's or its credentials', not one region's."""
    return isinstance(error, CredentialsError) or error.code in ACCOUNT_LEVEL_CODES


# The code of a LightsailError for an endpoint that cannot be reached at all.
UNREACHABLE = "ConnectionError"
UNREACHABLE_HINT = (
    "check that the endpoint is up, the network, and AWS_ENDPOINT_URL_LIGHTSAIL "
    "(or --endpoint-url); then run again"
)

# Tag, untag and delete after a 5xx or a dropped connection: safe to repeat.
IDEMPOTENT_ATTEMPTS = 8


class AmbiguousOutcome(Exception):
    """A mutating call may or may not have taken effect (5xx, lost connection)."""

    def __init__(self, cause: str, code: str = "") -> None:
        super().__init__(cause)
        self.cause = cause
        self.code = code or "ConnectionError"


def error_code(error: botocore.exceptions.ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _detail_code(error: botocore.exceptions.ClientError) -> str:
    """Lightsail's finer-grained ``code`` member (e.g. NameExists), if any."""
    return str(error.response.get("code", ""))


def translate(error: Exception, what: str) -> LightsailError:
    """A botocore failure as a one-line LightsailError about ``what``."""
    if isinstance(
        error, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError
    ):
        return CredentialsError(
            f"{what}: no AWS credentials found",
            code="NoCredentials",
            hint="set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or use --local",
        )
    if isinstance(error, botocore.exceptions.NoRegionError):
        return CredentialsError(f"{what}: no AWS region configured", hint="set AWS_DEFAULT_REGION")
    if isinstance(error, botocore.exceptions.ClientError):
        code = error_code(error)
        message = str(error.response.get("Error", {}).get("Message", "")) or code
        detail = _detail_code(error)
        suffix = f" ({code}{'/' + detail if detail else ''})"
        return LightsailError(
            f"{what}: {message}{suffix}", code=code, detail=detail, hint=HINTS.get(code)
        )
    if isinstance(
        error, botocore.exceptions.EndpointConnectionError | botocore.exceptions.ConnectionError
    ):
        url = getattr(error, "kwargs", {}).get("endpoint_url")
        where = f" at {url}" if url else ""
        return LightsailError(
            f"{what}: cannot reach Lightsail{where} ({type(error).__name__})",
            code=UNREACHABLE,
            hint=UNREACHABLE_HINT,
        )
    if isinstance(error, botocore.exceptions.BotoCoreError):
        return LightsailError(f"{what}: {error}", code=type(error).__name__)
    return LightsailError(f"{what}: {type(error).__name__}", code=type(error).__name__)


def throttled(error: Exception) -> bool:
    """True for a throttle: nothing happened, the call may be sent again more slowly."""
    return (
        isinstance(error, botocore.exceptions.ClientError) and error_code(error) in THROTTLING_CODES
    )


def _never(error: Exception) -> bool:
    return False


def _is_ambiguous(error: Exception) -> bool:
    """True when a mutating call may have taken effect despite the error."""
    if isinstance(error, botocore.exceptions.ClientError):
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        return status >= 500
    return isinstance(
        error,
        botocore.exceptions.ConnectionError
        | botocore.exceptions.HTTPClientError
        | botocore.exceptions.ReadTimeoutError,
    )


def tags_to_api(tags: Tags) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for key in sorted(tags):
        value = tags[key]
        out.append({"key": key} if value is None else {"key": key, "value": value})
    return out


class IncompleteResponse(botocore.exceptions.ConnectionClosedError):  # type: ignore[misc]
    """An answer whose body ended before its Content-Length: the connection was cut.

    botocore parses what arrived; a JSON body cut short parses as a success
    carrying nothing (no key pair, no private key, no version). Raised instead,
    it is a dropped connection: a read is retried, a write's outcome is unknown.
    """

    fmt = (
        'The answer from endpoint URL "{endpoint_url}" ended after {received} of {expected} bytes.'
    )


def _cut_short(response_dict: Mapping[str, Any]) -> tuple[int, int] | None:
    """(received, expected) bytes when the body is shorter than its Content-Length."""
    body, headers = response_dict.get("body"), response_dict.get("headers") or {}
    try:
        expected = int(headers.get("content-length", ""))
    except ValueError:
        return None  # no length to hold the body to (streamed, or chunked)
    if isinstance(body, bytes) and len(body) < expected:
        return len(body), expected
    return None


def refuse_incomplete(client: Any) -> Any:
    """``client``, whose answers cut short raise ``IncompleteResponse``.

    For the JSON services (Lightsail, SSM, Secrets Manager, KMS), whose bodies
    botocore parses leniently. Not for S3: a HEAD answer's Content-Length is the
    object's size, not its body's; S3's XML fails to parse when cut, and an
    object body read short raises in botocore already.
    """
    url = client.meta.endpoint_url
    service = client.meta.service_model.service_id.hyphenize()

    def check(response_dict: dict[str, Any], **_: Any) -> None:
        if (cut := _cut_short(response_dict)) is not None:
            raise IncompleteResponse(endpoint_url=url, received=cut[0], expected=cut[1])

    client.meta.events.register_first(f"before-parse.{service}", check)
    return client


# Where an answer's JSON body goes when taken by ``take_members``.
RAW = "reconcilerRaw"
# The answers the reconciler reads: decoded by ``wire``, never parsed by botocore.
TAKEN = (
    "GetKeyPairs",
    "GetKeyPair",
    "GetInstances",
    "GetInstance",
    "CreateKeyPair",
    "ImportKeyPair",
)

# Per thread: told the next page's token as soon as a page's body is decoded.
_next_page = threading.local()


def take_members(
    response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any
) -> None:
    """Take a successful answer's JSON body away from botocore, for ``wire`` to decode.

    botocore checks no types when it parses (a number comes through where the
    model says string) and raises, naming nothing, on some shapes (a string
    where a list should be); it also walks every field against the service
    model in Python, about ten times the cost of decoding the JSON, which for a
    page of key pairs is most of a plan's CPU. So the body is decoded here with
    ``json.loads`` alone and handed over whole (``RAW``); botocore parses an
    empty object. An error answer, or one cut short, is left to botocore (and
    to ``refuse_incomplete``'s check); one that is not JSON is left too, and
    the caller, finding no ``RAW``, reports it malformed.
    """
    if response_dict.get("status_code") != 200 or _cut_short(response_dict) is not None:
        return
    try:
        data = json.loads(response_dict["body"])
    except (KeyError, TypeError, ValueError, RecursionError):
        return
    customized_response_dict[RAW] = data  # not an object: ``raw_answer`` says so
    response_dict["body"] = b"{}"
    response_dict["headers"]["content-length"] = "2"
    announce: Callable[[str], None] | None = getattr(_next_page, "announce", None)
    token = data.get("nextPageToken") if isinstance(data, dict) else None
    if announce is not None and isinstance(token, str) and token:
        announce(token)


def raw_answer(response: Mapping[str, Any]) -> Mapping[str, Any]:
    """The JSON body ``take_members`` took from an answer; Malformed when there was none."""
    return wire.answer(response.get(RAW))


def decode_answers(client: Any, operations: Iterable[str]) -> Any:
    """``client`` (of a JSON service), whose answers to ``operations`` are taken whole by
    ``take_members`` for the caller to decode with ``raw_answer``; registered once."""
    service = client.meta.service_model.service_id.hyphenize()
    for operation in operations:
        client.meta.events.register(
            f"before-parse.{service}.{operation}", take_members, unique_id=f"take-{operation}"
        )
    return client


@dataclass(frozen=True, slots=True)
class InstanceReading:
    """The instances of the places read, and why each other place could not be read."""

    instances: tuple[LiveInstance, ...]
    read: tuple[str, ...]
    failed: Mapping[str, LightsailError]

    def unread(self) -> tuple[Unread, ...]:
        """The places not read, an account whose credentials failed named once."""
        messages: dict[str, str] = {}
        accounts: dict[str, str] = {}
        for place, error in sorted(self.failed.items()):
            messages[place] = error.message.removeprefix(f"reading instances in {place}: ")
            if account_of(place) and account_level(error):
                messages[place] = _account_failure(place, error.message, "instances")
                accounts.setdefault(account_of(place), messages[place])
        return unread_places(messages, accounts)


@dataclass
class ClientOptions:
    endpoint_url: str | None = None
    profile: str | None = None
    max_attempts: int = 12
    max_throttles: int = 60
    connect_timeout: float = 10
    read_timeout: float = 60
    access_key: str | None = None
    secret_key: str | None = None
    pool_size: int = 10
    # Per account alias: a static access key of the embedded emulator (--local).
    account_keys: Mapping[str, str] = field(default_factory=dict)


def kms_client_factory(profile: str | None = None) -> Callable[[str | None], Any]:
    """KMS clients for state encryption, by region, from boto3's standard chain.

    They honour AWS_ENDPOINT_URL_KMS (never --endpoint-url, which is Lightsail's).
    """
    config = client_config(attempts=5, connect_timeout=10, read_timeout=30)

    def make(region: str | None) -> Any:
        session = boto3.session.Session(profile_name=profile)
        return refuse_incomplete(session.client("kms", region_name=region, config=config))

    return make


def aws_client_factory(
    service: str, profile: str | None = None, *, timeout: float | None = None
) -> Callable[[str | None], Any]:
    """Clients of another AWS service (``ssm``, ``secretsmanager``, ``sts``) by region.

    The key stores' clients: boto3's standard chain, AWS_ENDPOINT_URL_<SERVICE>
    honoured (never --endpoint-url, which is Lightsail's). One client per region.
    Each makes one attempt per call: the key stores pace their calls and retry
    what is safe to retry (``keystore.remote.retried``), and a retried write
    that had taken effect is recognised by its labels. ``timeout`` (seconds)
    bounds connecting and each wait for an answer.
    """
    config = client_config(attempts=1, connect_timeout=timeout or 10, read_timeout=timeout or 30)
    lock = threading.Lock()
    clients: dict[str | None, Any] = {}

    def make(region: str | None) -> Any:
        with lock:
            if region not in clients:
                try:
                    session = boto3.session.Session(profile_name=profile)
                    # botocore's own parser raises on a malformed date, naming nothing.
                    factory = session._session.get_component("response_parser_factory")
                    factory.set_parser_defaults(timestamp_parser=wire.lenient_timestamp)
                    clients[region] = refuse_incomplete(
                        session.client(service, region_name=region, config=config)
                    )
                except botocore.exceptions.BotoCoreError as e:
                    raise translate(e, f"AWS configuration for {service}") from None
            return clients[region]

    return make


class Lightsail:
    """A boto3 Lightsail client per account and region, and the calls the reconciler makes.

    Each address's ``account`` picks the declared account whose credentials
    are used (resolved once, on first use); the empty account is the one
    declared account, or the default chain when none is.
    """

    def __init__(
        self, options: ClientOptions | None = None, accounts: Accounts | None = None
    ) -> None:
        self.options = options or ClientOptions()
        self.accounts = accounts or Accounts()
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str], Any] = {}
        self._pacers: dict[str, Pacer] = {}
        # Per account alias: its session, or the CredentialsError it failed with.
        self._sessions: dict[str, Any] = {}
        self._resolving: dict[str, threading.Lock] = {}
        self._account_ids: dict[str, str] = {}
        self.sleep: Callable[[float], None] = time.sleep

    def _declared(self, account: str) -> Account | None:
        if account:
            declared = self.accounts.by_alias.get(account)
            if declared is None:
                raise CredentialsError(
                    f"account {account} is not declared in reconciler.yaml",
                    code="UnknownAccount",
                    hint="declare it under accounts:, or remove it from the state",
                )
            return declared
        if len(self.accounts) == 1:
            return next(iter(self.accounts))
        return None

    def _boto_session(self, account: str = "") -> Any:
        with self._lock:
            resolving = self._resolving.setdefault(account, threading.Lock())
        with resolving:  # once per account, however many regions ask at the same time
            if account not in self._sessions:
                self._sessions[account] = self._new_session(account)
        session = self._sessions[account]
        if isinstance(session, CredentialsError):
            raise session
        return session

    def _new_session(self, account: str) -> Any:
        try:
            declared = self._declared(account)
        except CredentialsError as e:
            return e
        local_key = self.options.account_keys.get(declared.alias) if declared else None
        if local_key is not None:
            session = boto3.session.Session(
                aws_access_key_id=local_key, aws_secret_access_key=self.options.secret_key
            )
        elif declared is not None:
            from reconciler.aws.credentials import session_for

            try:
                session = session_for(declared)
            except CredentialsError as e:
                return e
        else:
            try:
                session = boto3.session.Session(
                    profile_name=self.options.profile,
                    aws_access_key_id=self.options.access_key,
                    aws_secret_access_key=self.options.secret_key,
                )
            except botocore.exceptions.BotoCoreError as e:
                return translate(e, "AWS configuration")
        # Lightsail sends epoch seconds and we store epoch seconds: skip
        # botocore's datetime round trip, a third of its parsing time on
        # a page of key pairs.
        factory = session._session.get_component("response_parser_factory")
        factory.set_parser_defaults(timestamp_parser=wire.lenient_timestamp)
        return session

    def account_id(self, account: str) -> str:
        """The 12-digit id behind an account alias (asks STS for a profile's, once)."""
        from reconciler.aws.credentials import account_id

        declared = self._declared(account)
        if declared is None:
            raise CredentialsError(f"no declared account {account!r} to identify")
        with self._lock:
            known = self._account_ids.get(declared.alias)
        if known is None:
            known = account_id(declared, self._boto_session(account))
            with self._lock:
                self._account_ids[declared.alias] = known
        return known

    def client(self, region: str, account: str = "") -> Any:
        """A cached client; retries and pacing are left to ``_attempts``."""
        key = (account, region)
        session = self._boto_session(account)
        with self._lock:
            if key not in self._clients:
                config = client_config(
                    attempts=1,
                    connect_timeout=self.options.connect_timeout,
                    read_timeout=self.options.read_timeout,
                    pool_size=max(10, self.options.pool_size),
                )
                try:
                    made = session.client(
                        "lightsail",
                        region_name=region,
                        endpoint_url=self.options.endpoint_url,
                        config=config,
                    )
                except botocore.exceptions.BotoCoreError as e:
                    # Credentials resolved as the client is made: the account's failure.
                    raise CredentialsError(
                        f"account {account or 'default'}: cannot get credentials: "
                        f"{' '.join(str(e).split())} ({type(e).__name__})",
                        code=type(e).__name__,
                        hint="fix the account's credentials, or leave it out with --account",
                    ) from None
                client = refuse_incomplete(made)
                decode_answers(client, TAKEN)
                self._clients[key] = client
            return self._clients[key]

    def pacer(self, region: str) -> Pacer:
        """The pace shared by every call to ``region`` (``ACCOUNT/REGION``: each
        account is metered apart)."""
        with self._lock:
            if region not in self._pacers:
                self._pacers[region] = Pacer(sleep=self.sleep)
            return self._pacers[region]

    def _attempts(self, region: str, fn: Callable[[], T], *, idempotent: bool) -> T:
        """Run ``fn`` at the region's pace, retrying throttles and, when it is
        safe to repeat, 5xx and dropped connections. The last error is raised."""
        try:
            return paced(
                fn,
                self.pacer(region),
                throttle=throttled,
                transient=_is_ambiguous if idempotent else _never,
                attempts=self.options.max_attempts,
                throttles=self.options.max_throttles,
                sleep=self.sleep,
            )
        except Retried as e:
            raise e.error from None

    # -- reads --------------------------------------------------------------

    def read(self, region: str, operation: str, account: str = "", **kwargs: Any) -> Any:
        """One read-only call (``operation`` as boto3 names it), paced and retried.

        botocore's errors pass through for the caller to translate.
        """
        method = getattr(self.client(region, account), operation)
        return self._attempts(
            where(account, region), functools.partial(method, **kwargs), idempotent=True
        )

    def list_key_pairs(self, region: str, account: str = "") -> list[LiveKeyPair]:
        """Every key pair in ``region`` (default key excluded), page by page.

        Pages follow one another (each names the next), but the request for
        page k+1 is sent as soon as page k's body is decoded, by a second
        thread, while this one turns page k into key pairs: the decoding
        hides behind the next round trip. Each page is requested once.
        """
        client = self.client(region, account)
        place = where(account, region)
        result: list[LiveKeyPair] = []
        pages: dict[int, Future[Any]] = {}  # requested, not yet turned into key pairs
        requested: set[int] = set()
        lock = threading.Lock()

        def request(index: int, token: str | None) -> None:
            with lock:
                if index not in requested:
                    requested.add(index)
                    pages[index] = pool.submit(fetch, index, token)

        def fetch(index: int, token: str | None) -> Any:
            kwargs: dict[str, Any] = {"pageToken": token} if token else {}
            _next_page.announce = functools.partial(request, index + 1)
            try:
                page = self._attempts(
                    place, functools.partial(client.get_key_pairs, **kwargs), idempotent=True
                )
            finally:
                _next_page.announce = None
            raw = page.get(RAW)
            following = raw.get("nextPageToken") if isinstance(raw, dict) else None
            if isinstance(following, str) and following:
                request(index + 1, following)  # when the page was not decoded early
            return page

        index = 0
        try:
            with ThreadPoolExecutor(max_workers=2) as pool:
                request(0, None)
                while True:
                    with lock:
                        # Dropped once read: a page's JSON is larger than its key pairs.
                        future = pages.pop(index)
                    data = raw_answer(future.result())
                    items = wire.items(wire.member(data, "keyPairs"), "keyPairs")
                    result.extend(wire.key_pairs(items, "keyPairs", region, account))
                    if wire.page_token(data) is None:
                        return result
                    index += 1
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            raise translate(e, f"reading key pairs in {place}") from None
        except wire.Malformed as e:
            raise wire.malformed("GetKeyPairs", _page_place(place, index), e) from None

    def list_instances(self, place: str) -> list[LiveInstance]:
        """Every instance in ``place`` (``REGION`` or ``ACCOUNT/REGION``) with the key pair
        it was launched with, page by page (each page paced and retried like every read)."""
        region, account = region_of(place), account_of(place)
        result: list[LiveInstance] = []
        token: str | None = None
        index = 0
        try:
            while True:
                kwargs: dict[str, Any] = {"pageToken": token} if token else {}
                data = raw_answer(self.read(region, "get_instances", account, **kwargs))
                items = wire.items(wire.member(data, "instances"), "instances")
                result.extend(
                    wire.instance(item, f"instances[{i}]", region, account)
                    for i, item in enumerate(items)
                )
                token = wire.page_token(data)
                if token is None:
                    return result
                index += 1
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            raise translate(e, f"reading instances in {place}") from None
        except wire.Malformed as e:
            raise wire.malformed("GetInstances", _page_place(place, index), e) from None

    def instances(self, regions: Iterable[str], *, parallelism: int = 4) -> list[LiveInstance]:
        """The instances of ``regions``, read concurrently; any failure is an error.

        Unlike a snapshot, a region that cannot be read is not skipped: a guard
        that could not look must not let a deletion through.
        """
        reading = self.read_instances(regions, parallelism=parallelism)
        if reading.failed:
            raise reading.failed[min(reading.failed)]
        return list(reading.instances)

    def read_instances(self, regions: Iterable[str], *, parallelism: int = 4) -> InstanceReading:
        """The instances of ``regions``, read concurrently, and the places that failed.

        For what only shows instances (a report, drift's use findings): a place
        that cannot be read leaves its instances unknown there, not everywhere.
        """
        ordered = sorted(set(regions))

        def read(place: str) -> list[LiveInstance] | LightsailError:
            try:
                return self.list_instances(place)
            except LightsailError as e:
                return e

        if not ordered:
            return InstanceReading((), (), {})
        with ThreadPoolExecutor(max_workers=max(1, min(parallelism, len(ordered)))) as pool:
            results = dict(zip(ordered, pool.map(read, ordered), strict=True))
        failed = {p: r for p, r in results.items() if isinstance(r, LightsailError)}
        for error in failed.values():
            if error.code == wire.MALFORMED:
                raise error  # an answer outside the model is not a place left unread
        found = (i for r in results.values() if not isinstance(r, LightsailError) for i in r)
        done = tuple(p for p in ordered if p not in failed)
        return InstanceReading(tuple(sorted(found)), done, failed)

    def get_key_pair(self, address: Address) -> LiveKeyPair | None:
        try:
            client = self.client(address.region, address.account)
            response = self._attempts(
                address.where,
                lambda: client.get_key_pair(keyPairName=address.name),
                idempotent=True,
            )
        except botocore.exceptions.ClientError as e:
            if error_code(e) == "NotFoundException":
                return None
            raise translate(e, f"reading {address}") from None
        except botocore.exceptions.BotoCoreError as e:
            raise translate(e, f"reading {address}") from None
        try:
            data = raw_answer(response)
            live = wire.key_pair(
                wire.member(data, "keyPair"), "keyPair", address.region, address.account
            )
            if live.address != address:
                raise wire.Malformed(
                    "keyPair.name", f"{live.address.name!r} is not the name asked for"
                )
        except wire.Malformed as e:
            raise wire.malformed("GetKeyPair", address.where, e) from None
        return live

    def snapshot(self, regions: Iterable[str], *, parallelism: int | None = None) -> LiveSnapshot:
        """Read every region (``REGION`` or ``ACCOUNT/REGION``) concurrently.

        A failing region is recorded, not fatal. So is a failing account when
        the regions name accounts: its credentials or permissions failing
        leaves its regions unread while the other accounts are read, and the
        account is recorded too (``LiveSnapshot.unread`` reports it once). With
        one account, such a failure ends the run.
        """
        ordered = sorted(set(regions))
        key_pairs: dict[Address, LiveKeyPair] = {}
        failed: dict[str, str] = {}
        accounts: dict[str, str] = {}  # failing accounts: alias -> what failed
        if not ordered:
            return LiveSnapshot({}, ())
        workers = parallelism or self.options.pool_size  # the run's one --parallelism

        def read(place: str) -> tuple[str, list[LiveKeyPair] | LightsailError]:
            try:
                return place, self.list_key_pairs(region_of(place), account_of(place))
            except LightsailError as e:
                return place, e

        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(ordered)))) as pool:
            results = list(pool.map(read, ordered))
        down = [o for _, o in results if isinstance(o, LightsailError) and o.code == UNREACHABLE]
        if results and len(down) == len(results):
            raise down[0]  # not one region answered: the endpoint itself is down; one message
        for error in (o for _, o in results if isinstance(o, LightsailError)):
            if error.code == wire.MALFORMED:
                raise error  # an answer outside the model is not a region left unread
        for region, outcome in results:
            if isinstance(outcome, LightsailError) and account_level(outcome):
                if account_of(region):
                    failed[region] = _account_failure(region, outcome.message)
                    accounts.setdefault(account_of(region), failed[region])
                    continue
                raise outcome
            if isinstance(outcome, LightsailError):
                failed[region] = outcome.message
                continue
            for kp in outcome:
                key_pairs[kp.address] = kp
        read_ok = tuple(r for r in ordered if r not in failed)
        return LiveSnapshot(key_pairs, read_ok, failed, accounts)

    # -- writes -------------------------------------------------------------

    def _call(self, address: Address, what: str, fn: Callable[[], T]) -> T:
        """Run a mutating call, retrying throttling only.

        Raises AmbiguousOutcome when the call may have taken effect, and a
        LightsailError when it certainly did not.
        """
        try:
            return self._attempts(address.where, fn, idempotent=False)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            if _is_ambiguous(e):
                failure = translate(e, f"{what} {address}")
                raise AmbiguousOutcome(failure.message, failure.code) from None
            raise translate(e, f"{what} {address}") from None

    def create_key_pair(self, address: Address, tags: Tags) -> CreatedKeyPair:
        client = self.client(address.region, address.account)
        kwargs: dict[str, Any] = {"keyPairName": address.name}
        if tags:
            kwargs["tags"] = tags_to_api(tags)
        response = self._call(address, "creating", lambda: client.create_key_pair(**kwargs))
        data = response.get(RAW)
        created = None
        if isinstance(data, dict):
            created = wire.created_key_pair(data, address, address.where)
        if created is None:
            # Answered, but not with a private key: whether a key pair was made is unknown.
            raise AmbiguousOutcome(f"creating {address}: the answer carried no key pair")
        return created

    def import_key_pair(self, address: Address, public_key: str) -> ImportedKeyPair:
        client = self.client(address.region, address.account)
        response = self._call(
            address,
            "importing",
            lambda: client.import_key_pair(keyPairName=address.name, publicKeyBase64=public_key),
        )
        try:
            return ImportedKeyPair(
                wire.operation(raw_answer(response).get("operation"), "operation")
            )
        except wire.Malformed as e:
            # The import took effect: the key pair is read back (strictly) and recorded.
            problem = wire.malformed("ImportKeyPair", address.where, e, wire.IMPORTED_HINT)
            return ImportedKeyPair(None, problem)

    def tag(self, address: Address, tags: Tags) -> None:
        if not tags:
            return
        client = self.client(address.region, address.account)
        self._retry_idempotent(
            address,
            "tagging",
            lambda: client.tag_resource(resourceName=address.name, tags=tags_to_api(tags)),
        )

    def untag(self, address: Address, keys: Iterable[str]) -> None:
        keys = sorted(keys)
        if not keys:
            return
        client = self.client(address.region, address.account)
        self._retry_idempotent(
            address,
            "untagging",
            lambda: client.untag_resource(resourceName=address.name, tagKeys=keys),
        )

    def delete_key_pair(self, address: Address, expected_fingerprint: str | None) -> bool:
        """Delete; False when it was already gone. A fingerprint mismatch raises."""
        client = self.client(address.region, address.account)
        kwargs: dict[str, Any] = {"keyPairName": address.name}
        if expected_fingerprint:
            kwargs["expectedFingerprint"] = expected_fingerprint
        try:
            self._retry_idempotent(address, "deleting", lambda: client.delete_key_pair(**kwargs))
        except LightsailError as e:
            if e.code == "NotFoundException":
                return False
            raise
        return True

    def _retry_idempotent(self, address: Address, what: str, fn: Callable[[], T]) -> T:
        """Tag, untag and delete may be repeated safely after an unknown outcome."""
        for attempt in range(IDEMPOTENT_ATTEMPTS):
            try:
                return self._call(address, what, fn)
            except AmbiguousOutcome as e:
                if attempt + 1 == IDEMPOTENT_ATTEMPTS:
                    if e.code == UNREACHABLE:
                        raise LightsailError(e.cause, code=e.code, hint=UNREACHABLE_HINT) from None
                    raise LightsailError(
                        e.cause, code="ServiceException", hint=HINTS["ServiceException"]
                    ) from None
                self.sleep(backoff(attempt))
        raise AssertionError("unreachable")


def _page_place(place: str, index: int) -> str:
    """Where a page came from, for messages: the place, and the page after the first."""
    return place if index == 0 else f"{place} (page {index + 1})"


def _account_failure(place: str, message: str, what: str = "key pairs") -> str:
    """The failure of an account's credentials, naming the account once."""
    account = account_of(place)
    message = message.removeprefix(f"reading {what} in {place}: ")
    return message if message.startswith(f"account {account}") else f"account {account}: {message}"
