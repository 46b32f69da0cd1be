"""The ``accounts`` section of ``reconciler.yaml``: the AWS accounts a project manages.

Each alias names where its credentials come from: a ``profile``, or a
``roleArn`` to assume (with an optional ``externalId`` and ``sessionName``)
from a ``profile`` or the default credential chain::

    accounts:
      prod: {profile: prod}
      staging: {roleArn: "arn:aws:iam::222222222222:role/keypairs", externalId: kp-ci, profile: ci}

``sessionName`` and ``durationSeconds`` (900-43200) shape the assumed session.

With one account (or none declared) addresses stay ``REGION/NAME``; with
several, every manifest names its account (``account: ALIAS``) and addresses
become ``ACCOUNT/REGION/NAME``. Reading the section is offline and imports
nothing of boto3 (``validate`` uses it); ``credentials.py`` turns an account
into a boto3 session.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.errors import Problem, UsageError
from reconciler.manifests.yamlsafe import Document, JsonPath
from reconciler.model import Address

ALIAS = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::(\d{12}):role/[\w+=,.@/-]+")
SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}")
EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}")
DEFAULT_SESSION_NAME = "lightsail-reconciler"
# In a state location: one state (and one lock) per account.
STATE_PLACEHOLDER = "{account}"
_FIELDS = ("profile", "roleArn", "externalId", "sessionName", "durationSeconds")
# AssumeRole's bounds on how long one session lasts (the role may allow less).
MIN_DURATION, MAX_DURATION = 900, 43200


@dataclass(frozen=True, slots=True)
class Account:
    """One declared account: how to get its credentials. Holds no secret."""

    alias: str
    profile: str | None = None
    role_arn: str | None = None
    external_id: str | None = None
    session_name: str = DEFAULT_SESSION_NAME
    # How long each assumed session lasts (None: the role's default, usually an hour).
    duration_seconds: int | None = None

    @property
    def role_account_id(self) -> str | None:
        """The account id a role ARN names (the account whose key pairs it manages)."""
        match = ROLE_ARN.fullmatch(self.role_arn or "")
        return match.group(1) if match else None

    def describe(self) -> str:
        """How its credentials are obtained, for messages (never the credentials)."""
        source = f"profile {self.profile}" if self.profile else "the default credentials"
        if self.role_arn:
            return f"role {self.role_arn} assumed from {source}"
        return source


@dataclass(frozen=True, slots=True)
class Accounts:
    """The declared accounts by alias; empty when the project declares none."""

    by_alias: Mapping[str, Account] = field(default_factory=dict)
    # --account (repeatable): the aliases a run is limited to (empty: every account).
    chosen: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[Account]:
        return iter(self.by_alias[alias] for alias in sorted(self.by_alias))

    def __len__(self) -> int:
        return len(self.by_alias)

    @property
    def several(self) -> bool:
        """Whether addresses carry the account (more than one account declared)."""
        return len(self.by_alias) > 1

    def address_account(self, alias: str | None) -> str:
        """The account part of an address for a manifest saying ``account: alias``."""
        return (alias or "") if self.several else ""

    def only(self, aliases: Iterable[str] | str | None) -> Accounts:
        """These accounts with the run limited to ``aliases`` (``--account``); all for none.

        Addresses keep their form: a run limited to one of several accounts
        still names them ``ACCOUNT/REGION/NAME``.
        """
        chosen = tuple(sorted({aliases} if isinstance(aliases, str) else set(aliases or ())))
        if not chosen:
            return self
        for alias in chosen:
            if alias not in self.by_alias:
                declared = ", ".join(sorted(self.by_alias)) or "none"
                raise UsageError(
                    f"--account {alias}: no such account in reconciler.yaml (declared: {declared})",
                    hint="declare it under accounts: in reconciler.yaml, or fix the alias",
                )
        return Accounts(self.by_alias, chosen)

    def check(self, address: Address) -> Address:
        """``address`` if its form fits these accounts; a UsageError saying how to write it."""
        if self.several and address.account not in self.by_alias:
            names = ", ".join(sorted(self.by_alias))
            raise UsageError(
                f"{address}: name one of the accounts of reconciler.yaml ({names})",
                hint="write it as ACCOUNT/REGION/NAME, e.g. "
                f"{sorted(self.by_alias)[0]}/{address.region}/{address.name}",
            )
        if not self.several and address.account:
            raise UsageError(
                f"{address}: this project has a single account; leave out {address.account}/",
                hint=f"write it as REGION/NAME: {address.region}/{address.name}",
            )
        return address

    def state_location(self, location: str) -> str:
        """``location`` with ``{account}`` replaced by the run's one account.

        A state per account (``s3://bucket/lightsail/{account}.json``) gives each
        account its own state and lock, so accounts apply in parallel on
        different machines; a run then covers one account (``--account``).
        """
        if STATE_PLACEHOLDER not in location:
            return location
        alias = self.chosen[0] if len(self.chosen) == 1 else None
        if alias is None and not self.chosen and len(self) == 1:
            alias = next(iter(self)).alias
        if alias is None:
            declared = ", ".join(sorted(self.by_alias)) or "none declared"
            raise UsageError(
                f"the state {location} has one copy per account: say which with --account "
                f"({declared})",
                hint="run once per account (one --account), e.g. in a CI matrix",
            )
        return location.replace(STATE_PLACEHOLDER, alias)

    @property
    def selected(self) -> tuple[str, ...]:
        """The aliases a run covers."""
        return self.chosen or tuple(sorted(self.by_alias))


def parse_accounts(document: Document, file: str) -> tuple[Accounts, list[Problem]]:
    """The ``accounts`` section of a project document, and every problem with it."""
    problems: list[Problem] = []

    def problem(path: JsonPath, message: str, *, key: bool = False) -> None:
        line, column = document.key_position(path) if key else document.position(path)
        problems.append(Problem(file, line, column, message, "accounts"))

    data = document.data
    section = data.get("accounts") if isinstance(data, Mapping) else None
    if section is None:
        return Accounts(), problems
    if not isinstance(section, Mapping) or not section:
        problem(("accounts",), "'accounts' must map each alias to its profile or roleArn")
        return Accounts(), problems
    accounts: dict[str, Account] = {}
    for alias, settings in section.items():
        account = _account(alias, settings, problem)
        if account is not None:
            accounts[account.alias] = account
    return Accounts(accounts if not problems else {}), problems


def _account(alias: Any, settings: Any, problem: Any) -> Account | None:
    at: JsonPath = ("accounts", str(alias))
    if not isinstance(alias, str) or not ALIAS.fullmatch(alias):
        problem(
            at,
            f"account alias {alias!r} must be letters, digits, '_' and '-' "
            "(at most 63, starting with a letter or digit)",
            key=True,
        )
        return None
    if settings is None:
        settings = {}
    if not isinstance(settings, Mapping):
        problem(at, f"accounts.{alias} must be a mapping (profile, roleArn, externalId, ...)")
        return None
    ok = True
    for name in settings:
        if name not in _FIELDS:
            problem(
                (*at, str(name)),
                f"unknown field 'accounts.{alias}.{name}' (expected: {', '.join(_FIELDS)})",
                key=True,
            )
            ok = False
    duration = settings.get("durationSeconds")
    if duration is not None and (
        not isinstance(duration, int)
        or isinstance(duration, bool)
        or not MIN_DURATION <= duration <= MAX_DURATION
    ):
        problem(
            (*at, "durationSeconds"),
            f"accounts.{alias}.durationSeconds must be a whole number of seconds "
            f"from {MIN_DURATION} to {MAX_DURATION}",
        )
        ok = False
    values: dict[str, str] = {}
    for name in _FIELDS:
        value = settings.get(name)
        if value is None or name == "durationSeconds":
            continue
        if not isinstance(value, str) or not value.strip():
            problem((*at, name), f"accounts.{alias}.{name} must be a non-empty string")
            ok = False
            continue
        values[name] = value
    role_arn = values.get("roleArn")
    if role_arn is not None and not ROLE_ARN.fullmatch(role_arn):
        problem(
            (*at, "roleArn"),
            f"accounts.{alias}.roleArn {role_arn!r} is not an IAM role ARN "
            "(arn:aws:iam::123456789012:role/NAME)",
        )
        ok = False
    for name in ("externalId", "sessionName", "durationSeconds"):
        if name in settings and role_arn is None:
            problem((*at, name), f"accounts.{alias}.{name} needs a roleArn to assume")
            ok = False
    external_id = values.get("externalId")
    if external_id is not None and not EXTERNAL_ID.fullmatch(external_id):
        problem(
            (*at, "externalId"),
            f"accounts.{alias}.externalId must be 2-1224 of letters, digits and +=,.@:/_-",
        )
        ok = False
    session_name = values.get("sessionName", DEFAULT_SESSION_NAME)
    if not SESSION_NAME.fullmatch(session_name):
        problem(
            (*at, "sessionName"),
            f"accounts.{alias}.sessionName must be 2-64 of letters, digits and +=,.@_-",
        )
        ok = False
    if not ok:
        return None
    return Account(
        alias,
        profile=values.get("profile"),
        role_arn=role_arn,
        external_id=values.get("externalId"),
        session_name=session_name,
        duration_seconds=duration if isinstance(duration, int) else None,
    )
