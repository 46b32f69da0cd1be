"""The state document: JSON shape, versioned reading, and errors that name the file."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.errors import StateError
from reconciler.model import Address, JournalOp, OpenIntent, StateEntry
from reconciler.state import FORMAT_VERSION, StateDocument, entry_from_json, entry_to_json
from reconciler.state import document as document_module
from reconciler.state.document import dumps, loads

SECRET = "-----BEGIN RSA PRIVATE KEY-----\nTOPSECRETKEYMATERIAL\n-----END RSA PRIVATE KEY-----\n"


def make_entry(
    address: Address,
    *,
    fingerprint: str = "aa:bb",
    private_key: str | None = SECRET,
    tags: dict[str, str | None] | None = None,
) -> StateEntry:
    return StateEntry(
        address=address,
        origin="created",
        arn=f"arn:aws:lightsail:{address.region}:123456789012:KeyPair/{address.name}",
        fingerprint=fingerprint,
        created_at=1700000000.5,
        tags={"env": "prod", "owner": None} if tags is None else tags,
        public_key_base64="AAAAB3NzaC1yc2E",
        private_key=private_key,
        support_code="123/abc",
        location={"availabilityZone": "all", "regionName": address.region},
        operation={"id": "op-1", "status": "Succeeded"},
    )


def sample_doc() -> StateDocument:
    doc = StateDocument.new()
    doc.serial = 7
    for address in (
        Address("us-west-2", "b"),
        Address("eu-west-1", "z"),
        Address("us-west-2", "a"),
    ):
        doc.entries[address] = make_entry(address)
    sealed = make_entry(Address("ap-south-1", "sealed"), private_key=None)
    doc.entries[sealed.address] = StateEntry(
        **{**_fields(sealed), "private_key_sealed": {"scheme": "age", "ciphertext": "Zm9v"}}
    )
    pending = Address("us-east-1", "gen")
    doc.pending[pending] = OpenIntent(
        pending, "intent-1", 1700.0, JournalOp.GENERATE, SECRET, "ssh-rsa AA"
    )
    lost = Address("us-east-1", "lost")
    doc.pending[lost] = OpenIntent(lost, "intent-2", 1701.0)
    return doc


def _fields(entry: StateEntry) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in StateEntry.__dataclass_fields__}


def test_new_document_has_version_fresh_lineage_and_serial_zero() -> None:
    a, b = StateDocument.new(), StateDocument.new()
    assert a.version == FORMAT_VERSION == 4
    assert a.serial == 0
    assert a.lineage != b.lineage
    assert len(a.lineage) == 36


def test_round_trip_through_json_keeps_everything() -> None:
    doc = sample_doc()
    again = loads(dumps(doc), source="s.json")
    assert again == doc
    assert again.entries[Address("us-west-2", "a")].private_key == SECRET


def test_key_pairs_are_sorted_by_region_then_name() -> None:
    data = sample_doc().to_json()
    order = [(e["region"], e["name"]) for e in data["keyPairs"]]
    assert order == sorted(order)
    assert [p["name"] for p in data["pending"]] == ["gen", "lost"]


def test_entry_json_shape() -> None:
    data = entry_to_json(make_entry(Address("us-east-1", "web")))
    assert data["tags"] == {"env": "prod", "owner": None}  # null = key-only tag
    assert data["createdAt"] == 1700000000.5
    assert data["privateKey"] == SECRET
    assert "privateKeySealed" not in data
    assert data["resourceType"] == "KeyPair"
    no_key = entry_to_json(make_entry(Address("us-east-1", "web"), private_key=None))
    assert "privateKey" not in no_key
    assert entry_from_json(data) == make_entry(Address("us-east-1", "web"))


def test_pending_generate_keeps_its_key_and_pending_create_has_none() -> None:
    pending = sample_doc().to_json()["pending"]
    assert pending[0] == {
        "region": "us-east-1",
        "name": "gen",
        "intentId": "intent-1",
        "startedAt": 1700.0,
        "operation": "generate",
        "privateKey": SECRET,
        "publicKey": "ssh-rsa AA",
    }
    assert "privateKey" not in pending[1]


def test_repr_never_shows_private_keys() -> None:
    doc = sample_doc()
    assert "TOPSECRET" not in repr(doc)
    assert "TOPSECRET" not in repr(list(doc.entries.values()))
    assert "TOPSECRET" not in repr(list(doc.pending.values()))


def test_newer_format_version_is_refused_with_a_hint() -> None:
    data = sample_doc().to_json()
    data["version"] = FORMAT_VERSION + 1
    with pytest.raises(StateError) as caught:
        StateDocument.from_json(data, source="prod.state.json")
    assert "prod.state.json" in str(caught.value)
    assert f"format version {FORMAT_VERSION + 1}" in str(caught.value)
    assert caught.value.hint is not None and "upgrade" in caught.value.hint


@pytest.mark.parametrize("version", [1, 2])
def test_an_older_state_is_read_as_one_keeping_its_keys_in_itself(version: int) -> None:
    old = {**sample_doc().to_json(), "version": version}
    old.pop("keys", None)
    doc = StateDocument.from_json(old, source="old.json")
    assert doc.version == FORMAT_VERSION
    assert doc.keys == {"store": "state"}
    assert doc.entries == sample_doc().entries


def test_older_versions_go_through_each_upgrade_step(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pretend the format is at version 3 and read a version-1 document.
    def one_to_two(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "keyPairs": [], "steps": ["1->2"]}

    def two_to_three(data: dict[str, Any]) -> dict[str, Any]:
        assert data["version"] == 2 and data["steps"] == ["1->2"]
        return {**data, "serial": data["serial"] + 100}

    old = {**sample_doc().to_json(), "version": 1}
    monkeypatch.setattr(document_module, "FORMAT_VERSION", 3)
    monkeypatch.setattr(document_module, "_UPGRADES", {1: one_to_two, 2: two_to_three})
    doc = StateDocument.from_json(old, source="old.json")
    assert doc.version == 3
    assert doc.serial == 107
    assert doc.entries == {}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"version": "1"}, "'version'"),
        ({"version": 0}, "'version'"),
        ({"lineage": 5}, "'lineage'"),
        ({"serial": True}, "'serial'"),
        ({"serial": -1}, "'serial'"),
        ({"keyPairs": {}}, "'keyPairs' must be a list"),
        ({"keyPairs": ["x"]}, "keyPairs[0]: expected a JSON object"),
        ({"pending": [{"region": "r", "name": "n"}]}, "pending[0] (r/n): 'operation'"),
    ],
)
def test_wrong_shapes_are_state_errors_naming_the_file(
    change: dict[str, Any], expected: str
) -> None:
    data = {**sample_doc().to_json(), **change}
    with pytest.raises(StateError) as caught:
        StateDocument.from_json(data, source="/srv/x.state.json")
    assert "/srv/x.state.json" in str(caught.value)
    assert expected in str(caught.value)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("origin", "stolen", "origin must be one of created, imported, generated, adopted"),
        ("arn", None, "'arn' must be a string"),
        ("createdAt", "yesterday", "'createdAt' must be a number"),
        ("tags", ["a"], "'tags' must be an object"),
        ("tags", {"a": 1}, "tag values must be strings or null"),
        ("privateKey", 12, "'privateKey' must be a string or null"),
        ("privateKeySealed", "x", "'privateKeySealed' must be an object or null"),
    ],
)
def test_bad_entry_fields_name_the_entry_but_never_the_key(
    field: str, value: Any, expected: str
) -> None:
    data = sample_doc().to_json()
    data["keyPairs"][1][field] = value
    with pytest.raises(StateError) as caught:
        StateDocument.from_json(data, source="s.json")
    message = str(caught.value)
    assert "keyPairs[1] (eu-west-1/z)" in message
    assert expected in message
    assert "TOPSECRET" not in message


def test_duplicate_key_pairs_are_refused() -> None:
    data = sample_doc().to_json()
    data["keyPairs"].append(data["keyPairs"][0])
    with pytest.raises(StateError, match="appears twice"):
        StateDocument.from_json(data, source="s.json")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"version": 1, "lineage": ', "is not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b"\xff\xfe\x00garbage", "s.json"),
        (b"", "is not valid JSON"),
    ],
)
def test_unparseable_bytes_are_state_errors(raw: bytes, expected: str) -> None:
    with pytest.raises(StateError) as caught:
        loads(raw, source="s.json")
    assert "s.json" in str(caught.value)
    assert expected in str(caught.value)


def test_invalid_entry_via_public_helper_is_a_state_error() -> None:
    with pytest.raises(StateError, match="malformed key pair entry"):
        entry_from_json({"region": "us-east-1", "name": "x", "privateKey": SECRET})


def test_unknown_top_level_fields_are_ignored_and_missing_lists_are_empty() -> None:
    doc = StateDocument.from_json(
        {"version": 1, "lineage": "L", "serial": 3, "extra": {"a": 1}}, source="s.json"
    )
    assert (doc.lineage, doc.serial, doc.entries, doc.pending) == ("L", 3, {}, {})


def test_dumps_is_stable_and_ascii() -> None:
    doc = sample_doc()
    doc.entries[Address("us-east-1", "u")] = make_entry(
        Address("us-east-1", "u"), tags={"naïve": "ü"}
    )
    data = dumps(doc)
    assert data == dumps(loads(data, source="s.json"))
    data.decode("ascii")
    by_name = {e["name"]: e for e in json.loads(data)["keyPairs"]}
    assert by_name["u"]["tags"] == {"naïve": "ü"}


texts = st.text(min_size=1, max_size=12)
tag_maps = st.dictionaries(texts, st.none() | texts, max_size=5)


@given(
    name=texts,
    tags=tag_maps,
    created=st.floats(allow_nan=False, allow_infinity=False),
    key=st.none() | st.text(max_size=40),
)
def test_any_entry_survives_a_round_trip(
    name: str, tags: dict[str, str | None], created: float, key: str | None
) -> None:
    entry = StateEntry(
        address=Address("us-east-1", name),
        origin="generated",
        arn="arn",
        fingerprint="fp",
        created_at=created,
        tags=tags,
        private_key=key,
        imported_public_key="ssh-ed25519 AAAA",
    )
    assert entry_from_json(json.loads(json.dumps(entry_to_json(entry)))) == entry
