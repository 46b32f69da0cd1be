"""The durability order of a create, watched from the wire and from the progress report.

Over real HTTP against the emulator, with the real local backend on disk: as
each CreateKeyPair request leaves, its intent must already be covered by a
completed fsync; when a create is reported done, its result, private key and
all, must be covered too. Checked with ten workers, so that records of
concurrent creates share fsyncs (group commit must never let a record through
before an fsync that covers it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.apply.executor import Executor, Failure
from reconciler.aws.lightsail import ClientOptions, Lightsail
from reconciler.emulator import Emulator
from reconciler.model import Address
from reconciler.planning.planner import Action, Change, Plan, Reason
from reconciler.state import Journal, LocalBackend, read_journal
from reconciler.state.spool import Spilling

REGION = "us-east-1"
CREATES = 30


def plan_of(changes: list[Change]) -> Plan:
    return Plan(
        changes=tuple(changes),
        findings=(),
        unchanged=0,
        orphaned=(),
        stale_pending=(),
        regions=(REGION,),
        lineage="test",
        serial=0,
        live_digest="",
    )


def creates(count: int) -> list[Change]:
    return [
        Change(
            Action.CREATE,
            Address(REGION, f"kp-{n:02d}"),
            Reason.DECLARED,
            after_tags={"team": "ops"},
        )
        for n in range(count)
    ]


def position(path: Path, kind: str, name: str) -> int:
    """The 1-based position in the journal file of the ``kind`` record for ``name``."""
    for number, record in enumerate(read_journal(path), start=1):
        named = record.get("name") or record.get("entry", {}).get("name")
        if record["kind"] == kind and named == name:
            return number
    raise AssertionError(f"no {kind} record for {name} in the journal")


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[LocalBackend]:
    state = LocalBackend(tmp_path / "reconciler.state.json")
    with state.lock("apply"):
        state.begin()
        yield state


def test_each_create_is_sent_after_its_intent_and_reported_after_its_key_are_durable(
    backend: LocalBackend, emulator: Emulator
) -> None:
    lightsail = Lightsail(ClientOptions(endpoint_url=emulator.url))
    writer = backend.journal()
    assert isinstance(writer, Spilling)
    journal: Journal = writer.journal
    sent: list[tuple[str, int, int]] = []  # name, intent position, records durable
    reported: list[tuple[str, int, int]] = []  # name, result position, records durable

    def on_send(request: Any, **_: Any) -> None:
        if not request.headers["X-Amz-Target"].endswith(b".CreateKeyPair"):
            return
        name = json.loads(request.body)["keyPairName"]
        durable = journal.durable_appends
        sent.append((name, position(journal.path, "intent", name), durable))

    def on_progress(change: Change, failure: Failure | None) -> None:
        assert failure is None
        durable = journal.durable_appends
        name = change.address.name
        reported.append((name, position(journal.path, "result", name), durable))

    # Last among the client's before-send handlers, as the request leaves.
    lightsail.client(REGION).meta.events.register_last("before-send.lightsail", on_send)
    executor = Executor(lightsail, writer, parallelism=10, on_progress=on_progress)
    try:
        result = executor.run(plan_of(creates(CREATES)))
    finally:
        doc = backend.commit()
    assert result.ok and len(result.succeeded) == CREATES
    assert len(sent) == len(reported) == CREATES
    not_durable_when_sent = [(name, at, durable) for name, at, durable in sent if at > durable]
    assert not not_durable_when_sent, "a create was sent before its intent was durable"
    not_durable_when_reported = [(n, at, durable) for n, at, durable in reported if at > durable]
    assert not not_durable_when_reported, "a create was reported before its key was durable"
    assert all(entry.private_key for entry in doc.entries.values())
    assert len(doc.entries) == CREATES
