"""Is the shadow safe to promote? Guardrails give pass, fail or not enough data, with reasons.

Each shadow variant is held to every guardrail that is on (see ``inputs.Guardrails``):

- **pairs**: at least ``min_pairs`` compared pairs (never fails: too few is "not enough data");
- **latency p99**: shadow p99 / production p99 at most ``max_p99_ratio``;
- **error rate**: shadow error rate minus production's at most ``max_error_rate_increase``,
  from the operational metrics when both variants have them, else from the captured pairs
  (same requests on both sides);
- **agreement**: at least ``min_agreement`` of compared values agree.

A guardrail without enough data (a variant with fewer than ``min_invocations`` invocations or
latency samples, fewer than ``min_pairs`` pairs) is "not enough data", never pass. The verdict
is "fail" when any guardrail fails, else "not enough data" when any lacks data, else "pass".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shadowlab.analysis import fmt
from shadowlab.analysis.agreement import LABELS, Agreement
from shadowlab.analysis.inputs import Guardrails
from shadowlab.analysis.operational import VariantFigures

PASS, FAIL, INSUFFICIENT = "pass", "fail", "not enough data"


@dataclass(frozen=True, slots=True)
class GuardrailResult:
    name: str  # pairs | latency p99 | error rate | agreement
    shadow: str
    status: str  # pass | fail | not enough data
    observed: float | None
    limit: float | None
    reason: str


@dataclass(frozen=True, slots=True)
class Verdict:
    status: str
    summary: str
    guardrails: list[GuardrailResult]


def evaluate(
    production: VariantFigures | None,
    shadows: Mapping[str, VariantFigures | None],
    agreements: Mapping[str, Agreement],
    guardrails: Guardrails,
) -> Verdict:
    results: list[GuardrailResult] = []
    for shadow in sorted(set(shadows) | set(agreements)):
        agreement = agreements.get(shadow)
        results.append(_pairs(shadow, agreement, guardrails))
        if guardrails.max_p99_ratio is not None:
            results.append(_latency(shadow, production, shadows.get(shadow), guardrails))
        if guardrails.max_error_rate_increase is not None:
            results.append(_errors(shadow, production, shadows.get(shadow), agreement, guardrails))
        if guardrails.min_agreement is not None:
            results.append(_agreement(shadow, agreement, guardrails))
    if not results:
        return Verdict(INSUFFICIENT, "no shadow variant in the captures or the metrics", [])
    several = len({r.shadow for r in results}) > 1

    def names(chosen: list[GuardrailResult]) -> str:
        return ", ".join(f"{r.name} ({r.shadow})" if several else r.name for r in chosen)

    failed = [r for r in results if r.status == FAIL]
    missing = [r for r in results if r.status == INSUFFICIENT]
    if failed:
        summary = f"{len(failed)} of {len(results)} guardrails failed: {names(failed)}"
        return Verdict(FAIL, summary, results)
    if missing:
        return Verdict(INSUFFICIENT, f"not enough data for {names(missing)}", results)
    return Verdict(PASS, f"all {len(results)} guardrails passed", results)


def _pairs(shadow: str, agreement: Agreement | None, rails: Guardrails) -> GuardrailResult:
    compared = 0 if agreement is None else agreement.compared_pairs
    status = PASS if compared >= rails.min_pairs else INSUFFICIENT
    if agreement is None:
        reason = "no captured pairs"
    else:
        reason = (
            f"{compared:,} compared pairs; {agreement.pairs:,} pairs of "
            f"{agreement.production_records:,} production records "
            f"(sampling {fmt.pct(agreement.sampling_rate)})"
        )
    reason += f"; at least {rails.min_pairs:,} needed"
    return GuardrailResult("pairs", shadow, status, compared, rails.min_pairs, reason)


def _latency(
    shadow: str,
    production: VariantFigures | None,
    figures: VariantFigures | None,
    rails: Guardrails,
) -> GuardrailResult:
    limit = rails.max_p99_ratio
    assert limit is not None

    def lacking(reason: str) -> GuardrailResult:
        return GuardrailResult("latency p99", shadow, INSUFFICIENT, None, limit, reason)

    if production is None or figures is None:
        which = "production" if production is None else "the shadow"
        return lacking(f"no latency metrics for {which}")
    for who, variant in (("production", production), ("the shadow", figures)):
        estimate = variant.latency_us["p99"]
        if estimate.value is None or estimate.n < rails.min_invocations:
            return lacking(
                f"{who} has {estimate.n:,} latency samples; "
                f"at least {rails.min_invocations:,} needed"
            )
    first = production.latency_us["p99"]
    second = figures.latency_us["p99"]
    assert first.value is not None and second.value is not None
    if first.value > 0:
        observed = second.value / first.value
    else:
        observed = 1.0 if second.value <= 0 else float("inf")
    reason = (
        f"shadow p99 {fmt.ms(second.value)} is {observed:.2f}x production's "
        f"{fmt.ms(first.value)} (limit {limit:.2f}x; n = {second.n:,} and {first.n:,})"
    )
    status = PASS if observed <= limit else FAIL
    return GuardrailResult("latency p99", shadow, status, observed, limit, reason)


def _errors(
    shadow: str,
    production: VariantFigures | None,
    figures: VariantFigures | None,
    agreement: Agreement | None,
    rails: Guardrails,
) -> GuardrailResult:
    limit = rails.max_error_rate_increase
    assert limit is not None
    if production is not None and figures is not None and figures.invocations > 0:
        source = "metrics"
        first = (production.model_errors, production.invocations)
        second = (figures.model_errors, figures.invocations)
    elif agreement is not None:
        source = "captured pairs"
        pairs, production_errors, shadow_errors = agreement.error_counts()
        first, second = (production_errors, pairs), (shadow_errors, pairs)
    else:
        return GuardrailResult(
            "error rate", shadow, INSUFFICIENT, None, limit, "no metrics and no captured pairs"
        )
    for who, (_errors_seen, n) in (("production", first), ("the shadow", second)):
        if n < rails.min_invocations:
            return GuardrailResult(
                "error rate",
                shadow,
                INSUFFICIENT,
                None,
                limit,
                f"{who} has {n:,} invocations in the {source}; "
                f"at least {rails.min_invocations:,} needed",
            )
    first_rate, second_rate = first[0] / first[1], second[0] / second[1]
    observed = second_rate - first_rate
    reason = (
        f"shadow error rate {fmt.pct(second_rate, 2)} ({second[0]:,} of {second[1]:,}) is "
        f"{observed * 100:+.2f} points from production's {fmt.pct(first_rate, 2)} "
        f"({first[0]:,} of {first[1]:,}) (limit {limit * 100:+.2f} points; from the {source})"
    )
    status = PASS if observed <= limit + 1e-12 else FAIL
    return GuardrailResult("error rate", shadow, status, observed, limit, reason)


def _agreement(shadow: str, agreement: Agreement | None, rails: Guardrails) -> GuardrailResult:
    limit = rails.min_agreement
    assert limit is not None
    rate = None if agreement is None else agreement.agreement_rate
    if agreement is None or rate is None or agreement.compared_pairs < rails.min_pairs:
        compared = 0 if agreement is None else agreement.compared_pairs
        reason = f"{compared:,} compared pairs; at least {rails.min_pairs:,} needed"
        return GuardrailResult("agreement", shadow, INSUFFICIENT, rate, limit, reason)
    what = "labels agree" if agreement.kind == LABELS else "outputs agree"
    reason = (
        f"{what} on {fmt.pct(rate, 2)} of {agreement.values:,} values from "
        f"{agreement.compared_pairs:,} pairs (at least {fmt.pct(limit, 2)} required)"
    )
    if agreement.kind == LABELS and agreement.labels is not None:
        reason += f"; flip rate {fmt.pct(agreement.labels.flip_rate, 2)}"
    status = PASS if rate >= limit else FAIL
    return GuardrailResult("agreement", shadow, status, rate, limit, reason)
