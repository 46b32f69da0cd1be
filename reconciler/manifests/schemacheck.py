"""A yes/no check compiled from a JSON Schema: the fast path of manifest validation.

``compile_check`` turns a schema into nested closures that answer exactly what
``jsonschema.Draft202012Validator(schema).is_valid`` would, many times faster.
It only ever accelerates: a keyword it does not implement raises
``UnsupportedSchema``, and the caller then leaves every answer to jsonschema.
It never explains why a document is invalid; schema.py does that.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reconciler.manifests.regex import compile_linear

Check = Callable[[Any], bool]


class UnsupportedSchema(Exception):
    """The schema uses something ``compile_check`` does not implement."""


ANNOTATIONS = frozenset(
    {
        "$schema",
        "$id",
        "$comment",
        "$defs",
        "title",
        "description",
        "markdownDescription",
        "examples",
        "default",
        "deprecated",
        "readOnly",
        "writeOnly",
        "format",  # annotation only without a format checker, as schema.py configures it
    }
)
_TYPES: dict[str, type] = {
    "string": str,
    "object": dict,
    "array": list,
    "boolean": bool,
    "null": type(None),
}


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _is_integer(x: Any) -> bool:
    """JSON Schema's integer: a number with no fraction (2.0 is one), never a boolean."""
    return _is_number(x) and float(x).is_integer()


def compile_check(schema: Any, *, root: Any = None) -> Check:
    """A function answering exactly what ``schema.validator_for(schema).is_valid`` would.

    Covers the keywords the manifest schema uses, with jsonschema's semantics
    (each keyword constrains only instances of its type; ``pattern`` is an RE2
    search, as in ``validator_for``; string equality for const/enum). Anything else raises
    UnsupportedSchema, so a schema edit can slow validation down but never
    make it wrong. Local ``#/$defs/...`` references only, into ``root`` (by
    default ``schema`` itself: pass the whole document to check one of its parts).
    """
    return _Compiler(schema if root is None else root).compile(schema)


class _Compiler:
    def __init__(self, root: Any) -> None:
        self.root = root
        self.refs: dict[str, Check] = {}

    def compile(self, schema: Any) -> Check:
        if schema is True:
            return _accept
        if schema is False:
            return _reject
        if not isinstance(schema, dict):
            raise UnsupportedSchema(f"schema {schema!r}")
        checks: list[Check] = []
        if "type" in schema:
            checks.append(self._type(schema["type"]))
        for keyword, value in schema.items():
            if keyword in ANNOTATIONS or keyword == "type":
                continue
            if keyword in ("properties", "additionalProperties"):
                if keyword == "properties" or "properties" not in schema:
                    checks.append(self._properties(schema))
                continue
            build = getattr(self, "_kw_" + keyword.lstrip("$"), None)
            if build is None:
                raise UnsupportedSchema(keyword)
            checks.append(build(value))
        return _all(checks)

    def _type(self, value: Any) -> Check:
        names = [value] if isinstance(value, str) else value
        if names == ["integer"]:
            return _is_integer
        try:
            kinds = tuple(_TYPES[name] for name in names)
        except (KeyError, TypeError):
            raise UnsupportedSchema(f"type {value!r}") from None
        return lambda x: isinstance(x, kinds)

    def _properties(self, schema: dict[str, Any]) -> Check:
        if "patternProperties" in schema:
            raise UnsupportedSchema("patternProperties")
        properties = {k: self.compile(v) for k, v in schema.get("properties", {}).items()}
        extra = schema.get("additionalProperties")
        additional = None if extra is None else self.compile(extra)

        def check(x: Any) -> bool:
            if not isinstance(x, dict):
                return True
            for key, value in x.items():
                sub = properties.get(key)
                if sub is None:
                    sub = additional
                    if sub is None:
                        continue
                if not sub(value):
                    return False
            return True

        return check

    def _strings(self, values: Any) -> frozenset[str]:
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise UnsupportedSchema("const/enum of non-strings")
        return frozenset(values)

    def _kw_const(self, value: Any) -> Check:
        allowed = self._strings([value])
        return lambda x: isinstance(x, str) and x in allowed

    def _kw_enum(self, value: Any) -> Check:
        allowed = self._strings(value)
        return lambda x: isinstance(x, str) and x in allowed

    def _kw_pattern(self, value: str) -> Check:
        search = compile_linear(value).search
        return lambda x: not isinstance(x, str) or search(x) is not None

    def _kw_minimum(self, n: float) -> Check:
        return lambda x: not _is_number(x) or x >= n

    def _kw_maximum(self, n: float) -> Check:
        return lambda x: not _is_number(x) or x <= n

    def _kw_minLength(self, n: int) -> Check:
        return lambda x: not isinstance(x, str) or len(x) >= n

    def _kw_maxLength(self, n: int) -> Check:
        return lambda x: not isinstance(x, str) or len(x) <= n

    def _kw_minProperties(self, n: int) -> Check:
        return lambda x: not isinstance(x, dict) or len(x) >= n

    def _kw_maxProperties(self, n: int) -> Check:
        return lambda x: not isinstance(x, dict) or len(x) <= n

    def _kw_minItems(self, n: int) -> Check:
        return lambda x: not isinstance(x, list) or len(x) >= n

    def _kw_maxItems(self, n: int) -> Check:
        return lambda x: not isinstance(x, list) or len(x) <= n

    def _kw_required(self, names: list[str]) -> Check:
        return lambda x: not isinstance(x, dict) or all(name in x for name in names)

    def _kw_propertyNames(self, schema: Any) -> Check:
        sub = self.compile(schema)
        return lambda x: not isinstance(x, dict) or all(sub(key) for key in x)

    def _kw_items(self, schema: Any) -> Check:
        sub = self.compile(schema)
        return lambda x: not isinstance(x, list) or all(sub(item) for item in x)

    def _kw_dependentSchemas(self, deps: dict[str, Any]) -> Check:
        compiled = [(name, self.compile(s)) for name, s in deps.items()]
        return lambda x: (
            not isinstance(x, dict) or all(sub(x) for name, sub in compiled if name in x)
        )

    def _kw_allOf(self, schemas: list[Any]) -> Check:
        return _all([self.compile(s) for s in schemas])

    def _kw_anyOf(self, schemas: list[Any]) -> Check:
        subs = [self.compile(s) for s in schemas]
        return lambda x: any(sub(x) for sub in subs)

    def _kw_oneOf(self, schemas: list[Any]) -> Check:
        subs = [self.compile(s) for s in schemas]
        return lambda x: sum(1 for sub in subs if sub(x)) == 1

    def _kw_not(self, schema: Any) -> Check:
        sub = self.compile(schema)
        return lambda x: not sub(x)

    def _kw_ref(self, ref: str) -> Check:
        if ref in self.refs:
            return self.refs[ref]
        target = resolve_local(self.root, ref)
        if target is None:
            raise UnsupportedSchema(f"$ref {ref!r}")
        resolved: list[Check] = []
        self.refs[ref] = lambda x: resolved[0](x)  # lets a schema refer to itself
        resolved.append(self.compile(target))
        self.refs[ref] = resolved[0]
        return resolved[0]


def _accept(x: Any) -> bool:
    return True


def _reject(x: Any) -> bool:
    return False


def _all(checks: list[Check]) -> Check:
    """One check passing when all of ``checks`` pass, in order (no generator per call)."""
    if not checks:
        return _accept
    combined = checks[-1]
    for check in reversed(checks[:-1]):
        combined = _both(check, combined)
    return combined


def _both(first: Check, second: Check) -> Check:
    return lambda x: first(x) and second(x)


def resolve_local(root: Any, ref: str) -> Any:
    """The target of a ``#/...`` JSON-pointer reference within ``root``, or None."""
    if ref == "#":
        return root
    if not ref.startswith("#/"):
        return None
    node = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node
