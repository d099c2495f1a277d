"""The wording of AWS validation errors (Coral, the framework behind the JSON 1.1 services).

Real SageMaker answers, for example::

    1 validation error detected: Value 'ml.t3.medium' at
    'productionVariants.1.member.instanceType' failed to satisfy constraint: Member must
    satisfy enum value set: [ml.r5d.12xlarge, ...]

Coral renders the offending value with Java's `toString()` inside single quotes (numbers too:
`Value '0' at 'limit'`), writes a missing value as a bare `null`, and leaves the value out
altogether for members the model marks `sensitive`. Clients and people match on this text, so
it is kept exactly, with one exception: a value (or map key) longer than `ECHO_LIMIT`
characters is cut there and marked `...`, so that an error never repeats megabytes of input.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import botocore.model

from shadowlab.errors import ECHO_LIMIT, excerpt

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
    """A list element (1-based index) or a map value (its key), as Coral writes them; a map
    key is the client's text and is shortened like any other echoed value."""
    return f"{container}.{excerpt(str(index_or_key))}.member"


def _pieces(value: Any) -> Iterator[str]:
    # Java's toString(), piece by piece, so that a bounded rendering stops early instead of
    # printing a 16 MB list to keep its first characters. Depth is bounded by the parser.
    if isinstance(value, Mapping):
        yield "{"
        for index, (key, item) in enumerate(value.items()):
            if index:
                yield ", "
            yield from _pieces(key)
            yield "="
            yield from _pieces(item)
        yield "}"
    elif isinstance(value, list | tuple):
        yield "["
        for index, item in enumerate(value):
            if index:
                yield ", "
            yield from _pieces(item)
        yield "]"
    elif value is None:
        yield "null"
    elif isinstance(value, bool):
        yield "true" if value else "false"
    elif isinstance(value, str):
        yield value
    elif isinstance(value, float):
        yield repr(value)
    elif isinstance(value, datetime):
        yield value.isoformat()
    elif isinstance(value, bytes | bytearray):
        yield base64.b64encode(value).decode("ascii")
    else:
        yield str(value)


def render(value: Any, limit: int | None = None) -> str:
    """A value as Java's toString() would print it (strings bare, lists [a, b], maps {k=v});
    with `limit`, its first `limit` characters followed by `...` when it is longer."""
    if limit is None:
        return "".join(_pieces(value))
    out: list[str] = []
    room = limit
    for piece in _pieces(value):
        if len(piece) > room:
            out.append(piece[:room])
            return "".join(out) + "..."
        out.append(piece)
        room -= len(piece)
    return "".join(out)


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
    return f"Value '{render(value, ECHO_LIMIT)}'"


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


def validation_message(errors: list[str], total: int | None = None) -> str:
    """`1 validation error detected: A` / `2 validation errors detected: A; B`.

    `total` counts violations found beyond those listed (a request can hold tens of thousands,
    each worth a sentence): `12 validation errors detected: A; ...; J; and 2 more`.
    """
    count = len(errors) if total is None else total
    noun = "error" if count == 1 else "errors"
    more = f"; and {count - len(errors)} more" if count > len(errors) else ""
    return f"{count} validation {noun} detected: " + "; ".join(errors) + more
