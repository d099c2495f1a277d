"""A real botocore client end to end, with the HTTP hop replaced by botocore's own hook.

botocore emits `before-send` with the signed request; a handler that returns a response is
used instead of sending. So the client serialises the call, our code parses it and answers,
and the client parses that answer exactly as it would a real one (errors, modeled fields,
timestamps) - no server needed, nothing mocked inside botocore.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import botocore.session
import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError

from shadowlab.awsprotocol.errors import error_response
from shadowlab.awsprotocol.json11 import parse_request, serialize_output
from shadowlab.awsprotocol.service_models import runtime_model, sagemaker_model
from shadowlab.errors import ModelError, ResourceNotFound, ServiceError
from tests.shapecheck import assert_output_shape

Handler = Callable[[str, dict[str, Any]], Mapping[str, Any] | None]
CREATED = datetime(2026, 11, 24, 17, 52, 39, 250000, tzinfo=UTC)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


def _client(service: str, answer: Callable[[AWSPreparedRequest], AWSResponse]) -> BaseClient:
    session = botocore.session.Session()
    client = session.create_client(
        service,
        region_name="us-east-1",
        endpoint_url="http://shadowlab.invalid",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        config=Config(retries={"max_attempts": 0}),
    )
    client.meta.events.register("before-send", lambda request, **_: answer(request))
    return client


def sagemaker_client(handler: Handler) -> BaseClient:
    def answer(request: AWSPreparedRequest) -> AWSResponse:
        target = request.headers["X-Amz-Target"].decode()
        try:
            operation, params = parse_request(sagemaker_model(), target, request.body or b"")
            body = serialize_output(operation, handler(operation.name, params))
            headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": "r"}
            return AWSResponse(request.url, 200, headers, _Raw(body))
        except ServiceError as error:
            status, header_list, body = error_response(sagemaker_model(), error, "r")
            return AWSResponse(request.url, status, dict(header_list), _Raw(body))

    return _client("sagemaker", answer)


def test_success_round_trip_with_timestamps() -> None:
    seen: dict[str, Any] = {}

    def handler(name: str, params: dict[str, Any]) -> dict[str, Any]:
        seen.update(params)
        return {
            "EndpointName": params["EndpointName"],
            "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/ep",
            "EndpointStatus": "Creating",
            "CreationTime": CREATED,
            "LastModifiedTime": CREATED,
            "Internal": "dropped",
        }

    client = sagemaker_client(handler)
    response = client.describe_endpoint(EndpointName="ep")
    assert seen == {"EndpointName": "ep"}
    assert response["CreationTime"] == CREATED
    assert "Internal" not in response
    assert_output_shape("sagemaker", "DescribeEndpoint", response)


def test_timestamps_sent_by_boto3_arrive_as_utc_datetimes() -> None:
    seen: dict[str, Any] = {}

    def handler(name: str, params: dict[str, Any]) -> dict[str, Any]:
        seen.update(params)
        return {"Endpoints": []}

    client = sagemaker_client(handler)
    client.list_endpoints(CreationTimeAfter=CREATED, StatusEquals="InService")
    assert seen == {"CreationTimeAfter": CREATED, "StatusEquals": "InService"}
    assert seen["CreationTimeAfter"].tzinfo is UTC


def test_validation_error_reaches_the_client_as_aws_sends_it() -> None:
    client = sagemaker_client(lambda name, params: {})
    # boto3 validates lengths and required members itself; patterns and enums it leaves to AWS.
    with pytest.raises(ClientError) as caught:
        client.describe_endpoint(EndpointName="my_endpoint")
    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert error["Message"].startswith(
        "1 validation error detected: Value 'my_endpoint' at 'endpointName' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: "
    )
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_modeled_error_maps_to_the_client_exception_class() -> None:
    def handler(name: str, params: dict[str, Any]) -> None:
        raise ResourceNotFound(f'Could not find endpoint "{params["EndpointName"]}".')

    client = sagemaker_client(handler)
    with pytest.raises(client.exceptions.ResourceNotFound) as caught:
        client.delete_endpoint(EndpointName="gone")
    assert caught.value.response["Error"] == {
        "Code": "ResourceNotFound",
        "Message": 'Could not find endpoint "gone".',
    }


def test_runtime_model_error_fields_reach_the_client() -> None:
    def answer(request: AWSPreparedRequest) -> AWSResponse:
        error = ModelError(
            'Received server error (500) from primary with message "boom".',
            OriginalStatusCode=500,
            OriginalMessage="boom",
        )
        status, headers, body = error_response(runtime_model(), error, "r")
        return AWSResponse(request.url, status, dict(headers), _Raw(body))

    client = _client("sagemaker-runtime", answer)
    with pytest.raises(client.exceptions.ModelError) as caught:
        client.invoke_endpoint(EndpointName="ep", Body=b"1,2", ContentType="text/csv")
    response = caught.value.response
    assert response["Error"]["Code"] == "ModelError"
    assert response["OriginalStatusCode"] == 500
    assert response["OriginalMessage"] == "boom"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 424
