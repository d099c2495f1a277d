"""Error bytes checked against botocore's own sagemaker-runtime model and rest-json parser."""

from __future__ import annotations

import botocore.session
import pytest
from botocore.awsrequest import HeadersDict
from botocore.parsers import create_parser

from shadowlab.dataplane import wire
from shadowlab.errors import InternalFailure, ModelError, RuntimeValidationError, ServiceError


def runtime_model():  # type: ignore[no-untyped-def]
    return botocore.session.get_session().get_service_model("sagemaker-runtime")


def test_statuses_match_the_botocore_model() -> None:
    operation = runtime_model().operation_model("InvokeEndpoint")
    from_model = {s.name: s.metadata["error"]["httpStatusCode"] for s in operation.error_shapes}
    sent = {
        code: int(wire.aws_error(ServiceError("m", code=code), b"r", b"").split(b" ", 2)[1])
        for code in from_model
    }
    assert sent == from_model


def parse(raw: bytes) -> dict[str, object]:
    """Parse a full response the way botocore's client does for an InvokeEndpoint error."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = HeadersDict(line.split(": ", 1) for line in lines[1:])
    response = {"status_code": int(lines[0].split()[1]), "headers": headers, "body": body}
    model = runtime_model()
    parser = create_parser("rest-json")
    parsed: dict[str, object] = parser.parse(
        response, model.operation_model("InvokeEndpoint").output_shape
    )
    code = parsed["Error"]["Code"]  # type: ignore[index]
    # What botocore's Endpoint adds for modelled error members.
    parsed.update(parser.parse(response, model.shape_for_error_code(code)))
    return parsed


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (RuntimeValidationError("bad input"), 400),
        (InternalFailure("oops"), 500),
        (ServiceError("down", code="ServiceUnavailable"), 503),
    ],
)
def test_errors_parse_to_code_and_message(error: ServiceError, status: int) -> None:
    parsed = parse(wire.aws_error(error, b"req-1", b""))
    assert parsed["Error"] == {"Code": error.code, "Message": error.message}
    assert parsed["ResponseMetadata"]["HTTPStatusCode"] == status  # type: ignore[index]
    assert parsed["ResponseMetadata"]["RequestId"] == "req-1"  # type: ignore[index]


def test_model_error_members_parse() -> None:
    error = ModelError("Received ...", OriginalStatusCode=418, OriginalMessage='teapot "x"')
    parsed = parse(wire.aws_error(error, b"req-2", wire.CONNECTION_CLOSE))
    assert parsed["Error"]["Code"] == "ModelError"  # type: ignore[index]
    assert parsed["OriginalStatusCode"] == 418
    assert parsed["OriginalMessage"] == 'teapot "x"'
