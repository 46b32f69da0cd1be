"""(9) ``plan`` of a fleet: many accounts x regions, a few key pairs each, beside Terraform.

50 accounts, each a profile of its own in ``reconciler.yaml`` (an access key
the emulator maps to an account id of its own), x 4 regions x 50 key pairs:
10,000 key pairs in 200 places, every one declared, recorded (keys in the
state, in clear) and live. Ours is ``reconciler plan`` from exec to exit in a
fresh process (peak RSS from ``wait4``), against the emulator in this
process at 50 ms per call.

The floor: each place is one chain of GetKeyPairs pages (a page names the
next), the chains run side by side up to the run's parallelism (10). So the
least a plan can wait is ceil(places / parallelism) rounds of one chain's
pages x latency.

The baseline is what a Terraform-like provider does: one boto3 session and
client per account and region, one GetKeyPair per resource, 10 at a time. It
creates every client and is timed on an evenly spread sample of the
resources, extrapolated linearly; its client creation is counted once.
"""

from __future__ import annotations

import math
import uuid
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from bench import workload
from bench.harness import BenchError, aws_env, process_cpu_s, run_child, run_task
from bench.report import Report, Target, median, mib, num, runs_text, spread
from bench.settings import Settings
from reconciler.emulator import Emulator, EmulatorConfig, Store
from reconciler.model import Address, StateEntry
from reconciler.state import FORMAT_VERSION, StateDocument
from reconciler.state.document import dumps

FLOOR_TARGET = Target("<=", 1.5)
BASELINE_TARGET = Target(">=", 10.0)
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2")
PARALLELISM = 10  # reconciler's default --parallelism, and the baseline's


def alias(index: int) -> str:
    return f"acct{index:02d}"


def access_key(index: int) -> str:
    return f"AKIDFLEET{index:04d}"


def account_id(index: int) -> str:
    return f"{100000000000 + index:012d}"


def run(report: Report, settings: Settings) -> None:
    accounts, per_place = (10, 10) if settings.quick else (50, 50)
    latency = 20.0 if settings.quick else 50.0
    places = accounts * len(REGIONS)
    count = places * per_place
    config = EmulatorConfig(
        latency_ms=latency,
        accounts={access_key(i): account_id(i) for i in range(accounts)},
    )
    sample = max(places, count // 10)  # baseline resources timed
    report.section(
        f"fleet: plan of {accounts} accounts x {len(REGIONS)} regions x {per_place} key pairs "
        f"({count} in {places} places; a profile per account), emulator at {num(latency)} ms "
        "per call, in this process",
        f"ours: `python -m reconciler plan` from exec to exit, --parallelism {PARALLELISM}; "
        f"{runs_text(settings.slow_runs)}",
        f"baseline: a boto3 session and client per account and region, GetKeyPair per "
        f"resource, {PARALLELISM} at a time, timed on {sample} resources and extrapolated; "
        "1 run",
    )
    with TemporaryDirectory(prefix="reconciler-bench-") as tmp, Emulator(config) as emulator:
        workdir = Path(tmp)
        names = _seed(emulator.store, accounts, per_place)
        state_size = _write_project(workdir, emulator.store, accounts, names)
        env = aws_env(workdir, emulator.url)
        env["AWS_CONFIG_FILE"] = str(workdir / "aws-config")
        argv = ["-m", "reconciler", "plan", "manifests", "--parallelism", str(PARALLELISM)]
        runs: list[dict[str, float]] = []
        calls: list[int] = []
        for _ in range(settings.slow_runs):
            emulator.reset_counters()
            served = process_cpu_s()
            child = run_child(argv, env=env, cwd=workdir, check=False)
            if f"No changes. {count} unchanged." not in child.stdout:
                raise BenchError(
                    f"expected a plan with no changes, got: {child.stdout[-500:]}"
                    f"{child.stderr[-1000:]}"
                )
            calls.append(sum(emulator.calls.values()))
            runs.append(
                {
                    "wall": child.wall_s,
                    "cpu": child.cpu_s,
                    "rss": child.max_rss,
                    "emulator_cpu": process_cpu_s() - served,
                }
            )
        emulator.reset_counters()
        params = {
            "accounts": accounts,
            "regions": list(REGIONS),
            "names": names,
            "sample": sample,
            "parallelism": PARALLELISM,
        }
        baseline = run_task("fleet_baseline", params, env=env, cwd=workdir)
        baseline_calls = sum(emulator.calls.values())

    pages = math.ceil(per_place / EmulatorConfig().page_size)
    rounds = math.ceil(places / PARALLELISM)
    floor = rounds * pages * latency / 1000
    walls = [r["wall"] for r in runs]
    ours = median(walls)
    extrapolated = baseline["clients_s"] + baseline["calls_s"] * count / baseline["sampled"]
    name = f"fleet.{accounts}x{len(REGIONS)}x{per_place}"
    report.figure(
        f"{name}.plan_s",
        num(ours),
        (
            "floor_s",
            f"{num(floor)} (ceil({places} places / {PARALLELISM}) x {pages} page x "
            f"{num(latency)} ms)",
        ),
        ratio=ours / floor,
        target=FLOOR_TARGET,
    )
    report.figure(
        f"{name}.vs_baseline",
        num(extrapolated / ours),
        (
            "baseline_s",
            f"{num(extrapolated)} (clients {num(baseline['clients_s'])} + calls "
            f"{num(baseline['calls_s'])} x{count / baseline['sampled']:g} from "
            f"{baseline['sampled']})",
        ),
        ("baseline_calls", f"{count} GetKeyPair ({baseline_calls} in the sample run)"),
        target=BASELINE_TARGET,
        checked=extrapolated / ours,
    )
    report.figure(
        f"{name}.peak_rss",
        mib(median([r["rss"] for r in runs])),
        ("state_file", mib(state_size)),
        ("baseline_peak_rss", mib(baseline["child_max_rss"])),
    )
    report.figure(
        f"{name}.runs_s",
        spread(walls),
        ("cpu_s", num(median([r["cpu"] for r in runs]))),
        ("api_calls", f"{calls[0]} (expected {places * pages})"),
        ("emulator_cpu_s", num(median([r["emulator_cpu"] for r in runs]))),
    )


def _seed(store: Store, accounts: int, per_place: int) -> list[str]:
    """Every account's every region holds the same names, tagged as declared."""
    names = workload.names(per_place)
    for index in range(accounts):
        view = store.account(account_id(index))
        for region in REGIONS:
            view.seed_key_pairs(region, per_place, prefix=workload.PREFIX)
            for number, key_pair in enumerate(names):
                view.set_tags(region, key_pair, workload.merged_tags(number))
    return names


def _write_project(workdir: Path, store: Store, accounts: int, names: list[str]) -> int:
    """reconciler.yaml (a profile per account), their AWS config, manifests, state."""
    project = ["accounts:"]
    config: list[str] = []
    for index in range(accounts):
        project.append(f"  {alias(index)}: {{profile: {alias(index)}}}")
        config += [
            f"[profile {alias(index)}]",
            f"aws_access_key_id = {access_key(index)}",
            f"aws_secret_access_key = secret-{index}",
        ]
    (workdir / "reconciler.yaml").write_text("\n".join(project) + "\n", encoding="utf-8")
    (workdir / "aws-config").write_text("\n".join(config) + "\n", encoding="utf-8")
    key = workload.key_material()
    entries: dict[Address, StateEntry] = {}
    for index in range(accounts):
        view = store.account(account_id(index))
        for region in REGIONS:
            folder = workdir / "manifests" / alias(index)
            (path,) = workload.write_manifests(folder / region, names, region=region)
            path.write_text(f"account: {alias(index)}\n" + path.read_text(encoding="utf-8"))
            for name in names:
                record = view.get(region, name)
                if record is None:
                    raise BenchError(f"{name} is not in the emulator store")
                address = Address(region, name, alias(index))
                location = {"availabilityZone": "all", "regionName": region}
                entries[address] = StateEntry(
                    address=address,
                    origin="created",
                    arn=record.arn(region, account_id(index)),
                    fingerprint=record.fingerprint,
                    created_at=record.created_at,
                    tags=dict(record.tags),
                    public_key_base64=key.public_key_base64,
                    private_key=key.private_pem,
                    support_code=f"{account_id(index)}/{name}",
                    location=location,
                )
    doc = StateDocument(
        version=FORMAT_VERSION, lineage=str(uuid.uuid4()), serial=1, entries=entries, keys={}
    )
    data = dumps(doc)
    state = workdir / "reconciler.state.json"
    state.write_bytes(data)
    state.chmod(0o600)
    return len(data)


# -- in the child process ----------------------------------------------------


def measure_baseline(params: dict[str, Any]) -> dict[str, Any]:
    """A Terraform-like provider: a session and client per account and region, then
    one GetKeyPair per resource, ``parallelism`` at a time, on an even sample."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard"}, max_pool_connections=params["parallelism"])
    start = time.perf_counter()
    clients = {
        (index, region): boto3.session.Session(profile_name=alias(index)).client(
            "lightsail", region_name=region, config=config
        )
        for index in range(params["accounts"])
        for region in params["regions"]
    }
    clients_s = time.perf_counter() - start
    resources = [(place, name) for place in clients for name in params["names"]]
    step = max(1, len(resources) // params["sample"])
    sample = resources[::step][: params["sample"]]

    def read(resource: tuple[tuple[int, str], str]) -> None:
        place, name = resource
        clients[place].get_key_pair(keyPairName=name)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=params["parallelism"]) as pool:
        list(pool.map(read, sample))
    return {
        "clients_s": clients_s,
        "calls_s": time.perf_counter() - start,
        "sampled": len(sample),
    }
