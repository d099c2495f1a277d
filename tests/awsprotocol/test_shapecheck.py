"""The contract tests' response checker accepts good responses and names what is wrong."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.shapecheck import assert_output_shape

CREATED = datetime(2026, 11, 24, 17, 52, 39, tzinfo=UTC)


def describe_endpoint(**changes: Any) -> dict[str, Any]:
    response: dict[str, Any] = {
        "EndpointName": "ep",
        "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/ep",
        "EndpointConfigName": "cfg",
        "EndpointStatus": "InService",
        "CreationTime": CREATED,
        "LastModifiedTime": CREATED,
        "ProductionVariants": [{"VariantName": "v", "CurrentWeight": 1.0}],
        "ResponseMetadata": {"RequestId": "r", "HTTPStatusCode": 200},
    }
    response.update(changes)
    return response


def test_a_good_response_passes() -> None:
    assert_output_shape("sagemaker", "DescribeEndpoint", describe_endpoint())
    assert_output_shape("sagemaker", "DeleteEndpoint", {"ResponseMetadata": {}})


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        (
            {"Surprise": 1},
            "Member 'Surprise' at 'surprise' is not declared in DescribeEndpointOutput",
        ),
        (
            {"ProductionVariants": [{"VariantName": "v", "Weight": 1}]},
            "Member 'Weight' at 'productionVariants.1.member.weight' is not declared in "
            "ProductionVariantSummary",
        ),
        ({"CreationTime": "yesterday"}, "Value 'yesterday' at 'creationTime' cannot be converted"),
        ({"EndpointStatus": "Running"}, "Value 'Running' at 'endpointStatus' failed to satisfy"),
        ({"EndpointArn": None}, "Value null at 'endpointArn' failed to satisfy constraint"),
        ({"ProductionVariants": [{"VariantName": "v", "CurrentWeight": "1"}]}, "to Float"),
    ],
)
def test_a_bad_response_fails_naming_the_problem(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(AssertionError) as caught:
        assert_output_shape("sagemaker", "DescribeEndpoint", describe_endpoint(**changes))
    assert "DescribeEndpoint response does not fit DescribeEndpointOutput" in str(caught.value)
    assert problem in str(caught.value)


def test_operation_without_output_must_return_nothing() -> None:
    with pytest.raises(AssertionError):
        assert_output_shape("sagemaker", "DeleteEndpoint", {"Extra": 1})


def test_streamed_payload_counts_as_present() -> None:
    class Stream:
        def read(self) -> bytes:
            return b"never read"

    response = {"Body": Stream(), "ContentType": "text/csv", "ResponseMetadata": {}}
    assert_output_shape("sagemaker-runtime", "InvokeEndpoint", response)
    with pytest.raises(AssertionError):
        assert_output_shape("sagemaker-runtime", "InvokeEndpoint", {"ContentType": "text/csv"})
