"""Sending requests that must fail, through boto3 and as raw HTTP, and the expected texts."""

from __future__ import annotations

import functools
import http.client
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import boto3
import botocore.model
import botocore.session
import pytest
from botocore import xform_name
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.serverproc import ACCOUNT, REGION, ServerProcess, sign

ERROR_TYPE_SUFFIX = ":http://internal.amazon.com/coral/com.amazon.coral.service/"


# -- sending a request both ways ---------------------------------------------------------------


def _wire(value: Any) -> Any:
    """Request parameters as JSON, timestamps as epoch seconds (as botocore sends them)."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, Mapping):
        return {k: _wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_wire(v) for v in value]
    return value


def post(server: ServerProcess, operation: str, body: bytes) -> tuple[int, dict[str, str], Any]:
    """POST a SageMaker JSON 1.1 request; (status, headers with lower-case names, JSON body)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        headers = {
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": f"SageMaker.{operation}",
        }
        conn.request("POST", "/", body=body, headers=sign("POST", server.url + "/", body, headers))
        response = conn.getresponse()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return response.status, headers, json.loads(response.read())
    finally:
        conn.close()


def both_ways(server: ServerProcess, client: Any, operation: str, **params: Any) -> tuple[str, str]:
    """(Code, Message) of a request that must fail, the same through boto3 and raw HTTP."""
    with pytest.raises(ClientError) as caught:
        getattr(client, xform_name(operation))(**params)
    response = caught.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    code, message = response["Error"]["Code"], response["Error"]["Message"]

    status, headers, body = post(server, operation, json.dumps(_wire(params)).encode())
    assert status == 400
    assert headers["x-amzn-errortype"] == code + ERROR_TYPE_SUFFIX
    assert headers["content-type"] == "application/x-amz-json-1.1"
    assert headers["x-amzn-requestid"]
    assert body == {"__type": code, "message": message}
    return code, message


Reject = Callable[..., tuple[str, str]]


@pytest.fixture
def rejected(server: ServerProcess, sm: Any) -> Reject:
    """`rejected(operation, **params)`: send a request that must fail, with the boto3 client
    users have; its (Code, Message)."""
    return functools.partial(both_ways, server, sm)


@pytest.fixture
def unchecked(server: ServerProcess) -> Reject:
    """As `rejected`, with a client that sends whatever it is given (no client-side checks)."""
    client = boto3.client(
        "sagemaker", endpoint_url=server.url, region_name=REGION,
        aws_access_key_id="testing", aws_secret_access_key="testing",
        config=Config(parameter_validation=False, retries={"max_attempts": 1}),
    )  # fmt: skip
    return functools.partial(both_ways, server, client)


# -- expected texts ----------------------------------------------------------------------------


def arn(kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{kind}/{name.lower()}"


def invalid(*violations: str) -> tuple[str, str]:
    noun = "error" if len(violations) == 1 else "errors"
    return "ValidationException", f"{len(violations)} validation {noun} detected: " + "; ".join(
        violations
    )


def violation(value: str | None, path: str, constraint: str) -> str:
    subject = "Value null" if value is None else f"Value '{value}'"
    return f"{subject} at '{path}' failed to satisfy constraint: {constraint}"


@functools.cache
def _model() -> botocore.model.ServiceModel:
    return botocore.session.get_session().get_service_model("sagemaker")


def pattern_of(shape: str) -> str:
    pattern = _model().shape_for(shape).metadata["pattern"]
    return f"Member must satisfy regular expression pattern: {pattern}"


def enum_of(shape: str) -> str:
    allowed = _model().shape_for(shape).metadata["enum"]
    return f"Member must satisfy enum value set: [{', '.join(allowed)}]"


def java(value: Any) -> str:
    """A request value as AWS prints it in a message (Java's toString of lists and maps)."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}={java(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(java(v) for v in value) + "]"
    return str(value)


def variant(
    name: str, model: str, count: Any = 1, instance_type: str = "ml.m5.large"
) -> dict[str, Any]:
    return {
        "VariantName": name,
        "ModelName": model,
        "InstanceType": instance_type,
        "InitialInstanceCount": count,
    }


# -- the shape rules: required, type, length, count, range, enum, pattern ----------------------
