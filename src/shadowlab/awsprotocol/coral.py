"""The wording of AWS validation errors (Coral, the framework behind the JSON 1.1 services).

Real SageMaker answers, for example::

    1 validation error detected: Value 'ml.t3.medium' at
    'productionVariants.1.member.instanceType' failed to satisfy constraint: Member must
    satisfy enum value set: [ml.r5d.12xlarge, ...]

Coral renders the offending value with Java's `toString()` inside single quotes (numbers too:
`Value '0' at 'limit'`), writes a missing value as a bare `null`, and leaves the value out
altogether for members the model marks `sensitive`. Clients and people match on this text, so
it is kept exactly.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import botocore.model

FLOATING = frozenset({"float", "double"})
NUMERIC = frozenset({"integer", "long"}) | FLOATING

# What a type mismatch says the value could not become (Coral names the Java types).
TYPE_NAMES = {
    "string": "String",
    "integer": "Integer",
    "long": "Long",
    "float": "Float",
    "double": "Double",
    "boolean": "Boolean",
    "timestamp": "Timestamp",
    "blob": "Blob",
    "list": "List",
    "map": "Map",
    "structure": "Structure",
}


def member_path(parent: str, name: str) -> str:
    """The path segment for a member: its name with the first letter lower-cased."""
    segment = name[:1].lower() + name[1:]
    return f"{parent}.{segment}" if parent else segment


def element_path(container: str, index_or_key: object) -> str:
    """A list element (1-based index) or a map value (its key), as Coral writes them."""
    return f"{container}.{index_or_key}.member"


def render(value: Any) -> str:
    """A value as Java's toString() would print it (strings bare, lists [a, b], maps {k=v})."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{render(k)}={render(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(render(item) for item in value) + "]"
    return str(value)


def shown(shape: botocore.model.Shape, value: Any) -> Any:
    """The value as AWS holds it: a float shape's JSON integer is a Java double (`1.0`)."""
    if shape.type_name in FLOATING and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def bound(shape: botocore.model.Shape, limit: float) -> str:
    """A min/max as the message prints it: `1.0` for float shapes, `1` otherwise."""
    return repr(float(limit)) if shape.type_name in FLOATING else str(int(limit))


def is_sensitive(shape: botocore.model.Shape) -> bool:
    """Whether the model hides this value (or the elements of this collection) from messages."""
    if shape.metadata.get("sensitive"):
        return True
    if isinstance(shape, botocore.model.ListShape):
        return bool(shape.member.metadata.get("sensitive"))
    if isinstance(shape, botocore.model.MapShape):
        return bool(shape.value.metadata.get("sensitive"))
    return False


def _subject(value: Any, sensitive: bool) -> str:
    if value is None:
        return "Value null"
    if sensitive:
        return "Value"
    return f"Value '{render(value)}'"


def violation(value: Any, path: str, constraint: str, *, sensitive: bool = False) -> str:
    """One constraint violation, e.g. `Value 'a_b' at 'endpointName' failed to satisfy ...`."""
    return f"{_subject(value, sensitive)} at '{path}' failed to satisfy constraint: {constraint}"


def mismatch(shape: botocore.model.Shape, value: Any, path: str) -> str:
    """A value of the wrong JSON type, e.g. `Value 'abc' at 'x' cannot be converted to Integer`."""
    target = TYPE_NAMES.get(shape.type_name, shape.type_name)
    return f"{_subject(value, is_sensitive(shape))} at '{path}' cannot be converted to {target}"


def undeclared(key: str, shape: botocore.model.Shape, path: str) -> str:
    """A member the shape does not declare (only reported when checking our own output)."""
    return f"Member '{key}' at '{member_path(path, key)}' is not declared in {shape.name}"


def validation_message(errors: list[str]) -> str:
    """`1 validation error detected: A` / `2 validation errors detected: A; B`."""
    noun = "error" if len(errors) == 1 else "errors"
    return f"{len(errors)} validation {noun} detected: " + "; ".join(errors)
