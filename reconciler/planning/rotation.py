"""Rotation and generations: when a key pair is due, and which earlier keys are kept.

Pure: no I/O. A generation is an earlier private key of a key pair, kept
after a rotation or replacement so that instances launched with it stay
reachable. ``keep`` bounds how many are kept, but a generation that an
instance may still use is never dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from reconciler.model import DAY, HOUR, Generation, LiveInstance, Rotation, StateEntry


def describe_age(seconds: float) -> str:
    """``97 days`` (or hours, under two days), rounded down."""
    if seconds >= 2 * DAY or seconds % DAY == 0:
        days = int(seconds // DAY)
        return f"{days} day{'s' if days != 1 else ''}"
    hours = int(seconds // HOUR)
    return f"{hours} hour{'s' if hours != 1 else ''}"


def due_at(rotation: Rotation, created_at: float) -> float | None:
    """When a key pair created at ``created_at`` falls due; None when its age is not known."""
    if created_at <= 0:
        return None
    return created_at + rotation.after


def overdue_age(rotation: Rotation, created_at: float, now: float) -> float | None:
    """The age, in seconds, of a key pair created at ``created_at`` that is due for
    rotation at ``now``; None if it is not due (or its age is not known)."""
    age = now - created_at
    if due_at(rotation, created_at) is None or age < rotation.after:
        return None
    return age


def rotation_due(rotation: Rotation, created_at: float, now: float) -> str | None:
    """Why a key pair created at ``created_at`` is due for rotation, or None if it is not
    (the words a plan shows: ``output.reasons`` words the planner's facts the same way)."""
    age = overdue_age(rotation, created_at, now)
    if age is None:
        return None
    return f"created {describe_age(age)} ago; rotate after {describe_age(rotation.after)}"


def in_use(generation: Generation, instances: Iterable[LiveInstance]) -> bool:
    """Whether an instance may have been launched with this generation's key.

    Instances name key pairs, not keys: one launched while this generation
    was the key pair's key (between its creation and its retirement) holds it.
    An instance of unknown age is taken to hold it.
    """
    for instance in instances:
        if instance.created_at <= 0:
            return True
        if generation.entry.created_at <= instance.created_at < generation.retired_at:
            return True
    return False


def succeed(prior: StateEntry, new: StateEntry, *, retired_at: float) -> StateEntry:
    """``new`` with every key ``prior`` kept: its own (if it holds one) newest, then its
    generations. A key with the fingerprint of one already kept is the same key, kept once."""
    earlier = list(prior.generations)
    if prior.has_private_key:
        earlier.insert(0, Generation(replace(prior, generations=()), retired_at))
    kept: list[Generation] = []
    seen = {new.fingerprint}
    for generation in earlier:
        if generation.entry.fingerprint not in seen:
            kept.append(generation)
            seen.add(generation.entry.fingerprint)
    return replace(new, generations=tuple(kept))


def prune(entry: StateEntry, *, keep: int, instances: Sequence[LiveInstance] = ()) -> StateEntry:
    """``entry`` keeping ``keep`` generations, and any older one an instance may use."""
    kept = [g for i, g in enumerate(entry.generations) if i < keep or in_use(g, instances)]
    return replace(entry, generations=tuple(kept))


def dropped(before: StateEntry, after: StateEntry) -> list[Generation]:
    """Generations of ``before`` that ``after`` no longer keeps (their keys may be deleted)."""
    kept = {g.entry.fingerprint for g in after.generations} | {after.fingerprint}
    return [g for g in before.generations if g.entry.fingerprint not in kept]
