"""REST-XML bodies <-> Python values, driven by botocore shapes (stdlib ElementTree).

The element names follow the rules botocore's own rest-xml serializer and parser apply: a
member's wire name is its `locationName` (else the member's name); a flattened list repeats its
elements in place under that name (or under its member's `locationName`, as botocore's parser
reads them), a wrapped list puts them inside one element named after the member, each named by
the list member's `locationName` (else "member"). Timestamps in bodies are ISO-8601 with
milliseconds and a Z, as S3 writes them.

Untrusted XML is parsed by expat >= 2.4, which bounds entity expansion ("billion laughs"), and
ElementTree resolves no external entities.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree

import botocore.model

from shadowlab.s3api.errors import S3Error

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
_MALFORMED = (
    "The XML you provided was not well-formed or did not validate against our published schema"
)


def format_timestamp(value: datetime) -> str:
    """S3's body timestamps: 2026-12-02T08:30:00.000Z."""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    utc = aware.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _scalar_text(shape: botocore.model.Shape, value: Any) -> str:
    kind = shape.type_name
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "timestamp":
        return format_timestamp(value)
    if kind == "blob":
        return base64.b64encode(value).decode("ascii")
    return str(value)


def to_element(shape: botocore.model.Shape, value: Any, name: str) -> ElementTree.Element:
    """One value as an element called `name` (lists: see `_append`)."""
    element = ElementTree.Element(name)
    _fill(element, shape, value)
    return element


def _fill(element: ElementTree.Element, shape: botocore.model.Shape, value: Any) -> None:
    if isinstance(shape, botocore.model.StructureShape):
        for member_name, member in shape.members.items():
            if member.serialization.get("location"):
                continue  # headers, status code: not part of the body
            item = value.get(member_name)
            if item is not None:
                _append(element, member, item, member.serialization.get("name", member_name))
    elif isinstance(shape, botocore.model.ListShape):
        item_name = shape.member.serialization.get("name", "member")
        for item in value:
            _append(element, shape.member, item, item_name)
    else:
        element.text = _scalar_text(shape, value)


def _append(
    parent: ElementTree.Element, shape: botocore.model.Shape, value: Any, name: str
) -> None:
    if isinstance(shape, botocore.model.ListShape) and shape.serialization.get("flattened"):
        for item in value:
            parent.append(to_element(shape.member, item, name))
    else:
        parent.append(to_element(shape, value, name))


def document(shape: botocore.model.Shape, value: Any, root: str) -> bytes:
    element = to_element(shape, value, root)
    element.set("xmlns", NAMESPACE)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(element)


# -- parsing request payloads --------------------------------------------------------------
def parse_document(shape: botocore.model.Shape, body: bytes) -> Any:
    """A request payload (CompleteMultipartUpload, Delete ...) as Python values; MalformedXML
    for anything that is not XML or does not fit the shape."""
    try:
        root = ElementTree.fromstring(body)
        return _from_element(shape, root)
    except (ElementTree.ParseError, ValueError) as exc:
        raise S3Error("MalformedXML", _MALFORMED) from exc


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]  # "{namespace}Part" -> "Part"


def _wire_key(member: botocore.model.Shape, member_name: str) -> str:
    """The element name botocore's rest-xml parser reads a member from."""
    if isinstance(member, botocore.model.ListShape) and member.serialization.get("flattened"):
        listed = member.member.serialization.get("name")
        if listed is not None:
            return str(listed)
    return str(member.serialization.get("name", member_name))


def _from_element(shape: botocore.model.Shape, element: ElementTree.Element) -> Any:
    if isinstance(shape, botocore.model.StructureShape):
        children: dict[str, list[ElementTree.Element]] = {}
        for child in element:
            children.setdefault(_local(child.tag), []).append(child)
        parsed: dict[str, Any] = {}
        for member_name, member in shape.members.items():
            found = children.get(_wire_key(member, member_name))
            if not found:
                continue
            if isinstance(member, botocore.model.ListShape):
                if member.serialization.get("flattened"):
                    parsed[member_name] = [_from_element(member.member, f) for f in found]
                else:
                    parsed[member_name] = [_from_element(member.member, f) for f in found[0]]
            else:
                parsed[member_name] = _from_element(member, found[0])
        return parsed
    if isinstance(shape, botocore.model.ListShape):
        return [_from_element(shape.member, child) for child in element]
    return scalar(shape, element.text or "")


def scalar(shape: botocore.model.Shape, text: str) -> Any:
    """A text value (element, header or query) as the shape's Python type; ValueError if not."""
    kind = shape.type_name
    if kind in ("integer", "long"):
        return int(text.strip())
    if kind in ("float", "double"):
        return float(text)
    if kind == "boolean":
        lowered = text.strip().lower()
        if lowered not in ("true", "false"):
            raise ValueError(f"not a boolean: {text!r}")
        return lowered == "true"
    if kind == "timestamp":
        return parse_timestamp(text)
    if kind == "blob":
        return base64.b64decode(text, validate=True)
    return text


def parse_timestamp(text: str) -> datetime:
    """ISO-8601 or RFC 1123 (headers such as If-Modified-Since) or epoch seconds."""
    from email.utils import parsedate_to_datetime

    text = text.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return datetime.fromtimestamp(float(text), UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
