"""Answers cut short: the status and headers arrive, then part of the body, then nothing.

botocore, left alone, parses a JSON body cut short as a success carrying
nothing. A CreateKeyPair answered that way has made a key pair whose private
key never arrived: its outcome is unknown (checked with GetKeyPair, the key
reported lost by name), never an empty success and never an internal error. A
read cut short is retried like a dropped connection.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.aws.lightsail import AmbiguousOutcome, ClientOptions, Lightsail
from reconciler.emulator import Emulator
from reconciler.model import Address
from reconciler.state import LocalBackend
from tests.emulator_helpers import live_fingerprints
from tests.fault_proxy import FaultProxy, Faults
from tests.helpers import created_fingerprint, run_cli, write_manifest

R = "us-east-1"


def test_a_create_whose_answer_is_cut_short_has_an_unknown_outcome(emulator: Emulator) -> None:
    proxy = FaultProxy(emulator.url, Faults(cut=1.0), seed=1)
    with proxy.running():
        lightsail = Lightsail(ClientOptions(endpoint_url=proxy.url))
        with pytest.raises(AmbiguousOutcome) as caught:
            lightsail.create_key_pair(Address(R, "kp-cut"), {})
    assert "ended after" in caught.value.cause
    assert proxy.counts["cut"] == 1  # sent once: a create is never repeated blind
    assert list(live_fingerprints(emulator.url)) == ["kp-cut"]  # it took effect


def test_reads_cut_short_are_retried_until_whole(emulator: Emulator) -> None:
    direct = Lightsail(ClientOptions(endpoint_url=emulator.url))
    made = direct.create_key_pair(Address(R, "kp-read"), {}).key_pair
    assert made is not None
    proxy = FaultProxy(emulator.url, Faults(cut=0.4), seed=7)
    with proxy.running():
        lightsail = Lightsail(ClientOptions(endpoint_url=proxy.url))
        for _ in range(12):
            live = lightsail.get_key_pair(Address(R, "kp-read"))
            assert live is not None and live.fingerprint == made.fingerprint
        assert list(lightsail.list_key_pairs(R)) != []
    assert proxy.counts["cut"] >= 3  # the seed cuts some; none reached the caller


def test_an_apply_through_cut_answers_reports_lost_keys_by_name(
    emulator: Emulator, tmp_path: Path
) -> None:
    names = [f"kp-{i:02d}" for i in range(12)]
    write_manifest(tmp_path / "manifests" / "m.yaml", R, "\n".join(f"- name: {n}" for n in names))
    proxy = FaultProxy(emulator.url, Faults(cut=0.25), seed=3)
    with proxy.running():
        first = run_cli("apply", "manifests", "--auto-approve", cwd=tmp_path, endpoint=proxy.url)
    assert proxy.counts["cut"] > 0
    assert "internal error" not in first.stderr, first.stderr
    assert first.returncode == 1, first.stderr
    # The next run, on a whole connection, settles what the cut ones left unknown.
    second = run_cli("apply", "manifests", "--auto-approve", cwd=tmp_path, endpoint=emulator.url)
    assert second.returncode in (0, 1), second.stderr
    live = live_fingerprints(emulator.url)
    assert sorted(live) == names  # each made once
    entries = {
        a.name: e
        for a, e in LocalBackend(tmp_path / "reconciler.state.json").read().entries.items()
    }
    said = first.stdout + first.stderr + second.stdout + second.stderr
    lost = [n for n in names if n not in entries]
    assert lost, "the seed cuts some creates' answers"
    for name in lost:
        assert f"{R}/{name}: key material lost" in said
    for name, entry in entries.items():
        assert entry.private_key is not None
        assert created_fingerprint(entry.private_key) == live[name]
