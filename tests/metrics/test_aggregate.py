"""The aggregator: counter deltas and latency batches into minute cells, and their lifecycle."""

from __future__ import annotations

from shadowlab.metrics.aggregate import MetricsAggregator
from tests.metrics.support import REGION, answer, copy, production, shadow

M = 29_000_000  # a minute since the epoch (2025)
T = M * 60.0


def _counts(
    aggregator: MetricsAggregator, now: float
) -> dict[tuple[str, str, int], dict[str, int]]:
    return {
        (row.variant, row.role, row.minute): dict(row.counts)
        for _, _, row in aggregator.pending(now)
    }


def test_deltas_and_latencies_land_in_the_minute_their_second_began() -> None:
    aggregator = MetricsAggregator("r1")
    prod = production("ep", "prod")
    aggregator.collect(T + 58.001, [prod], [])  # the first drain only starts the clock
    for _ in range(3):
        answer(prod, 0.002, 0.0001)
    aggregator.collect(T + 59.001, [prod], [])
    answer(prod, 0.004, 0.0002, status=503)
    # This batch began at 59.001 and is drained just after the boundary: still minute M.
    aggregator.collect(T + 60.001, [prod], [])
    answer(prod, 0.003, 0.0001)
    aggregator.collect(T + 61.001, [prod], [])
    counts = _counts(aggregator, T + 61.5)
    assert counts["prod", "production", M]["invocations"] == 4
    assert counts["prod", "production", M]["invocation_5xx_errors"] == 1
    assert counts["prod", "production", M]["invocation_model_errors"] == 1
    assert counts["prod", "production", M + 1]["invocations"] == 1
    rows = {row.minute: row for _, _, row in aggregator.pending(T + 61.5)}
    assert rows[M].model_latency is not None and rows[M].model_latency["count"] == 4
    assert rows[M].overhead_latency is not None and rows[M].overhead_latency["count"] == 4
    assert prod.model_latencies == [] and prod.overhead_latencies == []  # taken away
    # The live view behind /metrics has everything since start.
    (live,) = aggregator.live()
    assert live.model_latency.count == 5 and live.counts()[0] == 5


def test_shadow_counters_follow_sagemakers_names() -> None:
    aggregator = MetricsAggregator("r1")
    candidate = shadow("ep", "candidate")
    aggregator.collect(T, [], [candidate])
    outcomes = ["completed"] * 6 + ["timeout", "500", "shed", "dropped", "skipped", "skipped"]
    for outcome in outcomes:
        copy(candidate, outcome, 0.01)
    aggregator.collect(T + 1, [], [candidate])
    counts = _counts(aggregator, T + 1)["candidate", "shadow", M]
    assert counts == {
        "invocations": 8,  # copies sent
        "invocation_4xx_errors": 0,
        "invocation_5xx_errors": 1,
        "invocation_model_errors": 2,  # the 500 and the timeout
        "unavailable": 0,
        "eligible": 12,
        "sampled": 10,
        "completed": 6,
        "timeouts": 1,
        "shed": 1,
        "dropped": 1,
    }


def test_a_written_cell_is_written_again_only_when_it_changes() -> None:
    aggregator = MetricsAggregator("r1")
    prod = production("ep", "prod")
    aggregator.collect(T, [prod], [])
    answer(prod, 0.001, 0.0001)
    aggregator.collect(T + 1, [prod], [])
    taken = aggregator.pending(T + 1)
    # A request lands while the write is under way: the cell must stay pending afterwards.
    answer(prod, 0.001, 0.0001)
    aggregator.collect(T + 2, [prod], [])
    aggregator.flushed([(cell, version) for cell, version, _ in taken], T + 2)
    (again,) = aggregator.pending(T + 2)
    assert again[2].counts["invocations"] == 2  # the row is the whole minute, not a delta
    aggregator.flushed([(again[0], again[1])], T + 2)
    assert aggregator.pending(T + 2) == []
    aggregator.collect(T + 3, [prod], [])  # nothing happened: nothing to write
    assert aggregator.pending(T + 3) == []


def test_old_cells_are_forgotten_and_late_batches_never_overwrite_them() -> None:
    aggregator = MetricsAggregator("r1")
    prod = production("ep", "prod")
    aggregator.collect(T, [prod], [])
    answer(prod, 0.001, 0.0001)
    aggregator.collect(T + 1, [prod], [])
    written = aggregator.pending(T + 1)
    aggregator.flushed([(cell, version) for cell, version, _ in written], T + 1)
    later = T + 4 * 60
    aggregator.forget(later)  # minute M is written and old: gone
    assert aggregator.pending(later) == []
    # A batch that began in minute M but arrives now (a loop stalled for minutes) must not
    # create a new, partial row for M that would replace the stored one.
    answer(prod, 0.001, 0.0001)
    aggregator.collect(later, [prod], [])
    (row,) = [row for _, _, row in aggregator.pending(later)]
    assert row.minute == M + 1 and row.counts["invocations"] == 1


def test_utilization_samples_average_per_minute() -> None:
    aggregator = MetricsAggregator("r1")
    prod = production("ep", "prod")
    aggregator.collect(T, [prod], [])
    key = (REGION, "ep", "prod")
    aggregator.record_utilization(T + 5, {("production", key): (50.0, 2.0)})
    aggregator.record_utilization(T + 10, {("production", key): (150.0, 4.0)})
    (row,) = [row for _, _, row in aggregator.pending(T + 10)]
    assert (row.cpu_utilization_sum, row.memory_utilization_sum) == (200.0, 6.0)
    assert row.utilization_samples == 2 and row.counts["invocations"] == 0
