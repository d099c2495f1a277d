"""The one AWS error encoder: every form it writes, read back by botocore's own parsers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import botocore.parsers
import pytest
from botocore.awsrequest import HeadersDict

from shadowlab.auth import AuthFailure
from shadowlab.awsprotocol.errors import ERROR_TYPE_SUFFIX, ErrorEncoder, encoder_for
from shadowlab.awsprotocol.service_models import runtime_model, sagemaker_model
from shadowlab.dataplane import wire
from shadowlab.errors import ModelError, RuntimeValidationError, ServiceError, ServiceUnavailable


class _Status(Enum):
    FAILED = "Failed"


def _runtime() -> ErrorEncoder:
    return encoder_for(runtime_model())


def _parse(protocol: str, status: int, headers: Any, body: bytes) -> dict[str, Any]:
    response = {"status_code": status, "headers": HeadersDict(dict(headers)), "body": body}
    shape = runtime_model().operation_model("InvokeEndpoint").output_shape
    parsed: dict[str, Any] = botocore.parsers.create_parser(protocol).parse(response, shape)
    return parsed


def _http1(raw: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = [(name, value) for name, _, value in (line.partition(": ") for line in lines[1:])]
    return int(lines[0].split()[1]), headers, body


def test_one_encoder_per_model() -> None:
    assert encoder_for(runtime_model()) is encoder_for(runtime_model())
    assert encoder_for(runtime_model()) is not encoder_for(sagemaker_model())


def test_data_plane_bytes_are_the_encoders_form() -> None:
    error = ModelError("boom", OriginalStatusCode=500, OriginalMessage="boom")
    status, headers, body = _http1(wire.aws_error(error, b"req-1", wire.CONNECTION_CLOSE))
    assert (status, body) == (_runtime().response(error, "req-1")[0], _runtime().body(error))
    assert ("Content-Type", "application/json") in headers
    assert ("x-amzn-ErrorType", "ModelError" + ERROR_TYPE_SUFFIX) in headers
    assert ("Content-Length", str(len(body))) in headers
    assert ("Connection", "close") in headers


@pytest.mark.parametrize("protocol", ["json", "rest-json"])
@pytest.mark.parametrize(
    "error",
    [
        RuntimeValidationError("bad input"),
        ServiceUnavailable("down"),
        ServiceError("slow down", code="ThrottlingException"),
    ],
)
def test_both_json_parsers_read_the_code(protocol: str, error: ServiceError) -> None:
    status, headers, body = _runtime().response(error, "r")
    parsed = _parse(protocol, status, headers, body)
    assert parsed["Error"] == {"Code": error.code, "Message": error.message}


def test_statuses() -> None:
    statuses = {
        code: _runtime().form(code).status
        for code in ("ValidationError", "ModelError", "ServiceUnavailable", "InternalFailure")
    }
    assert statuses == {
        "ValidationError": 400,
        "ModelError": 424,
        "ServiceUnavailable": 503,
        "InternalFailure": 500,
    }
    # Not in the model: AWS's common client error, which botocore retries with backoff.
    assert _runtime().form("ThrottlingException").status == 400


def test_auth_failure_keeps_its_own_status_in_both_forms() -> None:
    failure = AuthFailure("InvalidSignatureException", "no", status=403)
    status, headers, body = encoder_for(sagemaker_model()).response(failure, "r", status=403)
    assert status == 403
    assert ("Content-Type", "application/x-amz-json-1.1") in headers
    responses = wire.ErrorResponses(encoder_for(sagemaker_model()))
    raw = responses.response(failure, b"r", b"", failure.status)
    assert _http1(raw)[0] == 403 and _http1(raw)[2] == body
    # The same code at the model's status is framed apart, not from the override's cache.
    assert _http1(responses.response(failure, b"r", b""))[0] == 400


def test_members_are_shaped_and_none_is_left_out() -> None:
    error = ModelError(
        "m",
        OriginalStatusCode=True,  # an integer member: written as the shape says, 1
        OriginalMessage=_Status.FAILED,
        LogStreamArn=None,
    )
    assert json.loads(_runtime().body(error)) == {
        "__type": "ModelError",
        "message": "m",
        "OriginalStatusCode": 1,
        "OriginalMessage": "Failed",
    }


def test_modelled_members_parse_back() -> None:
    error = ModelError('x "y"', OriginalStatusCode=418, OriginalMessage='teapot "é" \ud800')
    status, headers, body = _runtime().response(error, "r")
    response = {"status_code": status, "headers": HeadersDict(dict(headers)), "body": body}
    parser = botocore.parsers.create_parser("rest-json")
    modeled = parser.parse(response, runtime_model().shape_for_error_code("ModelError"))
    assert modeled["OriginalStatusCode"] == 418
    assert modeled["OriginalMessage"] == 'teapot "é" \ud800'


def test_undeclared_fields_never_break_the_error() -> None:
    when = datetime(2026, 12, 1, tzinfo=UTC)
    body = _runtime().body(ServiceError("odd", code="InternalFailure", When=when, N=[1]))
    assert json.loads(body) == {
        "__type": "InternalFailure",
        "message": "odd",
        "When": str(when),
        "N": [1],
    }
