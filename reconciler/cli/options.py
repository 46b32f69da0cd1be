"""What a command was asked to do, as one typed value: ``Options``, built from the command line.

Command modules turn their ``argparse.Namespace`` into ``Options`` here
(``from_args``) and hand only that on; nothing below ``cli/`` sees a
Namespace. reconciler.yaml fills what the flags leave open (the state
backend, the key store, the accounts).
"""

from __future__ import annotations

import argparse
from collections.abc import Collection
from dataclasses import dataclass, field, replace

from reconciler.custody.registry import check_spec
from reconciler.errors import UsageError
from reconciler.manifests.accounts import Accounts
from reconciler.manifests.project import load_project, resolve_state
from reconciler.model import REGIONS, Address, region_problem
from reconciler.planning.savedplan import SavedPlan, Settings, Where
from reconciler.planning.scope import Scope
from reconciler.state.settings import BackendSettings


@dataclass
class Options:
    """What every command may be given, from flags and the environment."""

    state: str | None = None
    regions: tuple[str, ...] = ()
    local: bool = False
    allow_insecure_state: bool = False
    lock_timeout: float = 0.0
    parallelism: int = 10
    endpoint_url: str | None = None
    profile: str | None = None
    replace: tuple[Address, ...] = ()
    rotate: tuple[Address, ...] = ()
    allow_in_use: bool = False
    prune: bool = False
    max_deletes: int | None = None
    encrypt_with: tuple[str, ...] = ()
    age_identities: tuple[str, ...] = ()
    scope: Scope = field(default_factory=Scope)
    # The project file's backend settings: they apply to a state location of that backend.
    state_settings: BackendSettings | None = None
    # The key store for new private keys (--key-store, else reconciler.yaml's keys:).
    key_store: str | None = None
    key_store_kms_key_id: str | None = None
    key_store_timeout: float | None = None
    # The project's accounts (and the one --account limits a run to).
    accounts: Accounts = field(default_factory=Accounts)

    @property
    def region_filter(self) -> Collection[str] | None:
        return set(self.regions) if self.regions else None


def from_args(args: argparse.Namespace) -> Options:
    """The options of a parsed command line, completed from reconciler.yaml."""
    for region in getattr(args, "region", ()) or ():
        if (problem := region_problem(region)) is not None:
            raise UsageError(f"--region {problem}", hint=f"use one of: {', '.join(REGIONS)}")
    if getattr(args, "local", False) and getattr(args, "endpoint_url", None):
        raise UsageError(
            "--local and --endpoint-url name two endpoints; pass one",
            hint="--local starts an embedded emulator; --endpoint-url calls the one you name",
        )
    state: str | None = getattr(args, "state", None)
    state_settings: BackendSettings | None = None
    key_store: str | None = getattr(args, "key_store", None)
    key_kms: str | None = getattr(args, "key_store_kms_key_id", None)
    key_timeout: float | None = None
    if key_store is not None:
        check_spec(key_store, key_kms, "--key-store")
    project = load_project()
    if not getattr(args, "local", False):
        # --local keeps its state beside the embedded emulator, never in the
        # team's real backend.
        state, state_settings = resolve_state(state, project)
        if key_store is None and project is not None and project.keys is not None:
            key_store, key_kms = project.keys.spec, project.keys.kms_key_id
        if project is not None and project.keys is not None:
            key_timeout = project.keys.timeout
    accounts = (Accounts() if project is None else project.accounts).only(
        getattr(args, "account", None)
    )
    return Options(
        accounts=accounts,
        key_store=key_store,
        key_store_kms_key_id=key_kms,
        key_store_timeout=key_timeout,
        state=None if state is None else accounts.state_location(state),
        state_settings=state_settings,
        regions=tuple(getattr(args, "region", ()) or ()),
        local=getattr(args, "local", False),
        endpoint_url=getattr(args, "endpoint_url", None),
        allow_insecure_state=getattr(args, "allow_insecure_state", False),
        lock_timeout=getattr(args, "lock_timeout", 0.0),
        parallelism=max(1, getattr(args, "parallelism", 10)),
        replace=tuple(accounts.check(Address.parse(a)) for a in getattr(args, "replace", ()) or ()),
        rotate=tuple(accounts.check(Address.parse(a)) for a in getattr(args, "rotate", ()) or ()),
        allow_in_use=getattr(args, "allow_in_use", False),
        prune=getattr(args, "prune", False),
        max_deletes=getattr(args, "max_deletes", None),
        encrypt_with=tuple(getattr(args, "encrypt_with", ()) or ()),
        age_identities=tuple(getattr(args, "age_identity", ()) or ()),
        scope=Scope.parse(getattr(args, "target", ()) or (), getattr(args, "exclude", ()) or ()),
    )


# What Options and a saved plan's Settings share, field for field.
_SHARED = ("prune", "max_deletes", "replace", "rotate", "allow_in_use", "regions")


def settings(options: Options) -> Settings:
    """What a saved plan binds of ``options``: everything that changes what apply does."""
    return Settings(
        **{name: getattr(options, name) for name in _SHARED},
        targets=options.scope.targets,
        excludes=options.scope.excludes,
        accounts=tuple(options.accounts.chosen),
    )


def where(options: Options) -> Where:
    """Where a plan made with ``options`` is made: a saved plan is applied there."""
    return Where(options.local, options.endpoint_url, tuple(options.accounts.selected))


def with_saved(options: Options, saved: SavedPlan) -> Options:
    """``options`` as the saved plan was made with them, where it was made; a command line
    naming another place is refused."""
    s, there = saved.settings, saved.where
    asked = where(options)
    named = options.local or options.endpoint_url is not None
    if named and (asked.local, asked.endpoint) != (there.local, there.endpoint):
        raise UsageError(
            f"{saved.path} was planned against {there}; this apply names {asked}",
            hint="apply it without --local/--endpoint-url (it goes where it was planned), "
            "or plan again where you mean to apply",
        )
    return replace(
        options,
        local=there.local,
        endpoint_url=there.endpoint,
        **{name: getattr(s, name) for name in _SHARED},
        scope=Scope(s.targets, s.excludes),
        accounts=options.accounts.only(list(s.accounts)),
    )
