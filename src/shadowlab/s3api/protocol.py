"""S3's REST-XML wire format for one operation, read from botocore's `s3` model.

Input members come from where the model locates them: the URI (Bucket, Key), the query string,
single headers, header maps by prefix (`x-amz-meta-*` -> Metadata) and the payload (a streaming
blob such as PutObject's Body, or an XML structure such as CompleteMultipartUpload's). Output
members go back the same way: `location: header` members as headers (timestamps in RFC 1123
unless the member says otherwise), header maps by prefix, a payload member as the whole body, and
every other member as an XML document. The document's root element is the one S3 sends; the
model does not name it (botocore's parser ignores it), so the few that are not the operation's
name plus "Result" are listed in `_ROOTS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from email.utils import format_datetime
from typing import Any

import botocore.model

from shadowlab.s3api import xmlshapes
from shadowlab.s3api.errors import S3Error
from shadowlab.s3api.routes import Target

_ROOTS = {
    "ListObjectsV2": "ListBucketResult",
    "ListObjects": "ListBucketResult",
    "ListBuckets": "ListAllMyBucketsResult",
    "CreateMultipartUpload": "InitiateMultipartUploadResult",
    "DeleteObjects": "DeleteResult",
}


def parse_input(
    operation: botocore.model.OperationModel,
    target: Target,
    headers: Mapping[str, str],
    body: bytes,
) -> dict[str, Any]:
    """The operation's input members found in the request, as Python values.

    `headers` are lower-case names; a value that cannot be converted to its member's type is
    S3's InvalidArgument, naming the header or query parameter."""
    shape = operation.input_shape
    if shape is None:
        return {}
    params: dict[str, Any] = {}
    payload = shape.serialization.get("payload")
    for name, member in shape.members.items():
        serialization = member.serialization
        location = serialization.get("location")
        wire = serialization.get("name", name)
        if location == "uri":
            params[name] = target.key if wire.rstrip("+") == "Key" else target.bucket
        elif location == "querystring":
            if wire in target.query:
                params[name] = _convert(member, target.query[wire], wire)
        elif location == "header":
            value = headers.get(wire.lower())
            if value is not None:
                params[name] = _convert(member, value, wire)
        elif location == "headers":
            prefix = wire.lower()
            found = {k[len(prefix) :]: v for k, v in headers.items() if k.startswith(prefix)}
            if found:
                params[name] = found
        elif name == payload:
            if member.type_name == "blob":
                params[name] = body
            elif body.strip():
                params[name] = xmlshapes.parse_document(member, body)
    return params


def _convert(member: botocore.model.Shape, text: str, wire: str) -> Any:
    if isinstance(member, botocore.model.ListShape):
        return [part.strip() for part in text.split(",")]
    try:
        return xmlshapes.scalar(member, text)
    except ValueError:
        raise S3Error(
            "InvalidArgument",
            f"Invalid value {text[:64]!r} for {wire}",
            ArgumentName=wire,
            ArgumentValue=text[:64],
        ) from None


def header_text(member: botocore.model.Shape, value: Any) -> str:
    kind = member.type_name
    if kind == "timestamp":
        assert isinstance(value, datetime)
        if member.serialization.get("timestampFormat") == "iso8601":
            return xmlshapes.format_timestamp(value)
        return format_datetime(value, usegmt=True)
    if kind == "boolean":
        return "true" if value else "false"
    return str(value)


def serialize_output(
    operation: botocore.model.OperationModel, output: Mapping[str, Any]
) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) of a success: members the output shape does not declare never
    reach the wire, as on the JSON side."""
    status = int(operation.http.get("responseCode", 200))
    shape = operation.output_shape
    headers: list[tuple[str, str]] = []
    if shape is None:
        return status, headers, b""
    body = b""
    payload = shape.serialization.get("payload")
    in_body = is_xml = False
    for name, member in shape.members.items():
        value = output.get(name)
        if value is None:
            continue
        serialization = member.serialization
        location = serialization.get("location")
        wire = serialization.get("name", name)
        if location == "header":
            headers.append((wire, header_text(member, value)))
        elif location == "headers":
            headers.extend((wire + key, str(item)) for key, item in value.items())
        elif location == "statusCode":
            status = int(value)
        elif name == payload:
            if member.type_name == "blob":
                body = bytes(value)
            else:
                body, is_xml = xmlshapes.document(member, value, wire), True
        else:
            in_body = True
    if in_body and payload is None:
        root = _ROOTS.get(operation.name, operation.name + "Result")
        body, is_xml = xmlshapes.document(shape, output, root), True
    if is_xml:
        headers.append(("Content-Type", "application/xml"))
    return status, headers, body
