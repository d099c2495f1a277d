"""Shadow copies: sampled share, never hurting production, bounded, counted, observable."""

from __future__ import annotations

import http.client
import math
import time
from collections.abc import Callable
from typing import Any

import pytest

from shadowlab.dataplane import (
    DataPlaneServer,
    EndpointRoute,
    InvocationRecord,
    MirrorSettings,
    RoutingTable,
    ShadowRoute,
    VariantRoute,
)
from shadowlab.dataplane.observer import EVENT, EVENT_ID, ROLE
from tests.dataplane.harness import (
    DataPlaneThread,
    ModelFarm,
    echo,
    failing,
    hang,
    hang_up,
    slow,
)

pytestmark = pytest.mark.serial  # production's latency with a hanging shadow is timed


def post_many(
    port: int,
    endpoint: str,
    n: int,
    headers: dict[str, str] | None = None,
    pace_s: float = 0.0,
) -> list[int]:
    """`n` requests one after the other; `pace_s`: a pause before each, which caps the rate."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    statuses = []
    try:
        for i in range(n):
            if pace_s:
                time.sleep(pace_s)
            conn.request(
                "POST", f"/endpoints/{endpoint}/invocations", body=b"%d" % i, headers=headers or {}
            )
            reply = conn.getresponse()
            reply.read()
            statuses.append(reply.status)
    finally:
        conn.close()
    return statuses


def drained(server: DataPlaneServer, timeout_s: float = 5.0) -> dict[tuple[str, str], Any]:
    """Mirror stats once no copy is in flight any more."""
    deadline = time.monotonic() + timeout_s
    while True:
        stats = server.mirror_stats()
        if all(s["in_flight"] == 0 for s in stats.values()) or time.monotonic() > deadline:
            return stats
        time.sleep(0.01)


def test_shadow_gets_its_sampling_share(
    farm: ModelFarm, routing: RoutingTable, dataplane: DataPlaneThread
) -> None:
    prod, shadow = farm.add("share-prod", echo), farm.add("share-shadow", echo)
    routing.set(
        "ep-share",
        EndpointRoute(
            (VariantRoute("prod", 1.0, (prod.address,)),),
            (ShadowRoute("shadow", 50, (shadow.address,)),),
        ),
    )
    assert post_many(dataplane.port, "ep-share", 1000) == [200] * 1000

    stats = drained(dataplane.server)[("ep-share", "shadow")]
    assert abs(stats["sent"] - 500) <= 5 * math.sqrt(1000 * 0.25), stats
    assert stats["completed"] == stats["sent"] == shadow.hits
    assert stats["errors"] == stats["timeouts"] == stats["dropped"] == 0
    assert prod.hits == 1000
    # Each copy tells the shadow how long it is still waited for: the copy timeout (2 s).
    assert all(0 < int(r.headers["x-shadowlab-timeout-ms"]) <= 2000 for r in shadow.seen)


def test_misbehaving_shadows_cost_production_nothing(
    farm: ModelFarm, routing: RoutingTable, start_dataplane: Callable[..., DataPlaneThread]
) -> None:
    prod = farm.add("calm-prod", echo)
    shadows = {
        "slow": farm.add("sh-slow", slow(0.02)),
        "failing": farm.add("sh-500", failing(500, "shadow broke")),
        "hanging": farm.add("sh-hang", hang),
        "closing": farm.add("sh-close", hang_up),
    }
    routing.set(
        "ep-calm",
        EndpointRoute(
            (VariantRoute("prod", 1.0, (prod.address,)),),
            (
                *(ShadowRoute(name, 100, (s.address,)) for name, s in shadows.items()),
                ShadowRoute("nowhere", 100, ()),
            ),
        ),
    )
    plane = start_dataplane(mirror=MirrorSettings(timeout_s=0.3))

    # Paced to at most 500 req/s, so the 20 ms shadow needs ~10 copies in flight: how many are
    # shed while admission learns that depends on that, not on how fast this machine is.
    started = time.monotonic()
    statuses = post_many(plane.port, "ep-calm", 100, pace_s=0.002)
    elapsed = time.monotonic() - started

    assert statuses == [200] * 100
    # Waiting on the 20 ms shadow alone would have taken 2 s (the pacing 0.2 s).
    assert elapsed < 1.5
    stats = drained(plane.server)
    # Admission starts at a few copies in flight and doubles per round trip: the first copies
    # to the 20 ms shadow may be shed while it learns that the shadow keeps up.
    twenty_ms = stats[("ep-calm", "slow")]
    assert twenty_ms["completed"] + twenty_ms["shed"] == 100 and twenty_ms["shed"] <= 30, twenty_ms
    assert stats[("ep-calm", "failing")]["errors"] == 100
    # Each timeout shrinks the hanging shadow's admission limit: the rest is shed, not queued.
    hanging = stats[("ep-calm", "hanging")]
    assert hanging["timeouts"] + hanging["shed"] == 100 and hanging["shed"] > 0, hanging
    assert hanging["limit"] < 20
    assert stats[("ep-calm", "closing")]["errors"] == 100
    assert stats[("ep-calm", "nowhere")]["dropped"] == 100
    for s in stats.values():
        assert s["eligible"] == s["sampled"] == 100 and s["in_flight"] == 0
        settled = s["completed"] + s["errors"] + s["timeouts"] + s["shed"] + s["dropped"]
        assert settled == 100, s
    assert plane.server.variant_stats()[("ep-calm", "prod")]["model_errors"] == 0


def test_copies_beyond_the_in_flight_limit_are_shed_and_counted(
    farm: ModelFarm, routing: RoutingTable, start_dataplane: Callable[..., DataPlaneThread]
) -> None:
    prod, shadow = farm.add("lim-prod", echo), farm.add("lim-shadow", slow(0.5))
    routing.set(
        "ep-limit",
        EndpointRoute(
            (VariantRoute("prod", 1.0, (prod.address,)),),
            (ShadowRoute("shadow", 100, (shadow.address,)),),
        ),
    )
    plane = start_dataplane(mirror=MirrorSettings(max_in_flight=2, timeout_s=2.0))

    assert post_many(plane.port, "ep-limit", 30) == [200] * 30

    stats = drained(plane.server)[("ep-limit", "shadow")]
    assert stats["sent"] + stats["shed"] == stats["sampled"] == 30
    assert stats["shed"] >= 20 and stats["dropped"] == 0, stats
    assert stats["completed"] == stats["sent"]
    assert stats["limit"] <= 2


class Recorder:
    def __init__(self) -> None:
        self.records: list[InvocationRecord] = []

    def observe(self, record: InvocationRecord) -> None:
        self.records.append(record)


def test_observer_sees_production_and_shadow_with_one_event_id(
    farm: ModelFarm, routing: RoutingTable, start_dataplane: Callable[..., DataPlaneThread]
) -> None:
    prod, shadow = farm.add("obs-prod", echo), farm.add("obs-shadow", failing(500, "nope"))
    routing.set(
        "ep-obs",
        EndpointRoute(
            (VariantRoute("prod", 1.0, (prod.address,)),),
            (ShadowRoute("shadow", 100, (shadow.address,)),),
            capture=("capture-config",),
        ),
    )
    routing.set("ep-quiet", EndpointRoute((VariantRoute("prod", 1.0, (prod.address,)),)))
    recorder = Recorder()
    plane = start_dataplane(observer=recorder)
    headers = {"Content-Type": "text/csv", "X-Amzn-SageMaker-Inference-Id": "inf-7"}

    assert post_many(plane.port, "ep-obs", 3, headers) == [200] * 3
    assert post_many(plane.port, "ep-quiet", 3, headers) == [200] * 3  # no capture: not seen
    drained(plane.server)

    by_event: dict[str, dict[str, InvocationRecord]] = {}
    for record in recorder.records:
        by_event.setdefault(record[EVENT][EVENT_ID], {})[record[ROLE]] = record
    assert len(by_event) == 3
    for pair in by_event.values():
        event, _, variant, status, body, _, _, latency_s, outcome = pair["production"]
        copy_event, _, copy_variant, copy_status, copy_body, _, _, copy_latency_s, _ = pair[
            "shadow"
        ]
        _, event_id, inference_id, _, request_body, request_type, _, capture = event
        assert event is copy_event
        assert capture == ("capture-config",)
        assert len(event_id) == 36  # a UUID, as SageMaker's eventId
        assert inference_id == b"inf-7"  # header values as sent
        assert request_type == b"text/csv"
        assert variant == "prod" and copy_variant == "shadow"
        assert status == 200 and outcome == "answered"
        assert body == request_body
        assert copy_status == 500 and copy_body == b"nope"
        assert latency_s > 0 and copy_latency_s > 0
