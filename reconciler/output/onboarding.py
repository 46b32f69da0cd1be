"""What `import --all` shows before it writes or adopts: files, places not read, adoptions."""

from __future__ import annotations

from pathlib import Path

from reconciler.fleet.onboard import Onboarding
from reconciler.model import Unread
from reconciler.output.escape import visible


def preview(onboarding: Onboarding, folder: Path, unread: tuple[Unread, ...] = ()) -> str:
    lines: list[str] = []
    total = sum(f.count for f in onboarding.files)
    lines.append(f"Manifests under {folder} for {total} live key pair(s):")
    for f in onboarding.files:
        lines.append(f"  {f.path}  ({f.count} key pair(s), {f.status})")
    if unread:
        lines.append("")
        lines.append("Not read (no manifest is written for them, nothing of them adopted):")
        lines.extend(f"  {_place(u)}" for u in unread)
    if onboarding.skipped:
        lines.append("")
        lines.append("Not written or adopted (no manifest could declare them as they are):")
        lines.extend(f"  {address}: {why}" for address, why in onboarding.skipped)
    if onboarding.adoptions:
        lines.append("")
        lines.append(f"Key pairs to adopt into the state ({len(onboarding.adoptions)}):")
        lines.extend(f"  <= {c.address}" for c in onboarding.adoptions)
    lines.append("")
    lines.append(
        f"Import: {len(onboarding.writes)} file(s) to write, "
        f"{len(onboarding.adoptions)} key pair(s) to adopt."
    )
    return "".join(f"{visible(line)}\n" for line in lines)


def _place(unread: Unread) -> str:
    return f"account {unread.place}" if unread.account else unread.place
