"""Generated data: manifests, emulator stores seeded to match them, state files.

Every key pair ``i`` has the same shape everywhere: the name ``<prefix><i>``
(six digits at least, as ``Store.seed_key_pairs`` names them), the file's
``defaults.tags`` and two tags of its own. A seeded store carries exactly
those merged tags and a state written from it carries the live ARN and
fingerprint, so that a plan over the three finds nothing to change.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from pathlib import Path

from reconciler.custody import key_fingerprint
from reconciler.emulator import Store
from reconciler.emulator.material import KeyMaterial, generate_key
from reconciler.model import Address, StateEntry
from reconciler.state import FORMAT_VERSION, StateDocument
from reconciler.state.document import dumps

REGION = "us-east-1"
PREFIX = "bench-"
PER_FILE = 100
ACCOUNT_ID = "123456789012"
DEFAULT_TAGS: dict[str, str | None] = {"team": "platform", "managed-by": "lightsail-reconciler"}
_ENVS = ("prod", "staging", "dev")


def names(count: int, prefix: str = PREFIX) -> list[str]:
    width = max(6, len(str(count - 1)))
    return [f"{prefix}{i:0{width}d}" for i in range(count)]


def own_tags(index: int) -> dict[str, str | None]:
    return {"env": _ENVS[index % len(_ENVS)], "owner": f"user-{index % 997:03d}"}


def merged_tags(index: int) -> dict[str, str | None]:
    return {**DEFAULT_TAGS, **own_tags(index)}


def _flow(tags: dict[str, str | None]) -> str:
    return "{" + ", ".join(f"{k}: {'null' if v is None else v}" for k, v in tags.items()) + "}"


def write_manifests(
    folder: Path, key_pairs: Sequence[str], *, region: str = REGION, per_file: int = PER_FILE
) -> list[Path]:
    """``key_pairs`` as KeyPairSet files of ``per_file`` each; returns the files in order."""
    folder.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    for number, start in enumerate(range(0, len(key_pairs), per_file)):
        lines = [
            "# Generated for a benchmark.",
            "apiVersion: reconciler.lightsail/v1",
            "kind: KeyPairSet",
            f"region: {region}",
            "defaults:",
            f"  tags: {_flow(DEFAULT_TAGS)}",
            "keyPairs:",
        ]
        for index in range(start, min(start + per_file, len(key_pairs))):
            lines.append(f"  - name: {key_pairs[index]}")
            lines.append(f"    tags: {_flow(own_tags(index))}")
        path = folder / f"keypairs-{number:04d}.yaml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        files.append(path)
    return files


def seed(store: Store, count: int, *, region: str = REGION) -> list[str]:
    """``count`` key pairs live in ``region``, tagged as the manifests declare them."""
    key_pairs = names(count)
    store.seed_key_pairs(region, count, prefix=PREFIX)
    for index, name in enumerate(key_pairs):
        store.set_tags(region, name, merged_tags(index))
    if store.names(region)[:count] != key_pairs:
        raise RuntimeError("the seeded names are not the ones the manifests declare")
    return key_pairs


def key_material() -> KeyMaterial:
    """One real RSA key, so that every state entry is as large as a created one."""
    return generate_key()


def ref_fingerprint(key: KeyMaterial) -> str:
    """The fingerprint label a key store keeps beside ``key`` (a created key pair's)."""
    return key_fingerprint(key.private_pem, "created")


def write_state(
    path: Path,
    store: Store,
    key_pairs: Sequence[str],
    *,
    region: str = REGION,
    key_store: str | None = None,
    key: KeyMaterial | None = None,
) -> int:
    """A state file (the real format, mode 0600) recording ``key_pairs`` as created.

    Each entry carries what an apply records for a created key pair, private
    key included; with ``key_store`` (an ``ssm:`` spec) a reference to the key
    in that store instead, as ``Custody.keep`` records it. Returns the file's
    size in bytes.
    """
    key = key or key_material()
    fingerprint = ref_fingerprint(key)
    entries: dict[Address, StateEntry] = {}
    location = {"availabilityZone": "all", "regionName": region}
    for name in key_pairs:
        record = store.get(region, name)
        if record is None:
            raise RuntimeError(f"{name} is not in the emulator store")
        address = Address(region, name)
        ref = None
        if key_store is not None:
            ref = {
                "store": key_store,
                "location": key_store.partition(":")[2].format(region=region, name=name),
                "version": "1",
                "fingerprint": fingerprint,
            }
        entries[address] = StateEntry(
            address=address,
            origin="created",
            arn=record.arn(region, ACCOUNT_ID),
            fingerprint=record.fingerprint,
            created_at=record.created_at,
            tags=dict(record.tags),
            public_key_base64=key.public_key_base64,
            private_key=None if ref else key.private_pem,
            private_key_ref=ref,
            support_code=f"{ACCOUNT_ID}/{name}",
            location=location,
            operation={
                "id": str(uuid.uuid4()),
                "resourceName": name,
                "resourceType": "KeyPair",
                "createdAt": record.created_at,
                "location": location,
                "isTerminal": True,
                "operationType": "CreateKeyPair",
                "status": "Succeeded",
                "statusChangedAt": round(record.created_at + 0.15, 3),
            },
        )
    doc = StateDocument(
        version=FORMAT_VERSION,
        lineage=str(uuid.uuid4()),
        serial=1,
        entries=entries,
        keys={"store": key_store} if key_store else {},
    )
    data = dumps(doc)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return len(data)
