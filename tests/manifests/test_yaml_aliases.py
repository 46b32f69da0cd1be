"""Anchors, aliases and merge keys as people write them, and the bounds that keep bombs out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.validate import alias_bomb, alias_chain
from reconciler.errors import ManifestError
from reconciler.manifests import yamlsafe
from reconciler.manifests.load import load_desired
from reconciler.manifests.yamlsafe import parse_documents
from reconciler.model import Address


@pytest.fixture(params=["libyaml", "pure-python"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "pure-python":
        monkeypatch.setattr(yamlsafe, "_Loader", yaml.SafeLoader)
    return str(request.param)


def only(text: str) -> yamlsafe.Document:
    documents, problems = parse_documents(text, "a.yaml")
    assert problems == []
    (document,) = documents
    return document


def test_an_alias_repeats_the_anchored_value_as_safe_load_does(parser: str) -> None:
    text = "base: &tags {team: web, env: prod}\none: *tags\ntwo: [*tags, &n 3, *n]\n"
    assert only(text).data == yaml.safe_load(text)


@pytest.mark.parametrize(
    "text",
    [
        # one mapping; explicit keys win whatever their order
        "base: &b {a: 1, b: 2}\nx: {b: 9, <<: *b, c: 3}\n",
        # a list of mappings: earlier ones win over later ones
        "p: &p {a: 1}\nq: &q {a: 2, z: 0}\nx:\n  <<: [*p, *q]\n  c: 3\n",
        # an inline mapping
        "x: {<<: {a: 1, b: 2}, b: 3}\n",
    ],
)
def test_merge_keys_follow_yamls_rule_without_complaint(parser: str, text: str) -> None:
    assert only(text).data == yaml.safe_load(text)


def test_a_key_written_twice_beside_a_merge_is_still_a_duplicate(parser: str) -> None:
    _, problems = parse_documents("b: &b {a: 1}\nx: {<<: *b, c: 1, c: 2}\n", "d.yaml")
    assert [(p.rule, p.line) for p in problems] == [("duplicate-key", 2)]


def test_a_billion_laughs_is_refused_at_the_alias(parser: str) -> None:
    # Expanded, it would be 9**10 nodes; how fast it is refused is a benchmark figure.
    documents, problems = parse_documents(alias_bomb(), "bomb.yaml")
    assert documents == []
    (problem,) = problems
    assert problem.file == "bomb.yaml"
    assert problem.line in range(5, 10)
    assert f"more than {yamlsafe.MAX_ALIAS_NODES} nodes" in problem.message
    assert "alias bomb" in problem.message and "\n" not in problem.message


def test_a_deep_alias_chain_is_refused(parser: str) -> None:
    _, problems = parse_documents(alias_chain(5000), "deep.yaml")
    (problem,) = problems
    assert f"aliases nest deeper than {yamlsafe.MAX_DEPTH} levels" in problem.message
    assert problem.line < yamlsafe.MAX_DEPTH + 2  # the first alias that crosses the bound


def test_aliases_a_little_under_the_bound_are_fine(parser: str) -> None:
    entry = "{" + ", ".join(f"k{i}: v" for i in range(9)) + "}"  # 19 nodes per use
    uses = yamlsafe.MAX_ALIAS_NODES // 19 - 1
    text = f"t: &t {entry}\nl:\n" + "".join("- *t\n" for _ in range(uses))
    documents, problems = parse_documents(text, "big.yaml")
    assert problems == [] and len(documents[0].data["l"]) == uses


HEAD = "apiVersion: reconciler.lightsail/v1\nkind: KeyPairSet\nregion: us-east-1\n"


def test_manifests_may_share_tags_through_anchors_and_merges(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        HEAD + "keyPairs:\n"
        "  - name: aa\n    tags: &common {team: web, env: prod}\n"
        "  - name: bb\n    tags: {<<: *common, env: dev}\n"
        "  - &c {name: cc, tags: *common}\n"
        "  - {<<: *c, name: dd}\n",
        encoding="utf-8",
    )
    desired = load_desired([str(path)], root=tmp_path).key_pairs
    assert desired[Address("us-east-1", "bb")].tags == {"team": "web", "env": "dev"}
    assert desired[Address("us-east-1", "dd")].tags == {"team": "web", "env": "prod"}


def test_an_error_inside_aliased_content_names_the_use_site_and_the_anchor(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        HEAD + "keyPairs:\n"
        "  - name: aa\n    tags: &bad {team: 7}\n"  # line 6
        "  - name: bb\n"
        "    tags: *bad\n",  # line 8
        encoding="utf-8",
    )
    with pytest.raises(ManifestError) as caught:
        load_desired([str(path)], root=tmp_path)
    lines = sorted(p.line for p in caught.value.problems)
    assert lines == [6, 8], caught.value.problems
    at_use = next(p for p in caught.value.problems if p.line == 8)
    assert at_use.column == 11
    assert "through *bad, anchored at line 6 column 11" in at_use.message


def test_an_error_in_a_merged_entry_names_the_merge_and_the_anchor(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        HEAD + "keyPairs:\n"
        "  - name: aa\n    tags: &bad {team: 7}\n"  # line 6
        "  - name: bb\n"
        "    tags: {<<: *bad, env: prod}\n",  # line 8
        encoding="utf-8",
    )
    with pytest.raises(ManifestError) as caught:
        load_desired([str(path)], root=tmp_path)
    merged = next(p for p in caught.value.problems if p.line == 8)
    assert merged.column == 16  # the alias after '<<:'
    assert "keyPairs[1].tags.team" in merged.message
    assert "through *bad, anchored at line 6 column 11" in merged.message


shared_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(st.lists(shared_values, min_size=1, max_size=4), st.lists(st.integers(0, 3), max_size=6))
def test_documents_with_anchors_read_as_safe_load_reads_them(
    parts: list[Any], picks: list[int]
) -> None:
    # The same object placed several times: safe_dump writes it once with &id001, then *id001.
    data = {"parts": parts, "again": [parts[i % len(parts)] for i in picks]}
    text = yaml.safe_dump(data)
    (document,), problems = parse_documents(text, "shared.yaml")
    assert problems == []
    assert document.data == yaml.safe_load(text)
