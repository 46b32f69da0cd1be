"""(1) ``validate`` of N key pairs in N/100 files, beside merely parsing the same files.

The floor is reading each file and ``yaml.load`` with the fastest loader
PyYAML has (``CSafeLoader``, libyaml); validation reads the files, parses them
keeping every node's position, checks the JSON schema and Lightsail's rules,
and builds the desired model. Both run in this process, interleaved, so that
machine noise falls on both alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import yaml

from bench import workload
from bench.report import Report, Target, median, num, runs_text, spread
from bench.settings import Settings
from reconciler.manifests.load import load_desired
from reconciler.manifests.yamlsafe import parse_documents

TARGET = Target("<=", 2.0)
# An alias bomb or a deep alias chain is refused at the alias, well before it expands.
ALIAS_TARGET = Target("<=", 500)  # ms


def alias_bomb() -> str:
    """A billion laughs: nine levels of nine aliases each (9**10 nodes if expanded)."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"


def alias_chain(depth: int = 5000) -> str:
    """Each alias nesting the one before, ``depth`` levels."""
    lines = ["c0: &c0 [x]"] + [f"c{i}: &c{i} [*c{i - 1}]" for i in range(1, depth)]
    return "\n".join(lines) + "\n"


def _fastest_loader() -> tuple[Any, str]:
    loader = getattr(yaml, "CSafeLoader", None)
    if loader is not None:
        return loader, "yaml.CSafeLoader"
    return yaml.SafeLoader, "yaml.SafeLoader (libyaml missing: the floor is slow)"


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(report: Report, settings: Settings) -> None:
    count = settings.validate_key_pairs
    loader, loader_name = _fastest_loader()
    report.section(
        f"validate: {count} key pairs in {count // workload.PER_FILE} files",
        f"floor: read + yaml.load({loader_name}) of the same files; "
        f"{runs_text(settings.fast_runs)} each, interleaved",
    )
    with TemporaryDirectory(prefix="reconciler-bench-") as tmp:
        folder = Path(tmp) / "manifests"
        files = workload.write_manifests(folder, workload.names(count))

        def parse() -> None:
            for path in files:
                yaml.load(path.read_text(encoding="utf-8"), Loader=loader)

        def validate() -> None:
            desired = load_desired([folder], root=Path(tmp))
            if len(desired.key_pairs) != count:
                raise RuntimeError(f"validated {len(desired.key_pairs)} key pairs, not {count}")

        parse()  # warm the page cache and the imports alike
        validate()
        parse_s: list[float] = []
        validate_s: list[float] = []
        for _ in range(settings.fast_runs):
            parse_s.append(_timed(parse))
            validate_s.append(_timed(validate))
    ours, floor = median(validate_s), median(parse_s)
    report.figure(
        f"validate.{count}.median_s",
        num(ours),
        ("parse_floor_s", num(floor)),
        ratio=ours / floor,
        target=TARGET,
    )
    report.figure(
        f"validate.{count}.runs_s",
        spread(validate_s),
        ("parse_floor_runs_s", spread(parse_s)),
        ("per_key_pair_us", num(ours / count * 1e6)),
    )
    for name, text in (("alias_bomb", alias_bomb()), ("alias_chain_5000", alias_chain())):
        refused = median([_timed(partial(_refused, text)) for _ in range(settings.fast_runs)])
        report.figure(
            f"validate.{name}.refused_ms",
            num(refused * 1000),
            target=ALIAS_TARGET,
            checked=refused * 1000,
        )


def _refused(text: str) -> None:
    _, problems = parse_documents(text, "bomb.yaml")
    if not problems:
        raise RuntimeError("the alias bomb was not refused")
