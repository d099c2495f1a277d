"""Hypothesis strategies for request bodies, built from botocore's input shapes.

`body(shape, broken=False)` draws values that satisfy the shape (types, required members,
lengths, ranges, enums and, where Python's `re` can read the pattern, patterns) so that requests
get past validation into the services. `broken=True` draws the same tree with damage anywhere:
wrong JSON types, missing required and undeclared members, values out of range or length,
invalid enums, unpaired surrogates, huge strings and arrays nested past the parser's limit.

Deep nesting cannot be built as Python lists (json.dumps would hit the recursion limit first),
so it is drawn as a placeholder string that `encode` replaces with the brackets.
"""

from __future__ import annotations

import base64
import json
import re
import string
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import botocore.model
from hypothesis import strategies as st

from shadowlab.awsprotocol import patterns

JAVA_INT = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_DEEP = "\x00deep-7f3a9c\x00"  # stands for nested arrays; json.dumps escapes it as below
_DEEP_TOKEN = re.compile(r'"\\u0000deep-7f3a9c\\u0000(\d+)"')
_NAME_CHARS = string.ascii_letters + string.digits + "-"

Values = st.SearchStrategy[Any]

# Any JSON value, for the wrong-type and undeclared-member cases.
json_values: Values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
# Strings no member accepts: an unpaired surrogate (either half, alone or beside text).
unpaired: Values = st.builds(
    lambda before, surrogate, after: before + surrogate + after,
    st.text(_NAME_CHARS, max_size=3),
    st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"]),
    st.text(_NAME_CHARS, max_size=3),
)
huge: Values = st.sampled_from([300, 70_000, 1_100_000]).map(lambda n: "A" * n)
deep: Values = st.sampled_from([65, 1_000, 100_000]).map(lambda n: f"{_DEEP}{n}")


def encode(document: Any, ascii_only: bool) -> bytes:
    """The body bytes: JSON text with deep placeholders expanded; unpaired surrogates become
    `\\udXXX` escapes (ascii_only) or raw CESU-8 bytes (otherwise), both hostile."""
    text = json.dumps(document, ensure_ascii=ascii_only)  # NUL is always escaped
    text = _DEEP_TOKEN.sub(lambda m: "[" * int(m.group(1)) + "]" * int(m.group(1)), text)
    return text.encode("utf-8", "surrogatepass")


def _python_pattern(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None  # Java-only syntax (\p{L}): generated another way


def _string(shape: botocore.model.Shape) -> Values:
    meta = shape.metadata
    if "enum" in meta:
        return st.sampled_from(meta["enum"])
    low, high = meta.get("min", 0), meta.get("max", 256)
    pattern = meta.get("pattern")

    def fits(text: str) -> bool:
        # Lengths in UTF-16 units, as the server counts them.
        size = len(text.encode("utf-16-le")) // 2
        return low <= size <= high and (pattern is None or patterns.matches(pattern, text))

    compiled = _python_pattern(pattern) if pattern else None
    if compiled is not None:
        return st.from_regex(compiled, fullmatch=True).filter(fits)
    plain = st.text(_NAME_CHARS, min_size=max(low, 1), max_size=min(high, low + 24))
    return plain.filter(fits) if pattern else plain


def _scalar(shape: botocore.model.Shape) -> Values:
    kind, meta = shape.type_name, shape.metadata
    if kind == "string":
        return _string(shape)
    if kind in JAVA_INT:
        low, high = JAVA_INT[kind]
        return st.integers(int(meta.get("min", low)), int(meta.get("max", high)))
    if kind in ("float", "double"):
        return st.floats(meta.get("min"), meta.get("max"), allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "timestamp":
        moments = st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC))
        return st.integers(0, 4_000_000_000) | moments.map(datetime.isoformat)
    if kind == "blob":
        return st.binary(max_size=16).map(lambda raw: base64.b64encode(raw).decode())
    raise AssertionError(f"no strategy for {kind}")


def _invalid_scalar(shape: botocore.model.Shape) -> Values:
    """Values of the right JSON type that break the shape's constraints, or of the wrong one."""
    kind, meta = shape.type_name, shape.metadata
    options: list[Values] = [json_values]
    if kind == "string":
        high = meta.get("max", 256)
        options += [
            unpaired,
            huge,
            st.text(min_size=1, max_size=3).map(lambda tail: "x" * high + tail),  # max + 1..3
            st.sampled_from(["", " ", "bad_name!", "Ünïcödé", "NotAnEnumValue", "a\x00b"]),
        ]
    elif kind in JAVA_INT:
        low, high = JAVA_INT[kind]
        edges = [meta.get("min", low) - 1, meta.get("max", high) + 1, 2**63, 1.5, "3"]
        options.append(st.sampled_from(edges))
    elif kind in ("float", "double"):
        options.append(st.sampled_from([1e308, -1e308, "1.0", True]))
    elif kind == "timestamp":
        options.append(st.sampled_from(["yesterday", 1e20, -1e20, "2020-13-45T00:00:00Z"]))
    elif kind == "blob":
        options.append(st.sampled_from(["not base64!", "===="]))
    return st.one_of(options)


class Shapes:
    """Strategies per shape, memoised (SageMaker shapes are shared between operations).
    `names` overrides members by name (existing resource names, to get past not-found)."""

    def __init__(self, names: Mapping[str, Values] | None = None) -> None:
        self.names = dict(names or {})
        self._memo: dict[tuple[str, bool], Values] = {}

    def body(self, shape: botocore.model.StructureShape, broken: bool = False) -> Values:
        """A request body (always a JSON object at the top)."""
        return self._structure(shape, broken)

    def _value(self, shape: botocore.model.Shape, broken: bool) -> Values:
        key = (shape.name, broken)
        if key not in self._memo:
            # Deferred: a shape that contains itself would otherwise recurse here forever.
            self._memo[key] = st.deferred(lambda: self._build(shape, broken))
        return self._memo[key]

    def _build(self, shape: botocore.model.Shape, broken: bool) -> Values:
        proper: Values
        if isinstance(shape, botocore.model.StructureShape):
            proper = self._structure(shape, broken)
        elif isinstance(shape, botocore.model.ListShape):
            member = self._value(shape.member, broken)
            low = shape.metadata.get("min", 0)
            proper = st.lists(member, min_size=low, max_size=min(shape.metadata.get("max", 3), 3))
        elif isinstance(shape, botocore.model.MapShape):
            keys = self._value(shape.key, False)
            if broken:  # still hashable: strings only, but bad ones
                keys = keys | unpaired | huge | st.text(max_size=5)
            values = self._value(shape.value, broken)
            low = shape.metadata.get("min", 0)
            proper = st.dictionaries(keys, values, min_size=low, max_size=max(low, 2))
        else:
            proper = _scalar(shape)
            if broken:
                return proper | _invalid_scalar(shape) | deep
        if broken:
            return proper | json_values | deep
        return proper

    def _structure(self, shape: botocore.model.StructureShape, broken: bool) -> Values:
        if shape.is_document_type:
            return json_values
        members = {name: self._value(member, broken) for name, member in shape.members.items()}
        for name in members.keys() & self.names.keys():
            members[name] = self.names[name] | members[name]
        required = set(shape.required_members)
        if not broken:
            return st.fixed_dictionaries(
                {name: members[name] for name in required},
                optional={name: s for name, s in members.items() if name not in required},
            )
        # Every member optional (required ones go missing) and undeclared ones added.
        return st.tuples(
            st.fixed_dictionaries({}, optional=members),
            st.dictionaries(st.text(max_size=12) | unpaired, json_values, max_size=2),
        ).map(_merged)


def _merged(parts: tuple[dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
    declared, undeclared = parts
    return {**undeclared, **declared}


def raw_bodies() -> Values:
    """Bodies that are not a JSON object at all, or not JSON, or not UTF-8."""
    texts: list[Callable[[int], bytes]] = [
        lambda n: b"[" * n + b"]" * n,
        lambda n: b'{"a":' * n + b"1" + b"}" * n,
        lambda n: b"{" * n,
        lambda n: b'{"ModelName": "' + b"\xed\xa0\x80" * n + b'"}',
    ]
    sized = st.builds(lambda make, n: make(n), st.sampled_from(texts), st.sampled_from([1, 70]))
    return st.one_of(
        sized,
        st.binary(max_size=40),
        st.sampled_from(
            [b"null", b"[]", b'"x"', b"1e999", b'{"MaxResults": NaN}', b"\xef\xbb\xbf{}"]
        ),
        json_values.map(lambda value: json.dumps(value).encode()),
    )
