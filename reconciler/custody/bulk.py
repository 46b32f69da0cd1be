"""Checking many stored keys in few calls: what plan and drift use at scale.

A store that can describe keys in bulk offers ``describe_many``; ``Custody.check``
uses it instead of one ``describe`` (one or two calls) per key. The results are
the same ``KeyMetadata`` (or None when the key is missing) ``describe`` returns,
in the order of the entries given (a key pair's earlier generations share its
address, so results are not keyed by address).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar, runtime_checkable

from reconciler.custody.base import KeyMetadata
from reconciler.model import StateEntry

T = TypeVar("T")
R = TypeVar("R")

Found = list[KeyMetadata | None]


@runtime_checkable
class BulkDescribe(Protocol):
    def describe_many(self, entries: Sequence[StateEntry], *, parallelism: int) -> Found:
        """Metadata of every entry's stored key (None when missing), never a value."""
        ...


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def by_region(entries: Sequence[StateEntry]) -> dict[str, list[int]]:
    """Positions of ``entries`` by region."""
    out: dict[str, list[int]] = {}
    for index, entry in enumerate(entries):
        out.setdefault(entry.address.region, []).append(index)
    return out


def run_all(fn: Callable[[T], R], items: Sequence[T], parallelism: int) -> list[R]:
    """``fn`` over ``items``, ``parallelism`` at a time; the first failure is raised."""
    if len(items) <= 1 or parallelism <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(parallelism, len(items))) as pool:
        return list(pool.map(fn, items))
