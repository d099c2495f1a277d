"""The hot-path hook on a real data plane: exact counters and sketches of the raw latencies."""

from __future__ import annotations

import http.client
import time
from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from shadowlab.dataplane import EndpointRoute, RoutingTable, ShadowRoute, VariantRoute
from shadowlab.dataplane.stats import ShadowStats, VariantStats
from shadowlab.metrics import MetricsAggregator
from shadowlab.metrics.sketch import RELATIVE_ACCURACY
from tests.dataplane.harness import DataPlaneThread, ModelFarm, echo, failing, slow

pytestmark = pytest.mark.serial  # latency quantiles of a timed load


class Recording(MetricsAggregator):
    """An aggregator that also keeps every raw latency it is handed, to check the sketches."""

    def __init__(self) -> None:
        super().__init__("test")
        self.raw: dict[tuple[str, str], list[float]] = defaultdict(list)
        self.drains = 0

    def collect(
        self, now: float, variants: Sequence[VariantStats], shadows: Sequence[ShadowStats]
    ) -> None:
        self.drains += 1
        for stats in variants:
            self.raw["model", stats.variant] += stats.model_latencies
            self.raw["overhead", stats.variant] += stats.overhead_latencies
        for shadow in shadows:
            self.raw["model", shadow.variant] += shadow.model_latencies
        super().collect(now, variants, shadows)


def _post(port: int, endpoint: str, n: int, headers: dict[str, str]) -> list[int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    statuses = []
    try:
        for i in range(n):
            conn.request("POST", f"/endpoints/{endpoint}/invocations", b"%d" % i, headers)
            reply = conn.getresponse()
            reply.read()
            statuses.append(reply.status)
    finally:
        conn.close()
    return statuses


def test_a_known_load_is_counted_exactly_and_sketched_within_one_percent(
    farm: ModelFarm, routing: RoutingTable, start_dataplane: Callable[..., DataPlaneThread]
) -> None:
    prod, bad = farm.add("m-prod", echo), farm.add("m-bad", failing(500, "no"))
    candidate = farm.add("m-candidate", slow(0.005))
    routing.set(
        "ep-metrics",
        EndpointRoute(
            (VariantRoute("prod", 1.0, (prod.address,)), VariantRoute("bad", 0.0, (bad.address,))),
            (ShadowRoute("candidate", 100, (candidate.address,)),),
        ),
    )
    recording = Recording()
    plane = start_dataplane(metrics=recording)
    assert _post(plane.port, "ep-metrics", 400, {}) == [200] * 400
    assert (
        _post(plane.port, "ep-metrics", 7, {"X-Amzn-SageMaker-Target-Variant": "bad"}) == [424] * 7
    )
    deadline = time.monotonic() + 10
    while any(s["in_flight"] for s in plane.server.mirror_stats().values()):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    plane.close()  # the last drain runs at stop; the loop is gone, so reading is safe now

    live = {(v.key[2], v.role): v for v in recording.live()}
    assert set(live) == {("prod", "production"), ("bad", "production"), ("candidate", "shadow")}
    cells = [row for _, _, row in recording.pending(time.time())]

    def total(variant: str, counter: str) -> int:
        return sum(row.counts[counter] for row in cells if row.variant == variant)

    assert total("prod", "invocations") == 400 and total("prod", "invocation_model_errors") == 0
    assert total("bad", "invocations") == 7
    assert total("bad", "invocation_5xx_errors") == total("bad", "invocation_model_errors") == 7
    assert total("candidate", "eligible") == 407  # every production request could be copied
    shadow_completed = total("candidate", "completed")
    assert total("candidate", "invocations") == shadow_completed  # every copy sent came back
    assert shadow_completed + total("candidate", "shed") == total("candidate", "sampled") == 407
    assert shadow_completed >= 300  # a sequential client seldom meets the admission limit
    # Every answered request has a latency; the 500s too (the model answered them).
    assert live["prod", "production"].model_latency.count == 400
    assert live["bad", "production"].overhead_latency.count == 7
    assert live["candidate", "shadow"].model_latency.count == shadow_completed

    for kind, variant, role in (
        ("model", "prod", "production"),
        ("overhead", "prod", "production"),
        ("model", "candidate", "shadow"),
    ):
        raw = np.asarray(recording.raw[kind, variant]) * 1e6
        sketch = getattr(live[variant, role], f"{kind}_latency")
        assert sketch.count == raw.size
        for q in (0.5, 0.9, 0.99):
            exact = float(np.percentile(raw, q * 100, method="lower"))
            assert abs(sketch.quantile(q) - exact) <= RELATIVE_ACCURACY * exact, (kind, q)
    # The 5 ms shadow's ModelLatency is about its sleep (libuv times the sleep from the clock it
    # cached at the start of a loop iteration, so on a busy machine it may end up to ~1 ms
    # early); the overhead is well under the model's.
    assert live["candidate", "shadow"].model_latency.quantile(0.5) >= 4000
    assert np.median(recording.raw["overhead", "prod"]) < np.median(recording.raw["model", "prod"])


def test_without_metrics_the_latency_lists_are_dropped_every_second(
    farm: ModelFarm, routing: RoutingTable, start_dataplane: Callable[..., DataPlaneThread]
) -> None:
    prod = farm.add("m-plain", echo)
    routing.set("ep-plain", EndpointRoute((VariantRoute("prod", 1.0, (prod.address,)),)))
    plane = start_dataplane()
    assert _post(plane.port, "ep-plain", 20, {}) == [200] * 20
    deadline = time.monotonic() + 5
    stats = plane.server._invoker.stats[("us-east-1", "ep-plain", "prod")]
    while stats.model_latencies or stats.overhead_latencies:
        assert time.monotonic() < deadline, "the drain never ran"
        time.sleep(0.05)
    assert stats.invocations == 20
