"""Per-variant counters of the data plane: plain ints bumped on the event loop, read anywhere.

They stay cheap on purpose (an attribute increment per event, a list append per latency); the
metrics part (`shadowlab.metrics`) turns them into SageMaker's per-minute CloudWatch-style
numbers. Latencies are appended raw, in seconds: feeding a quantile sketch per request costs
~1.7 us in pure Python, so a periodic drain on the loop (`DataPlaneServer`) takes the lists away
every second and the metrics part sketches them in bulk with numpy (~0.03 us per value).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from shadowlab.dataplane.admission import AdaptiveLimit

_MINUTES_KEPT = 60


class VariantStats:
    """One production variant of one endpoint.

    invocations: requests routed to the variant. invocation_4xx / invocation_5xx: the model
    answered with that class of status (SageMaker's Invocation4XXErrors / Invocation5XXErrors).
    model_errors: every request answered with ModelError (a non-2xx model status, a timeout,
    a connection the model dropped). unavailable: answered ServiceUnavailable (no instance, no
    connection).

    model_latencies: seconds from handing the request to the model server until its answer;
    overhead_latencies: the rest of the data plane's time on the same request (arrival to
    response written, less the model's part). Both only for requests the model answered, and
    only until the next drain takes the lists away.
    """

    __slots__ = (
        "endpoint",
        "invocation_4xx",
        "invocation_5xx",
        "invocations",
        "model_errors",
        "model_latencies",
        "overhead_latencies",
        "region",
        "unavailable",
        "variant",
        "variant_header",
    )

    def __init__(self, region: str, endpoint: str, variant: str) -> None:
        self.region = region
        self.endpoint = endpoint
        self.variant = variant
        self.variant_header = variant.encode("ascii", "replace")  # for x-Amzn-Invoked-...
        self.model_latencies: list[float] = []
        self.overhead_latencies: list[float] = []
        self.invocations = 0
        self.invocation_4xx = 0
        self.invocation_5xx = 0
        self.model_errors = 0
        self.unavailable = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "invocations": self.invocations,
            "invocation_4xx": self.invocation_4xx,
            "invocation_5xx": self.invocation_5xx,
            "model_errors": self.model_errors,
            "unavailable": self.unavailable,
        }


class ShadowStats:
    """One shadow variant of one endpoint.

    eligible: production requests that could have been copied to this shadow. sampled: copies
    the sampling percentage asked for. Each sampled copy ends in exactly one of: completed (the
    shadow answered 2xx), errors (it answered non-2xx, or dropped the connection or the answer),
    timeouts (no answer within the copy timeout), shed (never run for lack of capacity: refused
    by admission, or by the worker because its queue was full or the copy's deadline had
    passed), dropped (no live instance to send it to), or is still in_flight. So
    `sampled == completed + errors + timeouts + shed + dropped + in_flight`; sent counts the
    copies that went out (sampled less those shed by admission and dropped).

    The effective sampling rate (sent / eligible) is also kept per minute for the last hour, so
    a comparison can state the real sample size and rate.

    invocation_4xx / invocation_5xx: the part of `errors` where the shadow answered with that
    class of status (bumped on the error path only). model_latencies: seconds from sending each
    completed (2xx) copy until its answer, until the next drain takes the list away.
    """

    __slots__ = (
        "completed",
        "dropped",
        "eligible",
        "endpoint",
        "errors",
        "in_flight",
        "invocation_4xx",
        "invocation_5xx",
        "limit",
        "minute",
        "minute_eligible",
        "minute_sent",
        "minutes",
        "model_latencies",
        "region",
        "sampled",
        "sent",
        "shed",
        "timeouts",
        "variant",
    )

    def __init__(self, limit: AdaptiveLimit, region: str, endpoint: str, variant: str) -> None:
        self.region = region
        self.endpoint = endpoint
        self.variant = variant
        self.model_latencies: list[float] = []
        self.invocation_4xx = 0
        self.invocation_5xx = 0
        self.limit = limit
        self.eligible = 0
        self.sampled = 0
        self.sent = 0
        self.completed = 0
        self.errors = 0
        self.timeouts = 0
        self.shed = 0
        self.dropped = 0
        self.in_flight = 0
        self.minute = 0  # epoch minute the minute_* counters belong to
        self.minute_eligible = 0
        self.minute_sent = 0
        self.minutes: deque[tuple[int, int, int]] = deque(maxlen=_MINUTES_KEPT)

    def roll(self, minute: int) -> None:
        """Start counting `minute`; the finished one joins the history."""
        if self.minute_eligible:
            self.minutes.append((self.minute, self.minute_eligible, self.minute_sent))
        self.minute = minute
        self.minute_eligible = 0
        self.minute_sent = 0

    def as_dict(self) -> dict[str, object]:
        minutes = [*self.minutes]
        if self.minute_eligible:
            minutes.append((self.minute, self.minute_eligible, self.minute_sent))
        return {
            "eligible": self.eligible,
            "sampled": self.sampled,
            "sent": self.sent,
            "completed": self.completed,
            "errors": self.errors,
            "timeouts": self.timeouts,
            "shed": self.shed,
            "dropped": self.dropped,
            "in_flight": self.in_flight,
            "limit": self.limit.limit,
            "effective_sampling_percentage": _percent(self.sent, self.eligible),
            "per_minute": [
                {
                    "minute": _iso_minute(minute),
                    "eligible": eligible,
                    "sent": sent,
                    "effective_sampling_percentage": _percent(sent, eligible),
                }
                for minute, eligible, sent in minutes
            ],
        }


class MetricsSink(Protocol):
    """Takes the latencies (and reads the counters) of every variant once a second.

    Called on the data plane's event loop, where the counters are bumped, so it may swap the
    latency lists out without a lock. `now` is wall-clock time (`time.time()`).
    """

    def collect(
        self, now: float, variants: Sequence[VariantStats], shadows: Sequence[ShadowStats]
    ) -> None: ...


def by_endpoint_variant(
    stats: Iterable[VariantStats | ShadowStats],
) -> dict[tuple[str, str], dict[str, Any]]:
    """`as_dict()` keyed (endpoint, variant), the shape `/shadowlab/stats` has always had.

    Counters are kept per region (the metrics need it); an endpoint name used in two regions
    shows here as one row whose counters are the sum, as it did before regions were kept apart.
    """
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for one in stats:
        key = (one.endpoint, one.variant)
        row: dict[str, Any] = one.as_dict()
        if key in found:
            row = _summed(found[key], row)
        found[key] = row
    return found


def _summed(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    merged = {k: v + b[k] if isinstance(v, int | list) else v for k, v in a.items()}
    if "effective_sampling_percentage" in merged:
        merged["effective_sampling_percentage"] = _percent(merged["sent"], merged["eligible"])
    return merged


def _percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 3) if whole else 0.0


def _iso_minute(minute: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(minute * 60))
