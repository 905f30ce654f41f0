"""Hypothesis strategies that vary a sample message within what its JSON Schema allows.

The sample fixes the shape (which branch of a union, how long a list); every leaf is then drawn
anew: free text from all of Unicode (Chinese included), integers within their bounds, uuids,
the sample's instants in other UTC offsets, enum members. What a model rule beyond JSON Schema
refuses is discarded by the test, so what remains is "any valid message" of that shape.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

TEXT = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"))
CHINESE = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
ZONES = st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5))])


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = root["$defs"][schema["$ref"].split("/")[-1]]
    return schema


def _branch(schema: dict[str, Any], value: Any, root: dict[str, Any]) -> dict[str, Any]:
    """The union branch of `schema` that `value`'s shape belongs to."""
    options = schema.get("anyOf") or schema.get("oneOf")
    if not options:
        return _resolve(schema, root)
    for option in options:
        o = _resolve(option, root)
        kind = o.get("type")
        if (value is None and kind == "null") or (
            value is not None
            and kind != "null"
            and (kind != "string" or isinstance(value, str))
            and (kind != "object" or isinstance(value, dict))
        ):
            return o
    return _resolve(options[0], root)


def varied(schema: dict[str, Any], value: Any, root: dict[str, Any] | None = None) -> Any:
    """A strategy for values shaped like `value` and allowed by `schema`."""
    root = root or schema
    s = _branch(schema, value, root)
    if "const" in s:
        return st.just(s["const"])
    if "enum" in s:
        return st.sampled_from(s["enum"])
    kind = s.get("type")
    if value is None:
        return st.none()
    if kind == "object" and isinstance(value, dict):
        props = s.get("properties", {})
        if not props:  # free-form object: keep it
            return st.just(value)
        return st.fixed_dictionaries({k: varied(props[k], v, root) for k, v in value.items()})
    if kind == "array":
        return st.tuples(*(varied(s.get("items", {}), v, root) for v in value)).map(list)
    if kind == "integer":
        lo = s.get("minimum", s.get("exclusiveMinimum", -(2**40) - 1) + 1)
        hi = s.get("maximum", s.get("exclusiveMaximum", 2**40 + 1) - 1)
        return st.integers(min_value=lo, max_value=hi)
    if kind == "number":
        return st.floats(min_value=s.get("minimum"), max_value=s.get("maximum"), allow_nan=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "string":
        fmt = s.get("format")
        if fmt == "uuid":
            return st.uuids().map(str)
        if fmt == "date-time":  # the same instant in another offset: orderings stay valid
            instant = datetime.fromisoformat(value)
            return ZONES.map(lambda z: instant.astimezone(z).isoformat())
        if "pattern" in s:
            return st.just(value)  # codes such as currencies: keep the sample's
        lo, hi = s.get("minLength", 0), min(s.get("maxLength", 80), 80)
        return st.text(alphabet=st.one_of(TEXT, CHINESE), min_size=lo, max_size=hi)
    return st.just(value)
