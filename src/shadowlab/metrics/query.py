"""Read the stored metric minutes back: per variant, over any window, across every replica.

Pure functions over the store, for the comparison, the report and the HTTP route alike.
Counters are summed and sketches merged over replicas and minutes, so percentiles over a window
are those of every request in it (within the sketch's 1%), not an average of percentiles.
The resolution is SageMaker's: a window covers every minute it overlaps.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shadowlab.metrics.sketch import LatencySketch, merged
from shadowlab.store import Store
from shadowlab.store.metric_minutes import MetricMinute, read_metric_minutes
from shadowlab.store.schema import METRIC_COUNTERS

QUANTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99}
# Our counter names -> SageMaker's CloudWatch names, where SageMaker has one.
SAGEMAKER_NAMES = {
    "invocations": "Invocations",
    "invocation_4xx_errors": "Invocation4XXErrors",
    "invocation_5xx_errors": "Invocation5XXErrors",
    "invocation_model_errors": "InvocationModelErrors",
}
SHADOW_COUNTERS = ("eligible", "sampled", "completed", "timeouts", "shed", "dropped")


@dataclass
class MinuteMetrics:
    minute: int  # minutes since the epoch, UTC
    counts: dict[str, int]
    model_latency: LatencySketch
    overhead_latency: LatencySketch
    cpu_utilization: float | None
    memory_utilization: float | None
    shadow_counts: dict[str, int] | None = None  # of its rows as a shadow, if it was one


@dataclass
class VariantMetrics:
    variant: str
    role: str  # the role of its newest minute: a promoted shadow is production from then on
    counts: dict[str, int]  # METRIC_COUNTERS, summed
    model_latency: LatencySketch  # microseconds, merged
    overhead_latency: LatencySketch
    cpu_utilization: float | None  # mean of the samples, percent per instance
    memory_utilization: float | None
    minutes: list[MinuteMetrics] = field(default_factory=list)
    replicas: int = 1  # how many server replicas contributed
    # The counters of its minutes as a shadow alone (None if it never was one in the window):
    # a shadow promoted within the window has production minutes too, which are no copies.
    shadow_counts: dict[str, int] | None = None

    @property
    def effective_sampling_percentage(self) -> float | None:
        """Copies sent / requests eligible, as a shadow; None without eligible requests."""
        counts = self.shadow_counts or {}
        eligible = counts.get("eligible", 0)
        return 100.0 * counts["invocations"] / eligible if eligible else None

    def to_json(self, *, minutes: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {"variant": self.variant, "role": self.role}
        data.update(_counters_json(self.counts))
        data["ModelLatency"] = latency_json(self.model_latency, with_sketch=True)
        data["OverheadLatency"] = latency_json(self.overhead_latency, with_sketch=True)
        data["CPUUtilization"] = _rounded(self.cpu_utilization)
        data["MemoryUtilization"] = _rounded(self.memory_utilization)
        data["unavailable"] = self.counts["unavailable"]
        data["copies"] = _copies_json(self.shadow_counts) if self.shadow_counts else None
        data["replicas"] = self.replicas
        if minutes:
            data["minutes"] = [_minute_json(m) for m in self.minutes]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VariantMetrics:
        """Back from `to_json` (the totals and merged sketches; minutes without sketches)."""
        counts = {name: 0 for name in METRIC_COUNTERS}
        for name, sagemaker in SAGEMAKER_NAMES.items():
            counts[name] = int(data[sagemaker])
        counts["unavailable"] = int(data.get("unavailable", 0))
        copies = data.get("copies")
        shadow_counts = None
        if copies:
            shadow_counts = {name: int(copies.get(name, 0)) for name in METRIC_COUNTERS}
            shadow_counts["invocations"] = int(copies["sent"])
            shadow_counts["invocation_model_errors"] = int(copies["errors"] + copies["timeouts"])
            for name in SHADOW_COUNTERS:
                counts[name] = int(copies[name])
        return cls(
            variant=data["variant"],
            role=data["role"],
            counts=counts,
            model_latency=merged([data["ModelLatency"]["sketch"]]),
            overhead_latency=merged([data["OverheadLatency"]["sketch"]]),
            cpu_utilization=data.get("CPUUtilization"),
            memory_utilization=data.get("MemoryUtilization"),
            replicas=int(data.get("replicas", 1)),
            shadow_counts=shadow_counts,
        )


def variant_metrics(
    store: Store, region: str, endpoint: str, start: datetime, end: datetime
) -> dict[str, VariantMetrics]:
    """Every variant of the endpoint with metrics in the minutes that [start, end) overlaps."""
    first, stop = minute_range(start, end)
    rows = read_metric_minutes(store, region, endpoint, first, stop)
    by_variant: dict[str, list[MetricMinute]] = defaultdict(list)
    for row in rows:
        by_variant[row.variant].append(row)
    return {variant: _variant(variant, found) for variant, found in sorted(by_variant.items())}


def metrics_json(
    store: Store, region: str, endpoint: str, start: datetime, end: datetime
) -> dict[str, Any]:
    """What `GET /shadowlab/metrics/query` answers."""
    variants = variant_metrics(store, region, endpoint, start, end)
    first, stop = minute_range(start, end)
    return {
        "region": region,
        "endpoint": endpoint,
        "start": _iso(first),
        "end": _iso(stop),
        "units": {
            "ModelLatency": "Microseconds",
            "OverheadLatency": "Microseconds",
            "CPUUtilization": "Percent",
            "MemoryUtilization": "Percent",
        },
        "variants": {name: metrics.to_json() for name, metrics in variants.items()},
    }


def minute_range(start: datetime, end: datetime) -> tuple[int, int]:
    """[first, stop) minutes since the epoch that [start, end) overlaps; naive times are UTC."""
    begin, finish = _epoch(start), _epoch(end)
    return math.floor(begin / 60), max(math.ceil(finish / 60), math.floor(begin / 60))


def latency_json(sketch: LatencySketch, *, with_sketch: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "count": sketch.count,
        "sum": _rounded(sketch.sum),
        "avg": _rounded(sketch.avg),
        "min": _rounded(sketch.min),
        "max": _rounded(sketch.max),
    }
    for name, q in QUANTILES.items():
        data[name] = _rounded(sketch.quantile(q))
    if with_sketch:
        data["sketch"] = sketch.encode()
    return data


def _variant(variant: str, rows: Sequence[MetricMinute]) -> VariantMetrics:
    by_minute: dict[int, list[MetricMinute]] = defaultdict(list)
    for row in rows:
        by_minute[row.minute].append(row)
    minutes = [_minute(minute, found) for minute, found in sorted(by_minute.items())]
    newest = max(rows, key=lambda row: (row.minute, row.updated_at))
    return VariantMetrics(
        variant=variant,
        role=newest.role,
        counts=_summed(rows),
        model_latency=merged(row.model_latency for row in rows),
        overhead_latency=merged(row.overhead_latency for row in rows),
        cpu_utilization=_mean(rows, "cpu"),
        memory_utilization=_mean(rows, "memory"),
        minutes=minutes,
        replicas=len({row.replica for row in rows}),
        shadow_counts=_shadow_summed(rows),
    )


def _minute(minute: int, rows: Sequence[MetricMinute]) -> MinuteMetrics:
    return MinuteMetrics(
        minute=minute,
        counts=_summed(rows),
        model_latency=merged(row.model_latency for row in rows),
        overhead_latency=merged(row.overhead_latency for row in rows),
        cpu_utilization=_mean(rows, "cpu"),
        memory_utilization=_mean(rows, "memory"),
        shadow_counts=_shadow_summed(rows),
    )


def _shadow_summed(rows: Sequence[MetricMinute]) -> dict[str, int] | None:
    as_shadow = [row for row in rows if row.role == "shadow"]
    return _summed(as_shadow) if as_shadow else None


def _summed(rows: Sequence[MetricMinute]) -> dict[str, int]:
    return {name: sum(int(row.counts.get(name, 0)) for row in rows) for name in METRIC_COUNTERS}


def _mean(rows: Sequence[MetricMinute], which: str) -> float | None:
    samples = sum(row.utilization_samples for row in rows)
    if not samples:
        return None
    if which == "cpu":
        return sum(row.cpu_utilization_sum for row in rows) / samples
    return sum(row.memory_utilization_sum for row in rows) / samples


def _counters_json(counts: Mapping[str, int]) -> dict[str, int]:
    return {sagemaker: counts[name] for name, sagemaker in SAGEMAKER_NAMES.items()}


def _copies_json(counts: Mapping[str, int]) -> dict[str, Any]:
    copies: dict[str, Any] = {name: counts[name] for name in SHADOW_COUNTERS}
    copies["sent"] = counts["invocations"]
    copies["errors"] = counts["invocation_model_errors"] - counts["timeouts"]
    eligible = counts["eligible"]
    copies["effective_sampling_percentage"] = (
        round(100.0 * counts["invocations"] / eligible, 3) if eligible else None
    )
    return copies


def _minute_json(minute: MinuteMetrics) -> dict[str, Any]:
    data: dict[str, Any] = {"minute": _iso(minute.minute)}
    data.update(_counters_json(minute.counts))
    data["ModelLatency"] = latency_json(minute.model_latency, with_sketch=False)
    data["OverheadLatency"] = latency_json(minute.overhead_latency, with_sketch=False)
    data["CPUUtilization"] = _rounded(minute.cpu_utilization)
    data["MemoryUtilization"] = _rounded(minute.memory_utilization)
    if minute.shadow_counts:
        data["copies"] = _copies_json(minute.shadow_counts)
    return data


def _epoch(moment: datetime) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _iso(minute: int) -> str:
    return datetime.fromtimestamp(minute * 60, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
