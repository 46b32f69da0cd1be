"""Key stores by scheme: one registry entry per kind of store.

A store is named by a spec: ``state``, ``ssm:/path/{region}/{name}`` or
``secretsmanager:prefix/{region}/{name}`` (``{account}`` may appear in the
last two: the AWS account id of the key pair's account, that of the default
credentials when the project declares no accounts).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reconciler.aws.retry import Pacer, Pacers
from reconciler.custody.base import KeyStore
from reconciler.custody.remote import AccountId, ClientFactory, RemoteKeyStore
from reconciler.custody.secretsmanager import SecretsManagerKeyStore
from reconciler.custody.ssm import SsmKeyStore
from reconciler.custody.state_store import Seal, StateKeyStore, Unseal
from reconciler.errors import UsageError
from reconciler.model import Address

STATE = "state"


@dataclass
class StoreContext:
    """What stores are made with: AWS clients by service, and the state's sealing."""

    clients: Callable[[str], ClientFactory]
    seal: Seal | None = None
    unseal: Unseal | None = None
    # The account id of a key pair's account, when the project declares accounts.
    account_ids: Callable[[Address], str] | None = None
    # The pace of calls by service and region (``pacers(service, region)``); shared by
    # every store reaching the same account, as the services meter calls per account.
    pacers: Pacers = field(default_factory=Pacers)
    _account: AccountId | None = field(default=None, repr=False)

    def account(self, address: Address) -> str:
        if self.account_ids is not None:
            return self.account_ids(address)
        if self._account is None:
            self._account = AccountId(self.clients("sts"), self.pacers("sts", None))
        return self._account()

    def pacer(self, service: str) -> Callable[[str], Pacer]:
        """The pace of calls to ``service`` by region."""
        return functools.partial(self.pacers, service)


def _state(location: str, context: StoreContext, kms_key_id: str | None) -> KeyStore:
    if location:
        raise ValueError("the state store takes no location")
    if kms_key_id:
        raise ValueError("kmsKeyId applies to ssm: and secretsmanager: stores")
    return StateKeyStore(seal=context.seal, unseal=context.unseal)


def _remote(
    store: type[RemoteKeyStore], location: str, context: StoreContext, kms_key_id: str | None
) -> KeyStore:
    # A store's scheme is also the name of the AWS service it reaches.
    return store(
        location,
        clients=context.clients(store.scheme),
        pacer=context.pacer(store.scheme),
        account=context.account,
        kms_key_id=kms_key_id,
    )


STORES: dict[str, Callable[[str, StoreContext, str | None], KeyStore]] = {
    STATE: _state,
    SsmKeyStore.scheme: functools.partial(_remote, SsmKeyStore),
    SecretsManagerKeyStore.scheme: functools.partial(_remote, SecretsManagerKeyStore),
}

EXAMPLES = "state, ssm:/lightsail/{region}/{name} or secretsmanager:lightsail/{region}/{name}"


def spec_problem(spec: str, kms_key_id: str | None = None) -> str | None:
    """Why ``spec`` names no key store, or None; makes no network call."""
    try:
        open_store(spec, StoreContext(clients=_no_clients), kms_key_id)
    except UsageError as e:
        return e.message
    return None


def open_store(spec: str, context: StoreContext, kms_key_id: str | None = None) -> KeyStore:
    scheme, _, location = spec.partition(":")
    make = STORES.get(scheme)
    if make is None:
        raise UsageError(f"unknown key store {spec!r}", hint=f"use one of: {EXAMPLES}")
    try:
        return make(location, context, kms_key_id)
    except ValueError as e:
        raise UsageError(f"key store {spec!r}: {e}", hint=f"use one of: {EXAMPLES}") from None


def _no_clients(service: str) -> ClientFactory:
    def refuse(region: str | None) -> Any:
        raise AssertionError("checking a key store spec makes no call")

    return refuse


def check_spec(spec: str, kms_key_id: str | None, where: str) -> None:
    """A UsageError naming ``where`` if ``spec`` names no key store (no network call)."""
    problem = spec_problem(spec, kms_key_id)
    if problem is not None:
        raise UsageError(
            f"{where}: {problem}",
            hint="use one of: state, ssm:/lightsail/{region}/{name} or "
            "secretsmanager:lightsail/{region}/{name}",
        )
