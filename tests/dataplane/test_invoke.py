"""InvokeEndpoint through the data plane with boto3's real sagemaker-runtime client."""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from shadowlab.dataplane import EndpointRoute, RoutingTable, VariantRoute
from tests.dataplane.conftest import runtime_client
from tests.dataplane.harness import (
    DataPlaneThread,
    ModelFarm,
    closed_port,
    echo,
    failing,
    hang,
    hang_up,
    one_per_connection,
)

pytestmark = pytest.mark.serial  # timeouts measured against the clock

MiB = 1024 * 1024


def single(routing: RoutingTable, endpoint: str, *instances: tuple[str, int]) -> None:
    routing.set(endpoint, EndpointRoute((VariantRoute("primary", 1.0, tuple(instances)),)))


def invoke(client: Any, **kwargs: Any) -> tuple[dict[str, Any], bytes]:
    """Invoke and read the body (an unread StreamingBody keeps its connection checked out)."""
    reply = client.invoke_endpoint(**kwargs)
    return reply, reply["Body"].read()


def client_error(call: Callable[[], Any]) -> ClientError:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value


def test_invoke_returns_model_answer_and_sagemaker_headers(
    farm: ModelFarm, routing: RoutingTable, runtime: Any
) -> None:
    model = farm.add("echo", echo)
    single(routing, "ep-echo", model.address)

    reply = runtime.invoke_endpoint(
        EndpointName="ep-echo", Body=b'{"x": [1, 2]}', ContentType="application/json"
    )

    assert reply["Body"].read() == b'{"x": [1, 2]}'
    assert reply["ContentType"] == "application/json"
    assert reply["InvokedProductionVariant"] == "primary"
    assert reply["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert len(reply["ResponseMetadata"]["RequestId"]) == 36


def test_custom_attributes_both_ways_and_inference_id_and_only_contract_headers_forwarded(
    farm: ModelFarm, routing: RoutingTable, runtime: Any
) -> None:
    model = farm.add("echo-attrs", echo)
    single(routing, "ep-attrs", model.address)

    reply, _ = invoke(
        runtime,
        EndpointName="ep-attrs",
        Body=b"1,2,3",
        ContentType="text/csv",
        Accept="application/json",
        CustomAttributes="trace=abc",
        InferenceId="inference-42",
    )

    assert reply["CustomAttributes"] == "seen:trace=abc"
    seen = model.seen[-1]
    assert seen.method == "POST" and seen.path == "/invocations"
    assert seen.headers["content-type"] == "text/csv"
    assert seen.headers["accept"] == "application/json"
    assert seen.headers["x-amzn-sagemaker-custom-attributes"] == "trace=abc"
    assert seen.headers["x-amzn-sagemaker-inference-id"] == "inference-42"
    # Signatures, user agent, client connection headers: none of it reaches the model. The
    # remaining time of the data plane's 60 s model timeout does.
    assert 59_000 < int(seen.headers["x-shadowlab-timeout-ms"]) <= 60_000
    assert set(seen.headers) == {
        "x-shadowlab-timeout-ms",
        "host",
        "content-length",
        "content-type",
        "accept",
        "x-amzn-sagemaker-custom-attributes",
        "x-amzn-sagemaker-inference-id",
    }


def test_unknown_endpoint_is_validation_error(runtime: Any) -> None:
    err = client_error(lambda: runtime.invoke_endpoint(EndpointName="nowhere", Body=b"{}"))
    assert err.response["Error"]["Code"] == "ValidationError"
    assert err.response["Error"]["Message"] == (
        "Endpoint nowhere of account 000000000000 not found."
    )
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_account_id_is_a_setting(
    start_dataplane: Callable[..., DataPlaneThread],
) -> None:
    plane = start_dataplane(account_id="123456789012")
    client = runtime_client(plane.url)
    try:
        err = client_error(lambda: client.invoke_endpoint(EndpointName="gone", Body=b"{}"))
    finally:
        client.close()
    assert err.response["Error"]["Message"] == "Endpoint gone of account 123456789012 not found."


def test_target_variant_picks_that_variant_even_at_weight_zero(
    farm: ModelFarm, routing: RoutingTable, runtime: Any
) -> None:
    a, b = farm.add("tv-a", echo), farm.add("tv-b", echo)
    routing.set(
        "ep-tv",
        EndpointRoute((VariantRoute("A", 1.0, (a.address,)), VariantRoute("B", 0.0, (b.address,)))),
    )
    for _ in range(5):
        reply, _ = invoke(runtime, EndpointName="ep-tv", Body=b"{}", TargetVariant="B")
        assert reply["InvokedProductionVariant"] == "B"
    assert b.hits == 5 and a.hits == 0

    err = client_error(
        lambda: runtime.invoke_endpoint(EndpointName="ep-tv", Body=b"{}", TargetVariant="C")
    )
    assert err.response["Error"]["Code"] == "ValidationError"
    assert "Variant C not found for Endpoint ep-tv" in err.response["Error"]["Message"]


@pytest.mark.parametrize(("status", "kind"), [(400, "client"), (500, "server")])
def test_model_error_carries_original_status_and_message(
    farm: ModelFarm, routing: RoutingTable, runtime: Any, status: int, kind: str
) -> None:
    model = farm.add(f"fail-{status}", failing(status, f"bad thing {status}"))
    single(routing, f"ep-fail-{status}", model.address)

    err = client_error(
        lambda: runtime.invoke_endpoint(EndpointName=f"ep-fail-{status}", Body=b"{}")
    )

    assert err.response["Error"]["Code"] == "ModelError"
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert err.response["OriginalStatusCode"] == status
    assert err.response["OriginalMessage"] == f"bad thing {status}"
    assert err.response["Error"]["Message"].startswith(
        f'Received {kind} error ({status}) from primary with message "bad thing {status}".'
    )


def test_no_live_instance_is_service_unavailable(routing: RoutingTable, runtime: Any) -> None:
    single(routing, "ep-empty")
    err = client_error(lambda: runtime.invoke_endpoint(EndpointName="ep-empty", Body=b"{}"))
    assert err.response["Error"]["Code"] == "ServiceUnavailable"
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert "no instance in service" in err.response["Error"]["Message"]


def test_connection_refused_is_service_unavailable(routing: RoutingTable, runtime: Any) -> None:
    single(routing, "ep-refused", ("127.0.0.1", closed_port()))
    err = client_error(lambda: runtime.invoke_endpoint(EndpointName="ep-refused", Body=b"{}"))
    assert err.response["Error"]["Code"] == "ServiceUnavailable"
    assert "cannot connect to the model" in err.response["Error"]["Message"]


def test_model_hanging_up_without_answer_is_model_error_and_not_resent(
    farm: ModelFarm, routing: RoutingTable, runtime: Any
) -> None:
    model = farm.add("hang-up", hang_up)
    single(routing, "ep-hangup", model.address)

    err = client_error(lambda: runtime.invoke_endpoint(EndpointName="ep-hangup", Body=b"{}"))

    assert err.response["Error"]["Code"] == "ModelError"
    assert err.response["OriginalStatusCode"] == 0
    assert "closed the connection without responding" in err.response["Error"]["Message"]
    # Written once to a fresh connection: the model may have acted on it, so never again.
    assert model.hits == 1


def test_stale_reused_connection_is_retried_once_on_a_fresh_one(
    farm: ModelFarm, routing: RoutingTable, runtime: Any
) -> None:
    model = farm.add("one-shot", one_per_connection())
    single(routing, "ep-oneshot", model.address)
    for i in range(5):
        reply = runtime.invoke_endpoint(EndpointName="ep-oneshot", Body=b"%d" % i)
        assert reply["Body"].read() == b"%d" % i
    # Every request after the first met a stale connection first, then a fresh one.
    assert model.connections == 5
    assert model.hits == 9


def test_invocation_timeout_is_model_error(
    farm: ModelFarm, routing: RoutingTable, start_dataplane: Callable[..., DataPlaneThread]
) -> None:
    model = farm.add("hang", hang)
    single(routing, "ep-hang", model.address)
    plane = start_dataplane(invoke_timeout_s=0.3)
    client = runtime_client(plane.url)
    try:
        started = time.monotonic()
        err = client_error(lambda: client.invoke_endpoint(EndpointName="ep-hang", Body=b"{}"))
        elapsed = time.monotonic() - started
    finally:
        client.close()
    assert err.response["Error"]["Code"] == "ModelError"
    assert "timed out" in err.response["Error"]["Message"]
    assert 0.25 < elapsed < 3


def test_body_over_6_mib_is_validation_error_and_connection_stays_usable(
    farm: ModelFarm, routing: RoutingTable, dataplane: DataPlaneThread
) -> None:
    model = farm.add("big", echo)
    single(routing, "ep-big", model.address)
    conn = http.client.HTTPConnection("127.0.0.1", dataplane.port, timeout=10)
    try:
        conn.request("POST", "/endpoints/ep-big/invocations", body=b"x" * (6 * MiB + 1))
        reply = conn.getresponse()
        body = reply.read()
        assert reply.status == 400
        assert reply.getheader("x-amzn-ErrorType", "").startswith("ValidationError:")
        assert b"less than or equal to 6291456" in body
        assert model.hits == 0

        conn.request("POST", "/endpoints/ep-big/invocations", body=b"y" * (6 * MiB))
        reply = conn.getresponse()
        assert reply.status == 200
        assert reply.read() == b"y" * (6 * MiB)
    finally:
        conn.close()


def test_variant_counters(
    farm: ModelFarm, routing: RoutingTable, runtime: Any, dataplane: DataPlaneThread
) -> None:
    good, bad = farm.add("cnt-good", echo), farm.add("cnt-bad", failing(503, "busy"))
    routing.set(
        "ep-count",
        EndpointRoute(
            (VariantRoute("good", 1.0, (good.address,)), VariantRoute("bad", 0.0, (bad.address,)))
        ),
    )
    for _ in range(3):
        invoke(runtime, EndpointName="ep-count", Body=b"{}")
    for _ in range(2):
        client_error(
            lambda: runtime.invoke_endpoint(
                EndpointName="ep-count", Body=b"{}", TargetVariant="bad"
            )
        )
    stats = dataplane.server.variant_stats()
    assert stats[("ep-count", "good")]["invocations"] == 3
    assert stats[("ep-count", "good")]["model_errors"] == 0
    assert stats[("ep-count", "bad")] == {
        "invocations": 2,
        "invocation_4xx": 0,
        "invocation_5xx": 2,
        "model_errors": 2,
        "unavailable": 0,
    }
