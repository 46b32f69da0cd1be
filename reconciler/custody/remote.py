"""What the AWS-backed key stores share: name templates, labels as tags, retries, error
wording, and the outline of put, get and delete (``RemoteKeyStore``), each store
making only its own calls.

Calls to SSM and Secrets Manager are made once by botocore, paced and retried
here (``retried``). Each service meters calls per account and region (SSM
PutParameter and Secrets Manager CreateSecret at a few calls a second): every
call goes through the ``Pacer`` of its service, credentials and region, shared
by all workers, which learns that rate from throttles, so a throttled call
waits for its turn instead of spending its attempts. A 5xx, a timeout or a
dropped connection is sent again with the project's one backoff. That is safe
for every call the stores make: reads and deletes are idempotent, and a put
is never an overwrite (SSM ``Overwrite=false``, Secrets Manager
``CreateSecret``), so a put that landed before its answer was lost is refused
the second time and the store then checks the key there by its fingerprint
label (the same key is success, another one a conflict).

The stores' answers are decoded strictly, like Lightsail's: botocore parses
none of those the stores read (``decode_answers``), and ``decoded`` checks
each with the store's decoder, so a malformed one is one ``KeyStoreError``
naming the operation, the region and the field, and nothing of it is used.
"""

from __future__ import annotations

import abc
import re
import string
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import botocore.exceptions

from reconciler.aws import wire
from reconciler.aws.lightsail import decode_answers, error_code, raw_answer, throttled
from reconciler.aws.retry import Pacer, Retried, paced
from reconciler.custody.base import (
    KeyMetadata,
    KeyStoreConflict,
    KeyStoreError,
    KeyStoreUnavailable,
    key_fingerprint,
    labels_for,
)
from reconciler.model import Address, StateEntry
from reconciler.state.s3_objects import transient

T = TypeVar("T")

PLACEHOLDERS = ("region", "name", "account")
ClientFactory = Callable[[str | None], Any]

# Attempts in all for a call failing in a way worth retrying: at a 20% failure
# rate, one call in ~2.5 million fails (a put also needs its check to answer).
ATTEMPTS = 9
# Throttles in all for one call: about a minute of a service refusing every call
# for its rate (backoff capped at 5 s) before the store counts as unavailable.
THROTTLES = 30
# Busy codes of the JSON services, beside S3's and any 5xx. SSM's TooManyUpdates
# is about one parameter written concurrently, not the rate of calls: backoff, not pace.
_BUSY_CODES = frozenset(
    (
        "TooManyUpdates",
        "InternalServerError",
        "InternalServiceError",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
    )
)


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key to store: where, its PEM, and the description and tags it is stored with."""

    name: str
    pem: str = field(repr=False)
    description: str
    tags: list[dict[str, str]]


class Template:
    """A location template such as ``/lightsail/{account}/{region}/{name}``."""

    def __init__(self, text: str, *, allowed: re.Pattern[str], scheme: str) -> None:
        self.text = text
        fields = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
        unknown = sorted({f for f in fields if f not in PLACEHOLDERS})
        if unknown:
            raise ValueError(
                f"unknown placeholder {{{unknown[0]}}} (use {{region}}, {{name}}, {{account}})"
            )
        if "region" not in fields or "name" not in fields:
            raise ValueError("the location must contain {region} and {name}")
        literal = text
        for placeholder in PLACEHOLDERS:
            literal = literal.replace("{" + placeholder + "}", "x")
        if not allowed.fullmatch(literal):
            raise ValueError(f"{text!r} is not a valid {scheme} name template")
        self.uses_account = "account" in fields

    def render(self, address: Address, account: Callable[[Address], str]) -> str:
        values = {"region": address.region, "name": address.name}
        if self.uses_account:
            values["account"] = account(address)
        return self.text.format(**values)


class AccountId:
    """The AWS account id for ``{account}``: STS GetCallerIdentity, asked once.

    The account of the default credentials; a project declaring accounts
    resolves it per key pair instead (``StoreContext.account_ids``).
    """

    def __init__(self, sts: ClientFactory, pacer: Pacer) -> None:
        self._sts = sts
        self._pacer = pacer
        self._lock = threading.Lock()
        self._value: str | None = None

    def __call__(self) -> str:
        with self._lock:
            if self._value is None:
                response = call(
                    "looking up the AWS account id",
                    lambda: self._sts(None).get_caller_identity(),
                    self._pacer,
                    service="STS",
                )
                try:
                    self._value = wire.account_number(response)
                except wire.Malformed as error:
                    raise KeyStoreError(f"GetCallerIdentity: {error}") from None
            return self._value


def retryable(error: Exception) -> bool:
    """Whether a failed call is worth sending again (the service or the network hiccuped)."""
    if isinstance(error, botocore.exceptions.ClientError) and error_code(error) in _BUSY_CODES:
        return True
    return transient(error)


def retried(fn: Callable[[], T], pacer: Pacer, *, sleep: Callable[[float], None] = time.sleep) -> T:
    """``fn()`` at ``pacer``'s pace, sent again while it fails transiently.

    Throttles slow the pace and are retried on a budget of their own
    (``THROTTLES``); other failures worth retrying are sent again with backoff,
    ``ATTEMPTS`` in all. Any other botocore failure is raised as it is, for the
    caller to handle; one that outlasts its budget is raised as ``Retried``.
    """
    return paced(
        fn,
        pacer,
        throttle=throttled,
        transient=retryable,
        attempts=ATTEMPTS,
        throttles=THROTTLES,
        sleep=sleep,
    )


def call(what: str, fn: Callable[[], T], pacer: Pacer, *, service: str = "AWS") -> T:
    """``fn()``, paced and retried while it fails transiently, any failure a one-line
    KeyStoreError."""
    try:
        return retried(fn, pacer)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError, Retried) as e:
        raise translate(e, what, service) from None


def call_unless(
    code: str, what: str, fn: Callable[[], T], pacer: Pacer, *, service: str
) -> T | None:
    """``call``, but None when the service answers with error ``code``: the one
    refusal the caller expects (the name is taken, there is nothing there)."""
    try:
        return retried(fn, pacer)
    except botocore.exceptions.ClientError as e:
        if error_code(e) == code:
            return None
        raise translate(e, what, service) from None
    except (botocore.exceptions.BotoCoreError, Retried) as e:
        raise translate(e, what, service) from None


def translate(error: Exception, what: str, service: str = "AWS") -> KeyStoreError:
    """A botocore failure (or ``Retried``) as a one-line KeyStoreError about ``what``.

    A ``KeyStoreUnavailable`` when it is about the store, not this one key
    (unreachable, failing or throttling on every attempt, denied): the run then
    stops sending keys there.
    """
    tried = ""
    if isinstance(error, Retried):
        tried = f", tried {error.attempts} times"
        error = error.error
    if isinstance(error, botocore.exceptions.ClientError):
        code = error_code(error)
        message = str(error.response.get("Error", {}).get("Message", "")) or code
        hint = None
        unavailable = bool(tried)
        if code in ("AccessDeniedException", "AccessDenied", "UnrecognizedClientException"):
            hint = "the README lists the IAM permissions each command needs"
            unavailable = True
        elif tried:
            hint = f"{service} is failing or throttling; run again later"
        kind = KeyStoreUnavailable if unavailable else KeyStoreError
        return kind(f"{what}: {message} ({code}{tried})", hint=hint)
    if isinstance(
        error,
        botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError,
    ):
        return KeyStoreUnavailable(
            f"{what}: no AWS credentials found",
            hint="set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
        )
    endpoint = service.upper().replace(" ", "_")
    return KeyStoreUnavailable(
        f"{what}: cannot reach {service} ({type(error).__name__}{tried})",
        hint=f"check the network or AWS_ENDPOINT_URL_{endpoint}, then run again",
    )


def tag_list(labels: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in sorted(labels.items())]


def decoded(operation: str, region: str, response: Any, decode: Callable[[Any], T]) -> T:
    """``decode`` applied to the JSON body of a store's answer to ``operation``; a
    malformed answer is one KeyStoreError naming the operation, the region and the field."""
    try:
        return decode(raw_answer(response))
    except wire.Malformed as error:
        # Never the value: a malformed GetParameter or GetSecretValue answer holds a key.
        raise KeyStoreError(
            f"{operation} in {region or 'the default region'}: {error}",
            hint="nothing from that answer was used; check AWS_ENDPOINT_URL_SSM / "
            "AWS_ENDPOINT_URL_SECRETS_MANAGER and any proxy in between",
        ) from None


def labels_from(value: Any, at: str) -> dict[str, str]:
    """A store's tag list (``[{Key, Value}]``) as labels."""
    if value is None:
        return {}
    out: dict[str, str] = {}
    for index, tag in enumerate(wire.items(value, at)):
        if not isinstance(tag, dict):
            raise wire.Malformed(f"{at}[{index}]", "is not a tag")
        key = tag.get("Key")
        if not isinstance(key, str) or not key:
            raise wire.Malformed(f"{at}[{index}].Key", "is not a tag key")
        out[key] = wire.string(tag, "Value", f"{at}[{index}]")
    return out


def secret_text(data: Any, at: str, name: str) -> str:
    """A stored key's text (``Parameter.Value``, ``SecretString``): a string, never echoed."""
    value = data.get(name) if isinstance(data, dict) else None
    if not isinstance(value, str) or not value:
        raise wire.Malformed(f"{at}.{name}" if at else name, "is not a non-empty string")
    return value


def owns(ref: Mapping[str, str], scheme: str) -> bool:
    """Whether a key reference points into a store of ``scheme``."""
    return ref.get("store", "").startswith(scheme + ":")


def conflict(address: Address, where: str) -> KeyStoreConflict:
    return KeyStoreConflict(
        f"{address}: {where} already holds a different key (its fingerprint label differs); "
        "not overwritten",
        hint="move or delete it if it is stale, then run again; the key stays in the state "
        "until then",
    )


class RemoteKeyStore(abc.ABC):
    """What the SSM and Secrets Manager stores share: a location template, the
    account and KMS settings, the outline of each call, and the reference an
    entry keeps once its key is stored.

    A subclass names its ``scheme``, the ``noun`` its template messages use,
    the ``allowed`` shape of a rendered location, its ``service`` and the
    ``kind`` of object a key is kept in (for messages), and the error codes of
    a name already ``taken`` and of one ``missing``; and it makes the calls
    themselves (``_create``, ``_read``, ``_remove``, ``_describe``), each at
    the pace of its region.
    """

    scheme: str
    noun: str
    allowed: re.Pattern[str]
    service: str
    kind: str
    taken: str
    missing: str
    # The operations that create and read a key, and every one whose answers the store
    # decodes itself (``decoded``): botocore parses none of them.
    create_op: str
    read_op: str
    decodes: tuple[str, ...] = ()

    def __init__(
        self,
        location: str,
        *,
        clients: ClientFactory,
        pacer: Callable[[str], Pacer],
        account: Callable[[Address], str],
        kms_key_id: str | None = None,
    ) -> None:
        self.template = Template(location, allowed=self.allowed, scheme=self.noun)
        self.spec = f"{self.scheme}:{location}"
        self.kms_key_id = kms_key_id
        self._clients = clients
        self._pacer = pacer
        self._account = account

    def put(self, entry: StateEntry, pem: str, *, lineage: str, suffix: str = "") -> StateEntry:
        address = entry.address
        name = self.location(address, suffix)
        fingerprint = key_fingerprint(pem, entry.origin)
        key = NewKey(
            name,
            pem,
            f"Private key of Lightsail key pair {address}",
            tag_list(labels_for(address, fingerprint, lineage)),
        )
        client, pace = self._reach(address.region)
        what = f"storing the key of {address} in {self.kind} {name}"
        response = call_unless(
            self.taken, what, lambda: self._create(client, key), pace, service=self.service
        )
        if response is not None:
            location, version = decoded(
                self.create_op, address.region, response, lambda data: self._created(name, data)
            )
        else:
            # Never overwritten: the same key there (an earlier attempt whose answer
            # was lost) is success, another one a conflict.
            existing = self._describe(address, name)
            if existing is None:
                raise self._unseen(address, name, what)
            if existing.fingerprint != fingerprint:
                raise conflict(address, f"{self.kind} {name}")
            location, version = existing.location, existing.version
        return self._stored(entry, location, version, fingerprint)

    def get(self, entry: StateEntry) -> str | None:
        ref = entry.private_key_ref
        if ref is None or not owns(ref, self.scheme):
            return None
        location = ref["location"]
        client, pace = self._reach(entry.address.region)
        response = call(
            f"reading the key of {entry.address} from {self.kind} {location}",
            lambda: self._read(client, location),
            pace,
            service=self.service,
        )
        return decoded(self.read_op, entry.address.region, response, self._key_in)

    def describe(self, entry: StateEntry) -> KeyMetadata | None:
        return self._describe(entry.address, self._where(entry))

    def delete(self, entry: StateEntry) -> StateEntry:
        location = self._where(entry)
        client, pace = self._reach(entry.address.region)
        call_unless(
            self.missing,
            f"deleting {self.kind} {location}",
            lambda: self._remove(client, location),
            pace,
            service=self.service,
        )
        return replace(entry, private_key_ref=None)

    # -- the store's own calls ------------------------------------------------

    @abc.abstractmethod
    def _create(self, client: Any, key: NewKey) -> Any:
        """Store ``key`` where nothing is yet (error ``taken`` otherwise); the answer."""

    @abc.abstractmethod
    def _created(self, name: str, data: Any) -> tuple[str, str]:
        """Where the key went and its version, from ``_create``'s answer (its JSON body; a
        ``wire.Malformed`` if it is not what the service documents)."""

    @abc.abstractmethod
    def _read(self, client: Any, location: str) -> Any:
        """The answer holding the key stored at ``location``."""

    @abc.abstractmethod
    def _key_in(self, data: Any) -> str:
        """The private key PEM in ``_read``'s answer (its JSON body)."""

    @abc.abstractmethod
    def _remove(self, client: Any, location: str) -> object:
        """Delete the key at ``location`` for good (error ``missing`` if there is none)."""

    @abc.abstractmethod
    def _describe(self, address: Address, location: str) -> KeyMetadata | None:
        """The metadata of the key at ``location``; None if there is none."""

    def _unseen(self, address: Address, name: str, what: str) -> KeyStoreError:
        """The error when ``name`` is taken but ``_describe`` finds nothing there."""
        return KeyStoreError(
            f"storing the key of {address}: {self.kind} {name} exists but cannot be read",
            hint="run again",
        )

    # -- shared ----------------------------------------------------------------

    def _request(self, key: NewKey, *, value: str, kms: str) -> dict[str, object]:
        """What every create call sends: the name, the key as field ``value``, the
        description, the tags, and the KMS key (field ``kms``) if one is set."""
        request: dict[str, object] = {
            "Name": key.name,
            value: key.pem,
            "Description": key.description,
            "Tags": key.tags,
        }
        if self.kms_key_id:
            request[kms] = self.kms_key_id
        return request

    def _reach(self, region: str) -> tuple[Any, Pacer]:
        """The client of ``region`` (its answers taken for ``decoded``) and its pace."""
        return decode_answers(self._clients(region), self.decodes), self._pacer(region)

    def location(self, address: Address, suffix: str = "") -> str:
        """Where a key of ``address`` goes (``suffix`` for a key kept beside another)."""
        return self.template.render(address, self._account) + suffix

    def _where(self, entry: StateEntry) -> str:
        """Where ``entry``'s key is: its recorded location, else where it would go."""
        ref = entry.private_key_ref
        if ref is not None and owns(ref, self.scheme):
            return ref["location"]
        return self.location(entry.address)

    def _stored(
        self, entry: StateEntry, location: str, version: str, fingerprint: str
    ) -> StateEntry:
        """``entry`` as the state records it once this store holds its key: a reference."""
        ref = {
            "store": self.spec,
            "location": location,
            "version": version,
            "fingerprint": fingerprint,
        }
        return replace(entry, private_key=None, private_key_sealed=None, private_key_ref=ref)
