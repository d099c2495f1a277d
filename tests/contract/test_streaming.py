"""InvokeEndpointWithResponseStream with boto3 against a real server and real worker processes
whose inference.py streams tokens one by one with delays."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import EventStreamError

from tests.contract import hosting_helpers as h
from tests.serverproc import ServerProcess
from tests.shapecheck import assert_output_shape

pytestmark = pytest.mark.serial  # tokens must arrive one by one, in time

TOKENS = 8
GAP_S = 0.1
# transform_fn returns a generator: the worker sends each token as one chunk when it is made.
STREAMING_INFERENCE = textwrap.dedent(
    f"""
    import time

    def model_fn(model_dir):
        return None

    def transform_fn(model, data, content_type, accept):
        def tokens():
            for i in range({TOKENS}):
                if i:
                    time.sleep({GAP_S})
                yield f"tok{{i}} "
        return tokens(), "text/plain"
    """
)
# A predict_fn that yields (default output_fn), breaking after two tokens.
BREAKING_INFERENCE = textwrap.dedent(
    """
    def model_fn(model_dir):
        return None

    def input_fn(data, content_type):
        return data

    def predict_fn(data, model):
        yield b"one "
        yield b"two "
        raise RuntimeError("GPU fell off the bus")
    """
)
SLOW_STREAMING_SHADOW = STREAMING_INFERENCE.replace(f"time.sleep({GAP_S})", "time.sleep(0.3)")


@pytest.fixture(scope="module")
def hosted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("streaming")
    proc = ServerProcess(data_dir=root / "data", hosting="process").start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def endpoints(hosted: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("models")
    sm = hosted.client()
    tokens = h.register(sm, h.code_model(hosted, tmp, STREAMING_INFERENCE))
    breaking = h.register(sm, h.code_model(hosted, tmp, BREAKING_INFERENCE))
    shadow = h.register(sm, h.code_model(hosted, tmp, SLOW_STREAMING_SHADOW))
    return {
        "tokens": h.deploy(sm, [("AllTraffic", tokens, 1.0, 1)])["endpoint"],
        "breaking": h.deploy(sm, [("AllTraffic", breaking, 1.0, 1)])["endpoint"],
        "shadowed": h.deploy(sm, [("prod", tokens, 1.0, 1)], [("slow", shadow, 1.0)])["endpoint"],
    }


@pytest.fixture
def runtime(hosted: ServerProcess) -> Iterator[Any]:
    client = hosted.client("sagemaker-runtime")
    yield client
    client.close()


def read_stream(runtime: Any, endpoint: str) -> tuple[dict[str, Any], list[tuple[float, bytes]]]:
    """The response and (seconds since the call, bytes) of every PayloadPart."""
    started = time.monotonic()
    response = runtime.invoke_endpoint_with_response_stream(
        EndpointName=endpoint, Body=b'{"prompt": "hello"}', ContentType="application/json"
    )
    parts = [
        (time.monotonic() - started, event["PayloadPart"]["Bytes"]) for event in response["Body"]
    ]
    return response, parts


def test_tokens_arrive_one_by_one_long_before_the_last_is_produced(
    runtime: Any, endpoints: dict[str, str]
) -> None:
    response, parts = read_stream(runtime, endpoints["tokens"])

    assert b"".join(p for _, p in parts) == b"".join(b"tok%d " % i for i in range(TOKENS))
    assert len(parts) == TOKENS  # one event per token: nothing was batched up
    first, last = parts[0][0], parts[-1][0]
    # The last token cannot exist before (TOKENS - 1) * GAP_S have passed in the model.
    assert first < (TOKENS - 1) * GAP_S / 2, f"first part after {first:.3f} s"
    assert last - first > (TOKENS - 1) * GAP_S * 0.8
    assert response["ContentType"] == "text/plain"
    assert response["InvokedProductionVariant"] == "AllTraffic"
    assert response["ResponseMetadata"]["HTTPHeaders"]["content-type"] == (
        "application/vnd.amazon.eventstream"
    )
    parsed = {**response, "Body": {"PayloadPart": {"Bytes": parts[0][1]}}}
    assert_output_shape("sagemaker-runtime", "InvokeEndpointWithResponseStream", parsed)


def test_invoke_endpoint_on_a_streaming_model_returns_the_whole_answer_at_the_end(
    runtime: Any, endpoints: dict[str, str]
) -> None:
    started = time.monotonic()
    response = runtime.invoke_endpoint(
        EndpointName=endpoints["tokens"], Body=b"{}", ContentType="application/json"
    )
    elapsed = time.monotonic() - started
    assert response["Body"].read() == b"".join(b"tok%d " % i for i in range(TOKENS))
    assert elapsed >= (TOKENS - 1) * GAP_S
    assert_output_shape("sagemaker-runtime", "InvokeEndpoint", response)


def test_model_failing_mid_stream_is_a_model_stream_error(
    runtime: Any, endpoints: dict[str, str]
) -> None:
    response = runtime.invoke_endpoint_with_response_stream(
        EndpointName=endpoints["breaking"], Body=b"x", ContentType="application/octet-stream"
    )
    parts: list[bytes] = []
    with pytest.raises(EventStreamError) as caught:
        for event in response["Body"]:
            parts.append(event["PayloadPart"]["Bytes"])
    response["Body"].close()
    assert parts == [b"one ", b"two "]
    assert caught.value.response["Error"]["Code"] == "ModelStreamError"


def test_streaming_shadow_does_not_delay_productions_stream(
    runtime: Any, endpoints: dict[str, str]
) -> None:
    _, alone = read_stream(runtime, endpoints["tokens"])
    _, shadowed = read_stream(runtime, endpoints["shadowed"])  # the shadow takes ~2.1 s

    assert [p for _, p in shadowed] == [p for _, p in alone]
    assert shadowed[0][0] < alone[0][0] + 0.2
    assert shadowed[-1][0] < (TOKENS - 1) * 0.3  # production never waited for the shadow


def test_unknown_endpoint_is_a_validation_error(runtime: Any, tmp_path: Path) -> None:
    with pytest.raises(runtime.exceptions.ValidationError):
        runtime.invoke_endpoint_with_response_stream(EndpointName="nope", Body=b"x")
