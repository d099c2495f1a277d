"""Variant choice by weight, route updates under load, least-outstanding instance choice."""

from __future__ import annotations

import http.client
import math
import threading
from collections import Counter

from shadowlab.dataplane import EndpointRoute, RoutingTable, ShadowRoute, VariantRoute
from shadowlab.dataplane.routing import CompiledRoute
from tests.dataplane.harness import DataPlaneThread, ModelFarm, echo, slow, slow_when


def post(conn: http.client.HTTPConnection, endpoint: str, body: bytes = b"{}") -> tuple[int, str]:
    conn.request("POST", f"/endpoints/{endpoint}/invocations", body=body)
    reply = conn.getresponse()
    reply.read()
    return reply.status, reply.getheader("x-Amzn-Invoked-Production-Variant", "")


def within_sigmas(count: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def test_table_set_get_remove() -> None:
    table = RoutingTable()
    route = EndpointRoute((VariantRoute("a", 1.0, (("127.0.0.1", 1),)),))
    assert table.get("x") is None
    table.set("x", route)
    assert table.get("x") == route
    version = table.version
    table.remove("x")
    table.remove("x")  # removing twice is harmless
    assert table.get("x") is None and table.version == version + 1


def test_weighted_choice_distribution_and_zero_weights() -> None:
    route = CompiledRoute(
        EndpointRoute(
            (
                VariantRoute("a", 3.0, ()),
                VariantRoute("b", 1.0, ()),
                VariantRoute("off", 0.0, ()),
            )
        )
    )
    counts = Counter(v.name for v in (route.choose() for _ in range(20_000)) if v)
    assert counts["off"] == 0
    assert within_sigmas(counts["a"], 20_000, 0.75)
    # All weights zero (mid-update): spread evenly instead of refusing.
    zero = CompiledRoute(EndpointRoute((VariantRoute("a", 0.0, ()), VariantRoute("b", 0.0, ()))))
    counts = Counter(v.name for v in (zero.choose() for _ in range(2000)) if v)
    assert within_sigmas(counts["a"], 2000, 0.5)
    assert CompiledRoute(EndpointRoute(())).choose() is None


def test_http_traffic_splits_by_weight(
    farm: ModelFarm, routing: RoutingTable, dataplane: DataPlaneThread
) -> None:
    a, b = farm.add("w-a", echo), farm.add("w-b", echo)
    routing.set(
        "ep-split",
        EndpointRoute((VariantRoute("A", 0.7, (a.address,)), VariantRoute("B", 0.3, (b.address,)))),
    )
    conn = http.client.HTTPConnection("127.0.0.1", dataplane.port, timeout=10)
    try:
        variants = Counter(post(conn, "ep-split")[1] for _ in range(2000))
    finally:
        conn.close()
    assert variants["A"] + variants["B"] == 2000
    assert within_sigmas(variants["A"], 2000, 0.7), variants
    assert a.hits == variants["A"] and b.hits == variants["B"]


def test_route_swap_does_not_break_requests_in_flight(
    farm: ModelFarm, routing: RoutingTable, dataplane: DataPlaneThread
) -> None:
    old, new = farm.add("swap-old", slow(0.3)), farm.add("swap-new", echo)
    routing.set("ep-swap", EndpointRoute((VariantRoute("v1", 1.0, (old.address,)),)))
    results: list[tuple[int, str]] = []

    def in_flight() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", dataplane.port, timeout=10)
        try:
            results.append(post(conn, "ep-swap"))
        finally:
            conn.close()

    worker = threading.Thread(target=in_flight)
    worker.start()
    while old.hits == 0:  # the slow request has reached the old instance
        threading.Event().wait(0.005)
    # Promote: a new variant on a new instance; the old instance leaves every route.
    routing.set("ep-swap", EndpointRoute((VariantRoute("v2", 1.0, (new.address,)),)))
    conn = http.client.HTTPConnection("127.0.0.1", dataplane.port, timeout=10)
    try:
        assert post(conn, "ep-swap") == (200, "v2")
        routing.remove("ep-swap")
        assert post(conn, "ep-swap")[0] == 400
    finally:
        conn.close()
    worker.join(10)
    assert results == [(200, "v1")]


def test_least_outstanding_instance_gets_the_request(
    farm: ModelFarm, routing: RoutingTable, dataplane: DataPlaneThread
) -> None:
    x, y = farm.add("lor-x", slow_when(b"slow", 0.5)), farm.add("lor-y", slow_when(b"slow", 0.5))
    routing.set("ep-lor", EndpointRoute((VariantRoute("v", 1.0, (x.address, y.address)),)))
    parked = http.client.HTTPConnection("127.0.0.1", dataplane.port, timeout=10)
    conn = http.client.HTTPConnection("127.0.0.1", dataplane.port, timeout=10)
    worker = threading.Thread(target=lambda: post(parked, "ep-lor", b"slow"))
    try:
        worker.start()
        while x.hits + y.hits == 0:  # the slow request has reached one instance
            threading.Event().wait(0.005)
        for _ in range(10):
            assert post(conn, "ep-lor")[0] == 200
        worker.join(10)
    finally:
        parked.close()
        conn.close()
    # The busy instance kept its one request; the idle one took every other.
    assert sorted((x.hits, y.hits)) == [1, 10]


def test_addresses_cover_production_and_shadows() -> None:
    table = RoutingTable()
    table.set(
        "e",
        EndpointRoute((VariantRoute("a", 1.0, (("h", 1),)),), (ShadowRoute("s", 50, (("h", 2),)),)),
    )
    assert table.addresses() == {("h", 1), ("h", 2)}
