"""Per-variant operational figures: latency percentiles with confidence intervals, error
rates, throughput, and what the mirror did for a shadow.

Latency confidence intervals are distribution-free (order statistics, see
``stats.quantile_ranks``), read from the variant's sketch and widened by the sketch's relative
accuracy, so they hold for any latency distribution. Error-rate intervals are Wilson intervals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from shadowlab.analysis.inputs import MinutePoint, ShadowCopies, VariantOperational
from shadowlab.analysis.stats import Interval, quantile_ranks, ratio, wilson, z_value

PERCENTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
DISTRIBUTION_LEVELS = (0.001, *(i / 100 for i in range(1, 100)), 0.995, 0.999)


@dataclass(frozen=True, slots=True)
class Estimate:
    """A latency percentile in microseconds, with its interval, over ``n`` samples."""

    value: float | None
    low: float | None = None
    high: float | None = None
    n: int = 0


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` of ``n``, with a Wilson interval."""

    count: int
    n: int
    low: float | None = None
    high: float | None = None

    @property
    def value(self) -> float | None:
        return ratio(self.count, self.n)


@dataclass(frozen=True, slots=True)
class VariantFigures:
    variant: str
    role: str
    invocations: int
    errors_4xx: int
    errors_5xx: int
    model_errors: int
    error_rate: Rate
    latency_us: dict[str, Estimate]
    distribution_us: list[tuple[float, float]]  # (quantile level, microseconds)
    window_seconds: float | None
    throughput_per_second: float | None
    per_minute: list[MinutePoint]
    copies: ShadowCopies | None
    notes: list[str] = field(default_factory=list)

    @property
    def copy_rate(self) -> float | None:
        """Effective sampling rate of a shadow from the mirror's counters: sent / eligible."""
        return None if self.copies is None else ratio(self.copies.sent, self.copies.eligible)


def figures(metrics: VariantOperational, confidence: float) -> VariantFigures:
    z = z_value(confidence)
    notes: list[str] = []
    latency, distribution = _latency(metrics, z, notes)
    interval = wilson(metrics.model_errors, metrics.invocations, z)
    window = _window(metrics)
    per_minute = sorted(metrics.per_minute, key=lambda point: point.minute)
    return VariantFigures(
        variant=metrics.variant,
        role=metrics.role,
        invocations=metrics.invocations,
        errors_4xx=metrics.errors_4xx,
        errors_5xx=metrics.errors_5xx,
        model_errors=metrics.model_errors,
        error_rate=Rate(
            metrics.model_errors,
            metrics.invocations,
            None if interval is None else interval.low,
            None if interval is None else interval.high,
        ),
        latency_us=latency,
        distribution_us=distribution,
        window_seconds=window,
        throughput_per_second=metrics.invocations / window if window else None,
        per_minute=per_minute,
        copies=metrics.copies,
        notes=notes,
    )


def _window(metrics: VariantOperational) -> float | None:
    if metrics.window_seconds:
        return metrics.window_seconds
    if not metrics.per_minute:
        return None
    minutes = [point.minute for point in metrics.per_minute]
    return float(max(minutes) - min(minutes) + 60)


def _latency(
    metrics: VariantOperational, z: float, notes: list[str]
) -> tuple[dict[str, Estimate], list[tuple[float, float]]]:
    n = metrics.latency_count
    quantile = metrics.latency_quantile
    if quantile is not None and n > 0:
        accuracy = metrics.latency_relative_accuracy
        latency = {}
        for name, level in PERCENTILES:
            value = quantile(level)
            interval = _interval(quantile, n, level, z, accuracy)
            latency[name] = Estimate(
                value,
                None if interval is None else interval.low,
                None if interval is None else interval.high,
                n,
            )
        distribution = [
            (level, value)
            for level in DISTRIBUTION_LEVELS
            if (value := quantile(level)) is not None
        ]
        return latency, distribution
    if metrics.latency_percentiles:
        points = sorted(metrics.latency_percentiles.items())
        latency = {name: Estimate(_lookup(points, level), n=n) for name, level in PERCENTILES}
        notes.append("latency percentiles without a sketch: no confidence intervals")
        return latency, [(float(level), float(value)) for level, value in points]
    notes.append("no latency measured")
    return {name: Estimate(None) for name, _level in PERCENTILES}, []


def _interval(
    quantile: Callable[[float], float | None], n: int, level: float, z: float, accuracy: float
) -> Interval | None:
    low_level, high_level = quantile_ranks(n, level, z)
    low, high = quantile(low_level), quantile(high_level)
    if low is None or high is None:
        return None
    return Interval(float(low) * (1 - accuracy), float(high) * (1 + accuracy))


def _lookup(points: list[tuple[float, float]], level: float) -> float | None:
    for key, value in points:
        if abs(key - level) < 1e-9:
            return float(value)
    return None
