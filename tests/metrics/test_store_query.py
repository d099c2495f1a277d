"""Metric minutes through the store (SQLite file and PostgreSQL) and back through the query."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from shadowlab.metrics import MetricsAggregator, MetricsService, VariantMetrics, variant_metrics
from shadowlab.metrics.query import metrics_json
from shadowlab.metrics.sketch import RELATIVE_ACCURACY
from shadowlab.store import Store
from shadowlab.store.metric_minutes import delete_metric_minutes_before, read_metric_minutes
from tests.conftest import fresh_database_url
from tests.metrics.support import REGION, answer, copy, production, shadow

# The current minute: the flush forgets written cells by the real clock, as in a server.
M = int(time.time() // 60)
T = M * 60.0
WINDOW = (datetime.fromtimestamp(T - 3600, UTC), datetime.fromtimestamp(T + 3600, UTC))


@pytest.fixture(autouse=True)
def _this_minute() -> None:
    """The minute a test writes in is the current one (old rows are purged), taken when the
    test starts, not when the module was imported minutes earlier in a long run."""
    global M, T, WINDOW
    if time.time() % 60 > 55:  # do not start a test on a minute's last seconds
        time.sleep(60 - time.time() % 60 + 0.1)
    M = int(time.time() // 60)
    T = M * 60.0
    WINDOW = (datetime.fromtimestamp(T - 3600, UTC), datetime.fromtimestamp(T + 3600, UTC))


@pytest.fixture
def url(database_kind: str, tmp_path: Path) -> str:
    return fresh_database_url(database_kind, str(tmp_path)) or f"sqlite:///{tmp_path / 'm.db'}"


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    opened = Store.open(url)
    yield opened
    opened.close()


def _flush(aggregator: MetricsAggregator, store: Store) -> int:
    async def run() -> int:
        return await MetricsService(aggregator, store).flush()

    return asyncio.run(run())


def _load(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(np.log(0.002), 0.6, n)  # seconds


def test_two_replicas_writing_the_same_minute_add_up(store: Store) -> None:
    raw: list[np.ndarray] = []
    for replica, seed in (("replica-a", 1), ("replica-b", 2)):
        aggregator = MetricsAggregator(replica)
        prod = production("ep", "prod")
        aggregator.collect(T + 10, [prod], [])
        latencies = _load(seed, 3000)
        raw.append(latencies)
        for i, latency in enumerate(latencies.tolist()):
            answer(prod, latency, latency / 20, status=500 if i % 100 == 0 else 200)
        aggregator.collect(T + 11, [prod], [])
        assert _flush(aggregator, store) == 1
    assert len(read_metric_minutes(store, REGION, "ep", M, M + 1)) == 2  # a row per replica

    found = variant_metrics(store, REGION, "ep", *WINDOW)
    prod_metrics = found["prod"]
    assert prod_metrics.replicas == 2 and prod_metrics.role == "production"
    assert prod_metrics.counts["invocations"] == 6000
    assert prod_metrics.counts["invocation_5xx_errors"] == 60
    assert prod_metrics.counts["invocation_model_errors"] == 60
    every_us = np.concatenate(raw) * 1e6
    assert prod_metrics.model_latency.count == 6000
    for q in (0.5, 0.9, 0.99):
        exact = float(np.percentile(every_us, q * 100, method="lower"))
        estimate = prod_metrics.model_latency.quantile(q)
        assert estimate is not None and abs(estimate - exact) <= RELATIVE_ACCURACY * exact
    assert [m.minute for m in prod_metrics.minutes] == [M]


def test_repeated_flushes_replace_rows_and_restart_keeps_them(store: Store, url: str) -> None:
    aggregator = MetricsAggregator("replica-a")
    prod = production("ep", "prod")
    aggregator.collect(T, [prod], [])
    for _ in range(5):
        answer(prod, 0.001, 0.0001)
    aggregator.collect(T + 1, [prod], [])
    _flush(aggregator, store)
    for _ in range(7):  # later in the same minute: the row is rewritten whole, not added to
        answer(prod, 0.001, 0.0001)
    aggregator.collect(T + 2, [prod], [])
    _flush(aggregator, store)
    aggregator.collect(T + 60.001, [prod], [])  # drains go on every second
    answer(prod, 0.001, 0.0001)
    aggregator.collect(T + 61.001, [prod], [])  # a batch of the next minute
    _flush(aggregator, store)
    store.close()

    reopened = Store.open(url)  # a restarted server: migrations run again, rows are there
    try:
        found = variant_metrics(reopened, REGION, "ep", *WINDOW)["prod"]
        assert found.counts["invocations"] == 13
        assert [(m.minute, m.counts["invocations"]) for m in found.minutes] == [(M, 12), (M + 1, 1)]
        only_first = variant_metrics(
            reopened,
            REGION,
            "ep",
            datetime.fromtimestamp(T + 5, UTC),
            datetime.fromtimestamp(T + 59, UTC),
        )["prod"]
        assert only_first.counts["invocations"] == 12  # the minute that window overlaps
        assert variant_metrics(reopened, "eu-west-1", "ep", *WINDOW) == {}
        assert delete_metric_minutes_before(reopened, M + 1) == 1
        assert variant_metrics(reopened, REGION, "ep", *WINDOW)["prod"].counts["invocations"] == 1
    finally:
        reopened.close()


def test_shadow_copies_sampling_rate_and_json(store: Store) -> None:
    aggregator = MetricsAggregator("replica-a")
    prod, candidate = production("ep", "prod"), shadow("ep", "candidate")
    aggregator.collect(T, [prod], [candidate])
    for i in range(100):
        answer(prod, 0.001, 0.0001)
        copy(candidate, "completed" if i % 2 else "skipped", 0.003)
    aggregator.record_utilization(T + 2, {("shadow", (REGION, "ep", "candidate")): (80.0, 3.0)})
    aggregator.collect(T + 1, [prod], [candidate])
    _flush(aggregator, store)

    found = variant_metrics(store, REGION, "ep", *WINDOW)
    assert found["candidate"].effective_sampling_percentage == 50.0
    assert found["prod"].effective_sampling_percentage is None
    answer_json = json.loads(json.dumps(metrics_json(store, REGION, "ep", *WINDOW)))
    shadow_json = answer_json["variants"]["candidate"]
    assert shadow_json["role"] == "shadow" and shadow_json["Invocations"] == 50
    assert shadow_json["copies"]["sent"] == 50 and shadow_json["copies"]["eligible"] == 100
    assert shadow_json["copies"]["effective_sampling_percentage"] == 50.0
    assert shadow_json["ModelLatency"]["count"] == 50
    assert shadow_json["ModelLatency"]["p50"] == pytest.approx(3000, rel=RELATIVE_ACCURACY)
    assert shadow_json["CPUUtilization"] == 80.0 and shadow_json["MemoryUtilization"] == 3.0
    assert shadow_json["minutes"][0]["copies"]["sent"] == 50
    assert answer_json["variants"]["prod"]["copies"] is None
    assert answer_json["variants"]["prod"]["CPUUtilization"] is None
    # Another process rebuilds the totals and can merge the sketch further.
    again = VariantMetrics.from_json(shadow_json)
    assert again.counts == found["candidate"].counts
    again.model_latency.merge(found["candidate"].model_latency)
    assert again.model_latency.count == 100


def test_a_promoted_shadow_keeps_its_shadow_minute(store: Store) -> None:
    aggregator = MetricsAggregator("replica-a")
    as_shadow, as_production = shadow("ep", "candidate"), production("ep", "candidate")
    aggregator.collect(T, [], [as_shadow])
    copy(as_shadow, "completed", 0.002)
    aggregator.collect(T + 1, [as_production], [as_shadow])
    answer(as_production, 0.002, 0.0001)
    aggregator.collect(T + 2, [as_production], [as_shadow])
    _flush(aggregator, store)
    rows = read_metric_minutes(store, REGION, "ep", M, M + 1)
    assert sorted(row.role for row in rows) == ["production", "shadow"]
    found = variant_metrics(store, REGION, "ep", *WINDOW)["candidate"]
    assert found.counts["invocations"] == 2 and found.counts["completed"] == 1
    # Its copies are those of its shadow minutes only, even though it is production now.
    assert found.role == "production" and found.shadow_counts is not None
    assert found.shadow_counts["invocations"] == 1 and found.effective_sampling_percentage == 100
    copies = found.to_json()["copies"]
    assert copies["sent"] == copies["completed"] == copies["eligible"] == 1
    assert VariantMetrics.from_json(found.to_json()).shadow_counts == found.shadow_counts
