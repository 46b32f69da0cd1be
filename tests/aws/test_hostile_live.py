"""Live answers outside the Lightsail model: one clear error, exit 1, nothing recorded.

Accounts the tool runs against are shared: others create key pairs, tags and
instances there, and answers pass through proxies. So every item the
reconciler reads is decoded strictly (``reconciler/aws/wire.py``). Malformed
items are put into the emulator's data file directly (the API would refuse
them: a record's ``wire`` fields replace its own in answers), the emulator is
started on that file, and the real CLI runs over HTTP: ``plan`` and ``apply``
exit 1 with one line naming the operation, the region and the field, never an
internal error; the state and journal keep nothing of the bad item, and
``state list`` still works. A CreateKeyPair answer made malformed on its way
(a rewriting proxy) still made a key pair: its private key is kept, and the
malformed fields are not.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator import Emulator, EmulatorConfig
from tests.aws_proxy import recording_proxy
from tests.conftest import lightsail_client
from tests.custody.test_keystore import aws_env
from tests.emulator_helpers import ed25519_openssh
from tests.helpers import created_fingerprint, load_state, run_cli, state_entries, write_manifest

R = "us-east-1"
ACCOUNT = "123456789012"
STATE = "reconciler.state.json"


class DataFile:
    """An emulator data file that a test edits between runs of the emulator."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def running(self) -> Emulator:
        return Emulator(EmulatorConfig(data_path=str(self.path), key_pool=2))

    def set_wire(self, table: str, name: str, fields: dict[str, Any]) -> None:
        """Give the stored item ``name`` (of ``keyPairs`` or ``instances``) wire fields."""
        document = json.loads(self.path.read_text())
        items = document["accounts"][ACCOUNT][R][table]
        (item,) = [i for i in items if i["name"] == name]
        item["wire"] = fields
        self.path.write_text(json.dumps(document))


@pytest.fixture
def data(tmp_path_factory: pytest.TempPathFactory) -> DataFile:
    """Two key pairs (kp-a-good, kp-b-bad), made through the API and kept in a data file."""
    data = DataFile(tmp_path_factory.mktemp("emulator") / "lightsail.json")
    with data.running() as emu:
        client = lightsail_client(emu.url)
        for name in ("kp-a-good", "kp-b-bad"):
            client.import_key_pair(keyPairName=name, publicKeyBase64=ed25519_openssh())
            client.tag_resource(resourceName=name, tags=[{"key": "team", "value": "web"}])
    return data


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / ".git").mkdir()
    return tmp_path


def declare(project: Path, *names: str) -> None:
    """A manifest adopting ``names`` (adopting copies live fields into the state)."""
    body = "".join(f"- name: {n}\n  adopt: true\n  tags: {{team: web}}\n" for n in names)
    write_manifest(project / "manifests" / "m.yaml", R, body)


def cli(project: Path, emu: Emulator | str, *args: str) -> subprocess.CompletedProcess[str]:
    url = emu if isinstance(emu, str) else emu.url
    result = run_cli(*args, cwd=project, endpoint=url, timeout=120)
    said = result.stdout + result.stderr
    assert "internal error" not in said.lower(), said
    assert "Traceback" not in said
    return result


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The lines of what went wrong, without the hints (``-> ...``)."""
    return [
        line
        for line in result.stderr.splitlines()
        if line.strip() and not line.lstrip().startswith("->")
    ]


MALFORMED_KEY_PAIRS = {
    "missing-name": ({"name": None}, "keyPairs[1].name is missing"),
    "name-not-a-string": ({"name": 42}, "keyPairs[1].name is a number, not a name"),
    "name-with-a-slash": ({"name": "a/b"}, "keyPairs[1].name 'a/b' is not a Lightsail name"),
    "created-at-text": ({"createdAt": "yesterday"}, "keyPairs[1].createdAt is not a timestamp"),
    "created-at-object": ({"createdAt": {"at": 1}}, "keyPairs[1].createdAt is not a timestamp"),
    "created-at-boolean": ({"createdAt": True}, "keyPairs[1].createdAt is not a timestamp"),
    "tags-not-a-list": (
        {"tags": "team=web"},
        "keyPairs[1].tags is a string, not a list of tags",
    ),
    "tag-not-an-object": ({"tags": ["team"]}, "keyPairs[1].tags[0] is a string, not a tag"),
    "tag-value-not-a-string": (
        {"tags": [{"key": "team", "value": 7}]},
        "keyPairs[1].tags[0].value is a number, not a string",
    ),
    "tag-key-missing": ({"tags": [{"value": "web"}]}, "keyPairs[1].tags[0].key is missing"),
    "arn-not-a-string": ({"arn": ["arn"]}, "keyPairs[1].arn is a list, not a string"),
    "fingerprint-not-a-string": (
        {"fingerprint": 1.5},
        "keyPairs[1].fingerprint is a number, not a string",
    ),
}


@pytest.mark.parametrize(
    ("fields", "expected"), MALFORMED_KEY_PAIRS.values(), ids=MALFORMED_KEY_PAIRS.keys()
)
def test_a_malformed_key_pair_stops_plan_and_apply_and_reaches_no_state(
    data: DataFile, project: Path, fields: dict[str, Any], expected: str
) -> None:
    declare(project, "kp-a-good")
    with data.running() as emu:
        assert cli(project, emu, "apply", "manifests", "--auto-approve").returncode == 0
    recorded = (project / STATE).read_bytes()
    data.set_wire("keyPairs", "kp-b-bad", fields)
    declare(project, "kp-a-good", "kp-b-bad")
    line = f"Error: GetKeyPairs in {R}: {expected}"
    with data.running() as emu:
        planned = cli(project, emu, "plan", "manifests")
        assert planned.returncode == 1
        assert error_lines(planned) == [line]
        applied = cli(project, emu, "apply", "manifests", "--auto-approve")
        assert applied.returncode == 1
        assert error_lines(applied) == [line]
    assert (project / STATE).read_bytes() == recorded
    assert not (project / (STATE + ".journal")).exists()
    listed = cli(project, "http://127.0.0.1:9", "state", "list")
    assert listed.returncode == 0, listed.stderr
    assert f"{R}/kp-a-good" in listed.stdout and "kp-b-bad" not in listed.stdout


def test_a_malformed_key_pair_is_never_adopted_into_the_journal(
    data: DataFile, project: Path
) -> None:
    """Once, a createdAt that was no number was journaled by an adopt, and every later
    plan, apply and state list failed on it until the journal was removed by hand."""
    data.set_wire("keyPairs", "kp-b-bad", {"createdAt": {"when": "now"}})
    declare(project, "kp-b-bad")
    with data.running() as emu:
        applied = cli(project, emu, "apply", "manifests", "--auto-approve")
        assert applied.returncode == 1
        assert error_lines(applied) == [
            f"Error: GetKeyPairs in {R}: keyPairs[1].createdAt is not a timestamp"
        ]
    assert not (project / STATE).exists()
    assert not (project / (STATE + ".journal")).exists()
    assert cli(project, "http://127.0.0.1:9", "state", "list").returncode == 0


def test_a_malformed_instance_stops_a_plan_that_must_know_the_instances(
    data: DataFile, project: Path
) -> None:
    write_manifest(project / "manifests" / "m.yaml", R, "- name: kp-c-own\n")
    with data.running() as emu:
        assert cli(project, emu, "apply", "manifests", "--auto-approve").returncode == 0
        lightsail_client(emu.url).create_instances(
            instanceNames=["vm-1"],
            availabilityZone=f"{R}a",
            blueprintId="ubuntu_22_04",
            bundleId="nano_3_0",
            keyPairName="kp-c-own",
        )
    data.set_wire("instances", "vm-1", {"sshKeyName": 7})
    write_manifest(project / "manifests" / "m.yaml", R, "- name: kp-d-other\n")
    with data.running() as emu:
        planned = cli(project, emu, "plan", "manifests", "--prune")  # who uses kp-c-own?
    assert planned.returncode == 1
    assert error_lines(planned) == [
        f"Error: GetInstances in {R}: instances[0].sshKeyName is a number, not a name"
    ]


def test_a_malformed_get_key_pair_answer_after_an_import_names_get_key_pair(
    data: DataFile, project: Path
) -> None:
    write_manifest(project / "manifests" / "m.yaml", R, "- name: kp-c-made\n  generate: local\n")
    with data.running() as emu, recording_proxy(emu.url) as proxy:

        def bad_time(body: Any) -> Any:
            body["keyPair"]["createdAt"] = "soon"
            return body

        proxy.rewrite["GetKeyPair"] = bad_time
        applied = cli(project, proxy.url, "apply", "manifests", "--auto-approve")
    assert applied.returncode == 1
    said = applied.stdout + applied.stderr
    assert f"GetKeyPair in {R}: keyPair.createdAt is not a timestamp" in said


# -- answers to CreateKeyPair and ImportKeyPair -----------------------------------------------


def rewritten(change: Callable[[dict[str, Any]], None]) -> Callable[[Any], Any]:
    def rewrite(body: Any) -> Any:
        change(body)
        return body

    return rewrite


CREATE_ANSWERS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "created-at-text": (
        lambda b: b["keyPair"].update(createdAt="soon"),
        "keyPair.createdAt is not a timestamp",
    ),
    "tags-not-a-list": (
        lambda b: b["keyPair"].update(tags={"team": "web"}),
        "keyPair.tags is an object, not a list of tags",
    ),
    "name-not-a-string": (
        lambda b: b["keyPair"].update(name=["kp-c-new"]),
        "keyPair.name is a list, not a name",
    ),
    "key-pair-missing": (lambda b: b.pop("keyPair"), "keyPair is missing"),
    "key-pair-not-an-object": (
        lambda b: b.update(keyPair="kp-c-new"),
        "keyPair is a string, not an object",
    ),
}


@pytest.mark.parametrize(("change", "expected"), CREATE_ANSWERS.values(), ids=CREATE_ANSWERS.keys())
def test_a_malformed_create_answer_keeps_the_private_key_and_none_of_the_bad_fields(
    data: DataFile,
    project: Path,
    change: Callable[[dict[str, Any]], None],
    expected: str,
) -> None:
    write_manifest(project / "manifests" / "m.yaml", R, "- name: kp-c-new\n  tags: {team: ops}\n")
    with data.running() as emu, recording_proxy(emu.url) as proxy:
        proxy.rewrite["CreateKeyPair"] = rewritten(change)
        applied = cli(project, proxy.url, "apply", "manifests", "--auto-approve")
        live = lightsail_client(emu.url).get_key_pair(keyPairName="kp-c-new")["keyPair"]
    assert applied.returncode == 1
    said = applied.stdout + applied.stderr
    assert f"CreateKeyPair in {R}: {expected}" in said
    assert said.count("CreateKeyPair in") == 1
    assert "key material lost" not in said
    # The key pair was made: its key is in the state, which holds nothing malformed.
    entry = state_entries(project / STATE)[f"{R}/kp-c-new"]
    assert created_fingerprint(entry["privateKey"]) == live["fingerprint"]
    assert entry["fingerprint"] == live["fingerprint"] and entry["arn"] == live["arn"]
    assert isinstance(entry["createdAt"], float)
    assert entry["createdAt"] == round(live["createdAt"].timestamp(), 3)
    assert entry["tags"] == {"team": "ops"}
    assert not (project / (STATE + ".journal")).exists()
    listed = cli(project, "http://127.0.0.1:9", "state", "list")
    assert listed.returncode == 0 and f"{R}/kp-c-new" in listed.stdout
    with data.running() as emu:  # and the next plan sees it in sync
        planned = cli(project, emu, "plan", "manifests")
    assert planned.returncode == 0, planned.stderr
    assert "No changes" in planned.stdout


def test_a_create_answer_whose_private_key_is_malformed_is_a_lost_key(
    data: DataFile, project: Path
) -> None:
    write_manifest(project / "manifests" / "m.yaml", R, "- name: kp-c-new\n")
    with data.running() as emu, recording_proxy(emu.url) as proxy:
        proxy.rewrite["CreateKeyPair"] = rewritten(lambda b: b.update(privateKeyBase64=17))
        applied = cli(project, proxy.url, "apply", "manifests", "--auto-approve")
    assert applied.returncode == 1
    assert f"{R}/kp-c-new: key material lost" in applied.stdout + applied.stderr


def test_a_malformed_import_answer_is_reported_and_the_import_recorded_without_it(
    data: DataFile, project: Path
) -> None:
    write_manifest(project / "manifests" / "m.yaml", R, "- name: kp-c-made\n  generate: local\n")
    with data.running() as emu, recording_proxy(emu.url) as proxy:
        proxy.rewrite["ImportKeyPair"] = rewritten(lambda b: b["operation"].update(createdAt=[1]))
        applied = cli(project, proxy.url, "apply", "manifests", "--auto-approve")
    assert applied.returncode == 1
    said = applied.stdout + applied.stderr
    assert f"ImportKeyPair in {R}: operation.createdAt is not a timestamp" in said
    entry = state_entries(project / STATE)[f"{R}/kp-c-made"]
    assert entry["privateKey"] and entry.get("operation") is None
    document = load_state(project / STATE)
    assert json.dumps(document).count("[1]") == 0


# -- the key stores' metadata ---------------------------------------------------------------


STORE_ANSWERS: dict[str, tuple[str, str, Callable[[dict[str, Any]], None], str]] = {
    "ssm-version-text": (
        "ssm:/{prefix}/{{region}}/{{name}}",
        "DescribeParameters",
        lambda b: b["Parameters"][0].update(Version="7"),
        "Parameters[0].Version is not a version number",
    ),
    "ssm-name-missing": (
        "ssm:/{prefix}/{{region}}/{{name}}",
        "DescribeParameters",
        lambda b: b["Parameters"][0].pop("Name"),
        "Parameters[0].Name is not a parameter name",
    ),
    "ssm-parameters-not-a-list": (
        "ssm:/{prefix}/{{region}}/{{name}}",
        "DescribeParameters",
        lambda b: b.update(Parameters={"Name": "x"}),
        "Parameters is an object, not a list",
    ),
    "secrets-tags-not-a-list": (
        "secretsmanager:{prefix}/{{region}}/{{name}}",
        "ListSecrets",
        lambda b: b["SecretList"][0].update(Tags={"reconciler:fingerprint": "x"}),
        "SecretList[0].Tags is an object, not a list",
    ),
    "secrets-tag-value-not-a-string": (
        "secretsmanager:{prefix}/{{region}}/{{name}}",
        "ListSecrets",
        lambda b: b["SecretList"][0]["Tags"][0].update(Value=3),
        "SecretList[0].Tags[0].Value is a number, not a string",
    ),
    "secrets-deleted-date-text": (
        "secretsmanager:{prefix}/{{region}}/{{name}}",
        "ListSecrets",
        lambda b: b["SecretList"][0].update(DeletedDate="someday"),
        "SecretList[0].DeletedDate is not a timestamp",
    ),
    "secrets-arn-not-an-arn": (
        "secretsmanager:{prefix}/{{region}}/{{name}}",
        "ListSecrets",
        lambda b: b["SecretList"][0].update(ARN=12),
        "SecretList[0].ARN is not an ARN",
    ),
}


@pytest.mark.parametrize(
    ("store", "operation", "change", "expected"),
    STORE_ANSWERS.values(),
    ids=STORE_ANSWERS.keys(),
)
def test_malformed_key_store_metadata_is_one_line_naming_the_field(
    project: Path,
    emulator: Emulator,
    moto_url: str,
    store: str,
    operation: str,
    change: Callable[[dict[str, Any]], None],
    expected: str,
) -> None:
    spec = store.format(prefix=f"hostile-{abs(hash(expected)) % 10**8}")
    write_manifest(project / "manifests" / "m.yaml", R, "- name: web\n")
    applied = run_cli(
        "apply",
        "manifests",
        "--auto-approve",
        f"--key-store={spec}",
        cwd=project,
        endpoint=emulator.url,
        env=aws_env(moto_url),
    )
    assert applied.returncode == 0, applied.stderr
    recorded = (project / STATE).read_bytes()
    with recording_proxy(moto_url) as proxy:
        proxy.rewrite[operation] = rewritten(change)
        planned = run_cli(
            "plan", "manifests", cwd=project, endpoint=emulator.url, env=aws_env(proxy.url)
        )
        assert proxy.calls[operation] >= 1
    said = planned.stdout + planned.stderr
    assert planned.returncode == 1, said
    assert "internal error" not in said.lower() and "Traceback" not in said
    assert error_lines(planned) == [f"Error: {operation} in {R}: {expected}"]
    assert (project / STATE).read_bytes() == recorded


PAGES: dict[str, tuple[Callable[[Any], Any], str]] = {
    "not-an-object": (lambda body: [body], "the answer is not a JSON object"),
    "no-key-pairs": (lambda body: {}, "keyPairs is missing"),
    "key-pairs-not-a-list": (
        lambda body: {"keyPairs": {"a": 1}},
        "keyPairs is an object, not a list",
    ),
    "token-not-a-string": (
        lambda body: {**body, "nextPageToken": 5},
        "nextPageToken is a number, not a string",
    ),
}


@pytest.mark.parametrize(("rewrite", "expected"), PAGES.values(), ids=PAGES.keys())
def test_a_malformed_page_is_never_read_as_an_empty_region(
    data: DataFile, project: Path, rewrite: Callable[[Any], Any], expected: str
) -> None:
    """A page without its key pairs must not read as "no key pairs here": a plan would
    then create every one again, or forget what the state holds."""
    declare(project, "kp-a-good")
    with data.running() as emu, recording_proxy(emu.url) as proxy:
        proxy.rewrite["GetKeyPairs"] = rewrite
        planned = cli(project, proxy.url, "plan", "manifests")
    assert planned.returncode == 1
    assert error_lines(planned) == [f"Error: GetKeyPairs in {R}: {expected}"]
