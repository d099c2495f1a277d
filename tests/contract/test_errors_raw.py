"""Rejected requests as raw HTTP: what only a hand-made request can get wrong (the body is not
JSON, the target names no operation) and the wire form of every error.

Each error must be a 400 whose x-amzn-ErrorType starts with the code and whose JSON body holds
`__type` (the code) and `message`, which is what botocore reads back as Code and Message.
"""

from __future__ import annotations

import functools
import http.client
import json
from typing import Any

import botocore.model
import botocore.session
import pytest

from tests.contract.helpers import ROLE, create_model, unique
from tests.serverproc import ACCOUNT, REGION, ServerProcess, sign

_NOT_SERVED = (
    "is part of the SageMaker API but not served by shadowlab. Supported: models, endpoint "
    "configs, endpoints, inference experiments and tags."
)


def send(
    server: ServerProcess,
    target: str | None,
    body: bytes,
    headers: dict[str, str] | None = None,
    region: str = REGION,
) -> tuple[int, dict[str, str], Any]:
    """POST `body` to the control plane, signed for `region`; (status, headers with lower-case
    names, JSON body)."""
    sent = {"Content-Type": "application/x-amz-json-1.1", **(headers or {})}
    if target is not None:
        sent["X-Amz-Target"] = target
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        signed = sign("POST", server.url + "/", body, sent, region=region)
        conn.request("POST", "/", body=body, headers=signed)
        response = conn.getresponse()
        received = {k.lower(): v for k, v in response.getheaders()}
        return response.status, received, json.loads(response.read())
    finally:
        conn.close()


def error(
    server: ServerProcess,
    target: str | None,
    body: bytes | dict[str, Any],
    region: str = REGION,
    **headers: str,
) -> tuple[str, str]:
    """(code, message) of a request that must fail, after checking the error's wire form."""
    raw = json.dumps(body).encode() if isinstance(body, dict) else body
    status, received, document = send(server, target, raw, headers, region)
    assert status == 400, document
    code = document["__type"]
    assert received["x-amzn-errortype"].split(":", 1)[0] == code
    assert received["content-type"] == "application/x-amz-json-1.1"
    assert received["x-amzn-requestid"]
    assert set(document) == {"__type", "message"}
    return code, document["message"]


def invalid(*violations: str) -> tuple[str, str]:
    noun = "error" if len(violations) == 1 else "errors"
    return "ValidationException", f"{len(violations)} validation {noun} detected: " + "; ".join(
        violations
    )


@functools.cache
def _model() -> botocore.model.ServiceModel:
    return botocore.session.get_session().get_service_model("sagemaker")


def pattern_of(shape: str) -> str:
    return str(_model().shape_for(shape).metadata["pattern"])


# -- the request cannot be read ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b"{bad",
            "Request body is not valid JSON: Expecting property name enclosed in double "
            "quotes: line 1 column 2 (char 1)",
        ),
        (
            b'{"ModelName": "m"',
            "Request body is not valid JSON: Expecting ',' delimiter: line 1 column 18 (char 17)",
        ),
        (b'{"MaxResults": NaN}', "Request body is not valid JSON: NaN is not a valid JSON value"),
        (b"[1, 2]", "Request body must be a JSON object, not an array"),
        (b"null", "Request body must be a JSON object, not the value null"),
        (b'"models"', 'Request body must be a JSON object, not the value "models"'),
        (b"5", "Request body must be a JSON object, not the value 5"),
    ],
)
def test_body_that_is_not_a_json_object(server: ServerProcess, body: bytes, message: str) -> None:
    assert error(server, "SageMaker.ListModels", body) == ("SerializationException", message)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (None, "Missing X-Amz-Target header; expected 'SageMaker.<OperationName>'"),
        ("", "Missing X-Amz-Target header; expected 'SageMaker.<OperationName>'"),
        ("SageMaker", "X-Amz-Target 'SageMaker' is not of the form 'SageMaker.<OperationName>'"),
        ("SageMaker.", "X-Amz-Target 'SageMaker.' is not of the form 'SageMaker.<OperationName>'"),
        (
            "sagemaker.ListModels",
            "X-Amz-Target 'sagemaker.ListModels' is not of the form 'SageMaker.<OperationName>'",
        ),
        (
            "DynamoDB_20120810.ListTables",
            "X-Amz-Target 'DynamoDB_20120810.ListTables' is not of "
            "the form 'SageMaker.<OperationName>'",
        ),
        (
            "SageMaker.NoSuchOperation",
            "Operation 'NoSuchOperation' is not supported by this service",
        ),
        ("SageMaker.listModels", "Operation 'listModels' is not supported by this service"),
    ],
)
def test_target_that_names_no_operation(
    server: ServerProcess, target: str | None, message: str
) -> None:
    assert error(server, target, {}) == ("UnknownOperationException", message)


def test_operation_in_the_model_that_shadowlab_does_not_serve(server: ServerProcess) -> None:
    assert error(server, "SageMaker.ListTrainingJobs", {}) == (
        "UnknownOperationException",
        f"Operation ListTrainingJobs {_NOT_SERVED}",
    )
    training = {
        "TrainingJobName": unique("job"),
        "RoleArn": ROLE,
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/out"},
    }
    assert error(server, "SageMaker.CreateTrainingJob", training) == (
        "UnknownOperationException",
        f"Operation CreateTrainingJob {_NOT_SERVED}",
    )


# -- the request does not fit the model --------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "body", "message"),
    [
        (
            "DescribeModel",
            {"ModelName": 5},
            "Value '5' at 'modelName' cannot be converted to String",
        ),
        (
            "ListModels",
            {"MaxResults": "3"},
            "Value '3' at 'maxResults' cannot be converted to Integer",
        ),
        (
            "ListModels",
            {"MaxResults": 1.5},
            "Value '1.5' at 'maxResults' cannot be converted to Integer",
        ),
        (
            "ListModels",
            {"MaxResults": True},
            "Value 'true' at 'maxResults' cannot be converted to Integer",
        ),
        (
            "ListModels",
            {"MaxResults": 2**31},
            "Value '2147483648' at 'maxResults' cannot be converted to Integer",
        ),
        (
            "ListModels",
            {"CreationTimeAfter": "yesterday"},
            "Value 'yesterday' at 'creationTimeAfter' cannot be converted to Timestamp",
        ),
        (
            "CreateEndpointConfig",
            {"EndpointConfigName": "c", "ProductionVariants": "v"},
            "Value 'v' at 'productionVariants' cannot be converted to List",
        ),
        (
            "CreateEndpointConfig",
            {"EndpointConfigName": "c", "ProductionVariants": ["v"]},
            "Value 'v' at 'productionVariants.1.member' cannot be converted to Structure",
        ),
        # The first value that cannot be read is reported, and nothing else.
        (
            "CreateEndpointConfig",
            {"ProductionVariants": [{"VariantName": 1}, {"VariantName": 2}]},
            "Value '1' at 'productionVariants.1.member.variantName' cannot be converted to String",
        ),
    ],
)
def test_wrong_type(server: ServerProcess, target: str, body: dict[str, Any], message: str) -> None:
    assert error(server, f"SageMaker.{target}", body) == ("SerializationException", message)


def test_required_member_missing(server: ServerProcess) -> None:
    null = "Member must not be null"
    assert error(server, "SageMaker.DescribeModel", {}) == invalid(
        f"Value null at 'modelName' failed to satisfy constraint: {null}"
    )
    # An explicit null is the same as leaving the member out.
    assert error(server, "SageMaker.DescribeModel", {"ModelName": None}) == invalid(
        f"Value null at 'modelName' failed to satisfy constraint: {null}"
    )
    assert error(
        server,
        "SageMaker.CreateEndpointConfig",
        {"EndpointConfigName": "c", "ProductionVariants": [None]},
    ) == invalid(
        f"Value null at 'productionVariants.1.member' failed to satisfy constraint: {null}"
    )
    assert error(server, "SageMaker.AddTags", {"Tags": [{"Key": "k"}]}) == invalid(
        f"Value null at 'resourceArn' failed to satisfy constraint: {null}",
        f"Value null at 'tags.1.member.value' failed to satisfy constraint: {null}",
    )


def test_range_and_map_constraints(server: ServerProcess) -> None:
    for value, constraint in (
        (0, "Member must have value greater than or equal to 1"),
        (101, "Member must have value less than or equal to 100"),
    ):
        assert error(server, "SageMaker.ListModels", {"MaxResults": value}) == invalid(
            f"Value '{value}' at 'maxResults' failed to satisfy constraint: {constraint}"
        )
    stop = "SageMaker.StopInferenceExperiment"
    assert error(server, stop, {"Name": "x", "ModelVariantActions": {}}) == invalid(
        "Value '{}' at 'modelVariantActions' failed to satisfy constraint: Member must have "
        "length greater than or equal to 1"
    )
    key_pattern = pattern_of("ModelVariantName")
    assert error(server, stop, {"Name": "x", "ModelVariantActions": {"a_b": "Retain"}}) == invalid(
        "Value '{a_b=Retain}' at 'modelVariantActions' failed to satisfy constraint: Map keys "
        "must satisfy constraint: [Member must have length less than or equal to 63, Member must "
        f"satisfy regular expression pattern: {key_pattern}]"
    )
    assert error(server, stop, {"Name": "x", "ModelVariantActions": {"a": None}}) == invalid(
        "Value '{a=null}' at 'modelVariantActions' failed to satisfy constraint: Map value must "
        "satisfy constraint: [Member must satisfy enum value set: [Retain, Remove, Promote], "
        "Member must not be null]"
    )


# -- the request is well formed but the service refuses it -------------------------------------


def test_unknown_resource_names_the_region_signed_for(server: ServerProcess) -> None:
    name = unique("Missing")
    for region in ("us-east-1", "eu-west-1"):
        arn = f"arn:aws:sagemaker:{region}:{ACCOUNT}:model/{name.lower()}"
        assert error(server, "SageMaker.DescribeModel", {"ModelName": name}, region=region) == (
            "ValidationException",
            f'Could not find model "{arn}".',
        )
    arn = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:inference-experiment/{name.lower()}"
    assert error(server, "SageMaker.DescribeInferenceExperiment", {"Name": name}) == (
        "ResourceNotFound",
        f'Could not find inference experiment "{arn}".',
    )


def test_duplicate(server: ServerProcess) -> None:
    model = create_model(server.client())
    create = {"ModelName": model, "ExecutionRoleArn": ROLE, "PrimaryContainer": {"Image": "i"}}
    assert error(server, "SageMaker.CreateModel", create) == (
        "ValidationException",
        f'Cannot create already existing model "arn:aws:sagemaker:us-east-1:{ACCOUNT}:model/'
        f'{model}".',
    )


# -- and a request that is right ---------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        '{"NameContains": "%s"}',
        "",
        '{"NameContains": "%s", "MaxResults": 2.0, "Unknown": [1]}',
        '{"NameContains": "%s", "CreationTimeAfter": "2020-01-01T00:00:00Z", "SortBy": null}',
    ],
)
def test_valid_request_is_answered(server: ServerProcess, body: str) -> None:
    """A plain request, an empty body, members the model does not declare (ignored), explicit
    nulls (absent) and an ISO-8601 timestamp are all accepted."""
    model = create_model(server.client())
    status, headers, document = send(server, "SageMaker.ListModels", body.replace("%s", model))
    assert status == 200
    assert headers["content-type"] == "application/x-amz-json-1.1"
    assert "x-amzn-errortype" not in headers
    names = [m["ModelName"] for m in document["Models"]]
    if body:
        assert names == [model]
    else:  # no filter: the newest model comes first
        assert names[0] == model
