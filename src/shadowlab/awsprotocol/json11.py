"""AWS JSON 1.1 (SageMaker's control-plane protocol): requests in, responses out.

A request is `POST /` with `X-Amz-Target: SageMaker.<Operation>` and a JSON object body. It is
parsed, validated against the operation's input shape and converted to plain Python values
(datetimes for timestamps, bytes for blobs). Responses are built from the output shape only:
members a service returns beyond it are internal and never reach the wire. Errors are
`awsprotocol.errors`' to encode, for both JSON protocols.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Any

import botocore.model

from shadowlab.awsprotocol import wirevalues
from shadowlab.awsprotocol.jsonbody import decode_object
from shadowlab.awsprotocol.validation import validate
from shadowlab.errors import UnknownOperationException, excerpt


@functools.cache
def _operation(service: botocore.model.ServiceModel, name: str) -> botocore.model.OperationModel:
    # botocore builds a fresh OperationModel (and re-resolves its shapes) on every call.
    return service.operation_model(name)


def parse_request(
    service: botocore.model.ServiceModel, target: str | None, body: bytes
) -> tuple[botocore.model.OperationModel, dict[str, Any]]:
    """The operation named by X-Amz-Target and its validated, converted parameters.

    Raises UnknownOperationException (bad target), SerializationException (a body that
    cannot be read, see `jsonbody`, or a value of the wrong type) or ValidationException
    (constraint violations).
    """
    prefix = service.metadata.get("targetPrefix", "")
    if not target:
        raise UnknownOperationException(
            f"Missing X-Amz-Target header; expected '{prefix}.<OperationName>'"
        )
    head, dot, name = target.partition(".")
    if head != prefix or not dot or not name:
        raise UnknownOperationException(
            f"X-Amz-Target '{excerpt(target)}' is not of the form '{prefix}.<OperationName>'"
        )
    try:
        operation = _operation(service, name)
    except botocore.model.OperationNotFoundError:
        raise UnknownOperationException(
            f"Operation '{excerpt(name)}' is not supported by this service"
        ) from None
    params = decode_object(body)
    shape = operation.input_shape
    if shape is None:
        return operation, {}
    validate(shape, params)
    return operation, from_wire(shape, params)


def from_wire(shape: botocore.model.Shape, value: Any) -> Any:
    """A validated JSON value as Python values; members the shape does not declare are dropped.

    SageMaker's members all travel under their own names (no `locationName`), so member names
    are wire names; a test guards that assumption against model updates.
    """
    if isinstance(shape, botocore.model.StructureShape):
        if shape.is_document_type:
            return value
        return {
            name: from_wire(member, value[name])
            for name, member in shape.members.items()
            if value.get(name) is not None
        }
    if isinstance(shape, botocore.model.ListShape):
        return [from_wire(shape.member, item) for item in value]
    if isinstance(shape, botocore.model.MapShape):
        return {key: from_wire(shape.value, item) for key, item in value.items()}
    kind = shape.type_name
    if kind == "timestamp":
        return wirevalues.as_datetime(value)
    if kind == "blob":
        return wirevalues.as_bytes(value)
    if kind in ("integer", "long"):
        return wirevalues.as_integer(kind, value)
    if kind in ("float", "double"):
        return wirevalues.as_float(value)
    return value


def _timestamp(value: Any) -> float:
    if isinstance(value, datetime):
        return wirevalues.epoch_seconds(value)
    converted = wirevalues.as_datetime(value)  # epoch numbers or ISO-8601 text
    if converted is None:
        raise TypeError(f"cannot serialise {value!r} as a timestamp")
    return wirevalues.epoch_seconds(converted)


def to_wire(shape: botocore.model.Shape, value: Any) -> Any:
    """An output value as JSON-able data for `shape`: declared members only, None omitted,
    timestamps as epoch seconds, blobs as base64 text. A value that cannot take the shape
    (a list where a structure belongs) raises TypeError: a bug on our side, never the caller's.
    """
    if value is None:
        return None
    if isinstance(value, Enum):
        value = value.value
    if isinstance(shape, botocore.model.StructureShape):
        if shape.is_document_type:
            return value
        if not isinstance(value, Mapping):
            raise TypeError(f"{shape.name} must be a mapping, got {type(value).__name__}")
        out: dict[str, Any] = {}
        for name, member in shape.members.items():
            wire = to_wire(member, value.get(name))
            if wire is not None:
                out[name] = wire
        return out
    if isinstance(shape, botocore.model.ListShape):
        if isinstance(value, str | bytes | Mapping):
            raise TypeError(f"{shape.name} must be a list, got {type(value).__name__}")
        return [to_wire(shape.member, item) for item in value if item is not None]
    if isinstance(shape, botocore.model.MapShape):
        if not isinstance(value, Mapping):
            raise TypeError(f"{shape.name} must be a mapping, got {type(value).__name__}")
        return {
            str(to_wire(shape.key, key)): to_wire(shape.value, item)
            for key, item in value.items()
            if item is not None
        }
    return _scalar_to_wire(shape.type_name, value)


def _scalar_to_wire(kind: str, value: Any) -> Any:
    if kind == "timestamp":
        return _timestamp(value)
    if kind == "blob":
        return wirevalues.base64_text(value)
    if kind == "boolean":
        return bool(value)
    if kind in ("integer", "long"):
        return int(value)
    if kind in ("float", "double"):
        return float(value)
    if kind == "string":
        return str(value)
    return value


def utf8_json(text: str) -> bytes:
    # Requests with unpaired surrogates are refused, but a stored value or a message may still
    # hold one; UTF-8 cannot encode it, and backslashreplace writes it as `\ud800`, which
    # json.dumps only ever leaves inside a string literal, where it is the JSON escape for the
    # same code unit. The body stays valid JSON instead of the response becoming a crash.
    return text.encode("utf-8", "backslashreplace")


def _dumps(document: Any) -> bytes:
    # Compact, UTF-8, and strictly JSON (a NaN would be a bug upstream, not something to send).
    return utf8_json(
        json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    )


def serialize_output(
    operation: botocore.model.OperationModel, result: Mapping[str, Any] | None
) -> bytes:
    """The response body for a successful call: `result` shaped by the output shape."""
    shape = operation.output_shape
    if shape is None:
        return b"{}"
    return _dumps(to_wire(shape, result or {}))


def content_type(service: botocore.model.ServiceModel) -> str:
    """The Content-Type the service's protocol answers with."""
    if service.metadata.get("protocol") == "json":
        return f"application/x-amz-json-{service.metadata.get('jsonVersion', '1.0')}"
    return "application/json"  # rest-json (sagemaker-runtime)
