"""AWS errors of the JSON-family protocols (JSON 1.1 and REST-JSON): status, headers and body.

The one encoder both planes use (the control plane's answers, InvokeEndpoint's errors and the
signature gate's refusals), in the form both of botocore's JSON parsers read back as
`ClientError.response["Error"]`: JSON 1.1 takes the code from the body's `__type`, REST-JSON
from x-amzn-ErrorType (each keeping what precedes ':'), both the message from `message`. The
error's extra fields (ModelError's OriginalStatusCode ...) are body members, shaped by the error
shape's members, which botocore adds to the parsed response.

The HTTP status of a code is the `error.httpStatusCode` of its shape in botocore's model
(sagemaker-runtime's ModelError is 424, ServiceUnavailable 503); SageMaker's own errors declare
none and travel as 400, which is what AWS sends for them. Codes the model does not know are AWS's
common errors. Everything fixed per code is worked out once: InvokeEndpoint's errors are on the
data plane's hot path.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import botocore.model

from shadowlab.awsprotocol.json11 import content_type, to_wire, utf8_json
from shadowlab.errors import ServiceError

# What AWS puts after the code in x-amzn-ErrorType; botocore keeps only the part before ':'.
ERROR_TYPE_SUFFIX = ":http://internal.amazon.com/coral/com.amazon.coral.service/"

# AWS's common errors (shared by every service, absent from the models), by HTTP status.
_COMMON_STATUS = {
    "InternalFailure": 500,
    "InternalServerError": 500,
    "ServiceUnavailable": 503,
}

# One encoder object, not json.dumps(..., options): json.dumps builds a new encoder per call
# when given options, which costs about as much as encoding a small error.
# default=str: an undeclared extra field must not turn an error into a crash.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)
_encode_string = json.encoder.encode_basestring  # the C version when there is one


def http_status_for(service: botocore.model.ServiceModel, code: str) -> int:
    """The HTTP status AWS answers `code` with: the error shape's httpStatusCode, 500 or 503
    for AWS's common server-side errors, 400 otherwise."""
    shape = service.shape_for_error_code(code)
    if shape is not None:
        declared = shape.metadata.get("error", {}).get("httpStatusCode")
        if declared is not None:
            return int(declared)
    return _COMMON_STATUS.get(code, 400)


# A member's value as JSON text.
_Writer = Callable[[Any], str]


def _writer(shape: botocore.model.Shape) -> _Writer:
    """How a value of `shape` is written. Strings and integers (ModelError's members) skip the
    general path, which costs a few microseconds per member on InvokeEndpoint's errors."""
    kind = shape.type_name
    if kind == "string":
        return lambda value: _encode_string(value if type(value) is str else to_wire(shape, value))
    if kind in ("integer", "long"):
        return lambda value: (
            str(value) if type(value) is int else _JSON.encode(to_wire(shape, value))
        )
    return lambda value: _JSON.encode(to_wire(shape, value))


@dataclass(frozen=True, slots=True)
class ErrorForm:
    """What is fixed for one error code of one service."""

    code: str
    status: int
    error_type: str  # the x-amzn-ErrorType value
    body_head: bytes  # the body up to the message's value: {"__type":"<code>","message":
    # The error shape's members: the body text before each value (,"Name":) and its writer.
    members: dict[str, tuple[str, _Writer]]


class ErrorEncoder:
    """Encodes `ServiceError`s for one JSON-family service model."""

    def __init__(self, service: botocore.model.ServiceModel) -> None:
        self.service = service
        self.content_type = content_type(service)
        self._forms: dict[str, ErrorForm] = {}

    def form(self, code: str) -> ErrorForm:
        found = self._forms.get(code)
        if found is None:
            # Codes come from our own errors, never from requests: the cache stays small.
            shape = self.service.shape_for_error_code(code)
            found = self._forms[code] = ErrorForm(
                code=code,
                status=http_status_for(self.service, code),
                error_type=code + ERROR_TYPE_SUFFIX,
                body_head=b'{"__type":' + utf8_json(_encode_string(code)) + b',"message":',
                members={
                    name: (f",{_encode_string(name)}:", _writer(member))
                    for name, member in (shape.members.items() if shape is not None else ())
                },
            )
        return found

    def body(self, error: ServiceError, form: ErrorForm | None = None) -> bytes:
        """The JSON body: `__type`, `message`, then the error's fields that are not None."""
        if form is None:
            form = self.form(error.code)
        text = _encode_string(error.message)
        if error.fields:
            text += "".join(self._members(form, error.fields))
        return form.body_head + utf8_json(text + "}")

    @staticmethod
    def _members(form: ErrorForm, fields: dict[str, Any]) -> Iterator[str]:
        for name, value in fields.items():
            if value is None:
                continue
            member = form.members.get(name)
            if member is None:  # undeclared: written as it comes (see _JSON)
                yield f",{_encode_string(name)}:{_JSON.encode(value)}"
            else:
                yield member[0] + member[1](value)

    def response(
        self, error: ServiceError, request_id: str, *, status: int | None = None
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """(status, headers, body) for `error`; `status` overrides the model's (an auth
        failure carries its own, as AWS's front end answers those before any service)."""
        form = self.form(error.code)
        headers = [
            ("Content-Type", self.content_type),
            ("x-amzn-RequestId", request_id),
            ("x-amzn-ErrorType", form.error_type),
        ]
        return form.status if status is None else status, headers, self.body(error, form)


@functools.cache
def encoder_for(service: botocore.model.ServiceModel) -> ErrorEncoder:
    """The encoder of `service` (one per model, so per-code forms are worked out once)."""
    return ErrorEncoder(service)


def error_response(
    service: botocore.model.ServiceModel, error: ServiceError, request_id: str
) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) for an error of `service`, as AWS sends it."""
    return encoder_for(service).response(error, request_id)
