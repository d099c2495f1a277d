"""`GET /metrics`: the live metrics in Prometheus's text exposition, via `prometheus_client`.

A custom Collector reads the aggregator's live view at scrape time (counters straight from the
data plane, so they are exact and monotonic since the server started), on the event loop that
owns them. Names follow Prometheus's conventions: base units (seconds), `_total` counters, and
labels region, endpoint, variant, role.

Latencies are histograms, not summaries: a summary's quantiles cannot be aggregated, while
histogram buckets can be summed over replicas and endpoints (`histogram_quantile(0.99,
sum by (le) (rate(...)))`), which is what a fleet of replicas behind one PostgreSQL needs. The
buckets are filled from the DDSketch since start (each sketch bin, within 1% of its values, goes
to the first bucket bound at or above it); exact percentiles over any window are in
`/shadowlab/metrics/query`.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from shadowlab.dataplane.stats import ShadowStats
from shadowlab.metrics.aggregate import LiveVariant, MetricsAggregator
from shadowlab.metrics.sketch import LatencySketch

BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
             10.0, 30.0, 60.0)  # fmt: skip
_LABELS = ("region", "endpoint", "variant", "role")
_SHADOW_LABELS = ("region", "endpoint", "variant")
# The counter names (METRIC_COUNTERS order) that exist for both roles.
_COUNTERS = (
    ("invocations", "Invocations (SageMaker's); for a shadow, the copies sent to it."),
    ("invocation_4xx_errors", "Answers with a 4xx status from the model (Invocation4XXErrors)."),
    ("invocation_5xx_errors", "Answers with a 5xx status from the model (Invocation5XXErrors)."),
    ("invocation_model_errors",
     "Requests the model did not answer 2xx: statuses, timeouts, dropped connections "
     "(InvocationModelErrors)."),
)  # fmt: skip
_OUTCOMES = ("completed", "errors", "timeouts", "shed", "dropped")


class ShadowlabCollector(Collector):
    def __init__(self, aggregator: MetricsAggregator) -> None:
        self.aggregator = aggregator

    def collect(self) -> Iterator[Metric]:
        live = sorted(self.aggregator.live(), key=lambda v: (v.key, v.role))
        counters = [
            CounterMetricFamily(f"shadowlab_{name}", text, labels=_LABELS)
            for name, text in _COUNTERS
        ]
        unavailable = CounterMetricFamily(
            "shadowlab_invocations_unavailable",
            "Production requests answered ServiceUnavailable (no instance or none free).",
            labels=_LABELS,
        )
        model = HistogramMetricFamily(
            "shadowlab_model_latency_seconds",
            "From sending a request to the model until its answer (SageMaker's ModelLatency); "
            "for a shadow, of the copies it completed.",
            labels=_LABELS,
        )
        overhead = HistogramMetricFamily(
            "shadowlab_overhead_latency_seconds",
            "The data plane's own time on a request: arrival to response written, less the "
            "model's (SageMaker's OverheadLatency).",
            labels=_LABELS,
        )
        cpu = GaugeMetricFamily(
            "shadowlab_worker_cpu_utilization_percent",
            "CPU of the variant's worker processes per instance, summed over cores "
            "(SageMaker's CPUUtilization), at the latest sample.",
            labels=_LABELS,
        )
        memory = GaugeMetricFamily(
            "shadowlab_worker_memory_utilization_percent",
            "Memory of the variant's worker processes per instance, as a percentage of the "
            "machine's (SageMaker's MemoryUtilization), at the latest sample.",
            labels=_LABELS,
        )
        for variant in live:
            labels = [*variant.key, variant.role]
            counts = variant.counts()
            for i, family in enumerate(counters):
                family.add_metric(labels, counts[i])
            if variant.role == "production":
                unavailable.add_metric(labels, counts[4])
                overhead.add_metric(labels, *_histogram(variant.overhead_latency))
            model.add_metric(labels, *_histogram(variant.model_latency))
            if variant.cpu_utilization is not None and variant.memory_utilization is not None:
                cpu.add_metric(labels, variant.cpu_utilization)
                memory.add_metric(labels, variant.memory_utilization)
        yield from counters
        yield from (unavailable, model, overhead, cpu, memory)
        yield from _shadow_families([v for v in live if isinstance(v.stats, ShadowStats)])


def _shadow_families(shadows: list[LiveVariant]) -> Iterator[Metric]:
    eligible = CounterMetricFamily(
        "shadowlab_shadow_eligible_requests",
        "Production requests that could have been copied to the shadow.",
        labels=_SHADOW_LABELS,
    )
    sampled = CounterMetricFamily(
        "shadowlab_shadow_sampled_copies",
        "Copies the sampling percentage asked for.",
        labels=_SHADOW_LABELS,
    )
    outcomes = CounterMetricFamily(
        "shadowlab_shadow_copies",
        "Sampled copies by what became of them: completed (2xx), errors, timeouts, shed (no "
        "capacity), dropped (no live instance).",
        labels=(*_SHADOW_LABELS, "outcome"),
    )
    in_flight = GaugeMetricFamily(
        "shadowlab_shadow_copies_in_flight", "Copies sent and not answered yet.",
        labels=_SHADOW_LABELS,
    )  # fmt: skip
    limit = GaugeMetricFamily(
        "shadowlab_shadow_admission_limit",
        "Copies the shadow may have in flight now (adaptive).",
        labels=_SHADOW_LABELS,
    )
    ratio = GaugeMetricFamily(
        "shadowlab_shadow_effective_sampling_ratio",
        "Copies sent / requests eligible since start; per window, divide the rates of "
        'shadowlab_invocations_total{role="shadow"} and shadowlab_shadow_eligible_requests_total.',
        labels=_SHADOW_LABELS,
    )
    for variant in shadows:
        stats = variant.stats
        assert isinstance(stats, ShadowStats)
        labels = list(variant.key)
        eligible.add_metric(labels, stats.eligible)
        sampled.add_metric(labels, stats.sampled)
        for outcome in _OUTCOMES:
            outcomes.add_metric([*labels, outcome], getattr(stats, outcome))
        in_flight.add_metric(labels, stats.in_flight)
        limit.add_metric(labels, stats.limit.limit)
        ratio.add_metric(labels, stats.sent / stats.eligible if stats.eligible else 0.0)
    yield from (eligible, sampled, outcomes, in_flight, limit, ratio)


def _histogram(sketch: LatencySketch) -> tuple[list[tuple[str, float]], float]:
    """Cumulative buckets in seconds from the sketch's bins, and the sum in seconds."""
    counts = [0] * (len(BUCKETS_S) + 1)
    for value_us, count in sketch.bins():
        counts[bisect.bisect_left(BUCKETS_S, value_us / 1e6)] += count
    buckets: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip((*BUCKETS_S, float("inf")), counts, strict=True):
        running += count
        buckets.append((_le(bound), float(running)))
    return buckets, sketch.sum / 1e6


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


class Exposition:
    """The registry `/metrics` renders: shadowlab's collector and the server process's own."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, aggregator: MetricsAggregator) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ShadowlabCollector(aggregator))
        ProcessCollector(registry=self.registry)  # process_cpu_seconds_total and the like

    def render(self) -> bytes:
        """Call on the event loop that feeds the aggregator."""
        return generate_latest(self.registry)
