"""Values shared by every layer: addresses, desired/live/state key pairs, limits.

Frozen dataclasses only; nothing here does I/O. The limits are Lightsail's, as
the API reference gives them, so that ``validate`` and the emulator agree.
"""

from __future__ import annotations

import datetime
import re
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, NamedTuple

from reconciler.errors import UsageError

# The regions Lightsail serves: botocore's endpoint data for the service, the data the
# client that calls them uses (tests/manifests/test_regions.py holds this list, the
# schema's enum and botocore to one another). A region without a Lightsail endpoint
# (us-west-1) is not one, so a typo can never plan against nothing and say "No changes".
REGIONS: tuple[str, ...] = (
    "us-east-1",
    "us-east-2",
    "us-west-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "eu-south-2",
    "ca-central-1",
    "ap-east-1",
    "ap-south-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-5",
    "ap-northeast-1",
    "ap-northeast-2",
    "sa-east-1",
)


def region_problem(region: str) -> str | None:
    """Why ``region`` is not one Lightsail serves, with the closest that is; None if it is."""
    if region in REGIONS:
        return None
    import difflib  # only for a typo

    close = difflib.get_close_matches(region, REGIONS, n=1, cutoff=0.6)
    suggestion = f" (did you mean {close[0]}?)" if close else ""
    return f"{region!r} is not a region Lightsail serves{suggestion}"


# Lightsail's ResourceName pattern; Java's \w is ASCII, hence re.ASCII.
NAME_PATTERN = re.compile(r"\w[\w\-]*\w", re.ASCII)
MAX_NAME_LENGTH = 255
MAX_TAGS = 50
MAX_TAG_KEY_LENGTH = 128
MAX_TAG_VALUE_LENGTH = 256
# AWS's tag pattern is ^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$: Unicode letters, separators
# (spaces) and numbers, and six marks. Control characters (newline, tab, escape)
# are none of those. ASCII text is checked at once; other text a character at a time.
TAG_ASCII = re.compile(r"[A-Za-z0-9 _.:/=+\-@]*")
TAG_MARKS = frozenset("_.:/=+-@")
TAG_CATEGORIES = frozenset("LZN")  # the first letter of a Unicode general category
TAG_RULE = "letters, numbers, spaces and _ . : / = + - @"
RESERVED_TAG_PREFIX = "aws:"
DEFAULT_KEY_PAIR_NAME = "LightsailDefaultKeyPair"

Tags = Mapping[str, str | None]
Origin = Literal["created", "imported", "generated", "adopted"]


class JournalOp(StrEnum):
    """What a journal intent is about to do; the values are the journal's ``op`` field on disk.

    A closed set: every switch over it ends in ``assert_never``. Never rename a value: old
    journals must still read (replay refuses an ``op`` it does not know).
    """

    CREATE = "create"
    IMPORT = "import"
    GENERATE = "generate"
    ADOPT = "adopt"
    UPDATE_TAGS = "update-tags"
    DELETE = "delete"
    RETIRE = "retire"
    # Drops the state entry of a key pair gone from Lightsail; no call is made.
    FORGET = "forget"


# The intents an interrupted run can leave open in the state: a CreateKeyPair (its key is
# lost if it went live) or an ImportKeyPair of a locally generated key (whose key we hold).
PendingOp = Literal[JournalOp.CREATE, JournalOp.GENERATE]


def name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid Lightsail key-pair name, or None if it is."""
    if len(name) > MAX_NAME_LENGTH:
        return f"name is {len(name)} characters long; Lightsail allows at most {MAX_NAME_LENGTH}"
    if not NAME_PATTERN.fullmatch(name):
        return (
            f"name {name!r} does not match Lightsail's pattern \\w[\\w-]*\\w "
            "(at least 2 characters: letters, digits, '_' and '-', "
            "starting and ending with a letter, digit or '_')"
        )
    return None


def tag_problems(tags: Tags) -> list[str]:
    """Every way ``tags`` breaks Lightsail's tag rules (after defaults are merged)."""
    problems: list[str] = []
    if len(tags) > MAX_TAGS:
        problems.append(f"{len(tags)} tags; Lightsail allows at most {MAX_TAGS} per key pair")
    for key, value in tags.items():
        if not key:
            problems.append("tag key must not be empty")
        if len(key) > MAX_TAG_KEY_LENGTH:
            problems.append(f"tag key {key[:40]!r}... is longer than {MAX_TAG_KEY_LENGTH}")
        if key.lower().startswith(RESERVED_TAG_PREFIX):
            problems.append(f"tag key {key!r} uses the reserved prefix 'aws:'")
        if (bad := refused_tag_character(key)) is not None:
            problems.append(
                f"tag key {key!r} has characters Lightsail does not allow "
                f"({character_name(bad)}; tags take {TAG_RULE})"
            )
        if value is None:
            continue
        if len(value) > MAX_TAG_VALUE_LENGTH:
            problems.append(f"tag {key!r} value is longer than {MAX_TAG_VALUE_LENGTH}")
        if value.lower().startswith(RESERVED_TAG_PREFIX):
            problems.append(f"tag {key!r} value uses the reserved prefix 'aws:'")
        if (bad := refused_tag_character(value)) is not None:
            problems.append(
                f"tag {key!r} value {value!r} has characters Lightsail does not allow "
                f"({character_name(bad)}; tags take {TAG_RULE})"
            )
    return problems


def refused_tag_character(text: str) -> str | None:
    """The first character of ``text`` that AWS's tag pattern refuses, or None."""
    if TAG_ASCII.fullmatch(text):
        return None
    for character in text:
        if character not in TAG_MARKS and unicodedata.category(character)[0] not in TAG_CATEGORIES:
            return character
    return None


def character_name(character: str) -> str:
    """A character as a message names it, never as itself: U+000A, U+002A ASTERISK."""
    code = f"U+{ord(character):04X}"
    if unicodedata.category(character) == "Cc":
        return f"{code}, a control character"
    name = unicodedata.name(character, "")
    return f"{code} {name}" if name else code


class Address(NamedTuple):
    """A key pair's identity: its region and name, and its account alias when a
    project declares several accounts (empty otherwise).

    A named tuple rather than a dataclass: addresses are hashed and sorted by
    the hundred thousand in a plan, and tuple comparison runs in C. ``account``
    comes last with a default so that ``Address(region, name)`` keeps meaning
    what it always did; it prints as ``ACCOUNT/REGION/NAME`` only when set.
    """

    region: str
    name: str
    account: str = ""

    def __str__(self) -> str:
        if self.account:
            return f"{self.account}/{self.region}/{self.name}"
        return f"{self.region}/{self.name}"

    @property
    def where(self) -> str:
        """The account and region it lives in, as a live snapshot names what it read."""
        return where(self.account, self.region)

    @classmethod
    def parse(cls, text: str) -> Address:
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise UsageError(
                f"{text!r} is not a key pair address",
                hint="write it as REGION/NAME, e.g. us-east-1/web "
                "(ACCOUNT/REGION/NAME when reconciler.yaml declares several accounts)",
            )
        if len(parts) == 3:
            return cls(parts[1], parts[2], parts[0])
        return cls(parts[0], parts[1])


def where(account: str, region: str) -> str:
    """``REGION``, or ``ACCOUNT/REGION`` for an account alias: what one read of Lightsail covers."""
    return f"{account}/{region}" if account else region


def region_of(place: str) -> str:
    """The region of a ``where`` string."""
    return place.rpartition("/")[2]


def account_of(place: str) -> str:
    """The account alias of a ``where`` string (empty when it names none)."""
    return place.rpartition("/")[0]


@dataclass(frozen=True, slots=True)
class Source:
    """Where in a manifest something was declared."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class PolicyException:
    """A key pair's leave from one policy rule: why, and until when (None: no end)."""

    rule: str
    reason: str
    expires: datetime.date | None
    source: Source


@dataclass(frozen=True, slots=True)
class Rotation:
    """``rotate: {after: 90d, keep: 2}``: replace a key pair older than ``after`` seconds,
    keeping ``keep`` earlier private keys as generations."""

    after: float
    keep: int = 0


@dataclass(frozen=True, slots=True, order=True)
class LiveInstance:
    """A Lightsail instance, as far as key pairs care: which one it was launched with."""

    region: str
    name: str
    # The key pair it names (sshKeyName); None for the region's default key.
    key_pair: Address | None
    created_at: float
    state: str = ""


@dataclass(frozen=True, slots=True)
class DesiredKeyPair:
    """A key pair as the manifests want it."""

    address: Address
    tags: Tags
    source: Source
    # Normalised OpenSSH public key ("type base64", no comment) for imports.
    public_key: str | None = None
    generate_local: bool = False
    prevent_destroy: bool = False
    adopt: bool = False
    policy_exceptions: tuple[PolicyException, ...] = ()
    rotation: Rotation | None = None

    @property
    def origin(self) -> Origin:
        if self.public_key is not None:
            return "imported"
        if self.generate_local:
            return "generated"
        return "created"


@dataclass(frozen=True, slots=True)
class DesiredSet:
    """Everything the manifests ask for, keyed by address."""

    key_pairs: Mapping[Address, DesiredKeyPair]
    files: tuple[str, ...] = ()

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(sorted({a.region for a in self.key_pairs}))


@dataclass(frozen=True, slots=True)
class LiveKeyPair:
    """A key pair as Lightsail reports it."""

    address: Address
    arn: str
    fingerprint: str
    created_at: float
    tags: Tags
    support_code: str = ""


@dataclass(frozen=True, slots=True)
class Unread:
    """A place Lightsail could not be read in: a whole account, or one region on its own.

    ``message`` says what failed; an account's names the account and lists the
    regions its failure left unread, so that one failing account is one line
    wherever it is reported, however many regions it has.
    """

    place: str  # an account alias, or ``REGION`` / ``ACCOUNT/REGION``
    message: str
    regions: tuple[str, ...]
    account: bool = False

    @property
    def rule(self) -> str:
        """The finding it is reported as."""
        return "account-failed" if self.account else "region-failed"

    def describe(self) -> str:
        """One line for people: the account's message, or which region failed and why."""
        return self.message if self.account else f"{self.place} could not be read: {self.message}"


@dataclass(frozen=True, slots=True)
class LiveSnapshot:
    """What Lightsail held in each region read, and which regions failed.

    ``failed_regions`` names every region not read; ``failed_accounts`` the
    accounts whose credentials or permissions failed (alias -> message naming
    the account), whose regions are among ``failed_regions``.
    """

    key_pairs: Mapping[Address, LiveKeyPair]
    regions: tuple[str, ...]
    failed_regions: Mapping[str, str] = field(default_factory=dict)
    failed_accounts: Mapping[str, str] = field(default_factory=dict)

    def merged(self, other: LiveSnapshot) -> LiveSnapshot:
        """This snapshot and ``other`` (of other regions) as one."""
        return LiveSnapshot(
            {**self.key_pairs, **other.key_pairs},
            tuple(sorted({*self.regions, *other.regions})),
            {**self.failed_regions, **other.failed_regions},
            {**self.failed_accounts, **other.failed_accounts},
        )

    def unread(self, regions: Collection[str] | None = None) -> tuple[Unread, ...]:
        """What could not be read (in ``regions`` only, when given): one ``Unread`` per
        failing account, then one per region that failed on its own."""
        return unread_places(self.failed_regions, self.failed_accounts, regions)

    def digest(self) -> str:
        """A stable digest of what was seen, binding saved plans to it."""
        lines = [f"region {region}" for region in sorted(self.regions)]
        for address in sorted(self.key_pairs):
            kp = self.key_pairs[address]
            # repr() of str/None is unambiguous, so no separator can be forged.
            tags = sorted(kp.tags.items())
            lines.append(repr((address.region, address.name, kp.arn, kp.fingerprint, tags)))
        lines.append("")
        import hashlib  # here: validate never needs it, and it loads OpenSSL

        return "sha256:" + hashlib.sha256("\n".join(lines).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class StateEntry:
    """What the state records of one key pair the tool created or adopted.

    ``private_key`` is the PEM text when held in clear; ``private_key_sealed``
    holds it encrypted at rest instead. Never log or print either.
    """

    address: Address
    origin: Origin
    arn: str
    fingerprint: str
    created_at: float
    tags: Tags
    public_key_base64: str | None = None
    private_key: str | None = field(default=None, repr=False)
    private_key_sealed: Mapping[str, Any] | None = field(default=None, repr=False)
    support_code: str = ""
    location: Mapping[str, Any] | None = None
    resource_type: str = "KeyPair"
    operation: Mapping[str, Any] | None = None
    # For imported/generated key pairs: the normalised public key imported.
    imported_public_key: str | None = None
    # preventDestroy as last applied; it outlives the manifest entry.
    prevent_destroy: bool = False
    # Where the private key is kept when a key store other than the state holds
    # it: {"store", "location", "version", "fingerprint"} (see reconciler.custody).
    private_key_ref: Mapping[str, str] | None = None
    # Earlier keys kept after rotations and replacements, newest first.
    generations: tuple[Generation, ...] = ()

    @property
    def holds_private_key(self) -> bool:
        """The state itself holds the private key (in clear or sealed)."""
        return self.private_key is not None or self.private_key_sealed is not None

    @property
    def has_private_key(self) -> bool:
        """A private key is kept for it: in the state or in a key store."""
        return self.holds_private_key or self.private_key_ref is not None


@dataclass(frozen=True, slots=True)
class Generation:
    """An earlier key of a key pair: the entry as it was, and when it was replaced."""

    entry: StateEntry
    retired_at: float


@dataclass(frozen=True, slots=True)
class OpenIntent:
    """A key-making call (CreateKeyPair, or ImportKeyPair of a locally generated key)
    whose intent was journaled but whose result never arrived: the next plan checks
    whether it went live (a lost key for a create; recoverable for a generate)."""

    address: Address
    intent_id: str
    started_at: float
    # CREATE (CreateKeyPair: the key is lost if it went live) or GENERATE
    # (ImportKeyPair of a locally generated key, whose private half we hold).
    operation: PendingOp = JournalOp.CREATE
    private_key: str | None = field(default=None, repr=False)
    public_key: str | None = None
    private_key_sealed: Mapping[str, Any] | None = field(default=None, repr=False)


def _unread_account(message: str, places: list[str]) -> str:
    """An account's failure and the regions it left unread, in one line."""
    names = ", ".join(region_of(p) for p in places)
    if len(places) == 1:
        return f"{message}: its region {names} was not read"
    return f"{message}: its {len(places)} regions were not read ({names})"


def unread_places(
    failed: Mapping[str, str],
    accounts: Mapping[str, str],
    regions: Collection[str] | None = None,
) -> tuple[Unread, ...]:
    """``failed`` places (place -> message) as one ``Unread`` per account in ``accounts``
    (alias -> message naming it), then one per place failing on its own; only places in
    ``regions`` when given."""
    by_account: dict[str, list[str]] = {}
    alone: list[Unread] = []
    for place, message in sorted(failed.items()):
        if regions is not None and region_of(place) not in regions:
            continue
        alias = account_of(place)
        if alias and alias in accounts:
            by_account.setdefault(alias, []).append(place)
        else:
            alone.append(Unread(place, message, (place,)))
    failing = [
        Unread(alias, _unread_account(accounts[alias], places), tuple(places), True)
        for alias, places in sorted(by_account.items())
    ]
    return (*failing, *alone)


DAY = 86400.0
HOUR = 3600.0
_DURATION = re.compile(r"([1-9][0-9]*)([dh])")


def parse_duration(text: str) -> float | None:
    """Seconds in ``90d`` or ``36h`` (a rotation's ``after``); None when ``text`` is not one."""
    match = _DURATION.fullmatch(text)
    if match is None:
        return None
    return int(match.group(1)) * (DAY if match.group(2) == "d" else HOUR)
