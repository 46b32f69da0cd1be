"""Loading manifests into the desired model: places, merging, files and folders, safety."""

from __future__ import annotations

import datetime
import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from reconciler import keys
from reconciler.errors import ManifestError, Problem
from reconciler.manifests import yamlsafe
from reconciler.manifests.load import load_desired, manifest_files, validate_paths
from reconciler.manifests.yamlsafe import parse_documents
from reconciler.model import REGIONS, Address, DesiredKeyPair, Source

DATA = Path(__file__).parents[1] / "data" / "manifests"
GOOD = DATA / "good"
HEAD = "apiVersion: reconciler.lightsail/v1\nkind: KeyPairSet\nregion: {region}\n"
BASTION = (GOOD / "keys" / "bastion.pub").read_text()
CI = (GOOD / "keys" / "ci.pub").read_text()


def write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return str(path)


def manifest(*entries: str, region: str = "us-east-1", extra: str = "") -> str:
    return HEAD.format(region=region) + extra + "keyPairs:\n" + "".join(entries)


def problems(paths: list[str], root: Path) -> list[Problem]:
    with pytest.raises(ManifestError) as caught:
        load_desired(paths, root=root)
    return caught.value.problems


@pytest.fixture(params=["libyaml", "pure-python"])
def both_parsers(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the C parser (when installed) and with PyYAML's own."""
    if request.param == "pure-python":
        monkeypatch.setattr(yamlsafe, "_Loader", yaml.SafeLoader)
    return str(request.param)


# --- the good corpus ------------------------------------------------------------------------


def test_the_good_folder_loads_into_the_desired_model(both_parsers: str) -> None:
    desired = load_desired([str(GOOD)], root=GOOD)
    platform = str(GOOD / "platform.yaml")
    by_address = desired.key_pairs
    assert sorted(str(a) for a in by_address) == [
        "eu-west-1/bastion",
        "eu-west-1/web-prod",
        "us-east-1/bastion",
        "us-east-1/ci-deployer",
        "us-east-1/db-admin",
        "us-east-1/legacy_box",
        "us-east-1/web-prod",
    ]
    assert by_address[Address("us-east-1", "web-prod")] == DesiredKeyPair(
        address=Address("us-east-1", "web-prod"),
        tags={"team": "platform", "env": "prod", "cost-center": None},
        source=Source(platform, 8, 5),
    )
    db = by_address[Address("us-east-1", "db-admin")]
    assert (db.generate_local, db.prevent_destroy, db.adopt, db.origin) == (
        True,
        True,
        False,
        "generated",
    )
    legacy = by_address[Address("us-east-1", "legacy_box")]
    assert legacy.tags == {"team": "legacy", "owner": None}  # the entry's own value wins
    assert legacy.adopt and legacy.source == Source(platform, 17, 5)
    assert by_address[Address("eu-west-1", "web-prod")].tags == {"env": "prod", "version": "1.0"}


def test_folders_are_read_recursively_in_sorted_order() -> None:
    desired = load_desired([str(GOOD)], root=GOOD)
    assert desired.files == (
        str(GOOD / "nested" / "deeper" / "bastion-eu.yaml"),
        str(GOOD / "nested" / "regions.yml"),
        str(GOOD / "platform.yaml"),
    )


def test_public_keys_are_normalised_so_only_the_key_itself_counts() -> None:
    desired = load_desired([str(GOOD)], root=GOOD)
    from_file = desired.key_pairs[Address("us-east-1", "bastion")].public_key
    inline_without_comment = desired.key_pairs[Address("eu-west-1", "bastion")].public_key
    assert from_file == inline_without_comment == keys.normalize_public_key(BASTION)
    assert from_file is not None and "bastion@example" not in from_file
    ci = desired.key_pairs[Address("us-east-1", "ci-deployer")]
    assert ci.public_key == " ".join(CI.split()[:2]) and ci.origin == "imported"


def test_a_comment_or_spacing_change_does_not_change_the_public_key(tmp_path: Path) -> None:
    kind, data = BASTION.split()[:2]
    variants = [f"{kind} {data}", f"  {kind}\t{data}   other@host  ", f"{kind} {data} a b c\n"]
    entries = [f"  - name: k{i}\n    publicKey: {json.dumps(v)}\n" for i, v in enumerate(variants)]
    desired = load_desired([write(tmp_path / "m.yaml", manifest(*entries))], root=tmp_path)
    assert len({kp.public_key for kp in desired.key_pairs.values()}) == 1


# --- places ---------------------------------------------------------------------------------


def test_sources_point_at_each_entry_across_documents_and_line_endings(tmp_path: Path) -> None:
    text = (
        "# leading comment\n\n"
        + manifest("  - name: aa\n", "  -   name: bb\n      tags: {x: y}\n", "  - {name: cc}\n")
        + "---\n"
        + manifest("  - name: aa\n", region="eu-west-2")
    )
    for name, body in (("lf.yaml", text), ("crlf.yaml", text.replace("\n", "\r\n"))):
        folder = tmp_path / name.split(".")[0]
        file = write(folder / name, body)
        desired = load_desired([file], root=tmp_path)
        sources = {str(a): (s.line, s.column) for a, s in _sources(desired.key_pairs).items()}
        assert sources == {
            "us-east-1/aa": (7, 5),
            "us-east-1/bb": (8, 7),
            "us-east-1/cc": (10, 5),
            "eu-west-2/aa": (16, 5),
        }, name


def _sources(key_pairs: Any) -> dict[Address, Source]:
    return {address: kp.source for address, kp in key_pairs.items()}


def test_a_byte_order_mark_does_not_shift_columns(tmp_path: Path) -> None:
    file = tmp_path / "bom.yaml"
    file.write_bytes(b"\xef\xbb\xbf" + manifest("  - name: web\n").encode())
    desired = load_desired([str(file)], root=tmp_path)
    assert desired.key_pairs[Address("us-east-1", "web")].source == Source(str(file), 5, 5)


def test_every_problem_in_every_file_is_reported_sorted_by_file_and_line(tmp_path: Path) -> None:
    b = write(tmp_path / "b.yaml", manifest("  - name: xy\n", "  - name: -bad\n", region="nowhere"))
    a = write(tmp_path / "a.yaml", manifest("  - name: ok\n    tags: {aws:k: v}\n    extra: 1\n"))
    found = problems([b, a, str(tmp_path / "missing.yaml")], tmp_path)
    assert [(Path(p.file).name, p.line, p.column, p.rule) for p in found] == [
        ("a.yaml", 6, 12, "tags"),
        ("a.yaml", 7, 5, "schema"),
        ("b.yaml", 3, 9, "region"),
        ("b.yaml", 6, 11, "name"),
        ("missing.yaml", 1, 1, "path"),
    ]
    assert str(found[0]).startswith(f"{a}:6:12: tag key 'aws:k'")
    assert validate_paths([b, a], root=tmp_path) == found[:4]


# --- files and folders ----------------------------------------------------------------------


def test_a_file_reached_twice_is_read_once(tmp_path: Path) -> None:
    file = write(tmp_path / "m" / "one.yaml", manifest("  - name: web\n"))
    desired = load_desired([str(tmp_path / "m"), file, str(tmp_path / "m" / ".." / "m")])
    assert list(desired.key_pairs) == [Address("us-east-1", "web")]
    assert desired.files == (str(tmp_path / "m" / "one.yaml"),)


def test_hidden_folders_and_other_files_are_skipped_when_walking(tmp_path: Path) -> None:
    write(tmp_path / "ok.yml", manifest("  - name: web\n"))
    write(tmp_path / ".github" / "workflows" / "ci.yml", "on: push\njobs: {}\n")
    write(tmp_path / ".hidden.yaml", "not: ours\n")
    write(tmp_path / "README.md", "# not yaml\n")
    files, found = manifest_files([tmp_path])
    assert found == []
    assert [name for _, name in files] == [str(tmp_path / "ok.yml")]


def test_a_file_named_explicitly_is_read_whatever_its_extension(tmp_path: Path) -> None:
    file = write(tmp_path / "keypairs.txt", manifest("  - name: web\n"))
    assert Address("us-east-1", "web") in load_desired([file], root=tmp_path).key_pairs


def test_missing_paths_and_empty_folders_are_problems(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    found = problems([str(tmp_path / "empty"), str(tmp_path / "nope")], tmp_path)
    assert [(p.file, p.rule) for p in found] == [
        (str(tmp_path / "empty"), "path"),
        (str(tmp_path / "nope"), "path"),
    ]
    assert "no *.yaml or *.yml files" in found[0].message


def test_no_paths_make_an_empty_desired_set() -> None:
    assert load_desired([]).key_pairs == {}


# --- publicKeyFile --------------------------------------------------------------------------


def test_public_key_file_is_relative_to_its_manifest(tmp_path: Path) -> None:
    write(tmp_path / "team" / "keys" / "a.pub", BASTION)
    file = write(
        tmp_path / "team" / "m.yaml", manifest("  - name: ka\n    publicKeyFile: keys/a.pub\n")
    )
    desired = load_desired([file], root=tmp_path)
    assert desired.key_pairs[Address("us-east-1", "ka")].public_key == " ".join(BASTION.split()[:2])


def test_the_root_defaults_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "repo" / "k.pub", BASTION)
    file = write(tmp_path / "repo" / "m.yaml", manifest("  - name: ka\n    publicKeyFile: k.pub\n"))
    monkeypatch.chdir(tmp_path / "repo")
    assert load_desired(["m.yaml"]).key_pairs
    (tmp_path / "repo" / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "repo" / "sub")
    with pytest.raises(ManifestError) as caught:
        load_desired([file])
    assert [p.rule for p in caught.value.problems] == ["public-key"]
    assert "outside the repository root" in caught.value.problems[0].message


def test_a_symlink_out_of_the_root_is_refused_and_one_inside_is_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.pub"
    outside.write_text(BASTION)
    repo = tmp_path / "repo"
    write(repo / "keys" / "real.pub", BASTION)
    (repo / "keys" / "inside.pub").symlink_to(repo / "keys" / "real.pub")
    (repo / "keys" / "escape.pub").symlink_to(outside)
    ok = write(repo / "ok.yaml", manifest("  - name: ka\n    publicKeyFile: keys/inside.pub\n"))
    assert load_desired([ok], root=repo).key_pairs
    bad = write(repo / "bad.yaml", manifest("  - name: kb\n    publicKeyFile: keys/escape.pub\n"))
    found = problems([bad], repo)
    assert [(p.line, p.column, p.rule) for p in found] == [(6, 20, "public-key")]
    assert "outside the repository root" in found[0].message


def test_a_large_public_key_file_is_not_read(tmp_path: Path) -> None:
    write(tmp_path / "big.pub", BASTION + "#" * 20_000 + "\n")
    file = write(tmp_path / "m.yaml", manifest("  - name: ka\n    publicKeyFile: big.pub\n"))
    (problem,) = problems([file], tmp_path)
    assert "bytes; an OpenSSH public key file is at most" in problem.message


def test_comment_lines_in_a_public_key_file_are_ignored(tmp_path: Path) -> None:
    write(tmp_path / "k.pub", "# deploy key, rotated 2024\n\n" + CI)
    file = write(tmp_path / "m.yaml", manifest("  - name: ka\n    publicKeyFile: k.pub\n"))
    assert load_desired([file], root=tmp_path).key_pairs[Address("us-east-1", "ka")].public_key


# --- hostile input --------------------------------------------------------------------------


@pytest.mark.usefixtures("both_parsers")
@pytest.mark.parametrize(
    ("text", "rule", "message"),
    [
        ("a: !!python/object/new:os.system [ls]\n", "yaml", "python/object/new:os.system"),
        ("a: !!set {x, y}\n", "yaml", "tag:yaml.org,2002:set"),
        ("a: [1, 2\n", "yaml", "invalid YAML"),
        ("a: 1\na: 2\n", "duplicate-key", "first at line 1 column 1"),
        ("? [a, b]\n: c\n", "yaml", "mapping keys must be plain strings"),
        ("1: x\n", "yaml", "mapping key '1' is read as an integer"),
        ("a: =\n", "yaml", "'=' is read as YAML tag"),
        ("a: !!int nope\n", "yaml", "cannot read 'nope' as int"),
        ("a: " + "[" * 200 + "]" * 200 + "\n", "yaml", "nest"),
        ("a: *x\n", "yaml", "alias *x names no anchor above it"),
        ("a: &x [1, *x]\n", "yaml", "alias *x is inside the node &x it names"),
        ("a: {<<: 1}\n", "yaml", "a merge key '<<' takes a mapping or a list of mappings"),
        ("a: {<<: {b: 1}, <<: {c: 1}}\n", "duplicate-key", "duplicate merge key"),
        ("a: <<\n", "yaml", "'<<' is a merge key; quote it"),
    ],
)
def test_hostile_yaml_becomes_one_clear_problem(text: str, rule: str, message: str) -> None:
    _, found = parse_documents(text, "h.yaml")
    assert [p.rule for p in found] == [rule], found
    assert message in found[0].message


def test_many_problems_in_one_file_are_capped(tmp_path: Path) -> None:
    text = "".join(f"k{i}: 1\nk{i}: 2\n" for i in range(500))
    _, found = parse_documents(text, "many.yaml")
    assert len(found) == yamlsafe.MAX_PROBLEMS_PER_FILE + 1
    assert "stopped reading this file" in found[-1].message


def test_a_fifo_is_not_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    (problem,) = problems([str(fifo)], tmp_path)
    assert (problem.rule, problem.message) == (
        "path",
        "is a FIFO (named pipe), not a regular file; not read",
    )


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.binary(max_size=300)
    | st.text(alphabet="[]{}:-,?!&*#|>'\"\\\n\t %@`~ab1", max_size=80).map(str.encode)
)
def test_arbitrary_bytes_never_raise_anything_but_manifest_error(
    tmp_path: Path, data: bytes
) -> None:
    file = tmp_path / "fuzz.yaml"
    file.write_bytes(data)
    try:
        load_desired([str(file)], root=tmp_path)
    except ManifestError as error:
        assert error.problems
        assert all(p.line >= 1 and p.column >= 1 for p in error.problems)


# --- same values as yaml.safe_load ----------------------------------------------------------


def comparable(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


@pytest.mark.usefixtures("both_parsers")
@pytest.mark.parametrize(
    "scalar",
    ["yes", "No", "on", "~", "null", "", "1_000", "0x1F", "0o17", "017", "1:30", "+.inf", ".NaN",
     "1e3", "3.", "2024-02-29", "2024-02-29T10:00:00Z", "'quoted: yes'", '"12"', "!!str 12",
     "!!binary aGVsbG8=", "!!float 1", "web-prod", "aws:x", "! 12"],
)  # fmt: skip
def test_scalars_resolve_exactly_as_in_a_safe_load(scalar: str) -> None:
    text = f"value: {scalar}\n"
    (document,), found = parse_documents(text, "s.yaml")
    assert found == []
    assert comparable(document.data) == comparable(yaml.load(text, Loader=yamlsafe._Loader))


yaml_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.dates()
    | st.sampled_from(["yes", "null", "1_0", "~", "0x10", "1:2", "-", "#", "'", ": "]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(yaml_values, min_size=1, max_size=3),
    st.sampled_from([None, True, False]),
    st.booleans(),
)
def test_data_round_trips_like_safe_load(
    values: list[Any], flow: bool | None, unicode: bool
) -> None:
    text = yaml.safe_dump_all(values, default_flow_style=flow, allow_unicode=unicode)
    documents, found = parse_documents(text, "r.yaml")
    assert found == []
    expected = [v for v in yaml.safe_load_all(text) if v is not None]
    assert [comparable(d.data) for d in documents] == comparable(expected)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab1:-,.[]{}#'\"\n !&*~_?|", max_size=40))
def test_what_we_accept_safe_load_reads_the_same(text: str) -> None:
    documents, found = parse_documents(text, "t.yaml")
    if found:
        return
    expected = [v for v in yaml.load_all(text, Loader=yamlsafe._Loader) if v is not None]
    assert [comparable(d.data) for d in documents] == comparable(expected)


def test_dates_are_dates_like_in_a_safe_load() -> None:
    (document,), _ = parse_documents("d: 2024-01-31\n", "d.yaml")
    assert document.data == {"d": datetime.date(2024, 1, 31)}


# --- generated manifests round-trip into the model ------------------------------------------

names = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,10}[A-Za-z0-9_]", fullmatch=True)
tag_keys = st.text(alphabet="abcXYZ019 +-=._:/@é", min_size=1, max_size=12).filter(
    lambda k: not k.lower().startswith("aws:")
)
tag_values = st.none() | st.text(alphabet="abc019 +-=._:/@ñ", max_size=12).filter(
    lambda v: not v.lower().startswith("aws:")
)
tag_sets = st.dictionaries(tag_keys, tag_values, max_size=4)
entries = st.fixed_dictionaries(
    {"name": names},
    optional={
        "tags": tag_sets,
        "key": st.sampled_from(["publicKey", "publicKeyFile", "generate"]),
        "preventDestroy": st.booleans(),
        "adopt": st.booleans(),
    },
)
documents_strategy = st.lists(
    st.tuples(st.sampled_from(REGIONS), st.none() | tag_sets, st.lists(entries, max_size=5)),
    min_size=1,
    max_size=3,
)


def q(value: str | None) -> str:
    return "null" if value is None else json.dumps(value, ensure_ascii=False)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(documents_strategy)
def test_generated_manifests_round_trip_into_the_same_desired_set(
    tmp_path: Path, docs: list[tuple[str, dict[str, str | None] | None, list[dict[str, Any]]]]
) -> None:
    write(tmp_path / "k.pub", CI)
    expected: dict[Address, DesiredKeyPair] = {}
    lines: list[str] = []
    file = str(tmp_path / "gen.yaml")
    for region, defaults, items in docs:
        lines += [
            "---",
            "apiVersion: reconciler.lightsail/v1",
            "kind: KeyPairSet",
            f"region: {region}",
        ]
        if defaults is not None:
            lines += ["defaults:", "  tags: {}" if not defaults else "  tags:"]
            lines += [f"    {q(k)}: {q(v)}" for k, v in defaults.items()]
        lines.append("keyPairs:" if items else "keyPairs: []")
        for item in items:
            address = Address(region, item["name"])
            assume(address not in expected)
            lines.append(f"  - name: {q(item['name'])}")
            source = Source(file, len(lines), 5)
            tags = {**(defaults or {}), **item.get("tags", {})}
            if "tags" in item:
                lines.append("    tags: {}" if not item["tags"] else "    tags:")
                lines += [f"      {q(k)}: {q(v)}" for k, v in item["tags"].items()]
            public_key = None
            if item.get("key") == "publicKey":
                lines.append(f"    publicKey: {q(BASTION)}")
                public_key = keys.normalize_public_key(BASTION)
            elif item.get("key") == "publicKeyFile":
                lines.append("    publicKeyFile: k.pub")
                public_key = keys.normalize_public_key(CI)
            elif item.get("key") == "generate":
                lines.append("    generate: local")
            for field in ("preventDestroy", "adopt"):
                if field in item:
                    lines.append(f"    {field}: {str(item[field]).lower()}")
            expected[address] = DesiredKeyPair(
                address=address,
                tags=tags,
                source=source,
                public_key=public_key,
                generate_local=item.get("key") == "generate",
                prevent_destroy=item.get("preventDestroy", False),
                adopt=item.get("adopt", False),
            )
    write(Path(file), "\n".join(lines) + "\n")
    desired = load_desired([file], root=tmp_path)
    assert desired.key_pairs == expected
    assert desired.files == (file,)


def test_a_file_stops_being_checked_after_many_problems_and_the_next_is_checked(
    tmp_path: Path,
) -> None:
    entries = [f"  - name: k{i:03d}\n    colour: red\n" for i in range(150)]
    noisy = write(tmp_path / "a.yaml", manifest(*entries))
    other = write(tmp_path / "b.yaml", manifest("  - name: -x\n"))
    found = problems([noisy, other], tmp_path)
    in_noisy = [p for p in found if p.file == noisy]
    assert len(in_noisy) == yamlsafe.MAX_PROBLEMS_PER_FILE + 1
    assert in_noisy[-1].message.endswith("stopped checking this file")
    assert [p.rule for p in found if p.file == other] == ["name"]
