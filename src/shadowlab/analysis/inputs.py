"""What the comparison is given: operational metrics per variant, options and guardrails.

These are plain, typed containers so that the analysis imports neither the metrics nor the
capture package: whoever calls ``compare`` adapts its own data to them.

Units follow SageMaker's CloudWatch metrics: latencies (``ModelLatency``) in **microseconds**,
counts as plain integers, times as epoch seconds (UTC).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

Role = Literal["production", "shadow"]


@dataclass(frozen=True, slots=True)
class MinutePoint:
    """One minute of one variant.

    ``minute`` is the epoch second the minute starts at (UTC). ``errors`` counts
    InvocationModelErrors in that minute (see ``VariantOperational``). Latencies are ModelLatency
    quantiles in microseconds, ``None`` for a minute without answered invocations.
    """

    minute: int
    invocations: int
    errors: int = 0
    latency_p50_us: float | None = None
    latency_p99_us: float | None = None


@dataclass(frozen=True, slots=True)
class ShadowCopies:
    """What the shadow mirror did for one shadow variant (``GET /shadowlab/stats``).

    ``eligible``: production requests the shadow could have been copied; ``sampled``: those its
    SamplingPercentage picked (optional); ``sent``: copies admitted and sent; ``shed``: copies
    refused at once by the admission limit; ``timeouts`` and ``errors``: sent copies that got no
    answer in time, or a non-2xx one.
    """

    eligible: int
    sent: int
    shed: int = 0
    timeouts: int = 0
    errors: int = 0
    sampled: int | None = None


@dataclass(frozen=True, slots=True)
class VariantOperational:
    """Operational metrics of one variant over the experiment's window.

    ``invocations`` are SageMaker's Invocations; for a shadow, the copies that reached it (shed
    copies are not invocations). ``errors_4xx`` / ``errors_5xx`` are Invocation4XXErrors /
    Invocation5XXErrors; ``model_errors`` is InvocationModelErrors, every model invocation without
    a 2xx answer (4xx, 5xx, socket errors, timeouts): **the error rate is model_errors /
    invocations** for every variant, so production and shadow are measured alike.

    Latency (ModelLatency, microseconds) comes from a quantile sketch through
    ``latency_quantile(q) -> value`` (``q`` in [0, 1]; ``None`` when empty), over
    ``latency_count`` samples; ``latency_relative_accuracy`` is the sketch's documented relative
    error (DDSketch's ``relative_accuracy``, e.g. 0.01), used to widen confidence intervals.
    Without a callable, ``latency_percentiles`` ({0.5: us, 0.9: us, 0.99: us, ...}) gives point
    values only (no confidence intervals).

    Throughput is ``invocations / window_seconds``; without ``window_seconds`` the window is
    the span of ``per_minute`` (first minute to the end of the last).
    """

    variant: str
    role: Role
    invocations: int
    errors_4xx: int = 0
    errors_5xx: int = 0
    model_errors: int = 0
    latency_count: int = 0
    latency_quantile: Callable[[float], float | None] | None = None
    latency_percentiles: Mapping[float, float] | None = None
    latency_relative_accuracy: float = 0.0
    per_minute: Sequence[MinutePoint] = ()
    window_seconds: float | None = None
    copies: ShadowCopies | None = None


@dataclass(frozen=True, slots=True)
class Guardrails:
    """When a shadow is safe to promote. ``None`` turns a guardrail off.

    - ``max_p99_ratio``: shadow ModelLatency p99 at most this multiple of production's.
    - ``max_error_rate_increase``: shadow error rate at most production's plus this (a fraction:
      0.001 is 0.1 percentage point).
    - ``min_agreement``: at least this share of compared output values agree (see
      ``CompareOptions``).
    - ``min_pairs``: fewer compared pairs than this is "not enough data" for agreement;
      ``min_invocations`` is the same for a variant's latency and error rate.
    """

    max_p99_ratio: float | None = 1.10
    max_error_rate_increase: float | None = 0.001
    min_agreement: float | None = 0.99
    min_pairs: int = 100
    min_invocations: int = 100


@dataclass(frozen=True, slots=True)
class CompareOptions:
    """How outputs are read and compared.

    - ``selector``: which part of a JSON answer is the prediction (see ``selector``): ``labels``,
      ``predictions.0``, ``probabilities[*][1]``, ``$.predictions[*].label``. ``None``: all of it.
      Applies to JSON (and JSON Lines) outputs only; CSV and NPY outputs are used whole.
    - ``abs_tolerance`` / ``rel_tolerance``: two numbers agree when ``|a - b| <= max(abs_tol,
      rel_tol * max(|a|, |b|))`` (``math.isclose``'s rule).
    - ``labels``: outputs are class labels (``True``), numbers (``False``) or auto-detected
      (``None``: labels when any value is not a number, or every number is integer-valued).
    - ``examples``: disagreements (and shadow failures) kept as examples, a uniform reservoir
      sample; ``value_sample``: value pairs kept for the Kolmogorov-Smirnov test, likewise.
    - ``max_classes``: distinct labels per side kept in the confusion matrix.
    - ``progress_every``: ``progress(n)`` is called after every this many pairs.
    - ``confidence``: level of every confidence interval.
    - ``preview_chars``: captured inputs and outputs are shown decoded, cut to this length.
    """

    selector: str | None = None
    abs_tolerance: float = 1e-6
    rel_tolerance: float = 1e-6
    labels: bool | None = None
    guardrails: Guardrails = field(default_factory=Guardrails)
    examples: int = 50
    value_sample: int = 100_000
    max_classes: int = 50
    progress_every: int = 1000
    confidence: float = 0.95
    preview_chars: int = 300
    seed: int = 0
