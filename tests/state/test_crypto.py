"""Sealing private keys at rest with age recipients: format, binding, identities, helpers.

KMS over real HTTP (moto) is in test_crypto_kms.py; everything here is local.
"""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyrage
import pytest

from reconciler.errors import EncryptionError, UsageError
from reconciler.keys import generate_rsa
from reconciler.model import Address, Generation, JournalOp, OpenIntent, StateEntry
from reconciler.state import crypto
from reconciler.state.crypto import EncryptionSpec, Sealer, Unsealer
from reconciler.state.document import dumps, loads
from tests.helpers import PEM_BODY
from tests.state.test_state_document import make_entry

WEB = Address("us-east-1", "web")
DB = Address("eu-west-1", "db")
PEM = generate_rsa().private_pem


def no_kms(region: str | None) -> Any:
    raise AssertionError(f"KMS asked for a client ({region}) when only age was configured")


class AgeKey:
    """A real age X25519 key pair, and an identity file holding its secret half."""

    def __init__(self, tmp_path: Path, name: str = "id") -> None:
        identity = pyrage.x25519.Identity.generate()
        self.secret = str(identity)
        self.recipient = str(identity.to_public())
        self.file = tmp_path / f"{name}.txt"
        self.file.write_text(
            f"# created: 2024-01-01T00:00:00Z\n# public key: {self.recipient}\n\n{self.secret}\n"
        )
        self.file.chmod(0o600)

    @property
    def spec(self) -> EncryptionSpec:
        return EncryptionSpec("age", self.recipient)


def age_sealer(*keys: AgeKey) -> Sealer:
    return Sealer([k.spec for k in keys], kms_client_factory=no_kms)


def assert_no_secret(text: str, *secrets: str) -> None:
    assert not PEM_BODY.search(text)
    body = "".join(PEM.splitlines()[1:-1])
    for i in range(0, len(body) - 24, 24):
        assert body[i : i + 24] not in text
    for secret in secrets:
        assert secret not in text


@pytest.fixture(autouse=True)
def _no_identity_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(crypto.AGE_IDENTITY_ENV, raising=False)
    monkeypatch.delenv(crypto.AGE_IDENTITY_FILE_ENV, raising=False)


# -- specs --------------------------------------------------------------------


def test_specs_parse_kms_forms_and_age_recipients_once_each(tmp_path: Path) -> None:
    age = AgeKey(tmp_path)
    specs = crypto.parse_specs(
        [
            "kms:1234abcd-12ab-34cd-56ef-1234567890ab",
            "kms:alias/state",
            "kms:arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            f"age:{age.recipient}",
            f"age: {age.recipient}",
        ]
    )
    assert [str(s) for s in specs] == [
        "kms:1234abcd-12ab-34cd-56ef-1234567890ab",
        "kms:alias/state",
        "kms:arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        f"age:{age.recipient}",
    ]
    assert crypto.kms_region(specs[2].target) == "eu-west-1"
    assert crypto.kms_region("alias/state") is None
    assert crypto.specs_from_json([s.to_json() for s in specs]) == specs


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alias/state", "is not an encryption spec"),
        ("gpg:ABCDEF", "is not an encryption spec"),
        ("kms:", "is not an encryption spec"),
        ("kms:key with spaces", "not a KMS key ID"),
        ("kms:arn:aws:s3:::bucket", "not a KMS key ID"),
        ("age:age1notarecipient", "not an age X25519 recipient"),
    ],
)
def test_bad_specs_are_usage_errors_with_a_hint(text: str, expected: str) -> None:
    with pytest.raises(UsageError) as caught:
        crypto.parse_specs([text])
    assert expected in caught.value.message
    assert caught.value.hint is not None and "kms:KEY_ID" in caught.value.hint


def test_a_secret_key_given_as_recipient_is_refused_without_echoing_it(tmp_path: Path) -> None:
    age = AgeKey(tmp_path)
    for text in (f"age:{age.secret}", age.secret):
        with pytest.raises(UsageError) as caught:
            crypto.parse_specs([text])
        assert age.secret not in caught.value.message
        assert age.secret not in (caught.value.hint or "")


# -- sealing and opening ------------------------------------------------------


def test_age_round_trip(tmp_path: Path) -> None:
    age = AgeKey(tmp_path)
    sealed = age_sealer(age).seal(WEB, PEM)
    assert Unsealer(age_identities=[str(age.file)], kms_client_factory=None).unseal(
        sealed, WEB
    ) == (PEM)
    assert crypto.unseal(sealed, WEB, age_identities=[str(age.file)], kms_client_factory=None) == (
        PEM
    )


def test_sealed_form_is_json_with_no_key_material_in_clear(tmp_path: Path) -> None:
    age = AgeKey(tmp_path)
    sealer = age_sealer(age)
    sealed = sealer.seal(WEB, PEM)
    text = json.dumps(sealed)
    assert_no_secret(text, age.secret)
    assert_no_secret(repr(sealer), age.secret)
    assert sealed["v"] == 1 and sealed["alg"] == "AES-256-GCM" and sealed["aad"] == "us-east-1/web"
    assert len(base64.b64decode(sealed["nonce"])) == 12
    assert sealed["recipients"] == [
        {
            "type": "age",
            "recipient": age.recipient,
            "wrappedKey": sealed["recipients"][0]["wrappedKey"],
        }
    ]
    # A fresh nonce every time, under the same run's data key.
    again = sealer.seal(WEB, PEM)
    assert again["nonce"] != sealed["nonce"] and again["ciphertext"] != sealed["ciphertext"]
    assert again["recipients"] == sealed["recipients"]


def test_two_age_recipients_either_identity_opens_it(tmp_path: Path) -> None:
    alice, bob = AgeKey(tmp_path, "alice"), AgeKey(tmp_path, "bob")
    sealed = age_sealer(alice, bob).seal(WEB, PEM)
    for key in (alice, bob):
        unsealer = Unsealer(age_identities=[str(key.file)], kms_client_factory=None)
        assert unsealer.unseal(sealed, WEB) == PEM


def test_a_sealed_key_moved_to_another_entry_does_not_open(tmp_path: Path) -> None:
    age = AgeKey(tmp_path)
    sealed = age_sealer(age).seal(WEB, PEM)
    unsealer = Unsealer(age_identities=[str(age.file)], kms_client_factory=None)
    with pytest.raises(EncryptionError) as caught:
        unsealer.unseal(sealed, DB)
    assert "eu-west-1/db was sealed for us-east-1/web" in caught.value.message
    # Rewriting the informational 'aad' does not help: the address itself is bound.
    with pytest.raises(EncryptionError, match="fails its integrity check"):
        unsealer.unseal({**sealed, "aad": str(DB)}, DB)


@pytest.mark.parametrize("field", ["ciphertext", "nonce"])
def test_tampering_is_detected(tmp_path: Path, field: str) -> None:
    age = AgeKey(tmp_path)
    sealed = age_sealer(age).seal(WEB, PEM)
    raw = bytearray(base64.b64decode(sealed[field]))
    raw[len(raw) // 2] ^= 0x01
    tampered = {**sealed, field: base64.b64encode(bytes(raw)).decode()}
    with pytest.raises(EncryptionError) as caught:
        Unsealer(age_identities=[str(age.file)], kms_client_factory=None).unseal(tampered, WEB)
    assert "fails its integrity check" in caught.value.message
    assert caught.value.hint is not None and ".backup" in caught.value.hint


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"v": 2}, "sealed in format 2"),
        ({"alg": "ROT13"}, "is malformed: expected 'v' 1"),
        ({"nonce": "not base64!"}, "'nonce' must be base64 of 12 bytes"),
        ({"ciphertext": None}, "'ciphertext'"),
        ({"recipients": []}, "'recipients' must be a non-empty list"),
        ({"recipients": [{"type": "pgp", "wrappedKey": "AA=="}]}, "recipients[0]"),
    ],
)
def test_malformed_sealed_keys_are_named_errors(
    tmp_path: Path, change: dict[str, Any], expected: str
) -> None:
    age = AgeKey(tmp_path)
    sealed = {**age_sealer(age).seal(WEB, PEM), **change}
    with pytest.raises(EncryptionError) as caught:
        Unsealer(age_identities=[str(age.file)], kms_client_factory=None).unseal(sealed, WEB)
    assert expected in caught.value.message
    assert "us-east-1/web" in caught.value.message


def test_without_an_identity_the_error_says_what_was_tried_and_how_to_fix_it(
    tmp_path: Path,
) -> None:
    age, other = AgeKey(tmp_path, "mine"), AgeKey(tmp_path, "other")
    sealed = age_sealer(age).seal(WEB, PEM)
    for unsealer, reason in (
        (Unsealer(kms_client_factory=None), "no age identity given"),
        (
            Unsealer(age_identities=[str(other.file)], kms_client_factory=None),
            "none of the 1 age identities given matches it",
        ),
    ):
        with pytest.raises(EncryptionError) as caught:
            unsealer.unseal(sealed, WEB)
        err = caught.value
        assert f"cannot decrypt the private key of {WEB}" in err.message
        assert f"age:{age.recipient} ({reason})" in err.message
        assert err.hint is not None and "--age-identity FILE" in err.hint
        assert_no_secret(f"{err.message} {err.hint} {err!r}", age.secret, other.secret)


def test_identities_come_from_the_environment_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inline, in_file = AgeKey(tmp_path, "inline"), AgeKey(tmp_path, "file")
    monkeypatch.setenv(crypto.AGE_IDENTITY_ENV, inline.secret)
    monkeypatch.setenv(crypto.AGE_IDENTITY_FILE_ENV, str(in_file.file))
    unsealer = Unsealer(kms_client_factory=None)
    assert unsealer.unseal(age_sealer(inline).seal(WEB, PEM), WEB) == PEM
    assert unsealer.unseal(age_sealer(in_file).seal(DB, PEM), DB) == PEM


def test_a_broken_identity_file_is_named_but_never_quoted(tmp_path: Path) -> None:
    age = AgeKey(tmp_path)
    sealed = age_sealer(age).seal(WEB, PEM)
    damaged = tmp_path / "damaged.txt"
    damaged.write_text("# mine\n" + age.secret[:-3] + "QQQ\n")
    not_age = tmp_path / "not-age.txt"
    not_age.write_text(PEM)
    for path, expected in (
        (damaged, "line 2 is a damaged age identity"),
        (not_age, "line 1 is not an age X25519 identity"),
        (tmp_path / "missing.txt", "cannot read age identity file"),
    ):
        with pytest.raises(EncryptionError) as caught:
            Unsealer(age_identities=[str(path)], kms_client_factory=None).unseal(sealed, WEB)
        assert expected in caught.value.message
        assert_no_secret(caught.value.message, age.secret, age.secret[:-3])


def test_one_sealer_serves_many_worker_threads(tmp_path: Path) -> None:
    age = AgeKey(tmp_path)
    sealer = age_sealer(age)
    addresses = [Address("us-east-1", f"k{i}") for i in range(400)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        sealed = list(pool.map(lambda a: sealer.seal(a, PEM), addresses))
    assert len({box["nonce"] for box in sealed}) == len(addresses)
    unsealer = Unsealer(age_identities=[str(age.file)], kms_client_factory=None)
    assert all(unsealer.unseal(box, a) == PEM for a, box in zip(addresses, sealed, strict=True))


def test_age_only_sealing_never_asks_for_kms(tmp_path: Path) -> None:
    # no_kms raises if called: neither making the sealer nor sealing may need KMS.
    sealer = age_sealer(AgeKey(tmp_path))
    for i in range(50):
        sealer.seal(Address("us-east-1", f"k{i}"), PEM)


# -- entries, documents, the warning -------------------------------------------


def test_seal_entries_seals_clear_keys_and_leaves_the_rest(tmp_path: Path) -> None:
    age = AgeKey(tmp_path)
    sealer = age_sealer(age)
    adopted = make_entry(DB, private_key=None)
    entries = {WEB: make_entry(WEB, private_key=PEM), DB: adopted}
    changed = crypto.seal_entries(entries, sealer)
    assert list(changed) == [WEB]
    entry = changed[WEB]
    assert entry.private_key is None and entry.private_key_sealed is not None
    assert replace(entry, private_key_sealed=None) == replace(entries[WEB], private_key=None)
    unsealer = Unsealer(age_identities=[str(age.file)], kms_client_factory=None)
    assert unsealer.unseal(entry.private_key_sealed, WEB) == PEM
    # Already sealed for these recipients: nothing to do, with or without an unsealer.
    assert crypto.seal_entries({WEB: entry}, sealer) == {}
    assert crypto.seal_entries({WEB: entry}, sealer, unsealer=unsealer) == {}
    # Back to clear.
    assert crypto.unseal_entries({WEB: entry, DB: adopted}, unsealer) == {WEB: entries[WEB]}


def test_adding_a_recipient_reseals_what_is_already_sealed(tmp_path: Path) -> None:
    alice, bob = AgeKey(tmp_path, "alice"), AgeKey(tmp_path, "bob")
    entry = crypto.seal_entries({WEB: make_entry(WEB, private_key=PEM)}, age_sealer(alice))[WEB]
    both = age_sealer(alice, bob)
    assert crypto.seal_entries({WEB: entry}, both) == {}  # cannot open it without an unsealer
    alice_opens = Unsealer(age_identities=[str(alice.file)], kms_client_factory=None)
    resealed = crypto.seal_entries({WEB: entry}, both, unsealer=alice_opens)[WEB]
    assert resealed.private_key_sealed is not None
    assert crypto.sealed_recipient_ids(resealed.private_key_sealed) == both.recipient_ids
    bob_opens = Unsealer(age_identities=[str(bob.file)], kms_client_factory=None)
    assert bob_opens.unseal(resealed.private_key_sealed, WEB) == PEM


def test_a_state_document_with_sealed_keys_round_trips_and_stays_readable(
    tmp_path: Path,
) -> None:
    from reconciler.state import StateDocument

    age = AgeKey(tmp_path)
    sealer = age_sealer(age)
    doc = StateDocument.new()
    doc.entries = {WEB: make_entry(WEB, private_key=PEM), DB: make_entry(DB, private_key=PEM)}
    doc.entries.update(crypto.seal_entries(doc.entries, sealer))
    doc.encryption = [s.to_json() for s in sealer.specs]
    data = dumps(doc)
    assert_no_secret(data.decode(), age.secret)
    again = loads(data, source="s.json")
    assert again == doc
    assert crypto.specs_from_json(again.encryption) == list(sealer.specs)
    parsed = json.loads(data)
    assert parsed["encryption"] == [{"type": "age", "recipient": age.recipient}]
    first = parsed["keyPairs"][0]
    assert first["name"] == "db" and first["fingerprint"] == "aa:bb"
    assert first["tags"] == {"env": "prod", "owner": None}
    assert "privateKey" not in first and first["privateKeySealed"]["aad"] == "eu-west-1/db"
    unsealer = Unsealer(age_identities=[str(age.file)], kms_client_factory=None)
    for address, entry in again.entries.items():
        assert entry.private_key_sealed is not None
        assert unsealer.unseal(entry.private_key_sealed, address) == PEM
    # A document without the setting is written exactly as before.
    assert "encryption" not in StateDocument.new().to_json()


def test_a_malformed_encryption_setting_is_a_state_error() -> None:
    from reconciler.errors import StateError
    from reconciler.state import StateDocument

    data = StateDocument.new().to_json()
    for bad, expected in (({}, "'encryption' must be a list"), ([{"type": 1}], "encryption[0]")):
        with pytest.raises(StateError, match=expected.replace("[", r"\[")):
            StateDocument.from_json({**data, "encryption": bad}, source="s.json")


def test_a_stored_setting_naming_a_bad_recipient_is_an_encryption_error() -> None:
    for setting in ({"type": "gpg", "keyId": "x"}, {"type": "age", "recipient": "age1nope"}):
        with pytest.raises(EncryptionError, match="the state's encryption setting is"):
            crypto.specs_from_json([setting])


def test_unencrypted_keys_are_counted_and_warned_about_in_one_line(tmp_path: Path) -> None:
    sealed = crypto.seal_entries(
        {WEB: make_entry(WEB, private_key=PEM)}, age_sealer(AgeKey(tmp_path))
    )
    items: list[StateEntry | OpenIntent] = [
        make_entry(DB, private_key=PEM),
        make_entry(Address("us-west-2", "adopted"), private_key=None),
        sealed[WEB],
        OpenIntent(Address("us-east-1", "gen"), "i-1", 1.0, JournalOp.GENERATE, PEM, "ssh-rsa AA"),
    ]
    assert crypto.unencrypted_count(items) == 2
    # Earlier generations' keys count too: a rotated key pair holds two in clear.
    rotated = replace(
        make_entry(DB, private_key=PEM),
        generations=(
            Generation(make_entry(DB, private_key=PEM), 1.0),
            Generation(sealed[WEB], 2.0),
        ),
    )
    assert crypto.unencrypted_count([rotated]) == 2
    assert crypto.unencrypted_warning(0, "s.json") is None
    one = crypto.unencrypted_warning(1, "s.json")
    assert one is not None and "holds 1 private key in clear; encrypt it with" in one
    warning = crypto.unencrypted_warning(2, "prod.state.json")
    assert warning is not None and "\n" not in warning
    assert warning.startswith("Warning: state prod.state.json holds 2 private keys in clear")
    assert "--encrypt-with kms:KEY_ID" in warning and "age:RECIPIENT" in warning
