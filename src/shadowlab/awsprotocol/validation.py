"""Check a value against a botocore shape, reporting every violation the way AWS does.

Two kinds of failure, as on AWS: a value of the wrong JSON type cannot even be deserialised
(SerializationException, the first one found), while values of the right type that break the
model's constraints are all collected into one ValidationException. Members are visited in the
model's declaration order; within one value the bounds come first, then pattern, then enum.

Every rule is read from the shape's metadata (`required`, `min`, `max`, `pattern`, `enum`,
`union`), so nothing here knows about SageMaker in particular; the few patterns shadowlab widens
on purpose are listed in `patterns.EXTENSIONS`.

A union (a structure with exactly one member set) that has none or several set cannot be
deserialised: SerializationException, as Smithy's protocol tests require of AWS services
(`MalformedUnionMultipleFieldsSet`, `...NoFieldsSet`, `...KnownAndUnknownFieldsSet`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import botocore.model

from shadowlab.awsprotocol import coral, patterns, wirevalues
from shadowlab.errors import SerializationException, ValidationException, excerpt

_SIZED = frozenset({"string", "blob", "list", "map"})
_MISMATCH = object()  # `_convert`'s answer for a value that cannot become the shape's type

Check = tuple[str, Callable[[Any], bool]]


# The most violations a ValidationException lists (the rest are counted): a request may hold
# tens of thousands (a 16 MB list of bad tags), each worth a sentence, and only the first few
# help anyone. Type mismatches need no cap: the first one is the error.
LISTED_VIOLATIONS = 10


@dataclass
class _Findings:
    strict: bool
    # The most constraint violations worded and kept; None keeps them all.
    limit: int | None = None
    # (is a type mismatch, message), in the order found.
    items: list[tuple[bool, str]] = field(default_factory=list)
    # Constraint violations found, kept or not.
    violations: int = 0

    def _add(self, is_mismatch: bool, words: Callable[[], str]) -> None:
        # Messages are worded only when kept: wording renders the value, and an uncapped
        # rendering per violation would cost O(size of request x violations).
        if is_mismatch:
            self.items.append((True, words()))
            return
        self.violations += 1
        if self.limit is None or self.violations <= self.limit:
            self.items.append((False, words()))

    def violation(self, shape: botocore.model.Shape, value: Any, path: str, text: str) -> None:
        sensitive = coral.is_sensitive(shape)
        self._add(
            False,
            lambda: coral.violation(coral.shown(shape, value), path, text, sensitive=sensitive),
        )

    def missing(self, path: str) -> None:
        self._add(False, lambda: coral.violation(None, path, "Member must not be null"))

    def mismatch(self, shape: botocore.model.Shape, value: Any, path: str) -> None:
        self._add(True, lambda: coral.mismatch(shape, value, path))

    def malformed(self, text: str) -> None:
        """A value that cannot be deserialised for a reason other than its JSON type."""
        self._add(True, lambda: text)

    def absorb(self, other: _Findings) -> None:
        """Append what `other` found (a map's values, reported after the map itself)."""
        listed = 0
        for is_mismatch, text in other.items:
            listed += not is_mismatch
            self._add(is_mismatch, functools.partial(str, text))
        self.violations += other.violations - listed  # those `other` counted but did not keep


def _java_length(text: str) -> int:
    # AWS measures strings in UTF-16 code units (Java's String.length()): an emoji counts 2.
    # surrogatepass: a lone surrogate is one code unit, as in Java, and never an exception
    # (the parser refuses them, but this also checks values that did not come from a request).
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _measure(shape: botocore.model.Shape, value: Any) -> float:
    if shape.type_name == "string":
        return _java_length(value)
    if shape.type_name in _SIZED:
        return len(value)
    return float(value)


def _at_most(shape: botocore.model.Shape, limit: float) -> Callable[[Any], bool]:
    return lambda value: _measure(shape, value) <= limit


def _at_least(shape: botocore.model.Shape, limit: float) -> Callable[[Any], bool]:
    return lambda value: _measure(shape, value) >= limit


def _matching(pattern: str) -> Callable[[Any], bool]:
    return lambda value: patterns.matches(pattern, value)


def _one_of(allowed: frozenset[str]) -> Callable[[Any], bool]:
    return lambda value: value in allowed


@functools.lru_cache(maxsize=4096)
def checks(shape: botocore.model.Shape) -> tuple[Check, ...]:
    """The constraints on one value of `shape`: (the text AWS prints, a test of the value).

    The test receives the converted value (bytes for a blob, an int for an integer ...).
    Cached per shape object (botocore reuses them for a cached operation), bounded so that
    callers building fresh shapes cannot grow it without limit.
    """
    metadata = shape.metadata
    kind = shape.type_name
    found: list[Check] = []
    if kind in coral.NUMERIC or kind in _SIZED:
        word = "value" if kind in coral.NUMERIC else "length"
        high, low = metadata.get("max"), metadata.get("min")
        if high is not None:
            text = f"Member must have {word} less than or equal to {coral.bound(shape, high)}"
            found.append((text, _at_most(shape, high)))
        # A length of at least 0 says nothing; a numeric minimum of 0 does.
        if low is not None and (kind in coral.NUMERIC or low > 0):
            text = f"Member must have {word} greater than or equal to {coral.bound(shape, low)}"
            found.append((text, _at_least(shape, low)))
    if kind == "string":
        pattern = metadata.get("pattern")
        if pattern is not None:
            pattern = patterns.effective(shape.name, pattern)
            found.append(
                (f"Member must satisfy regular expression pattern: {pattern}", _matching(pattern))
            )
        allowed = metadata.get("enum")
        if allowed is not None:
            text = f"Member must satisfy enum value set: [{', '.join(allowed)}]"
            found.append((text, _one_of(frozenset(allowed))))
    return tuple(found)


def _convert(shape: botocore.model.Shape, value: Any) -> Any:
    """`value` as the shape's Python type, or _MISMATCH when the JSON type is wrong."""
    kind = shape.type_name
    converted: Any
    if kind == "string":
        converted = value if isinstance(value, str) else None
    elif kind == "boolean":
        converted = value if isinstance(value, bool) else None
    elif kind in ("integer", "long"):
        converted = wirevalues.as_integer(kind, value)
    elif kind in coral.FLOATING:
        converted = wirevalues.as_float(value)
    elif kind == "timestamp":
        converted = wirevalues.as_datetime(value)
    elif kind == "blob":
        converted = wirevalues.as_bytes(value)
    elif kind == "list":
        converted = value if isinstance(value, list | tuple) else None
    elif kind in ("map", "structure"):
        converted = value if isinstance(value, Mapping) else None
    else:
        converted = value
    return _MISMATCH if converted is None else converted


def _failed(shape: botocore.model.Shape, converted: Any) -> list[str]:
    return [text for text, ok in checks(shape) if not ok(converted)]


def _walk(
    shape: botocore.model.Shape, value: Any, path: str, out: _Findings, *, own: bool = True
) -> None:
    """Check a non-null value; `own=False` skips the value's own constraints (a map reports
    those for its values in a single message)."""
    converted = _convert(shape, value)
    if converted is _MISMATCH:
        out.mismatch(shape, value, path)
        return
    if own:
        for text in _failed(shape, converted):
            out.violation(shape, value, path, text)
    if isinstance(shape, botocore.model.StructureShape):
        _walk_structure(shape, converted, path, out)
    elif isinstance(shape, botocore.model.ListShape):
        for index, item in enumerate(converted, start=1):
            item_path = coral.element_path(path, index)
            if item is None:
                out.missing(item_path)
            else:
                _walk(shape.member, item, item_path, out)
    elif isinstance(shape, botocore.model.MapShape):
        _walk_map(shape, converted, path, out)


def _walk_structure(
    shape: botocore.model.StructureShape, value: Mapping[str, Any], path: str, out: _Findings
) -> None:
    if shape.is_document_type:
        return  # free-form JSON: nothing to check
    members = shape.members
    if shape.metadata.get("union"):
        # Undeclared keys count too: a known member beside an unknown one is still two.
        chosen = [key for key, item in value.items() if item is not None]
        if len(chosen) != 1:
            out.malformed(_union_problem(shape, chosen, path))
            return
    required = set(shape.required_members)
    for name, member in members.items():
        member_path = coral.member_path(path, name)
        item = value.get(name)
        if item is None:
            if name in required:
                out.missing(member_path)
        else:
            _walk(member, item, member_path, out)
    if out.strict:
        for key in value:
            if key not in members:
                out.items.append((True, coral.undeclared(key, shape, path)))


def _union_problem(shape: botocore.model.StructureShape, chosen: list[str], path: str) -> str:
    where = f" at '{path}'" if path else ""
    named = f": {', '.join(excerpt(key, 64) for key in chosen[:10])}" if chosen else ""
    return (
        f"Union {shape.name}{where} must have exactly one member set; {len(chosen)} are set{named}"
    )


def _walk_map(
    shape: botocore.model.MapShape, value: Mapping[Any, Any], path: str, out: _Findings
) -> None:
    # Coral reports a map's keys once and its values once, at the map's own path, listing
    # every constraint of the key (or value) shape; then whatever lies inside the values.
    key_shape, value_shape = shape.key, shape.value
    bad_keys = False
    for key in value:
        converted = _convert(key_shape, key)
        bad_keys = bad_keys or converted is _MISMATCH or bool(_failed(key_shape, converted))
    inner = _Findings(out.strict, out.limit)
    bad_values = has_null = False
    for key, item in value.items():
        if item is None:
            has_null = True
            continue
        converted = _convert(value_shape, item)
        if converted is not _MISMATCH and _failed(value_shape, converted):
            bad_values = True
        _walk(value_shape, item, coral.element_path(path, key), inner, own=False)
    if bad_keys:
        texts = ", ".join(text for text, _ in checks(key_shape))
        out.violation(shape, value, path, f"Map keys must satisfy constraint: [{texts}]")
    if bad_values or has_null:
        texts_list = [text for text, _ in checks(value_shape)]
        if has_null:
            texts_list.append("Member must not be null")
        texts = ", ".join(texts_list)
        out.violation(shape, value, path, f"Map value must satisfy constraint: [{texts}]")
    out.absorb(inner)


def _findings(
    shape: botocore.model.Shape, value: Any, root: str, strict: bool, limit: int | None = None
) -> _Findings:
    out = _Findings(strict, limit)
    if value is None:
        out.missing(root)
    else:
        _walk(shape, value, root, out)
    return out


def validation_errors(
    shape: botocore.model.Shape, value: Any, *, root: str = "", strict: bool = False
) -> list[str]:
    """Every problem with `value` as `shape`, type mismatches and constraint violations alike,
    in the order found; empty when it is valid. Raises nothing.

    `root` prefixes every path (`productionVariants.1.member`, say). With `strict`, members
    the shape does not declare are reported too (requests ignore them; our responses must not
    carry them).
    """
    return [text for _, text in _findings(shape, value, root, strict).items]


def validate(shape: botocore.model.Shape, value: Any, *, root: str = "") -> None:
    """Raise SerializationException for the first value of the wrong type, else
    ValidationException listing the constraint violations (the first LISTED_VIOLATIONS of
    them, and how many there are); return if `value` is valid."""
    found = _findings(shape, value, root, strict=False, limit=LISTED_VIOLATIONS)
    for is_mismatch, text in found.items:
        if is_mismatch:
            raise SerializationException(text)
    if found.items:
        listed = [text for _, text in found.items]
        raise ValidationException(coral.validation_message(listed, found.violations))
