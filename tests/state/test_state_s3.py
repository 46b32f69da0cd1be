"""The S3 state backend against moto in server mode, over real HTTP on loopback.

Locking and stale-write detection rest on S3 conditional writes. The tests
that need the server to refuse a conditional write first check that moto
honours them, and say so when it does not; the headers are checked on the
wire either way.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from reconciler.emulator import Emulator, EmulatorConfig
from reconciler.errors import (
    LockHeldError,
    StaleStateError,
    StateError,
    StorageError,
    UsageError,
)
from reconciler.model import Address, JournalOp, OpenIntent
from reconciler.state import (
    LocalBackend,
    LockInfo,
    StateBackend,
    StateDocument,
    read_journal,
    s3_objects,
)
from reconciler.state.document import dumps
from reconciler.state.registry import open_state
from reconciler.state.s3 import S3Backend
from reconciler.state.s3_settings import S3Settings, parse_url
from reconciler.state.settings import StateContext
from tests.conftest import aws_client, lightsail_client
from tests.helpers import created_fingerprint, run_cli, write_manifest
from tests.state.test_state_document import SECRET, make_entry

WEB = Address("us-east-1", "web")
DB = Address("eu-west-1", "db")
KEY = "env/prod/reconciler.state.json"
REPO = Path(__file__).resolve().parents[2]

# Takes the lock on argv[1] as command argv[2] and prints its LockInfo. Then
# "hold": keeps it until a line arrives on stdin, and releases it;
# "crash": journals a create with its private key and dies without a word.
HOLDER = """
import dataclasses, json, os, sys
from reconciler.model import Address, JournalOp
from reconciler.state.registry import open_state
from reconciler.state.settings import StateContext
from tests.state.test_state_document import make_entry

backend = open_state(sys.argv[1], None, StateContext())
with backend.lock(sys.argv[2]) as info:
    if sys.argv[3] == "crash":
        backend.begin()
        journal = backend.journal()
        address = Address("us-east-1", "web")
        journal.result(journal.intent(JournalOp.CREATE, address), make_entry(address))
    print(json.dumps(dataclasses.asdict(info)), flush=True)
    if sys.argv[3] == "crash":
        os._exit(9)
    sys.stdin.readline()
"""


class Holder:
    """Another process holding the lock on an S3 state."""

    def __init__(self, url: str, moto_url: str, *, command: str, mode: str = "hold") -> None:
        env = {**os.environ, "AWS_ENDPOINT_URL_S3": moto_url}
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, url, command, mode],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, "the holder process did not take the lock"
        self.info = LockInfo(**json.loads(line))

    def release(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("\n")
        self.process.stdin.flush()

    def close(self) -> int:
        if self.process.poll() is None:
            self.release()
        return self.process.wait(timeout=15)


@pytest.fixture
def s3(moto_url: str) -> Any:
    return aws_client("s3", moto_url)


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"state-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def url(bucket: str) -> str:
    return f"s3://{bucket}/{KEY}"


@pytest.fixture
def backend(bucket: str, s3: Any) -> S3Backend:
    return S3Backend(bucket, KEY, client=s3)


@pytest.fixture(scope="session")
def conditional_writes(moto_url: str) -> bool:
    """Whether this moto refuses If-None-Match: * on an existing object and a wrong If-Match."""
    s3 = aws_client("s3", moto_url)
    name = f"probe-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="probe", Body=b"1")
    refused = 0
    for condition in ({"IfNoneMatch": "*"}, {"IfMatch": '"not-the-etag"'}):
        try:
            s3.put_object(Bucket=name, Key="probe", Body=b"2", **condition)
        except ClientError as exc:
            refused += exc.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    return refused == 2


@pytest.fixture
def honoured(conditional_writes: bool) -> None:
    if not conditional_writes:
        pytest.skip(
            "this moto does not honour S3 conditional writes (If-None-Match / If-Match), "
            "so it cannot refuse a second lock or a stale write; the backend still sends them"
        )


@pytest.fixture
def holders() -> Iterator[list[Holder]]:
    started: list[Holder] = []
    yield started
    for holder in started:
        holder.close()


def objects(s3: Any, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", ()))


def stored(s3: Any, bucket: str, key: str = KEY) -> Any:
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def wire(client: Any) -> list[tuple[str, str, dict[str, str]]]:
    """Every request ``client`` sends from now on: (operation, URL, lower-cased headers)."""
    sent: list[tuple[str, str, dict[str, str]]] = []

    def record(request: Any, event_name: str, **kwargs: Any) -> None:
        headers = {
            k.lower(): v.decode() if isinstance(v, bytes) else str(v)
            for k, v in request.headers.items()
        }
        sent.append((event_name.rsplit(".", 1)[-1], request.url, headers))

    client.meta.events.register("before-send.s3", record)
    return sent


class SlowPuts:
    """An S3 client whose PutObject takes ``delay`` seconds, as it may on a real network."""

    def __init__(self, client: Any, delay: float) -> None:
        self._client = client
        self._delay = delay
        self.stored_ids: set[str] = set()
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def put_object(self, **params: Any) -> Any:
        time.sleep(self._delay)
        response = self._client.put_object(**params)
        if ".journal/" in params["Key"]:
            with self._lock:
                self.stored_ids.update(
                    json.loads(line)["id"] for line in params["Body"].splitlines()
                )
        return response


def test_s3_backend_follows_the_protocol(backend: S3Backend, url: str) -> None:
    as_protocol: StateBackend = backend
    assert as_protocol.location == url


# -- locations and settings --------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    ["s3://", "s3://bucket", "s3://bucket/", "s3://b/key", "s3://bucket//key", "s3:/bucket/key"],
)
def test_a_location_must_name_a_bucket_and_a_key(bad: str) -> None:
    with pytest.raises(UsageError, match="not an S3 state location"):
        parse_url(bad)


def test_a_location_splits_into_bucket_and_key() -> None:
    assert parse_url("s3://my-bucket/a/b/state.json") == ("my-bucket", "a/b/state.json")


def test_unknown_encryption_or_a_kms_key_without_kms_is_refused(s3: Any) -> None:
    with pytest.raises(UsageError, match="unknown server-side encryption"):
        S3Backend("bucket", KEY, client=s3, sse="aws:fsx")
    with pytest.raises(UsageError, match="needs encryption aws:kms"):
        S3Backend("bucket", KEY, client=s3, sse="AES256", kms_key_id="alias/x")


def test_a_location_opens_with_the_standard_aws_chain_and_the_project_settings(
    moto_url: str, url: str, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_url)
    configured = S3Settings("elsewhere", "other.json", sse="AES256")
    backend = open_state(url, configured, StateContext())
    assert isinstance(backend, S3Backend)
    assert backend.location == url
    with backend.lock("apply"):
        backend.write(backend.begin())
    assert s3.head_object(Bucket=bucket, Key=KEY)["ServerSideEncryption"] == "AES256"


def test_a_missing_bucket_is_a_state_error_saying_so(s3: Any) -> None:
    backend = S3Backend("no-such-bucket-here", KEY, client=s3)
    with pytest.raises(StateError, match="bucket no-such-bucket-here does not exist") as caught:
        backend.read()
    assert caught.value.hint is not None
    assert "create it" in caught.value.hint


# -- reading and writing ------------------------------------------------------


def test_a_missing_state_reads_as_a_new_document_and_writes_nothing(
    backend: S3Backend, s3: Any, bucket: str
) -> None:
    doc = backend.read()
    assert (doc.serial, doc.entries, doc.pending) == (0, {}, {})
    with backend.lock("plan"):
        assert backend.begin().serial == 0
        backend.commit()
    assert objects(s3, bucket) == []
    assert (backend.fsync_count, backend.bytes_written) == (0, 0)


def test_a_state_document_round_trips_through_s3(backend: S3Backend, s3: Any, bucket: str) -> None:
    with backend.lock("apply"):
        doc = backend.begin()
        doc.entries[WEB] = make_entry(WEB)
        doc.entries[DB] = make_entry(DB, private_key=None, tags={})
        lost = Address("us-east-1", "lost")
        doc.pending[lost] = OpenIntent(lost, "intent-1", 1700.0)
        backend.write(doc)
    assert doc.serial == 1
    again = S3Backend(bucket, KEY, client=s3).read()
    assert again == doc
    assert again.entries[WEB].private_key == SECRET
    assert stored(s3, bucket)["serial"] == 1
    assert objects(s3, bucket) == [KEY]  # no backup of nothing, lock released
    assert backend.fsync_count == 1
    assert backend.bytes_written == len(dumps(doc))


def test_sealed_private_keys_round_trip_untouched(backend: S3Backend, s3: Any, bucket: str) -> None:
    sealed = {"v": 1, "alg": "AES-256-GCM", "ct": "b3BhcXVl", "recipients": []}
    with backend.lock("apply"):
        doc = backend.begin()
        doc.entries[WEB] = replace(make_entry(WEB, private_key=None), private_key_sealed=sealed)
        backend.write(doc)
    body = s3.get_object(Bucket=bucket, Key=KEY)["Body"].read()
    assert SECRET.encode() not in body
    assert backend.read().entries[WEB].private_key_sealed == sealed


def test_an_encrypted_state_round_trips_through_s3(
    tmp_path: Path, moto_url: str, s3: Any, bucket: str, url: str
) -> None:
    """apply --encrypt-with kms:KEY through the CLI with the state in S3: private keys
    are sealed with moto's KMS, no object in the bucket holds one in clear, and
    `key get` unseals the very key Lightsail holds the public half of."""
    key_id = aws_client("kms", moto_url).create_key()["KeyMetadata"]["KeyId"]
    write_manifest(tmp_path / "m.yaml", "us-east-1", "- name: web\n- name: db")
    env = {"AWS_ENDPOINT_URL_S3": moto_url, "AWS_ENDPOINT_URL_KMS": moto_url}
    with Emulator(EmulatorConfig(key_pool=2)) as emu:
        common = ("--state", url)
        applied = run_cli(
            "apply", "m.yaml", "--auto-approve", "--encrypt-with", f"kms:{key_id}", *common,
            cwd=tmp_path, endpoint=emu.url, env=env,
        )  # fmt: skip
        assert applied.returncode == 0, applied.stderr
        assert "in clear" not in applied.stderr
        listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
        for obj in listed:
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            assert b"PRIVATE KEY" not in body, obj["Key"]
        document = json.loads(s3.get_object(Bucket=bucket, Key=KEY)["Body"].read())
        entry = next(e for e in document["keyPairs"] if e["name"] == "web")
        assert "privateKey" not in entry and entry["privateKeySealed"]["recipients"]
        assert entry["fingerprint"] and entry["arn"]  # the rest stays readable

        got = run_cli("key", "get", "us-east-1/web", *common, cwd=tmp_path, env=env)
        assert got.returncode == 0, got.stderr
        live = lightsail_client(emu.url).get_key_pair(keyPairName="web")["keyPair"]
        assert created_fingerprint(got.stdout) == live["fingerprint"]

        again = run_cli(
            "plan",
            "m.yaml",
            "--detailed-exitcode",
            *common,
            cwd=tmp_path,
            endpoint=emu.url,
            env=env,
        )
        assert again.returncode == 0, again.stdout + again.stderr


def test_writes_bump_the_serial_keep_the_lineage_and_back_up(
    backend: S3Backend, s3: Any, bucket: str
) -> None:
    serials = []
    for address in (WEB, DB, None):
        with backend.lock("apply"):
            doc = backend.begin()
            if address is not None:
                doc.entries[address] = make_entry(address)
            backend.write(doc)
            serials.append(doc.serial)
    assert serials == [1, 2, 3]
    assert stored(s3, bucket)["lineage"] == doc.lineage
    backup = stored(s3, bucket, f"{KEY}.backup")
    assert (backup["serial"], backup["lineage"]) == (2, doc.lineage)
    assert objects(s3, bucket) == [KEY, f"{KEY}.backup"]


@pytest.mark.parametrize("kms", [False, True])
def test_server_side_encryption_is_sent_with_every_write_and_copy(
    moto_url: str, s3: Any, bucket: str, kms: bool
) -> None:
    key_id = aws_client("kms", moto_url).create_key()["KeyMetadata"]["KeyId"] if kms else None
    sse = "aws:kms" if kms else "AES256"
    backend = S3Backend(bucket, KEY, client=s3, sse=sse, kms_key_id=key_id)
    sent = wire(s3)
    for address in (WEB, DB):
        with backend.lock("apply"):
            backend.begin()
            journal = backend.journal()
            journal.result(journal.intent(JournalOp.CREATE, address), make_entry(address))
            backend.commit()
    writes = [(url, h) for op, url, h in sent if op in ("PutObject", "CopyObject")]
    kinds = {url.rsplit(".", 1)[-1] if "/.journal/" not in url else "journal" for url, _ in writes}
    assert {"lock", "json", "backup"} <= kinds
    assert any(".journal/" in url for url, _ in writes)
    for _, headers in writes:
        assert headers["x-amz-server-side-encryption"] == sse
        assert headers.get("x-amz-server-side-encryption-aws-kms-key-id") == key_id
    for key in (KEY, f"{KEY}.backup"):
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["ServerSideEncryption"] == sse
        assert (key_id or "") in head.get("SSEKMSKeyId", "")


def test_every_write_is_conditional_on_the_wire(backend: S3Backend, s3: Any) -> None:
    sent = wire(s3)
    for _ in range(2):
        with backend.lock("apply"):
            backend.begin()
            journal = backend.journal()
            journal.result(journal.intent(JournalOp.CREATE, WEB), make_entry(WEB))
            backend.commit()
    puts = [(url, h) for op, url, h in sent if op == "PutObject"]
    locks = [h for url, h in puts if url.endswith(".lock")]
    journals = [h for url, h in puts if ".journal/" in url]
    states = [h for url, h in puts if url.endswith(".json") and ".journal/" not in url]
    assert (len(locks), len(journals), len(states)) == (2, 4, 2)
    for headers in locks + journals + states[:1]:
        assert headers["if-none-match"] == "*"
        assert "if-match" not in headers
    assert states[1]["if-match"].startswith('"')
    (copy,) = [h for op, _, h in sent if op == "CopyObject"]
    assert copy["x-amz-copy-source-if-match"] == states[1]["if-match"]
    releases = [h for op, url, h in sent if op == "DeleteObject" and url.endswith(".lock")]
    assert len(releases) == 2
    assert all(h["if-match"].startswith('"') for h in releases)


# -- the journal ----------------------------------------------------------------


def test_a_run_that_never_commits_is_folded_in_by_the_next_begin(
    backend: S3Backend, s3: Any, bucket: str
) -> None:
    with backend.lock("apply"):
        backend.begin()
        journal = backend.journal()
        journal.result(journal.intent(JournalOp.CREATE, WEB), make_entry(WEB))
        journal.intent(JournalOp.CREATE, DB)  # its outcome never arrived
    leftovers = [k for k in objects(s3, bucket) if k.startswith(f"{KEY}.journal/")]
    assert len(leftovers) == 3  # one object per append: nothing else was waiting
    assert leftovers[0].endswith("/0000000001.json")
    assert objects(s3, bucket) == sorted(leftovers)  # no state yet, lock released

    seen = S3Backend(bucket, KEY, client=s3).read()  # replayed in memory only
    assert seen.entries[WEB].private_key == SECRET
    assert DB in seen.pending
    assert objects(s3, bucket) == sorted(leftovers)

    later = S3Backend(bucket, KEY, client=s3)
    with later.lock("apply"):
        doc = later.begin()
    assert doc.entries[WEB].private_key == SECRET
    assert doc.pending[DB].operation is JournalOp.CREATE
    assert doc.serial == 1
    assert objects(s3, bucket) == [KEY]
    assert stored(s3, bucket)["keyPairs"][0]["privateKey"] == SECRET


def test_commit_folds_this_runs_records_and_removes_them(
    backend: S3Backend, s3: Any, bucket: str
) -> None:
    with backend.lock("apply"):
        doc = backend.begin()
        doc.entries[DB] = make_entry(DB)
        backend.write(doc)
        journal = backend.journal()
        journal.result(journal.intent(JournalOp.CREATE, WEB), make_entry(WEB))
        journal.removed(journal.intent(JournalOp.DELETE, DB), DB)
        doc = backend.commit()
    assert set(doc.entries) == {WEB}
    assert doc.serial == 2
    assert objects(s3, bucket) == [KEY, f"{KEY}.backup"]
    assert S3Backend(bucket, KEY, client=s3).read() == doc


def test_s3_journal_records_match_the_local_journal(
    backend: S3Backend, s3: Any, bucket: str, tmp_path: Path
) -> None:
    local = LocalBackend(tmp_path / "state.json")
    for owner in (local, backend):
        with owner.lock("apply"):
            owner.begin()
            journal = owner.journal()
            create = journal.intent(JournalOp.CREATE, WEB)
            journal.result(create, make_entry(WEB))
            generate = journal.intent(JournalOp.GENERATE, DB)
            journal.keygen(generate, DB, SECRET, "ssh-rsa AAAA")
            journal.failed(generate, "ImportKeyPair kept failing")
            journal.removed(journal.intent(JournalOp.DELETE, WEB), WEB)
    local_records = read_journal(tmp_path / "state.json.journal")
    s3_records = [
        json.loads(line)
        for key in objects(s3, bucket)
        for line in s3.get_object(Bucket=bucket, Key=key)["Body"].read().splitlines()
    ]

    def shape(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k not in ("id", "at")} for r in records]

    assert shape(s3_records) == shape(local_records)
    assert [sorted(r) for r in s3_records] == [sorted(r) for r in local_records]


def test_group_commit_ten_threads_share_puts(s3: Any, bucket: str) -> None:
    slow = SlowPuts(s3, delay=0.05)
    backend = S3Backend(bucket, KEY, client=slow)
    addresses = [Address("us-east-1", f"kp-{n:02d}") for n in range(40)]
    early: list[str] = []
    with backend.lock("apply"):
        backend.begin()
        journal = backend.journal()
        puts_before = backend.fsync_count

        def create(address: Address) -> None:
            intent = journal.intent(JournalOp.CREATE, address)
            if intent not in slow.stored_ids:
                early.append(intent)  # returned before its record was stored
            journal.result(intent, make_entry(address))

        with ThreadPoolExecutor(max_workers=10) as pool:
            list(pool.map(create, addresses))
        journal_puts = backend.fsync_count - puts_before
        doc = backend.commit()
    assert early == []
    assert len(doc.entries) == 40
    assert journal_puts < 80  # 80 appends
    assert backend.fsync_count == journal_puts + 1
    assert objects(s3, bucket) == [KEY]


def test_a_journal_put_that_keeps_failing_is_spooled_and_stops_the_run(
    s3: Any, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3_objects, "backoff", lambda attempt: 0.0)

    class FailingJournalPuts:
        failing = False
        attempts = 0

        def __getattr__(self, name: str) -> Any:
            return getattr(s3, name)

        def put_object(self, **params: Any) -> Any:
            if self.failing and ".journal/" in params["Key"]:
                self.attempts += 1
                error = {"Code": "InternalError", "Message": "We encountered an internal error."}
                raise ClientError(
                    {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 500}}, "PutObject"
                )
            return s3.put_object(**params)

    client = FailingJournalPuts()
    spool = tmp_path / "spool"
    backend = S3Backend(bucket, KEY, client=client, spool_dir=spool)
    with backend.lock("apply"):
        backend.begin()
        journal = backend.journal()
        intent = journal.intent(JournalOp.CREATE, WEB)
        client.failing = True
        with journal.reserve(8192):
            journal.result(intent, make_entry(WEB))  # S3 refuses it: the spool keeps it
        assert client.attempts == s3_objects.ATTEMPTS  # retried first
        with pytest.raises(StorageError) as caught:
            journal.reserve(8192)  # no new change starts
        assert "internal error" in caught.value.message
        assert f"local spool {spool}" in caught.value.message
        (spooled,) = spool.iterdir()
        assert spooled.stat().st_mode & 0o777 == 0o600
        assert [r["kind"] for r in read_journal(spooled)] == ["result"]
        client.failing = False
        doc = backend.commit()
    # The result did happen: it goes into the state, and the spool is emptied.
    assert doc.entries[WEB].private_key == SECRET
    assert list(spool.iterdir()) == []


def test_spooled_results_reach_the_state_at_the_next_run(
    s3: Any, bucket: str, url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3_objects, "backoff", lambda attempt: 0.0)

    class Down:
        def __getattr__(self, name: str) -> Any:
            return getattr(s3, name)

        def put_object(self, **params: Any) -> Any:
            if params["Key"] != f"{KEY}.lock":
                raise ClientError({"Error": {"Code": "SlowDown"}}, "PutObject")
            return s3.put_object(**params)

    spool = tmp_path / "spool"
    backend = S3Backend(bucket, KEY, client=Down(), spool_dir=spool)
    with backend.lock("apply"):
        backend.begin()
        journal = backend.journal()
        with journal.reserve(8192):
            journal.result(journal.intent(JournalOp.CREATE, WEB), make_entry(WEB))
        with pytest.raises(StorageError, match="S3 state: cannot write"):
            backend.commit()  # S3 takes nothing: the spool keeps the key
    assert len(list(spool.iterdir())) == 1
    assert S3Backend(bucket, KEY, client=s3, spool_dir=spool).read().entries[WEB].private_key
    again = S3Backend(bucket, KEY, client=s3, spool_dir=spool)
    with again.lock("apply"):
        doc = again.begin()
    assert doc.entries[WEB].private_key == SECRET
    assert list(spool.iterdir()) == []
    assert stored(s3, bucket)["serial"] == 1


# -- stale writes -------------------------------------------------------------


def overwrite(s3: Any, bucket: str, doc: StateDocument) -> None:
    """Another run (whose lock was forced) writes the state underneath."""
    changed = doc.copy()
    changed.serial += 1
    changed.entries[DB] = make_entry(DB)
    s3.put_object(Bucket=bucket, Key=KEY, Body=dumps(changed))


def test_a_write_over_a_state_that_changed_underneath_is_refused(
    honoured: None, backend: S3Backend, s3: Any, bucket: str, url: str
) -> None:
    with backend.lock("apply"):
        backend.write(backend.begin())
    with backend.lock("state rm"):
        doc = backend.begin()
        overwrite(s3, bucket, doc)
        theirs = s3.get_object(Bucket=bucket, Key=KEY)["Body"].read()
        doc.entries[WEB] = make_entry(WEB)
        with pytest.raises(StaleStateError, match=f"the state in {url} changed since"):
            backend.write(doc)
    assert s3.get_object(Bucket=bucket, Key=KEY)["Body"].read() == theirs


def test_the_first_write_is_refused_if_another_run_created_the_state(
    honoured: None, backend: S3Backend, s3: Any, bucket: str
) -> None:
    with backend.lock("apply"):
        doc = backend.begin()
        overwrite(s3, bucket, doc)
        with pytest.raises(StaleStateError):
            backend.write(doc)


def test_a_stale_commit_keeps_its_journal_for_the_next_run(
    honoured: None, backend: S3Backend, s3: Any, bucket: str
) -> None:
    with backend.lock("apply"):
        backend.write(backend.begin())
    with backend.lock("apply"):
        doc = backend.begin()
        journal = backend.journal()
        journal.result(journal.intent(JournalOp.CREATE, WEB), make_entry(WEB))
        overwrite(s3, bucket, doc)
        with pytest.raises(StaleStateError) as caught:
            backend.commit()
    assert caught.value.hint is not None
    assert ".journal/" in caught.value.hint
    with backend.lock("apply"):
        folded = backend.begin()
    assert set(folded.entries) == {WEB, DB}  # theirs and ours
    assert folded.entries[WEB].private_key == SECRET


# -- locking ----------------------------------------------------------------


def test_the_lock_object_says_who_holds_it_and_goes_away(
    backend: S3Backend, s3: Any, bucket: str
) -> None:
    with backend.lock("apply --auto-approve") as info:
        held = stored(s3, bucket, f"{KEY}.lock")
        assert LockInfo.from_json(held) == info
        assert (info.pid, info.host) == (os.getpid(), socket.gethostname())
        with pytest.raises(StateError, match="already locked by this run"), backend.lock("x"):
            pass
    assert objects(s3, bucket) == []


def test_begin_journal_commit_and_write_need_the_lock(backend: S3Backend) -> None:
    for operation in (backend.begin, backend.journal, backend.commit):
        with pytest.raises(StateError, match="needs the lock"):
            operation()
    with pytest.raises(StateError, match="needs the lock"):
        backend.write(StateDocument.new())


def test_a_second_process_is_refused_naming_the_holder_until_unlocked(
    honoured: None,
    url: str,
    moto_url: str,
    s3: Any,
    bucket: str,
    tmp_path: Path,
    holders: list[Holder],
) -> None:
    holder = Holder(url, moto_url, command="apply --auto-approve")
    holders.append(holder)
    with pytest.raises(LockHeldError) as caught, S3Backend(bucket, KEY, client=s3).lock("apply"):
        pytest.fail("two runs hold the lock")
    message, hint = str(caught.value), caught.value.hint or ""
    assert f"state {url} is locked by apply --auto-approve" in message
    assert f"pid {holder.info.pid} on {socket.gethostname()}" in message
    assert f"lock ID {holder.info.id}" in message
    assert caught.value.exit_code == 1
    assert f"reconciler force-unlock {holder.info.id} --state {url}" in hint
    assert "S3 cannot tell whether that run is still alive" in hint

    cli = run_cli(
        "state", "rm", "us-east-1/web", "--state", url,
        cwd=tmp_path, env={"AWS_ENDPOINT_URL_S3": moto_url}, timeout=60,
    )  # fmt: skip
    assert cli.returncode == 1
    assert f"pid {holder.info.pid}" in cli.stderr
    assert "Traceback" not in cli.stderr

    backend = S3Backend(bucket, KEY, client=s3)
    with pytest.raises(StateError, match="still running"):
        backend.force_unlock(holder.info.id)  # alive, on this host
    backend.force_unlock(holder.info.id, force=True)
    with backend.lock("apply"):
        pass
    assert holder.close() == 0
    assert objects(s3, bucket) == []


def test_lock_timeout_waits_until_the_holder_releases(
    honoured: None, url: str, moto_url: str, s3: Any, bucket: str, holders: list[Holder]
) -> None:
    holder = Holder(url, moto_url, command="apply")
    holders.append(holder)
    backend = S3Backend(bucket, KEY, client=s3)
    with (
        pytest.raises(LockHeldError, match=r"after waiting 0\.3s"),
        backend.lock("apply", timeout=0.3),
    ):
        pass
    started = time.monotonic()  # the release comes 0.5 s after this, however loaded the machine
    threading.Timer(0.5, holder.release).start()
    with backend.lock("apply", timeout=20) as info:
        waited = time.monotonic() - started
        assert LockInfo.from_json(stored(s3, bucket, f"{KEY}.lock")) == info
    assert 0.5 <= waited < 15
    assert holder.close() == 0


def test_a_crashed_run_leaves_its_lock_until_force_unlock_and_its_journal_is_kept(
    honoured: None, url: str, moto_url: str, s3: Any, bucket: str
) -> None:
    crashed = Holder(url, moto_url, command="apply", mode="crash")
    assert crashed.close() == 9
    backend = S3Backend(bucket, KEY, client=s3)
    with pytest.raises(LockHeldError, match=crashed.info.id), backend.lock("apply"):
        pass

    with pytest.raises(StateError, match="lock ID does not match") as caught:
        backend.force_unlock("not-the-id")
    assert crashed.info.id in str(caught.value)
    assert f"{KEY}.lock" in objects(s3, bucket)

    backend.force_unlock(crashed.info.id)  # its pid is gone: no --force needed
    assert f"{KEY}.lock" not in objects(s3, bucket)
    with pytest.raises(StateError, match="is not locked"):
        backend.force_unlock(crashed.info.id)

    with backend.lock("apply"):
        doc = backend.begin()
    assert doc.entries[WEB].private_key == SECRET
    assert objects(s3, bucket) == [KEY]


def test_release_leaves_a_lock_that_is_no_longer_ours(
    backend: S3Backend, s3: Any, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    other = S3Backend(bucket, KEY, client=s3)
    with caplog.at_level(logging.WARNING), backend.lock("apply") as info:
        other.force_unlock(info.id, force=True)
        s3.put_object(Bucket=bucket, Key=f"{KEY}.lock", Body=b'{"id": "theirs"}')
    assert stored(s3, bucket, f"{KEY}.lock") == {"id": "theirs"}
    assert "removed or replaced while this run held it" in caplog.text


def test_a_lock_put_whose_response_was_lost_still_takes_the_lock(
    honoured: None, s3: Any, bucket: str
) -> None:
    class LostResponse:
        """The first PutObject goes through, but the client only sees its retry refused."""

        def __init__(self) -> None:
            self.lost = False

        def __getattr__(self, name: str) -> Any:
            return getattr(s3, name)

        def put_object(self, **params: Any) -> Any:
            if not self.lost:
                self.lost = True
                s3.put_object(**params)  # went through, but its response never arrived
            return s3.put_object(**params)  # the retry: refused, the object exists now

    backend = S3Backend(bucket, KEY, client=LostResponse())
    with backend.lock("apply") as info:
        assert LockInfo.from_json(stored(s3, bucket, f"{KEY}.lock")) == info
    assert objects(s3, bucket) == []
