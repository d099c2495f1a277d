"""The upstream client against odd model servers: pool bounds, framing, limits, queue timeouts."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Callable

from shadowlab.dataplane import EndpointRoute, PoolLimits, RoutingTable, VariantRoute
from tests.dataplane.harness import DataPlaneThread, ModelFarm, echo, hang, raw, slow


def post(port: int, endpoint: str, body: bytes = b"{}") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", f"/endpoints/{endpoint}/invocations", body=body)
        reply = conn.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        conn.close()


def post_concurrently(port: int, endpoint: str, n: int) -> list[tuple[int, dict[str, str], bytes]]:
    results: list[tuple[int, dict[str, str], bytes]] = []
    workers = [
        threading.Thread(target=lambda i=i: results.append(post(port, endpoint, b"%d" % i)))
        for i in range(n)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
    return results


def post_pipelined(port: int, endpoint: str, n: int) -> list[tuple[int, dict[str, str], bytes]]:
    requests = b"".join(
        b"POST /endpoints/%s/invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n%d"
        % (endpoint.encode(), i % 10)
        for i in range(n)
    )
    results = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(requests)
        stream = sock.makefile("rb")
        for _ in range(n):
            status = int(stream.readline().split()[1])
            headers = {}
            while (line := stream.readline().strip()) != b"":
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = stream.read(int(headers.get("content-length", "0")))
            results.append((status, headers, body))
        stream.close()
    return results


def route(routing: RoutingTable, endpoint: str, address: tuple[str, int]) -> None:
    routing.set(endpoint, EndpointRoute((VariantRoute("v", 1.0, (address,)),)))


def test_pool_size_bounds_connections_and_queues_the_rest(
    farm: ModelFarm, routing: RoutingTable, start_dataplane: Callable[..., DataPlaneThread]
) -> None:
    model = farm.add("bounded", slow(0.05))
    route(routing, "ep-bounded", model.address)
    plane = start_dataplane(pool_limits=PoolLimits(max_connections=1))

    results = post_concurrently(plane.port, "ep-bounded", 6)

    assert sorted(r[0] for r in results) == [200] * 6
    assert model.connections == 1 and model.hits == 6


def test_queued_request_that_never_gets_a_connection_is_service_unavailable(
    farm: ModelFarm, routing: RoutingTable, start_dataplane: Callable[..., DataPlaneThread]
) -> None:
    model = farm.add("queue-hang", hang)
    route(routing, "ep-queue", model.address)
    plane = start_dataplane(pool_limits=PoolLimits(max_connections=1), invoke_timeout_s=0.3)

    # Both requests in one write on one connection (pipelined), so the data plane takes them in
    # the same loop turn and their deadlines share a timer tick: from two client threads they
    # could land a tick apart, and then the first one's freed connection would carry the second.
    results = post_pipelined(plane.port, "ep-queue", 2)

    codes = sorted(r[1]["x-amzn-errortype"].split(":")[0] for r in results)
    # One was sent and timed out (the model had it); one never left the queue.
    assert codes == ["ModelError", "ServiceUnavailable"]
    assert model.hits == 1


def test_response_without_length_ends_at_eof(
    farm: ModelFarm, routing: RoutingTable, dataplane: DataPlaneThread
) -> None:
    model = farm.add("http10", raw(b"HTTP/1.0 200 OK\r\nContent-Type: text/csv\r\n\r\n1,2,3\n"))
    route(routing, "ep-http10", model.address)
    for _ in range(2):  # the closed connection is not reused
        status, headers, body = post(dataplane.port, "ep-http10")
        assert (status, headers["content-type"], body) == (200, "text/csv", b"1,2,3\n")
    assert model.connections == 2


def test_chunked_model_response_is_reframed(
    farm: ModelFarm, routing: RoutingTable, dataplane: DataPlaneThread
) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    model = farm.add("chunked", raw(chunked))
    route(routing, "ep-chunked", model.address)
    status, headers, body = post(dataplane.port, "ep-chunked")
    assert (status, body, headers["content-length"]) == (200, b"abcde", "5")


def test_garbage_and_oversized_model_answers_are_model_errors(
    farm: ModelFarm, routing: RoutingTable, start_dataplane: Callable[..., DataPlaneThread]
) -> None:
    garbage, big = farm.add("garbage", raw(b"SMTP ready\r\n\r\n")), farm.add("big-answer", echo)
    route(routing, "ep-garbage", garbage.address)
    route(routing, "ep-big-answer", big.address)
    plane = start_dataplane(pool_limits=PoolLimits(max_response_bytes=100))

    status, _, body = post(plane.port, "ep-garbage")
    assert status == 424 and "invalid http response" in json.loads(body)["message"].lower()

    assert post(plane.port, "ep-big-answer", b"x" * 100)[0] == 200
    status, _, body = post(plane.port, "ep-big-answer", b"x" * 101)
    assert status == 424 and "exceeded 100 bytes" in json.loads(body)["message"]
    assert json.loads(body)["OriginalStatusCode"] == 0


def test_connection_dropped_mid_response_is_model_error(
    farm: ModelFarm, routing: RoutingTable, dataplane: DataPlaneThread
) -> None:
    model = farm.add("cut", raw(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part"))
    route(routing, "ep-cut", model.address)
    status, headers, body = post(dataplane.port, "ep-cut")
    assert status == 424 and headers["x-amzn-errortype"].startswith("ModelError:")
    assert "in the middle of its response" in json.loads(body)["message"]
    assert model.hits == 1  # bytes of the answer had arrived: never sent again


def test_stop_lets_requests_in_flight_finish(
    farm: ModelFarm, routing: RoutingTable, start_dataplane: Callable[..., DataPlaneThread]
) -> None:
    model = farm.add("drain", slow(0.2))
    route(routing, "ep-drain", model.address)
    plane = start_dataplane()
    results: list[tuple[int, dict[str, str], bytes]] = []
    worker = threading.Thread(target=lambda: results.append(post(plane.port, "ep-drain", b"x")))
    worker.start()
    while model.hits == 0:
        threading.Event().wait(0.005)
    plane.close()
    worker.join(10)
    assert [(status, body) for status, _, body in results] == [(200, b"x")]
