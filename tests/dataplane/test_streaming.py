"""InvokeEndpointWithResponseStream through the data plane, with boto3 and with raw HTTP."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from botocore.eventstream import EventStreamBuffer, EventStreamMessage
from botocore.exceptions import ClientError, EventStreamError

from shadowlab.dataplane import EndpointRoute, RoutingTable, ShadowRoute, VariantRoute
from tests.dataplane.conftest import runtime_client
from tests.dataplane.harness import (
    BREAK,
    DataPlaneThread,
    ModelFarm,
    failing,
    hang_up,
    streaming,
    wait_for_event,
)

pytestmark = pytest.mark.serial  # a stream's first part must arrive long before its last

TOKENS = [b"The ", b"quick ", b"brown ", b"fox"]


def route(
    routing: RoutingTable,
    endpoint: str,
    production: tuple[str, int],
    *shadows: tuple[str, int],
) -> None:
    routing.set(
        endpoint,
        EndpointRoute(
            (VariantRoute("primary", 1.0, (production,)),),
            tuple(ShadowRoute(f"shadow{i}", 100, (s,)) for i, s in enumerate(shadows)),
        ),
    )


def stream(client: Any, endpoint: str, **extra: Any) -> tuple[dict[str, Any], Any]:
    reply = client.invoke_endpoint_with_response_stream(
        EndpointName=endpoint, Body=b'{"prompt": "hi"}', ContentType="application/json", **extra
    )
    return reply, reply["Body"]


def raw_stream(
    url: str, endpoint: str
) -> tuple[http.client.HTTPResponse, list[EventStreamMessage]]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request(
        "POST",
        f"/endpoints/{endpoint}/invocations-response-stream",
        body=b"{}",
        headers={"Content-Type": "application/json"},
    )
    response = conn.getresponse()
    buffer = EventStreamBuffer()
    buffer.add_data(response.read())
    conn.close()
    return response, list(buffer)


def test_parts_arrive_one_by_one_as_the_model_sends_them(
    farm: ModelFarm, routing: RoutingTable, runtime: Any
) -> None:
    seen_first = threading.Event()
    sent: list[float] = []
    model = farm.add(
        "tokens",
        streaming(
            TOKENS,
            0.01,
            content_type="text/event-stream",
            after_first=wait_for_event(seen_first, 5.0),
            sent=sent,
        ),
    )
    route(routing, "ep-stream", model.address)

    reply, events = stream(
        runtime, "ep-stream", Accept="text/event-stream", CustomAttributes="trace=1"
    )
    parts: list[bytes] = []
    arrivals: list[float] = []
    for event in events:
        parts.append(event["PayloadPart"]["Bytes"])
        arrivals.append(time.monotonic())
        seen_first.set()  # only now may the model send the rest

    assert parts == TOKENS
    # The model held every later token back until the client had the first: had the data plane
    # buffered the answer, the first part would have come after the last token was sent.
    assert arrivals[0] < sent[-1]
    assert sent[1] - sent[0] < 4.0, "the model waited out its timeout: no early first part"
    assert reply["ContentType"] == "text/event-stream"
    assert reply["InvokedProductionVariant"] == "primary"
    assert reply["CustomAttributes"] == "seen:trace=1"
    assert model.seen[-1].path == "/invocations"
    assert model.seen[-1].headers["accept"] == "text/event-stream"  # X-Amzn-SageMaker-Accept


def test_raw_response_is_chunked_event_stream_with_output_headers(
    farm: ModelFarm, routing: RoutingTable, dataplane: DataPlaneThread
) -> None:
    model = farm.add("tokens-raw", streaming(TOKENS))
    route(routing, "ep-raw", model.address)

    response, messages = raw_stream(dataplane.url, "ep-raw")

    assert response.status == 200
    assert response.getheader("Content-Type") == "application/vnd.amazon.eventstream"
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert response.getheader("X-Amzn-SageMaker-Content-Type") == "text/plain"
    assert response.getheader("x-Amzn-Invoked-Production-Variant") == "primary"
    assert [m.payload for m in messages] == TOKENS
    assert {m.headers[":event-type"] for m in messages} == {"PayloadPart"}


def test_model_failing_mid_stream_ends_it_with_model_stream_error(
    farm: ModelFarm, routing: RoutingTable, dataplane: DataPlaneThread, runtime: Any
) -> None:
    model = farm.add("breaks", streaming([b"one ", b"two ", BREAK]))
    route(routing, "ep-breaks", model.address)

    _, events = stream(runtime, "ep-breaks")
    parts: list[bytes] = []
    with pytest.raises(EventStreamError) as caught:
        for event in events:
            parts.append(event["PayloadPart"]["Bytes"])
    events.close()  # botocore stops at the error event, before the body's end

    assert parts == [b"one ", b"two "]
    assert caught.value.response["Error"]["Code"] == "ModelStreamError"
    assert "broke" in caught.value.response["Error"]["Message"]
    response, messages = raw_stream(dataplane.url, "ep-breaks")  # ErrorCode: raw bytes only
    assert response.status == 200
    assert messages[-1].headers[":exception-type"] == "ModelStreamError"
    assert json.loads(messages[-1].payload)["ErrorCode"] == "StreamBroken"
    assert dataplane.server.variant_stats()["ep-breaks", "primary"]["model_errors"] == 2


def test_model_too_slow_to_finish_gets_model_invocation_time_exceeded(
    farm: ModelFarm,
    routing: RoutingTable,
    start_dataplane: Callable[..., DataPlaneThread],
) -> None:
    model = farm.add("stalls", streaming([b"first ", b"never"], 3.0))
    route(routing, "ep-stalls", model.address)
    plane = start_dataplane(invoke_timeout_s=0.4)

    started = time.monotonic()
    response, messages = raw_stream(plane.url, "ep-stalls")

    assert time.monotonic() - started < 2.0
    assert response.status == 200
    assert messages[0].payload == b"first "
    error = json.loads(messages[-1].payload)
    assert messages[-1].headers[":exception-type"] == "ModelStreamError"
    assert error["ErrorCode"] == "ModelInvocationTimeExceeded"


def test_errors_before_the_stream_starts_are_plain_rest_json_errors(
    farm: ModelFarm, routing: RoutingTable, runtime: Any
) -> None:
    with pytest.raises(ClientError) as unknown:
        stream(runtime, "no-such-endpoint")
    assert unknown.value.response["Error"]["Code"] == "ValidationError"
    assert unknown.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400

    bad = farm.add("bad", failing(500, "out of memory"))
    route(routing, "ep-bad", bad.address)
    with pytest.raises(ClientError) as model_error:
        stream(runtime, "ep-bad")
    assert model_error.value.response["Error"]["Code"] == "ModelError"
    assert model_error.value.response["OriginalStatusCode"] == 500
    assert model_error.value.response["OriginalMessage"] == "out of memory"

    with pytest.raises(ClientError) as variant:
        stream(runtime, "ep-bad", TargetVariant="nope")
    assert variant.value.response["Error"]["Code"] == "ValidationError"


def test_slow_or_failing_streaming_shadows_do_not_change_productions_stream(
    farm: ModelFarm, routing: RoutingTable, dataplane: DataPlaneThread, runtime: Any
) -> None:
    seen_first = threading.Event()
    production = farm.add(
        "prod-tokens", streaming(TOKENS, after_first=wait_for_event(seen_first, 5.0))
    )
    slow_shadow = farm.add("slow-shadow", streaming(TOKENS, 0.3))  # ~0.9 s to its last byte
    broken_shadow = farm.add("broken-shadow", streaming([b"x", BREAK]))
    gone_shadow = farm.add("gone-shadow", hang_up)
    route(
        routing,
        "ep-shadowed",
        production.address,
        slow_shadow.address,
        broken_shadow.address,
        gone_shadow.address,
    )

    started = time.monotonic()
    _, events = stream(runtime, "ep-shadowed")
    parts = []
    for event in events:
        parts.append(event["PayloadPart"]["Bytes"])
        seen_first.set()
    elapsed = time.monotonic() - started

    assert parts == TOKENS
    assert elapsed < 0.5, f"production's stream took {elapsed:.2f} s"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        mirror = dataplane.server.mirror_stats()
        if all(mirror["ep-shadowed", f"shadow{i}"]["in_flight"] == 0 for i in range(3)):
            break
        time.sleep(0.05)
    assert mirror["ep-shadowed", "shadow0"]["completed"] == 1  # read to its last byte
    assert mirror["ep-shadowed", "shadow1"]["errors"] == 1
    assert mirror["ep-shadowed", "shadow2"]["errors"] == 1
    assert slow_shadow.seen[-1].body == b'{"prompt": "hi"}'


def test_client_hanging_up_mid_stream_leaves_the_data_plane_serving(
    farm: ModelFarm, routing: RoutingTable, dataplane: DataPlaneThread
) -> None:
    model = farm.add("long", streaming([b"t"] * 50, 0.02))
    route(routing, "ep-long", model.address)
    conn = http.client.HTTPConnection("127.0.0.1", dataplane.port, timeout=5)
    conn.request("POST", "/endpoints/ep-long/invocations-response-stream", body=b"{}")
    response = conn.getresponse()
    assert response.status == 200
    response.read1(10)  # the stream has begun
    conn.close()

    client = runtime_client(dataplane.url)
    _, events = stream(client, "ep-long")
    assert b"".join(e["PayloadPart"]["Bytes"] for e in events) == b"t" * 50
    client.close()
    stats = dataplane.server.variant_stats()["ep-long", "primary"]
    assert stats["invocations"] == 2
