"""The steps commands share: open the state, read Lightsail, make a plan.

Each command module in ``cli/`` parses its arguments into ``Options`` and
calls the steps here; this module wires manifests, state, Lightsail and the
planner together and decides nothing about output.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from reconciler.apply.executor import Executor, Failure
from reconciler.aws.lightsail import ClientOptions, Lightsail, kms_client_factory
from reconciler.cli.options import Options
from reconciler.custody import Custody
from reconciler.errors import CredentialsError, UsageError
from reconciler.model import Address, DesiredSet, LiveSnapshot, account_of, region_of
from reconciler.planning.changes import Change
from reconciler.planning.planner import Plan, make_plan
from reconciler.planning.scope import Scope, plan_in_scope
from reconciler.state import StateBackend, StateDocument, crypto
from reconciler.state.registry import open_state
from reconciler.state.settings import StateContext

log = logging.getLogger(__name__)

DEFAULT_STATE = "reconciler.state.json"
SWITCH_INTERVAL = 0.0005  # s; the interpreter's default is 0.005
LOCAL_CREDENTIAL = "local"


def local_dir() -> str:
    """Where --local keeps the embedded emulator's data and its state."""
    return os.environ.get("RECONCILER_LOCAL_DIR") or ".reconciler"


def state_location(options: Options) -> str:
    if options.state:
        return options.state
    return os.path.join(local_dir(), "local.state.json") if options.local else DEFAULT_STATE


def open_backend(options: Options) -> StateBackend:
    context = StateContext(
        profile=options.profile,
        allow_insecure=options.allow_insecure_state,
        make_parents=options.local,
    )
    return open_state(state_location(options), options.state_settings, context)


@contextlib.contextmanager
def lightsail_for(options: Options) -> Iterator[Lightsail]:
    """A Lightsail client; with --local, an embedded emulator is started for it."""
    if not options.local:
        yield Lightsail(
            ClientOptions(
                endpoint_url=options.endpoint_url,
                profile=options.profile,
                pool_size=options.parallelism,
            ),
            options.accounts,
        )
        return
    from reconciler.emulator import Emulator, EmulatorConfig

    os.makedirs(local_dir(), mode=0o700, exist_ok=True)
    # Each declared account gets an access key of its own, which the embedded
    # emulator keeps apart as an account of its own.
    keys = {a.alias: f"{LOCAL_CREDENTIAL}-{a.alias}" for a in options.accounts}
    ids = {key: f"{100000000001 + i:012d}" for i, key in enumerate(sorted(keys.values()))}
    config = EmulatorConfig(data_path=os.path.join(local_dir(), "emulator.json"), accounts=ids)
    with Emulator(config) as emulator:
        log.info("embedded Lightsail emulator at %s", emulator.url)
        yield Lightsail(
            ClientOptions(
                endpoint_url=emulator.url,
                access_key=LOCAL_CREDENTIAL,
                secret_key=LOCAL_CREDENTIAL,
                pool_size=options.parallelism,
                account_keys=keys,
            ),
            options.accounts,
        )


def sealer_for(options: Options, doc: StateDocument) -> crypto.Sealer | None:
    """The run's sealer: --encrypt-with, else the state's own setting; None keeps keys in clear.

    Made before any key pair is created: it is the only point that may call KMS.
    """
    specs = crypto.parse_specs(options.encrypt_with) or crypto.specs_from_json(doc.encryption)
    if not specs:
        return None
    # --local credentials are the emulator's: KMS gets the standard chain.
    return crypto.Sealer(specs, kms_client_factory=kms_client_factory(options.profile))


def unsealer_for(options: Options) -> crypto.Unsealer:
    return crypto.Unsealer(
        age_identities=options.age_identities,
        kms_client_factory=kms_client_factory(options.profile),
    )


def regions_to_read(desired: DesiredSet, doc: StateDocument, options: Options) -> list[str]:
    """What to read of Lightsail: ``REGION``s, or ``ACCOUNT/REGION``s with several accounts."""
    places = _places([*desired.key_pairs, *doc.entries, *doc.pending], options)
    if options.regions:
        regions = {region_of(p) for p in _places([*doc.entries, *desired.key_pairs], options)}
        unknown = set(options.regions) - regions
        if unknown and not regions & set(options.regions):
            log.info(
                "--region %s matches nothing in manifests or state", ", ".join(sorted(unknown))
            )
    return places


def _places(addresses: Iterable[Address], options: Options) -> list[str]:
    """The account-and-region places of ``addresses`` that the run covers (--account, --region)."""
    places = {a.where for a in addresses}
    if options.accounts.several:
        # Entries naming no account were left unplaced (see place_in_accounts): not read.
        chosen = set(options.accounts.selected)
        places = {p for p in places if account_of(p) in chosen}
    if options.regions:
        places = {p for p in places if region_of(p) in options.regions}
    return sorted(places)


def place_in_accounts(doc: StateDocument, lightsail: Lightsail, options: Options) -> int:
    """Give state entries recorded without an account (a state from before several
    accounts were declared) the account whose id their ARN names; returns how many moved.

    Asks each covered account for its id once (its role ARN names it, else STS
    GetCallerIdentity); an account whose credentials fail keeps its entries
    unplaced for this run, and its failure is reported when it is read.
    """
    if not options.accounts.several:
        return 0
    legacy = [address for address in doc.entries if not address.account]
    if not legacy:
        return 0
    aliases: dict[str, str] = {}
    for alias in options.accounts.selected:
        try:
            aliases[lightsail.account_id(alias)] = alias
        except CredentialsError as e:
            log.info("cannot place state entries in account %s: %s", alias, e.message)
    moved = 0
    for address in legacy:
        entry = doc.entries[address]
        owner = aliases.get(_arn_account(entry.arn))
        placed = Address(address.region, address.name, owner or "")
        if owner is None or placed in doc.entries:
            continue
        del doc.entries[address]
        doc.entries[placed] = replace(entry, address=placed)
        moved += 1
    left = len(legacy) - moved
    if left and not options.accounts.chosen:
        log.warning(
            "%d state entr%s name no account and match no declared account by ARN; "
            "they are left as they are",
            left,
            "y" if left == 1 else "ies",
        )
    return moved


def account_ids(options: Options) -> Callable[[Address], str] | None:
    """The 12-digit id of each key pair's account (``{account}`` in key-store
    templates); None when the project declares no accounts."""
    if not options.accounts:
        return None
    lightsail = Lightsail(ClientOptions(profile=options.profile), options.accounts)
    return lambda address: lightsail.account_id(address.account)


def _arn_account(arn: str) -> str:
    """The account id of an ARN (arn:aws:lightsail:REGION:ACCOUNT:KeyPair/ID)."""
    parts = arn.split(":")
    return parts[4] if len(parts) > 5 else ""


def read_without_secrets(backend: StateBackend) -> Callable[[], StateDocument]:
    """A reader of the state that leaves private keys out, for plans and drift."""
    return functools.partial(backend.read, secrets=False)


def observe(
    desired: DesiredSet,
    read_state: Callable[[], StateDocument],
    lightsail: Lightsail,
    options: Options,
    *,
    on_placed: Callable[[int], None] | None = None,
) -> tuple[StateDocument, LiveSnapshot]:
    """The state and a live snapshot, read at the same time.

    The regions the manifests name are requested from Lightsail while the
    state is parsed (network waits overlap CPU work); regions only the state
    names are read afterwards. State entries of a single-account state are
    placed in their accounts first (``on_placed`` hears how many moved).
    """
    early = _places(desired.key_pairs, options)
    previous = sys.getswitchinterval()
    # While the state is parsed, hand the interpreter to the reading thread
    # soon after each page arrives, so the next request is not held back.
    sys.setswitchinterval(min(previous, SWITCH_INTERVAL))
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            reading = pool.submit(lightsail.snapshot, early)
            doc = read_state()
            moved = place_in_accounts(doc, lightsail, options)
            live = reading.result()
    finally:
        sys.setswitchinterval(previous)
    if moved and on_placed is not None:
        on_placed(moved)
    rest = [r for r in regions_to_read(desired, doc, options) if r not in early]
    if rest:
        live = live.merged(lightsail.snapshot(rest))
    return doc, live


def build_plan(
    desired: DesiredSet,
    doc: StateDocument,
    lightsail: Lightsail,
    options: Options,
    *,
    destroy: bool = False,
    live: LiveSnapshot | None = None,
) -> tuple[Plan, LiveSnapshot]:
    for address in options.rotate:
        declared = desired.key_pairs.get(address)
        if declared is not None and declared.public_key and not declared.generate_local:
            raise UsageError(
                f"--rotate {address}: it is imported (publicKey), so its private key is not "
                "the tool's to replace; nothing was changed",
                hint="rotate an imported key pair by giving the manifest its new publicKey "
                "(or publicKeyFile): the next apply replaces it with that key",
            )
    if live is None:
        live = lightsail.snapshot(regions_to_read(desired, doc, options))
    plan = _planned(desired, doc, lightsail, options, destroy=destroy, live=live)
    if plan.instance_regions:
        # Only plans that delete, replace or rotate (or create again over a recorded
        # key pair, pruning its earlier keys) look at instances.
        plan = plan.with_instances(lightsail.instances(plan.instance_regions))
    planned = {c.address for c in plan.changes}
    for address in options.rotate:
        if address not in planned and address not in plan.left_out:
            raise UsageError(
                f"--rotate {address}: no such key pair is declared, recorded and live",
                hint="check the address; `reconciler state list` shows the key pairs in state",
            )
    return replace(plan, allow_in_use=options.allow_in_use), live


def _planned(
    desired: DesiredSet,
    doc: StateDocument,
    lightsail: Lightsail,
    options: Options,
    *,
    destroy: bool,
    live: LiveSnapshot,
) -> Plan:
    if options.scope:
        unscoped = replace(options, scope=Scope())

        def make(d: DesiredSet, s: StateDocument, seen: LiveSnapshot) -> Plan:
            return _planned(d, s, lightsail, unscoped, destroy=destroy, live=seen)

        return plan_in_scope(options.scope, make, desired, doc, live)
    plan = make_plan(
        desired,
        doc.entries,
        doc.pending,
        live,
        lineage=doc.lineage,
        serial=doc.serial,
        prune=options.prune or destroy,
        max_deletes=options.max_deletes,
        replace=set(options.replace),
        rotate=set(options.rotate),
        regions=options.region_filter,
        destroy=destroy,
    )
    return plan


def manifest_paths(paths: Sequence[str]) -> list[str]:
    """The PATHs given; apply and destroy need them (or a saved plan) named."""
    if not paths:
        raise UsageError("no manifest paths given", hint="pass files or folders, e.g. `manifests/`")
    return [str(Path(p)) for p in paths]


def executor(
    lightsail: Lightsail,
    backend: StateBackend,
    custody: Custody,
    parallelism: int,
    *,
    sealer: crypto.Sealer | None = None,
    on_progress: Callable[[Change, Failure | None], None] | None = None,
) -> Executor:
    """The executor of a run: its journal, its sealer, and the custody its keys go to."""
    return Executor(
        lightsail,
        backend.journal(),
        parallelism=parallelism,
        seal=None if sealer is None else sealer.seal,
        on_progress=on_progress,
        keep=custody.keep if custody.remote else None,
        forget=custody.forget,
    )


def write_without_copies(backend: StateBackend, doc: StateDocument) -> None:
    """Write ``doc``, then again: the previous version a backend keeps as its backup then
    holds none of what this write took out (private keys moved away, sealed or unsealed)."""
    backend.write(doc)
    backend.write(doc)
