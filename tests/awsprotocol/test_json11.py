"""JSON 1.1 requests, responses and errors, read back by botocore's own parsers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import botocore.parsers
import pytest
from botocore.awsrequest import HeadersDict

from shadowlab.awsprotocol.errors import error_response
from shadowlab.awsprotocol.json11 import (
    content_type,
    parse_request,
    serialize_output,
    to_wire,
)
from shadowlab.awsprotocol.service_models import runtime_model, sagemaker_model
from shadowlab.domain.status import EndpointStatus, ExperimentStatus, ModelVariantStatus
from shadowlab.errors import (
    InternalFailure,
    ModelError,
    ResourceNotFound,
    SerializationException,
    ServiceError,
    UnknownOperationException,
    ValidationException,
)

ARN = "arn:aws:sagemaker:us-east-1:123456789012"
CREATED = datetime(2026, 11, 24, 17, 52, 39, 123000, tzinfo=UTC)


def parse_response(operation: str, status: int, headers: Any, body: bytes) -> dict[str, Any]:
    """What botocore's JSON parser makes of a response (a client adds nothing but metadata)."""
    model = sagemaker_model().operation_model(operation)
    response = {"status_code": status, "headers": HeadersDict(dict(headers)), "body": body}
    parsed: dict[str, Any] = botocore.parsers.create_parser("json").parse(
        response, model.output_shape
    )
    return parsed


# -- requests ---------------------------------------------------------------------------------


def test_target_selects_the_operation_and_body_is_converted() -> None:
    body = {
        "Name": "exp-1",
        "Type": "ShadowMode",
        "RoleArn": "arn:aws:iam::123456789012:role/R",
        "EndpointName": "ep",
        "Schedule": {"StartTime": 1732456789.5, "EndTime": "2026-11-25T00:00:00+01:00"},
        "ModelVariants": [
            {
                "ModelName": "m",
                "VariantName": "v",
                "InfrastructureConfig": {
                    "InfrastructureType": "RealTimeInference",
                    "RealTimeInferenceConfig": {
                        "InstanceType": "ml.m5.large",
                        "InstanceCount": 1.0,
                    },
                },
            }
        ],
        "ShadowModeConfig": {
            "SourceModelVariantName": "v",
            "ShadowModelVariants": [{"ShadowModelVariantName": "s", "SamplingPercentage": 100}],
        },
        "NotInTheModel": {"x": 1},
    }
    operation, params = parse_request(
        sagemaker_model(), "SageMaker.CreateInferenceExperiment", json.dumps(body).encode()
    )
    assert operation.name == "CreateInferenceExperiment"
    assert "NotInTheModel" not in params
    assert params["Schedule"] == {
        "StartTime": datetime(2024, 11, 24, 13, 59, 49, 500000, tzinfo=UTC),
        "EndTime": datetime(2026, 11, 24, 23, 0, tzinfo=UTC),
    }
    assert params["Schedule"]["StartTime"].tzinfo is UTC
    count = params["ModelVariants"][0]["InfrastructureConfig"]["RealTimeInferenceConfig"]
    assert count["InstanceCount"] == 1 and isinstance(count["InstanceCount"], int)
    assert type(params) is dict and type(params["ModelVariants"]) is list


def test_empty_body_means_no_parameters() -> None:
    operation, params = parse_request(sagemaker_model(), "SageMaker.ListEndpoints", b"")
    assert (operation.name, params) == ("ListEndpoints", {})


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (None, "Missing X-Amz-Target header; expected 'SageMaker.<OperationName>'"),
        ("", "Missing X-Amz-Target header; expected 'SageMaker.<OperationName>'"),
        (
            "DynamoDB_20120810.ListTables",
            "X-Amz-Target 'DynamoDB_20120810.ListTables' is not of the form "
            "'SageMaker.<OperationName>'",
        ),
        ("SageMaker", "X-Amz-Target 'SageMaker' is not of the form 'SageMaker.<OperationName>'"),
        ("SageMaker.Frobnicate", "Operation 'Frobnicate' is not supported by this service"),
    ],
)
def test_bad_targets(target: str | None, message: str) -> None:
    with pytest.raises(UnknownOperationException) as caught:
        parse_request(sagemaker_model(), target, b"{}")
    assert caught.value.message == message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "Request body is not valid JSON: Expecting property name enclosed in double quotes"),
        (b"[1]", "Request body must be a JSON object, not an array"),
        (b'"x"', 'Request body must be a JSON object, not the value "x"'),
        (b'{"MaxResults": NaN}', "Request body is not valid JSON: NaN is not a valid JSON value"),
        (b"\xff\xfe{", "Request body is not valid JSON"),
    ],
)
def test_malformed_bodies(body: bytes, message: str) -> None:
    with pytest.raises(SerializationException) as caught:
        parse_request(sagemaker_model(), "SageMaker.ListEndpoints", body)
    assert caught.value.message.startswith(message)


def test_invalid_input_raises_validation_exception() -> None:
    with pytest.raises(ValidationException) as caught:
        parse_request(sagemaker_model(), "SageMaker.DescribeEndpoint", b'{"EndpointName": "a_b"}')
    assert caught.value.message.startswith(
        "1 validation error detected: Value 'a_b' at 'endpointName' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: "
    )


def test_sagemaker_members_travel_under_their_own_names() -> None:
    # json11 reads and writes member names as JSON keys; a renamed member would break that.
    model = sagemaker_model()
    for name in model.shape_names:
        shape = model.shape_for(name)
        if shape.type_name == "structure":
            for member_name, member in shape.members.items():
                assert member.serialization.get("name", member_name) == member_name


# -- responses --------------------------------------------------------------------------------


def describe_experiment_result() -> dict[str, Any]:
    return {
        "Arn": f"{ARN}:inference-experiment/exp-1",
        "Name": "exp-1",
        "Type": "ShadowMode",
        "Status": ExperimentStatus.RUNNING,
        "Schedule": {"StartTime": CREATED, "EndTime": datetime(2026, 12, 1, tzinfo=UTC)},
        "CreationTime": CREATED,
        "LastModifiedTime": CREATED,
        "CompletionTime": None,
        "RoleArn": "arn:aws:iam::123456789012:role/R",
        "EndpointMetadata": {"EndpointName": "ep", "EndpointStatus": EndpointStatus.IN_SERVICE},
        "ModelVariants": [
            {
                "ModelName": "m",
                "VariantName": "v",
                "Status": ModelVariantStatus.IN_SERVICE,
                "InfrastructureConfig": {
                    "InfrastructureType": "RealTimeInference",
                    "RealTimeInferenceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
                },
            }
        ],
        "ShadowModeConfig": {
            "SourceModelVariantName": "v",
            "ShadowModelVariants": [{"ShadowModelVariantName": "s", "SamplingPercentage": 25}],
        },
        "internal_revision": 7,  # not in the output shape: must not reach the wire
    }


def test_describe_inference_experiment_round_trips_through_botocore() -> None:
    operation = sagemaker_model().operation_model("DescribeInferenceExperiment")
    result = describe_experiment_result()
    body = serialize_output(operation, result)
    wire = json.loads(body)
    assert "internal_revision" not in wire and "CompletionTime" not in wire
    assert wire["CreationTime"] == 1795542759.123
    assert b" " not in body.replace(b"Shadow Mode", b"")  # compact separators
    parsed = parse_response("DescribeInferenceExperiment", 200, {}, body)
    parsed.pop("ResponseMetadata")
    expected = {k: v for k, v in result.items() if k != "internal_revision" and v is not None}
    assert parsed == expected
    assert parsed["CreationTime"] == CREATED  # an aware datetime, equal instant


def test_describe_endpoint_round_trips_through_botocore() -> None:
    operation = sagemaker_model().operation_model("DescribeEndpoint")
    result = {
        "EndpointName": "ep",
        "EndpointArn": f"{ARN}:endpoint/ep",
        "EndpointConfigName": "cfg",
        "EndpointStatus": "InService",
        "CreationTime": CREATED,
        "LastModifiedTime": CREATED,
        "ProductionVariants": [
            {
                "VariantName": "v",
                "CurrentWeight": 1,
                "DesiredWeight": 0.5,
                "CurrentInstanceCount": 1,
                "VariantStatus": [{"Status": "Creating", "StartTime": CREATED}],
            }
        ],
        "DataCaptureConfig": {
            "EnableCapture": True,
            "CaptureStatus": "Started",
            "CurrentSamplingPercentage": 100,
            "DestinationS3Uri": "s3://bucket/capture",
            "KmsKeyId": "",
        },
    }
    body = serialize_output(operation, result)
    assert json.loads(body)["ProductionVariants"][0]["CurrentWeight"] == 1.0
    parsed = parse_response("DescribeEndpoint", 200, {"x-amzn-RequestId": "r-1"}, body)
    assert parsed.pop("ResponseMetadata")["RequestId"] == "r-1"
    assert parsed == result


def test_operation_without_output_shape_answers_empty_object() -> None:
    operation = sagemaker_model().operation_model("DeleteEndpoint")
    assert operation.output_shape is None
    assert serialize_output(operation, None) == b"{}"
    assert serialize_output(operation, {"ignored": 1}) == b"{}"


def test_to_wire_blobs_maps_and_shape_mismatches() -> None:
    model = runtime_model()
    body = model.operation_model("InvokeEndpoint").input_shape.members["Body"]
    assert to_wire(body, b"\x00\xff") == "AP8="
    environment = sagemaker_model().shape_for("EnvironmentMap")
    assert to_wire(environment, {"A": "1", "B": None}) == {"A": "1"}
    with pytest.raises(TypeError):
        to_wire(sagemaker_model().shape_for("ProductionVariant"), ["not", "a", "mapping"])


def test_timestamps_go_out_as_epoch_seconds_truncated_to_the_millisecond() -> None:
    timestamp = sagemaker_model().shape_for("Timestamp")
    assert to_wire(timestamp, datetime(2026, 11, 24, 17, 52, 39, 123999, tzinfo=UTC)) == (
        1795542759.123
    )
    naive_is_utc = datetime(2026, 11, 24, 17, 52, 39)
    assert to_wire(timestamp, naive_is_utc) == 1795542759.0
    assert to_wire(timestamp, "2026-11-24T17:52:39Z") == 1795542759.0


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ValidationException("1 validation error detected: ..."), 400),
        (ResourceNotFound('Could not find endpoint "ep".'), 400),
        (UnknownOperationException("Operation 'X' is not supported by this service"), 400),
        (InternalFailure("An internal error occurred"), 500),
        (ServiceError("Too many requests", code="ThrottlingException"), 400),
    ],
)
def test_errors_parse_back_to_code_and_message(error: ServiceError, status: int) -> None:
    got_status, headers, body = error_response(sagemaker_model(), error, "req-42")
    assert got_status == status
    assert headers == [
        ("Content-Type", "application/x-amz-json-1.1"),
        ("x-amzn-RequestId", "req-42"),
        (
            "x-amzn-ErrorType",
            f"{error.code}:http://internal.amazon.com/coral/com.amazon.coral.service/",
        ),
    ]
    assert json.loads(body) == {"__type": error.code, "message": error.message}
    parsed = parse_response("DescribeEndpoint", got_status, headers, body)
    assert parsed["Error"] == {"Code": error.code, "Message": error.message}
    assert parsed["ResponseMetadata"]["RequestId"] == "req-42"


def test_runtime_model_error_carries_its_fields() -> None:
    service = runtime_model()
    error = ModelError(
        'Received server error (500) from primary with message "boom".',
        OriginalStatusCode=500,
        OriginalMessage="boom",
        LogStreamArn="arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/ep",
    )
    status, headers, body = error_response(service, error, "req-7")
    assert status == 424
    assert ("Content-Type", "application/json") in headers
    response = {"status_code": status, "headers": HeadersDict(dict(headers)), "body": body}
    parser = botocore.parsers.create_parser("rest-json")
    operation = service.operation_model("InvokeEndpoint")
    parsed = parser.parse(response, operation.output_shape)
    assert parsed["Error"] == {"Code": "ModelError", "Message": error.message}
    # What botocore's endpoint then merges in for a modeled error.
    modeled = parser.parse(response, service.shape_for_error_code("ModelError"))
    assert modeled["OriginalStatusCode"] == 500
    assert modeled["OriginalMessage"] == "boom"
    assert modeled["LogStreamArn"].endswith("/Endpoints/ep")


def test_undeclared_error_fields_never_break_the_error() -> None:
    error = ServiceError("odd", code="InternalFailure", When=CREATED)
    _, _, body = error_response(sagemaker_model(), error, "r")
    assert json.loads(body)["When"] == str(CREATED)


def test_content_type_follows_the_protocol() -> None:
    assert content_type(sagemaker_model()) == "application/x-amz-json-1.1"
    assert content_type(runtime_model()) == "application/json"
