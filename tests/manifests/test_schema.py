"""The manifest JSON Schema, its compiled fast check, and how it agrees with Lightsail's rules."""

from __future__ import annotations

import json
import string
import unicodedata
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler import model
from reconciler.errors import Problem
from reconciler.manifests import schema, schemacheck, yamlsafe
from reconciler.manifests.regex import PatternError, compile_linear
from reconciler.manifests.yamlsafe import parse_documents

REPO = Path(__file__).parents[2]
SCHEMA = schema.keypairs_schema()
# The schema's patterns are ECMA-262 (\p{L}); its validators run them in RE2.
VALIDATOR = schema.validator_for(SCHEMA)
FAST = schema.fast_check()


def subschema_validator(name: str) -> Any:
    """A validator for one of the schema's $defs, resolving its references."""
    return schema.validator_for({"$defs": SCHEMA["$defs"], "$ref": f"#/$defs/{name}"})


def test_the_schema_is_a_valid_draft_2020_12_schema_with_an_id() -> None:
    # Patterns are ECMA-262 (the tag rule's \p{L}): checked by RE2, which reads them, not by re.
    checker = jsonschema.FormatChecker()
    checker.checks("regex", raises=PatternError)(compile_linear)
    jsonschema.Draft202012Validator.check_schema(SCHEMA, format_checker=checker)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert SCHEMA["$id"]


def test_the_packaged_schema_is_the_one_editors_point_at() -> None:
    shipped = json.loads((REPO / "reconciler" / "schemas" / "keypairs.schema.json").read_text())
    for_editors = json.loads((REPO / "schemas" / "keypairs.schema.json").read_text())
    assert shipped == for_editors == SCHEMA


def every_object_schema(node: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(node, dict):
        if node.get("type") == "object":
            found.append(node)
        for value in node.values():
            found.extend(every_object_schema(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(every_object_schema(value))
    return found


def test_every_object_is_closed_and_every_field_is_documented_for_editors() -> None:
    for obj in every_object_schema(SCHEMA):
        assert "additionalProperties" in obj, obj.get("title")
        assert obj["additionalProperties"] is False or obj.get("title") == "Tags"
        for name, field in obj.get("properties", {}).items():
            target = field
            if "$ref" in field:
                target = SCHEMA["$defs"][field["$ref"].rsplit("/", 1)[-1]]
            assert "description" in field or "description" in target, name


def test_the_region_list_is_the_model_s() -> None:
    assert SCHEMA["properties"]["region"]["enum"] == list(model.REGIONS)


def test_limits_in_the_schema_are_the_model_s() -> None:
    tags = SCHEMA["$defs"]["tags"]
    assert tags["maxProperties"] == model.MAX_TAGS
    assert tags["propertyNames"]["maxLength"] == model.MAX_TAG_KEY_LENGTH
    assert SCHEMA["$defs"]["tagValue"]["maxLength"] == model.MAX_TAG_VALUE_LENGTH
    assert SCHEMA["$defs"]["keyPair"]["properties"]["name"]["maxLength"] == model.MAX_NAME_LENGTH


def test_the_shipped_schema_compiles_to_a_fast_check() -> None:
    assert FAST is not None


@pytest.mark.parametrize(
    "unsupported",
    [
        {"type": "number"},
        {"patternProperties": {"^x": {}}},
        {"if": {}, "then": {}},
        {"enum": [1, 2]},
        {"$ref": "https://example.com/other.json"},
        {"prefixItems": [{}]},
    ],
)
def test_compile_check_refuses_what_it_does_not_implement(unsupported: dict[str, Any]) -> None:
    with pytest.raises(schemacheck.UnsupportedSchema):
        schemacheck.compile_check(unsupported)


# --- the fast check answers exactly what jsonschema answers ---------------------------------

FIELDS = ["name", "tags", "publicKey", "publicKeyFile", "generate", "preventDestroy", "adopt"]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=False),
    st.sampled_from(["local", "remote", "us-east-1", "web", "w", "-x", "aws:x", "", "a\n"]),
    st.text(max_size=6),
)
names = st.one_of(
    st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,8}[A-Za-z0-9_]", fullmatch=True),
    st.text(max_size=4),
    st.just("n" * 256),
    scalars,
)
tag_maps = st.dictionaries(
    st.one_of(st.text(max_size=3), st.just("k" * 129), st.just("")),
    st.one_of(st.none(), st.text(max_size=3), st.just("v" * 257), st.integers(0, 2)),
    max_size=4,
) | st.builds(lambda n: {f"k{i}": None for i in range(n)}, st.integers(48, 53))
rotations = (
    st.fixed_dictionaries(
        {},
        optional={
            "after": st.sampled_from(["90d", "36h", "0d", "9w", "1d "]) | scalars,
            "keep": st.sampled_from([0, 2, 2.0, 2.5, -1, 101, True]) | scalars,
            "every": scalars,
        },
    )
    | scalars
)
key_pairs = st.one_of(
    st.fixed_dictionaries(
        {"name": names},
        optional={
            "tags": tag_maps | scalars,
            "publicKey": scalars,
            "publicKeyFile": scalars,
            "generate": scalars,
            "preventDestroy": scalars,
            "adopt": scalars,
            "rotate": rotations,
            "colour": scalars,
        },
    ),
    st.dictionaries(st.sampled_from([*FIELDS, "x"]), scalars, max_size=3),
    scalars,
)
documents = st.fixed_dictionaries(
    {},
    optional={
        "apiVersion": st.sampled_from(["reconciler.lightsail/v1", "v2"]),
        "kind": st.sampled_from(["KeyPairSet", "Other"]),
        "region": st.sampled_from([*model.REGIONS[:3], "mars-1", ""]) | scalars,
        "defaults": st.fixed_dictionaries(
            {}, optional={"tags": tag_maps, "rotate": rotations, "owner": scalars}
        )
        | scalars,
        "keyPairs": st.lists(key_pairs, max_size=4) | scalars,
        "extra": scalars,
    },
) | st.lists(scalars, max_size=2)


@settings(max_examples=250, deadline=None)
@given(documents)
def test_fast_check_agrees_with_jsonschema(document: Any) -> None:
    assert FAST is not None
    assert FAST(document) == VALIDATOR.is_valid(document)


@settings(max_examples=120, deadline=None)
@given(
    st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner, max_size=3)
        ),
        max_leaves=8,
    ),
    st.sampled_from(
        [
            {"anyOf": [{"type": "string"}, {"type": "array", "minItems": 1, "maxItems": 2}]},
            {"oneOf": [{"type": ["string", "null"]}, {"maxLength": 2}]},
            {"not": {"type": "object", "minProperties": 1}},
            {"allOf": [{"properties": {"a": {"const": "x"}}}, {"required": ["a"]}]},
            {"items": {"$ref": "#"}, "type": "array"},
            {"additionalProperties": {"type": "boolean"}},
            {"propertyNames": {"pattern": "^[a-z]$"}, "minProperties": 1},
            {"type": "integer", "minimum": 0, "maximum": 3},
            {"minimum": 1},
            True,
            False,
        ]
    ),
)
def test_compile_check_agrees_with_jsonschema_on_other_keywords(value: Any, sub: Any) -> None:
    assert schemacheck.compile_check(sub)(value) == schema.validator_for(sub).is_valid(value)


# --- the schema's name and tag limits never catch what Lightsail's rules let through --------


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=string.ascii_letters + string.digits + "_-. éß\n", max_size=8) | names)
def test_a_name_the_schema_refuses_is_refused_by_lightsail_s_rule(name: Any) -> None:
    if not isinstance(name, str):
        return
    name_schema = SCHEMA["$defs"]["keyPair"]["properties"]["name"]
    if not schema.validator_for(name_schema).is_valid(name):
        assert model.name_problem(name) is not None


tag_dicts = st.dictionaries(
    st.text(alphabet="ab:-_ *Aws", max_size=5) | st.sampled_from(["", "k" * 129, "aws:x"]),
    st.none() | st.text(alphabet="xy:/ *aws", max_size=5) | st.sampled_from(["v" * 257]),
    max_size=4,
) | st.builds(lambda n: {f"k{i}": "v" for i in range(n)}, st.integers(45, 55))


@settings(max_examples=200, deadline=None)
@given(tag_dicts)
def test_tags_the_schema_refuses_are_refused_by_lightsail_s_rules(tags: dict[str, Any]) -> None:
    if not subschema_validator("tags").is_valid(tags):
        assert model.tag_problems(tags)


# Letters, numbers and separators of several scripts, the six marks, and what is refused:
# control characters (newline, tab, escape, NEL), symbols, punctuation, a combining mark.
TAG_TEXT = "aZ09 _.:/=+-@é東١\u00a0\u3000\n\t\r\x1b\x85*#!,\u0301\u200b"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=TAG_TEXT, min_size=1, max_size=6), st.text(alphabet=TAG_TEXT, max_size=6))
def test_the_schema_and_lightsail_s_rules_take_the_same_tag_characters(
    key: str, value: str
) -> None:
    """A manifest that validates is one Lightsail would take, and the schema (for editors)
    says so too: both follow AWS's ^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)$."""
    for text in (key, value):
        assert (model.refused_tag_character(text) is None) == all(
            c in "_.:/=+-@" or unicodedata.category(c)[0] in "LZN" for c in text
        )
    tags = {key: value}
    characters_ok = model.refused_tag_character(key + value) is None
    assert subschema_validator("tags").is_valid(tags) == characters_ok
    if not characters_ok:
        assert any("does not allow" in problem for problem in model.tag_problems(tags))


@settings(max_examples=150, deadline=None)
@given(tag_dicts)
def test_checking_tags_one_by_one_plus_the_count_is_checking_them_all(
    tags: dict[str, Any],
) -> None:
    """manifest.py checks each tag alone (to point at it) and the count separately."""
    one_by_one = any(model.tag_problems({k: v}) for k, v in tags.items())
    assert bool(model.tag_problems(tags)) == (one_by_one or len(tags) > model.MAX_TAGS)


# --- problems point at the node and say what is wrong ---------------------------------------


def problems_for(text: str) -> list[Problem]:
    (document,), yaml_problems = parse_documents(text, "m.yaml")
    assert yaml_problems == []
    return schema.schema_problems(document, "m.yaml")


HEAD = "apiVersion: reconciler.lightsail/v1\nkind: KeyPairSet\nregion: us-east-1\n"


def test_a_valid_document_has_no_schema_problems() -> None:
    assert problems_for(HEAD + "keyPairs:\n  - name: web\n    tags: {a: b, c: null}\n") == []


def test_each_unknown_field_is_reported_at_its_key() -> None:
    problems = problems_for(HEAD + "keyPairs:\n  - name: web\n    colour: x\n    size: 2\n")
    assert [(p.line, p.column, p.rule) for p in problems] == [(6, 5, "schema"), (7, 5, "schema")]
    assert "unknown field 'colour' in keyPairs[0]" in problems[0].message
    assert "unknown field 'size'" in problems[1].message


def test_every_missing_required_field_is_reported_once_at_the_mapping() -> None:
    problems = problems_for("apiVersion: reconciler.lightsail/v1\nkind: KeyPairSet\n")
    assert [(p.line, p.column) for p in problems] == [(1, 1), (1, 1)]
    assert ["'region'" in problems[0].message, "'keyPairs'" in problems[1].message] == [True] * 2


def test_conflicting_key_sources_are_reported_once_each_at_the_later_field() -> None:
    problems = problems_for(
        HEAD + "keyPairs:\n  - name: web\n    publicKey: x\n    publicKeyFile: y\n"
        "    generate: local\n"
    )
    assert [(p.line, p.column, p.message) for p in problems] == [
        (7, 5, "publicKeyFile cannot be combined with publicKey (give at most one of them)"),
        (8, 5, "generate cannot be combined with publicKey (give at most one of them)"),
    ]


def test_a_huge_value_does_not_make_a_huge_message() -> None:
    problems = problems_for(HEAD + "keyPairs: " + "x" * 100_000 + "\n")
    assert len(problems) == 1
    assert len(problems[0].message) <= yamlsafe.MAX_MESSAGE_LENGTH


def test_documents_of_another_kind_only_get_told_so() -> None:
    problems = problems_for("apiVersion: apps/v1\nkind: Deployment\nspec: {replicas: 3}\n")
    assert [p.message for p in problems] == [
        "unknown apiVersion 'apps/v1'; expected 'reconciler.lightsail/v1'",
        "unknown kind 'Deployment'; expected 'KeyPairSet'",
    ]


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ((), "the document"),
        (("keyPairs", 3, "tags", "env"), "keyPairs[3].tags.env"),
        (("defaults", "tags", "a b"), "defaults.tags['a b']"),
    ],
)
def test_describe_path(path: tuple[str | int, ...], text: str) -> None:
    assert schema.describe_path(path) == text


def test_a_bad_key_pair_after_good_ones_is_reported_at_its_own_place() -> None:
    good = "".join(f"  - name: k{i:02d}\n" for i in range(40))
    text = (
        HEAD + "keyPairs:\n" + good + "  - name: late\n    colour: x\n  - {name: last, adopt: 1}\n"
    )
    problems = problems_for(text)
    assert [(p.line, p.column, p.message) for p in problems] == [
        (46, 5, "unknown field 'colour' in keyPairs[40] (allowed: name, tags, publicKey, "
         "publicKeyFile, generate, preventDestroy, adopt, policyExceptions, rotate)"),
        (47, 25, "keyPairs[41].adopt must be true or false, not an integer (1)"),
    ]  # fmt: skip


@settings(max_examples=100, deadline=None)
@given(documents)
def test_checking_only_the_failing_key_pairs_reports_what_checking_all_would(data: Any) -> None:
    if not isinstance(data, dict):
        return
    data = {**data, "apiVersion": schema.api_version(), "kind": schema.kind()}
    document = yamlsafe.Document(data, {}, {})
    fast = schema.schema_problems(document, "d.yaml")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(schema, "_fast_item_check", lambda: None)
        patch.setattr(schema, "fast_check", lambda: None)
        assert fast == schema.schema_problems(document, "d.yaml")
