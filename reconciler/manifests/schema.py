"""The manifest JSON Schema: the single source of a document's shape.

Loads ``schemas/keypairs.schema.json`` from the package, compiles the
jsonschema validator once, and turns its errors into Problems that point at
the offending YAML node, in words a user can act on.

jsonschema is thorough but slow per node, so a yes/no check compiled from the
same schema document answers "is this document valid?" first (see
``schemacheck``). It only ever accelerates: when it says "invalid", or when
the schema uses a keyword it does not know, jsonschema decides and reports.

Lightsail's own limits on names and tags are checked by ``model.name_problem``
and ``model.tag_problems`` (in manifest.py), which are at least as strict as
the schema's pattern/length/count keywords for those fields; the schema's
errors for those keywords are left to them so a problem is reported once.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reconciler.errors import Problem
from reconciler.manifests.regex import compile_linear
from reconciler.manifests.schemacheck import (
    ANNOTATIONS,
    Check,
    UnsupportedSchema,
    compile_check,
    resolve_local,
)
from reconciler.manifests.yamlsafe import Document, JsonPath, clip, short_repr, type_name
from reconciler.model import region_problem

SCHEMA_FILE = "keypairs.schema.json"


@functools.cache
def keypairs_schema() -> dict[str, Any]:
    """The manifest schema shipped in the package."""
    # Beside this module (package data); not importlib.resources, whose zip support
    # costs validate's start-up more than reading the schema itself.
    resource = Path(__file__).parent.parent / "schemas" / SCHEMA_FILE
    schema: dict[str, Any] = json.loads(resource.read_text(encoding="utf-8"))
    return schema


@functools.cache
def _validator() -> Any:
    return validator_for(keypairs_schema())


def validator_for(schema: Any) -> Any:
    """A draft 2020-12 validator of ``schema`` whose ``pattern`` runs in RE2.

    JSON Schema patterns are ECMA-262 (the tag rule uses ``\\p{L}``), which
    Python's ``re`` cannot read; RE2 reads them, in linear time.
    """
    # No format checker: the schema uses no formats, and format is annotation-only in 2020-12.
    # Imported here: valid documents never need it (see fast_check), and it is slow to import.
    import jsonschema
    from jsonschema.exceptions import ValidationError

    def pattern(validator: Any, expected: str, instance: Any, _schema: Any) -> Iterator[Any]:
        if validator.is_type(instance, "string") and not compile_linear(expected).search(instance):
            yield ValidationError(f"{short_repr(instance)} does not match {expected!r}")

    kind = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": pattern})
    return kind(schema)


@functools.cache
def fast_check() -> Check | None:
    """The compiled yes/no check for the manifest schema, or None if it cannot be compiled."""
    try:
        return compile_check(keypairs_schema())
    except UnsupportedSchema:
        return None


@functools.cache
def _fast_item_check() -> Check | None:
    """The compiled check for one keyPairs item, when items can be checked one by one.

    That holds while the keyPairs array schema constrains nothing but its type
    and each item (no minItems, uniqueItems, contains...): then the errors of a
    document are those of its failing items, wherever they sit in the list.
    """
    array = keypairs_schema()["properties"]["keyPairs"]
    if set(array) - ANNOTATIONS - {"type", "items"}:
        return None
    try:
        return compile_check(array.get("items", True), root=keypairs_schema())
    except UnsupportedSchema:
        return None


def api_version() -> str:
    return str(keypairs_schema()["properties"]["apiVersion"]["const"])


def kind() -> str:
    return str(keypairs_schema()["properties"]["kind"]["const"])


def is_keypair_set(data: Any) -> bool:
    """Whether a document claims to be one of ours (right apiVersion and kind)."""
    return (
        isinstance(data, dict)
        and data.get("apiVersion") == api_version()
        and data.get("kind") == kind()
    )


def schema_problems(document: Document, file: str, *, limit: int | None = None) -> list[Problem]:
    """Every way ``document`` breaks the schema, each at its node (the first ``limit`` of them).

    A document that is not a KeyPairSet (wrong or missing apiVersion/kind, not
    a mapping) only gets that said about it: its other fields would be noise.
    """
    data = document.data
    if not is_keypair_set(data):
        return _identity_problems(document, file)
    check = fast_check()
    if check is not None and check(data):
        return []
    # jsonschema costs ~0.2 ms a key pair: hand it only the key pairs that fail.
    kept: list[int] | None = None
    items = data.get("keyPairs")
    check_item = _fast_item_check()
    if check is not None and check_item is not None and isinstance(items, list):
        kept = [i for i, item in enumerate(items) if not check_item(item)]
        data = {**data, "keyPairs": [items[i] for i in kept]}
    problems: list[Problem] = []
    reported: set[tuple[JsonPath, str]] = set()
    for error in _validator().iter_errors(data):
        path: JsonPath = tuple(error.absolute_path)
        if kept is not None and len(path) > 1 and path[0] == "keyPairs":
            path = ("keyPairs", kept[int(path[1])], *path[2:])
        problems.extend(_error_problems(error, path, document, file, reported))
        if limit is not None and len(problems) >= limit:
            break
    return problems


def _identity_problems(document: Document, file: str) -> list[Problem]:
    data = document.data
    if not isinstance(data, dict):
        line, column = document.position(())
        message = (
            f"a manifest document must be a mapping with apiVersion, kind, region and keyPairs, "
            f"not {type_name(data)}"
        )
        return [Problem(file, line, column, message, "schema")]
    problems = []
    for field, expected in (("apiVersion", api_version()), ("kind", kind())):
        if field not in data:
            if () in document.damaged:
                continue
            line, column = document.position(())
            message = f"missing {field}; this tool reads documents with {field}: {expected}"
            problems.append(Problem(file, line, column, message, "schema"))
        elif data[field] != expected:
            line, column = document.position((field,))
            message = f"unknown {field} {short_repr(data[field])}; expected {expected!r}"
            problems.append(Problem(file, line, column, message, "schema"))
    return problems


def _owned_by_lightsail_rules(path: JsonPath, keyword: str | None) -> bool:
    """Whether the name/tag checks of manifest.py report this schema error better."""
    n = len(path)
    if n == 3 and path[0] == "keyPairs" and path[2] == "name":
        return keyword in ("pattern", "minLength", "maxLength")
    if (n in (2, 3) and path[:2] == ("defaults", "tags")) or (
        n in (3, 4) and path[0] == "keyPairs" and path[2] == "tags"
    ):
        at_tags = n == (2 if path[0] == "defaults" else 3)
        if at_tags:  # the tags mapping itself: count, key lengths and characters via propertyNames
            return keyword in ("maxProperties", "minLength", "maxLength", "pattern")
        return keyword in ("maxLength", "pattern")
    return False


def _error_problems(
    error: Any,
    path: JsonPath,
    document: Document,
    file: str,
    reported: set[tuple[JsonPath, str]],
) -> Iterator[Problem]:
    """The problems one jsonschema error stands for; ``path`` is where it is in ``document``."""
    keyword: str | None = error.validator
    if _owned_by_lightsail_rules(path, keyword):
        return
    instance = error.instance
    where = describe_path(path)
    rule = "schema"
    at_key = False
    if keyword == "additionalProperties" and error.validator_value is False:
        allowed = list(error.schema.get("properties", {}))
        for extra in instance:
            if extra not in allowed:
                line, column = document.key_position((*path, extra))
                message = f"unknown field {short_repr(extra)} in {where}"
                import difflib  # only when a field is unknown

                near = difflib.get_close_matches(str(extra), allowed, n=1)
                message += f"; did you mean {near[0]!r}?" if near else ""
                message += f" (allowed: {', '.join(allowed)})"
                yield _problem(file, line, column, message, rule)
        return
    if keyword == "required":
        if path in document.damaged:  # the field may be there, in a form already reported
            return
        missing = [p for p in error.validator_value if p not in instance]
        field = next((p for p in missing if (path, p) not in reported), None)
        if field is None:
            return
        reported.add((path, field))
        message = f"{where} is missing the required field {field!r}"
    elif keyword is None:  # a `false` subschema: the field may not appear here
        field = _forbidden_field(error, document.data, path, reported)
        if field is None:
            return
        path = (*path, field)
        at_key = True
        trigger = _dependent_trigger(error)
        if trigger:
            message = f"{field} cannot be combined with {trigger} (give at most one of them)"
        else:
            message = f"{describe_path(path)} is not allowed here"
    elif keyword == "type":
        message = _type_message(where, error.validator_value, instance)
    elif keyword == "enum" and path == ("region",):
        rule = "region"
        problem = region_problem(instance) if isinstance(instance, str) else None
        message = (
            f"{problem or short_repr(instance) + ' is not a region'} "
            f"(regions: {', '.join(error.validator_value)})"
        )
    elif keyword == "enum":
        choices = ", ".join(repr(c) for c in error.validator_value)
        message = f"{where} must be one of {choices}, not {short_repr(instance)}"
    elif keyword == "pattern" and path[-1:] == ("after",):
        message = (
            f"{where} must be a duration in whole days or hours, such as 90d or 36h, "
            f"not {short_repr(instance)}"
        )
    elif keyword == "const":
        message = f"{where} must be {error.validator_value!r}, not {short_repr(instance)}"
    else:
        message = f"{where}: {error.message}"
    line, column = document.key_position(path) if at_key else document.position(path)
    yield _problem(file, line, column, message, rule)


def _forbidden_field(
    error: Any, data: Any, path: JsonPath, reported: set[tuple[JsonPath, str]]
) -> str | None:
    """Which property a `false` subschema refused.

    jsonschema leaves the property out of such an error's path, so find the
    ``properties`` mapping the error came from and take the first present
    property it forbids that has not been reported yet (errors come in order).
    """
    properties = _schema_at(list(error.absolute_schema_path))
    container = data
    try:
        for part in path:
            container = container[part]
    except (KeyError, IndexError, TypeError):
        return None
    if not isinstance(properties, dict) or not isinstance(container, dict):
        return None
    for field, subschema in properties.items():
        if subschema is False and field in container and (path, field) not in reported:
            reported.add((path, field))
            return str(field)
    return None


def _schema_at(schema_path: list[str | int]) -> Any:
    """The subschema at a jsonschema ``absolute_schema_path``, following local $refs."""
    root = keypairs_schema()
    node: Any = root
    for part in schema_path:
        while isinstance(node, dict) and part not in node and "$ref" in node:
            node = resolve_local(root, node["$ref"])
        in_dict = isinstance(node, dict) and part in node
        if not (in_dict or (isinstance(node, list) and isinstance(part, int) and part < len(node))):
            return None
        node = node[part]
    return node


def _dependent_trigger(error: Any) -> str | None:
    schema_path = list(error.absolute_schema_path)
    for i, part in enumerate(schema_path[:-1]):
        if part == "dependentSchemas":
            return str(schema_path[i + 1])
    return None


_TYPE_WORDS = {
    "string": "a string",
    "null": "null",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "integer": "an integer",
    "number": "a number",
}


def _type_message(where: str, expected: str | list[str], instance: Any) -> str:
    types = [expected] if isinstance(expected, str) else list(expected)
    wanted = " or ".join(_TYPE_WORDS.get(t, t) for t in types)
    message = f"{where} must be {wanted}, not {type_name(instance)}"
    if isinstance(instance, bool | int | float) or hasattr(instance, "isoformat"):
        shown = instance.isoformat() if hasattr(instance, "isoformat") else short_repr(instance)
        message += f" ({shown})"
        if "string" in types:
            message += "; quote it to keep it a string"
    elif isinstance(instance, str):
        message += f" ({short_repr(instance)})"
    return message


def describe_path(path: JsonPath) -> str:
    """``keyPairs[3].tags.env`` for a JSON path; "the document" for the root."""
    if not path:
        return "the document"
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][\w-]*", part):
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text


def _problem(file: str, line: int, column: int, message: str, rule: str) -> Problem:
    return Problem(file, line, column, clip(message), rule)
