"""Policy rules from reconciler.yaml: each rule passing and failing, severities, exceptions.

Offline rules run through the real `validate` command in-process (the same
entry point as the console script) in a temporary repository.
"""

from __future__ import annotations

import datetime
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from reconciler import keys
from reconciler.cli import app as cli
from reconciler.errors import UsageError
from reconciler.manifests.project import read_project
from reconciler.policy.rules import RULES

HEAD = "apiVersion: reconciler.lightsail/v1\nkind: KeyPairSet\nregion: {region}\nkeyPairs:\n"
ED25519 = (
    Path(__file__).parents[1] / "data" / "manifests" / "good" / "keys" / "bastion.pub"
).read_text()
RSA_2048 = (
    Path(__file__).parents[1] / "data" / "manifests" / "good" / "keys" / "ci.pub"
).read_text()


@pytest.fixture(scope="module")
def rsa_3072() -> str:
    return keys.generate_rsa(3072).public_openssh


def repo(tmp: Path, policy: str, manifest: str, region: str = "us-east-1") -> Path:
    (tmp / ".git").mkdir(exist_ok=True)
    (tmp / "reconciler.yaml").write_text(textwrap.dedent(policy), encoding="utf-8")
    body = textwrap.indent(textwrap.dedent(manifest).strip("\n"), "  ")
    (tmp / "m.yaml").write_text(HEAD.format(region=region) + body + "\n", encoding="utf-8")
    return tmp


def validate(
    tmp: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    monkeypatch.chdir(tmp)
    code = cli.main(["validate", *args, "m.yaml"])
    out = capsys.readouterr()
    return code, out.out, out.err


def policy(rule: str, severity: str = "error") -> str:
    return f"policy:\n  rules:\n    - id: {rule}\n      severity: {severity}\n"


CASES: list[tuple[str, str, str, str, str]] = [
    # rule options, a passing manifest, a failing manifest, what the failure says
    (
        "required-tags",
        '      keys: {owner: null, env: "^(prod|staging|dev)$"}\n',
        "- name: web\n  tags: {owner: ana, env: prod}",
        "- name: web\n  tags: {owner: ana, env: qa}",
        "tag 'env' is 'qa', which does not match '^(prod|staging|dev)$'",
    ),
    (
        "required-tags",
        "      keys: {owner: null}\n",
        "- name: web\n  tags: {owner: null}",
        "- name: web\n  tags: {env: prod}",
        "key pair us-east-1/web has no tag 'owner'",
    ),
    (
        "name-pattern",
        '      pattern: "^[a-z][a-z0-9-]*$"\n',
        "- name: web-01",
        "- name: Web_01",
        "key pair name 'Web_01' does not match '^[a-z][a-z0-9-]*$'",
    ),
    (
        "key-sources",
        "      allowed: [import, generate]\n",
        "- name: web\n  generate: local",
        "- name: web",
        "key pair us-east-1/web is a create; allowed key sources: import, generate",
    ),
    (
        "duplicate-public-key",
        "",
        f"- name: web\n  publicKey: {json.dumps(ED25519.strip())}",
        f"- name: web\n  publicKey: {json.dumps(ED25519.strip())}\n"
        f"- name: api\n  publicKey: {json.dumps(ED25519.strip())}",
        "key pair us-east-1/web imports the same public key as us-east-1/api (m.yaml:7:5)",
    ),
]


@pytest.mark.parametrize(("rule", "options", "good", "bad", "message"), CASES)
def test_each_offline_rule_passes_and_fails(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    rule: str,
    options: str,
    good: str,
    bad: str,
    message: str,
) -> None:
    repo(tmp_path, policy(rule) + options, good)
    code, out, err = validate(tmp_path, monkeypatch, capsys)
    assert (code, out) == (0, ""), err
    repo(tmp_path, policy(rule) + options, bad)
    code, out, err = validate(tmp_path, monkeypatch, capsys)
    assert code == 1
    (line,) = out.splitlines()
    assert line.startswith("m.yaml:") and line.endswith(f"{message} [{rule}]"), line
    assert "Error: 1 problem found" in err


def test_min_rsa_bits_refuses_a_smaller_imported_key_and_ignores_ed25519(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    rsa_3072: str,
) -> None:
    manifest = (
        f"- name: small\n  publicKey: {json.dumps(RSA_2048.strip())}\n"
        f"- name: big\n  publicKey: {json.dumps(rsa_3072)}\n"
        f"- name: curve\n  publicKey: {json.dumps(ED25519.strip())}\n"
        "- name: made-here\n  generate: local"
    )
    repo(tmp_path, policy("min-rsa-bits") + "      bits: 3072\n", manifest)
    code, out, _ = validate(tmp_path, monkeypatch, capsys)
    assert code == 1
    assert out == (
        "m.yaml:5:5: key pair us-east-1/small imports a 2048-bit RSA key; at least 3072 "
        "[min-rsa-bits]\n"
    )


def test_allowed_regions_pass_and_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = policy("allowed-regions") + "      regions: [us-east-1, eu-west-1]\n"
    repo(tmp_path, rules, "- name: web", region="eu-west-1")
    assert validate(tmp_path, monkeypatch, capsys)[:2] == (0, "")
    repo(tmp_path, rules, "- name: web", region="ap-south-1")
    code, out, _ = validate(tmp_path, monkeypatch, capsys)
    assert code == 1
    assert "us-east-1, eu-west-1 [allowed-regions]" in out and "is in ap-south-1" in out


def test_warnings_are_printed_and_do_not_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo(tmp_path, policy("name-pattern", "warning") + '      pattern: "^[a-z]+$"\n', "- name: w_1")
    code, out, err = validate(tmp_path, monkeypatch, capsys)
    assert code == 0
    assert (
        out == "m.yaml:5:5: warning: key pair name 'w_1' does not match '^[a-z]+$' [name-pattern]\n"
    )
    assert "Valid: 1 key pair(s) in 1 file(s); 1 warning." in err
    code, out, _ = validate(tmp_path, monkeypatch, capsys, "--format", "github")
    assert code == 0 and out.startswith("::warning file=m.yaml,line=5,col=5::")


def exception(rule: str, expires: str | None) -> str:
    until = f", expires: {expires}" if expires else ""
    return f"  policyExceptions:\n    - {{rule: {rule}, reason: legacy host{until}}}\n"


@pytest.mark.parametrize(
    ("expires", "code", "expected"),
    [
        (None, 0, ""),  # no end: the rule is silenced for this key pair
        ("2999-01-01", 0, ""),  # in force
        (datetime.date.today().isoformat(), 0, ""),  # the last day still holds
        (
            "2020-01-31",
            1,
            "m.yaml:5:5: key pair name 'Web' does not match '^[a-z]+$' [name-pattern]\n"
            "m.yaml:7:9: key pair us-east-1/Web: the exception from name-pattern expired on "
            "2020-01-31 (legacy host) [policy-exception]\n",
        ),
    ],
)
def test_policy_exceptions_with_and_without_expiry(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    expires: str | None,
    code: int,
    expected: str,
) -> None:
    manifest = "- name: Web\n" + exception("name-pattern", expires)
    repo(tmp_path, policy("name-pattern") + '      pattern: "^[a-z]+$"\n', manifest)
    result, out, err = validate(tmp_path, monkeypatch, capsys)
    assert (result, out) == (code, expected), err


def test_an_exception_naming_no_rule_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo(tmp_path, "policy: {rules: []}\n", "- name: web\n" + exception("name-patern", None))
    code, out, _ = validate(tmp_path, monkeypatch, capsys)
    assert code == 1
    assert out.startswith(
        "m.yaml:7:9: key pair us-east-1/web: the exception names no policy rule 'name-patern'"
    )


def test_an_exception_expiry_that_is_not_a_date_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo(tmp_path, "policy: {rules: []}\n", "- name: web\n" + exception("x", "soon"))
    code, out, _ = validate(tmp_path, monkeypatch, capsys)
    assert code == 1
    assert "m.yaml:7:49: expires must be a date, YYYY-MM-DD, not 'soon' [policy-exception]" in out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("policy: {rules: [{id: nope}]}\n", "1:23: unknown policy rule 'nope'"),
        ("policy: {rules: [{id: name-pattern}]}\n", "rule name-pattern needs the option 'pattern'"),
        ("policy: {rules: [{id: name-pattern, pattern: '('}]}\n", "not a valid regular expression"),
        ("policy: {rules: [{id: min-rsa-bits, bits: -1}]}\n", "'bits' must be a positive"),
        ("policy: {rules: [{id: key-sources, allowed: [steal]}]}\n", "'steal' is not one of"),
        ("policy: {rules: [{id: allowed-regions, regions: [mars-1]}]}\n", "'mars-1' is not one"),
        ("policy: {rules: [{id: max-key-age, days: 9, hours: 1}]}\n", "has no option 'hours'"),
        ("policy: {rules: [{id: duplicate-public-key, severity: fatal}]}\n", "error or warning"),
        (
            "policy: {rules: [{id: name-pattern, pattern: a}, {id: name-pattern, pattern: b}]}\n",
            "configured twice",
        ),
        ("policy: [required-tags]\n", "'policy' must be a mapping"),
    ],
)
def test_bad_policy_configuration_is_a_usage_error_with_its_place(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "reconciler.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UsageError) as caught:
        read_project(path, check_backend=False)
    assert expected in str(caught.value)
    assert "[policy]" in str(caught.value)


def test_policy_list_prints_each_rule_with_its_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project = """\
        backend: {type: local, path: state.json}
        policy:
          rules:
            - id: required-tags
              keys: {owner: null, env: "^(prod|dev)$"}
            - id: max-key-age
              severity: warning
              days: 180
    """
    repo(tmp_path, project, "- name: web")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")  # found up to the repository root
    assert cli.main(["policy", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    source = f"{tmp_path}/reconciler.yaml"
    assert [" ".join(line.split()) for line in lines] == [
        f"required-tags error {source}:4:7 validate owner (any value), env (^(prod|dev)$)",
        f"max-key-age warning {source}:6:7 plan, drift 180 days",
    ]


def test_the_rule_registry_holds_every_documented_rule() -> None:
    documented = {
        "required-tags",
        "name-pattern",
        "allowed-regions",
        "key-sources",
        "min-rsa-bits",
        "duplicate-public-key",
        "max-key-age",
    }
    assert set(RULES) == documented
    for rule in RULES.values():
        assert rule.summary and rule.help


def test_validate_json_findings_follow_the_finding_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import jsonschema

    schema = json.loads((Path(__file__).parents[2] / "schemas" / "finding.schema.json").read_text())
    repo(tmp_path, policy("name-pattern", "warning") + '      pattern: "^[a-z]+$"\n', "- name: A1")
    code, out, _ = validate(tmp_path, monkeypatch, capsys, "--format", "json")
    data: dict[str, Any] = json.loads(out)
    assert code == 0 and data["valid"] is True and data["warnings"] == 1
    for finding in data["problems"]:
        jsonschema.Draft202012Validator(schema).validate(finding)
    assert data["problems"][0]["severity"] == "warning"
