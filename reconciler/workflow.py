"""The steps commands share: open the state, read Lightsail, make a plan, apply it.

Commands in ``cli.py`` parse arguments and call one function here; this module
wires manifests, state, Lightsail and the planner together and decides
nothing about output formats.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from reconciler.errors import UsageError
from reconciler.lightsail import ClientOptions, Lightsail, kms_client_factory
from reconciler.model import Address, DesiredSet, LiveSnapshot
from reconciler.plan import Plan, make_plan
from reconciler.scope import Scope, plan_in_scope
from reconciler.state import LocalBackend, StateBackend, StateDocument, crypto
from reconciler.state.registry import remote_backend

log = logging.getLogger(__name__)

DEFAULT_STATE = "reconciler.state.json"
SWITCH_INTERVAL = 0.0005  # s; the interpreter's default is 0.005
LOCAL_CREDENTIAL = "local"


def local_dir() -> str:
    """Where --local keeps the embedded emulator's data and its state."""
    return os.environ.get("RECONCILER_LOCAL_DIR") or ".reconciler"


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
    extra: dict[str, str] = field(default_factory=dict)
    # The key store for new private keys (--key-store, else reconciler.yaml's keys:).
    key_store: str | None = None
    key_store_kms_key_id: str | None = None
    key_store_timeout: float | None = None

    @property
    def region_filter(self) -> Collection[str] | None:
        return set(self.regions) if self.regions else None


def state_location(options: Options) -> str:
    if options.state:
        return options.state
    return os.path.join(local_dir(), "local.state.json") if options.local else DEFAULT_STATE


def open_backend(options: Options) -> StateBackend:
    location = state_location(options)
    remote = remote_backend(location, options)
    if remote is not None:
        return remote
    if options.local:
        os.makedirs(os.path.dirname(location) or ".", mode=0o700, exist_ok=True)
    return LocalBackend(location, allow_insecure=options.allow_insecure_state)


@contextlib.contextmanager
def lightsail_for(options: Options) -> Iterator[Lightsail]:
    """A Lightsail client; with --local, an embedded emulator is started for it."""
    if not options.local:
        yield Lightsail(
            ClientOptions(
                endpoint_url=options.endpoint_url,
                profile=options.profile,
                pool_size=options.parallelism,
            )
        )
        return
    from reconciler.emulator import Emulator, EmulatorConfig

    os.makedirs(local_dir(), mode=0o700, exist_ok=True)
    config = EmulatorConfig(data_path=os.path.join(local_dir(), "emulator.json"))
    with Emulator(config) as emulator:
        log.info("embedded Lightsail emulator at %s", emulator.url)
        yield Lightsail(
            ClientOptions(
                endpoint_url=emulator.url,
                access_key=LOCAL_CREDENTIAL,
                secret_key=LOCAL_CREDENTIAL,
                pool_size=options.parallelism,
            )
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
    regions = set(desired.regions)
    regions.update(a.region for a in doc.entries)
    regions.update(a.region for a in doc.pending)
    if options.regions:
        unknown = set(options.regions) - regions
        if unknown and not regions & set(options.regions):
            log.info(
                "--region %s matches nothing in manifests or state", ", ".join(sorted(unknown))
            )
        regions &= set(options.regions)
    return sorted(regions)


def read_without_secrets(backend: StateBackend) -> Callable[[], StateDocument]:
    """A reader of the state that leaves private keys out, for plans and drift."""
    return functools.partial(backend.read, secrets=False)


def observe(
    desired: DesiredSet,
    read_state: Callable[[], StateDocument],
    lightsail: Lightsail,
    options: Options,
) -> tuple[StateDocument, LiveSnapshot]:
    """The state and a live snapshot, read at the same time.

    The regions the manifests name are requested from Lightsail while the
    state is parsed (network waits overlap CPU work); regions only the state
    names are read afterwards.
    """
    early = [r for r in desired.regions if not options.regions or r in options.regions]
    previous = sys.getswitchinterval()
    # While the state is parsed, hand the interpreter to the reading thread
    # soon after each page arrives, so the next request is not held back.
    sys.setswitchinterval(min(previous, SWITCH_INTERVAL))
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            reading = pool.submit(lightsail.snapshot, early)
            doc = read_state()
            live = reading.result()
    finally:
        sys.setswitchinterval(previous)
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
    if live is None:
        live = lightsail.snapshot(regions_to_read(desired, doc, options))
    plan, live = _planned(desired, doc, lightsail, options, destroy=destroy, live=live)
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
    destroy: bool = False,
    live: LiveSnapshot | None = None,
) -> tuple[Plan, LiveSnapshot]:
    assert live is not None
    if options.scope:
        return plan_in_scope(_planned, desired, doc, lightsail, options, destroy, live), live
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
    return plan, live


def manifest_paths(paths: Sequence[str]) -> list[str]:
    if not paths:
        raise UsageError("no manifest paths given", hint="pass files or folders, e.g. `manifests/`")
    return [str(Path(p)) for p in paths]
