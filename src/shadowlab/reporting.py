"""One inference experiment's comparison, from what the server recorded: the glue between
capture (the pairs), metrics (latencies and counts) and analysis (the figures and the verdict).

Used in three places that must agree: the `shadowlab report` command, the server's JSON route
`GET /shadowlab/experiments/{name}/comparison`, and the judge that decides an automatic
promotion at the experiment's end. How to compare is set per experiment with tags, so the
SageMaker API stays unchanged (`shadowlab:selector`, `shadowlab:max-p99-ratio`, ...; see
`TAG_OPTIONS`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from shadowlab.analysis import (
    PASS,
    CompareOptions,
    Comparison,
    MinutePoint,
    ShadowCopies,
    VariantOperational,
    compare,
)
from shadowlab.capture import ObjectStore, pairs
from shadowlab.metrics.sketch import merged

# tag key -> (where it goes, how to read it)
TAG_OPTIONS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "shadowlab:selector": ("selector", str),
    "shadowlab:abs-tolerance": ("abs_tolerance", float),
    "shadowlab:rel-tolerance": ("rel_tolerance", float),
    "shadowlab:max-p99-ratio": ("guardrails.max_p99_ratio", float),
    "shadowlab:max-error-rate-increase": ("guardrails.max_error_rate_increase", float),
    "shadowlab:min-agreement": ("guardrails.min_agreement", float),
    "shadowlab:min-pairs": ("guardrails.min_pairs", int),
    "shadowlab:min-invocations": ("guardrails.min_invocations", int),
}


class ReportError(ValueError):
    """The comparison cannot be made as asked; the message says why."""


def options_from_tags(tags: Iterable[tuple[str, str]], base: CompareOptions) -> CompareOptions:
    """`base` with what the experiment's tags set (`off` turns a guardrail off)."""
    options: dict[str, Any] = {}
    guardrails: dict[str, Any] = {}
    for key, value in tags:
        if key not in TAG_OPTIONS:
            continue
        target, parse = TAG_OPTIONS[key]
        try:
            parsed = None if value.lower() == "off" and "guardrails" in target else parse(value)
        except ValueError:
            raise ReportError(f"tag {key}={value!r} is not a valid {parse.__name__}") from None
        if isinstance(parsed, float) and not math.isfinite(parsed):
            raise ReportError(f"tag {key}={value!r} is not a finite number")
        if target.startswith("guardrails."):
            guardrails[target.split(".", 1)[1]] = parsed
        else:
            options[target] = parsed
    return replace(base, guardrails=replace(base.guardrails, **guardrails), **options)


def window(experiment: Mapping[str, Any], now: datetime | None = None) -> tuple[datetime, datetime]:
    """The time the experiment ran: its start until it completed (or its end, or now)."""
    schedule = experiment.get("Schedule") or {}
    start = _utc(schedule.get("StartTime")) or _utc(experiment.get("CreationTime"))
    now = now or datetime.now(UTC)
    end = _utc(experiment.get("CompletionTime")) or min(_utc(schedule.get("EndTime")) or now, now)
    if start is None:
        raise ReportError("the experiment has no start time")
    return start, max(end, start)


def capture_destination(
    experiment: Mapping[str, Any], endpoint: Mapping[str, Any] | None
) -> str | None:
    """Where the experiment's pairs are: its DataStorageConfig, else the endpoint's capture."""
    storage = experiment.get("DataStorageConfig") or {}
    if storage.get("Destination"):
        return str(storage["Destination"])
    capture = (endpoint or {}).get("DataCaptureConfig") or {}
    return str(capture["DestinationS3Uri"]) if capture.get("DestinationS3Uri") else None


def experiment_variants(experiment: Mapping[str, Any]) -> tuple[str, list[str]]:
    shadow_mode = experiment["ShadowModeConfig"]
    shadows = [v["ShadowModelVariantName"] for v in shadow_mode["ShadowModelVariants"]]
    return shadow_mode["SourceModelVariantName"], shadows


def operational(
    metrics: Mapping[str, Any], experiment: Mapping[str, Any], window_seconds: float
) -> list[VariantOperational]:
    """The metrics route's JSON (`variants`) as the analysis' inputs, for the experiment's
    variants. During the experiment the source is production and the shadows are shadows,
    whatever role a variant took later (a promoted shadow)."""
    source, shadows = experiment_variants(experiment)
    found = []
    for name in [source, *shadows]:
        data = (metrics.get("variants") or {}).get(name)
        if data is None:
            continue
        latency = data["ModelLatency"]
        sketch = merged([latency.get("sketch")])
        copies = data.get("copies")
        found.append(
            VariantOperational(
                variant=name,
                role="production" if name == source else "shadow",
                invocations=int(data["Invocations"]),
                errors_4xx=int(data["Invocation4XXErrors"]),
                errors_5xx=int(data["Invocation5XXErrors"]),
                model_errors=int(data["InvocationModelErrors"]),
                latency_count=sketch.count,
                latency_quantile=sketch.quantile,
                latency_relative_accuracy=0.01,
                per_minute=[_minute_point(m) for m in data.get("minutes") or []],
                window_seconds=window_seconds,
                copies=_copies(copies) if copies and name != source else None,
            )
        )
    return found


def compare_experiment(
    experiment: Mapping[str, Any],
    endpoint: Mapping[str, Any] | None,
    tags: Iterable[tuple[str, str]],
    metrics: Mapping[str, Any],
    store: ObjectStore | None,
    base: CompareOptions | None = None,
    progress: Callable[[int], None] | None = None,
) -> Comparison:
    """Everything together. `metrics` is what `GET /shadowlab/metrics/query` answers for the
    experiment's window; `store` the object store captures were written to."""
    options = options_from_tags(tags, base or CompareOptions())
    start, end = window(experiment)
    source, _ = experiment_variants(experiment)
    figures = operational(metrics, experiment, (end - start).total_seconds())
    destination = capture_destination(experiment, endpoint)
    found: Iterator[Mapping[str, Any]] = iter(())
    if store is not None and destination is not None:
        name = (experiment.get("EndpointMetadata") or {}).get("EndpointName", "")
        found = _in_window(pairs(store, destination, name, [source]), source, start, end)
    return compare(found, figures, experiment, options, progress)


def passed(comparison: Comparison) -> bool:
    return comparison.verdict.status == PASS


def _in_window(
    found: Iterable[dict[str, Any]], source: str, start: datetime, end: datetime
) -> Iterator[dict[str, Any]]:
    """Pairs of the experiment: its source variant's records inside its window. A destination
    can hold earlier experiments' captures too (the same endpoint, the same prefix)."""
    low, high = start.strftime("%Y-%m-%dT%H:%M:%SZ"), end.strftime("%Y-%m-%dT%H:%M:%SZ")
    for pair in found:
        record = pair.get("production")
        if pair.get("productionVariant") not in (source, None):
            continue
        when = ((record or {}).get("eventMetadata") or {}).get("inferenceTime")
        if record is None or (when is not None and low <= when <= high):
            yield pair


def _minute_point(minute: Mapping[str, Any]) -> MinutePoint:
    latency = minute.get("ModelLatency") or {}
    stamp = datetime.strptime(minute["minute"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return MinutePoint(
        minute=int(stamp.timestamp()),
        invocations=int(minute.get("Invocations", 0)),
        errors=int(minute.get("InvocationModelErrors", 0)),
        latency_p50_us=latency.get("p50"),
        latency_p99_us=latency.get("p99"),
    )


def _copies(copies: Mapping[str, Any]) -> ShadowCopies:
    return ShadowCopies(
        eligible=int(copies.get("eligible", 0)),
        sent=int(copies.get("sent", 0)),
        shed=int(copies.get("shed", 0)),
        timeouts=int(copies.get("timeouts", 0)),
        errors=int(copies.get("errors", 0)),
        sampled=int(copies["sampled"]) if copies.get("sampled") is not None else None,
    )


def _utc(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return None


__all__ = [
    "TAG_OPTIONS",
    "ReportError",
    "capture_destination",
    "compare_experiment",
    "operational",
    "options_from_tags",
    "passed",
    "window",
]
