"""Property: whatever body a client sends to an operation shadowlab serves, the answer is never
a 5xx. It is either a success botocore parses against the output shape, or an AWS-shaped 4xx
(`__type` and `message` in the body, x-amzn-ErrorType and x-amzn-RequestId headers) that is
small, and the server logs no traceback for it.

Bodies come from botocore's input shapes (`shapestrategies`): valid ones reach the services
(with the names of resources that exist mixed in), broken ones carry every kind of damage, and
raw ones are not JSON objects at all. Requests are signed with botocore's SigV4 signer.
Bounded: ~40 examples per operation, well under a minute; derandomized when CI=true.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.model
import botocore.parsers
import botocore.session
import pytest
from botocore.awsrequest import HeadersDict
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from shadowlab.controlplane.operations import operation_table
from tests.awsprotocol.rawclient import Answer, assert_aws_error, post
from tests.awsprotocol.shapestrategies import Shapes, encode, raw_bodies
from tests.contract.helpers import create_model, experiment_request, wait_endpoint
from tests.serverproc import ACCOUNT, ServerProcess
from tests.shapecheck import assert_output_shape

# The largest error body allowed: a validation message lists at most ten violations, each
# with a value cut to 1024 characters and, at worst, the 4.5 KB instance-type enum.
MAX_ERROR_BODY = 64 * 1024 + 200

ARN = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}"

FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=os.environ.get("CI") == "true",
    database=None,  # no .hypothesis/ directory in the shared checkout
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)


class _AnyService:
    """Stands in for every service so that the operation table lists its keys."""

    def __getattr__(self, name: str) -> Any:
        return self


SERVED = sorted(operation_table(_AnyService()))


@functools.cache
def _service() -> botocore.model.ServiceModel:
    return botocore.session.get_session().get_service_model("sagemaker")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root: Path = tmp_path_factory.mktemp("fuzz")
    proc = ServerProcess(data_dir=root / "data", hosting="none").start()
    # Resources the strategies may name, so that valid bodies reach past not-found.
    sm = proc.client()
    for model in ("fuzz-model", "fuzz-shadow"):
        create_model(sm, model)
    variant = {"VariantName": "variant-1", "ModelName": "fuzz-model"}
    sm.create_endpoint_config(
        EndpointConfigName="fuzz-config",
        ProductionVariants=[{**variant, "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}],
    )
    sm.create_endpoint(EndpointName="fuzz-endpoint", EndpointConfigName="fuzz-config")
    wait_endpoint(sm, "fuzz-endpoint", "InService")
    endpoint = {"endpoint": "fuzz-endpoint", "models": ["fuzz-model"]}
    sm.create_inference_experiment(**experiment_request("fuzz-experiment", endpoint, "fuzz-shadow"))
    yield proc
    proc.stop()


SHAPES = Shapes(
    {
        "ModelName": st.sampled_from(["fuzz-model", "fuzz-shadow"]),
        "EndpointConfigName": st.just("fuzz-config"),
        "EndpointName": st.just("fuzz-endpoint"),
        "Name": st.just("fuzz-experiment"),
        "VariantName": st.sampled_from(["variant-1", "shadow-1"]),
        "SourceModelVariantName": st.just("variant-1"),
        "ShadowModelVariantName": st.just("shadow-1"),
        "ResourceArn": st.sampled_from(
            [
                f"{ARN}:model/fuzz-model",
                f"{ARN}:endpoint/fuzz-endpoint",
                f"{ARN}:inference-experiment/fuzz-experiment",
            ]
        ),
    }
)


def _bodies(operation: str) -> st.SearchStrategy[bytes]:
    shape = _service().operation_model(operation).input_shape
    documents = SHAPES.body(shape) | SHAPES.body(shape, broken=True)
    return st.builds(encode, documents, st.booleans())


def check(operation: str, answer: Answer) -> None:
    """The property, for one response."""
    assert answer.status < 500, answer.body[:2000]
    model = _service().operation_model(operation)
    response = {
        "status_code": answer.status,
        "headers": HeadersDict(answer.headers),
        "body": answer.body,
    }
    parsed = botocore.parsers.create_parser("json").parse(response, model.output_shape)
    # What was answered, for `pytest --hypothesis-show-statistics`.
    event(f"{answer.status} {parsed.get('Error', {}).get('Code', '')}".strip())
    if answer.status == 200:
        assert "Error" not in parsed
        parsed.pop("ResponseMetadata", None)
        assert_output_shape("sagemaker", operation, parsed)
        return
    code, message = assert_aws_error(answer, answer.status)
    assert 400 <= answer.status < 500
    assert parsed["Error"]["Code"] == code and parsed["Error"]["Message"] == message
    assert len(answer.body) <= MAX_ERROR_BODY


@pytest.mark.parametrize("operation", SERVED)
@FUZZ
@given(data=st.data())
def test_any_body_gets_an_aws_answer(
    server: ServerProcess, operation: str, data: st.DataObject
) -> None:
    body = data.draw(_bodies(operation), label="body")
    check(operation, post(server.port, f"SageMaker.{operation}", body))


@FUZZ
@given(operation=st.sampled_from(SERVED), body=raw_bodies())
def test_any_bytes_get_an_aws_answer(server: ServerProcess, operation: str, body: bytes) -> None:
    check(operation, post(server.port, f"SageMaker.{operation}", body))


def test_no_traceback_was_logged(server: ServerProcess) -> None:
    # Runs last in this module: nothing above was a server-side failure.
    assert "Traceback" not in server.log_path.read_text(errors="replace")
