"""Latency percentiles with confidence intervals, error rates, and the verdict's three outcomes."""

from __future__ import annotations

import random

import ddsketch
import numpy as np
import pytest

from shadowlab.analysis import (
    FAIL,
    INSUFFICIENT,
    PASS,
    CompareOptions,
    Guardrails,
    ShadowCopies,
    VariantOperational,
    compare,
)
from shadowlab.analysis.operational import figures
from shadowlab.analysis.stats import quantile_ranks, wilson, z_value
from tests.analysis.support import EXPERIMENT, exact_quantile, label_pairs, operational


def test_order_statistic_interval_of_exact_samples() -> None:
    samples = [float(v) for v in range(1, 1001)]  # the k-th smallest is k
    f = figures(operational("prod", "production", samples), 0.95)
    p50 = f.latency_us["p50"]
    # n*q -/+ 1.96*sqrt(n*q*(1-q)) = 500 -/+ 30.99: order statistics 469 and 531.
    assert (p50.value, p50.low, p50.high, p50.n) == (500.0, 469.0, 531.0, 1000)
    p99 = f.latency_us["p99"]
    assert p99.low is not None and p99.high is not None
    assert p99.low <= 990 <= p99.high and p99.high <= 1000
    assert f.distribution_us[0] == (0.001, 1.0)


def test_interval_covers_the_true_quantile_at_about_its_level() -> None:
    rng = random.Random(3)
    true_p99 = -np.log(0.01)  # exponential(1)
    covered = 0
    for _ in range(300):
        samples = [rng.expovariate(1.0) for _ in range(500)]
        metrics = VariantOperational(
            "v", "production", 500, latency_count=500, latency_quantile=exact_quantile(samples)
        )
        p99 = figures(metrics, 0.95).latency_us["p99"]
        assert p99.low is not None and p99.high is not None
        covered += p99.low <= true_p99 <= p99.high
    assert 0.90 <= covered / 300 <= 1.0


def test_interval_from_a_ddsketch_holds_the_exact_percentile() -> None:
    rng = random.Random(5)
    samples = [rng.lognormvariate(8, 0.6) for _ in range(20_000)]
    sketch = ddsketch.DDSketch(0.01)
    for value in samples:
        sketch.add(value)
    metrics = VariantOperational(
        "v",
        "production",
        len(samples),
        latency_count=len(samples),
        latency_quantile=sketch.get_quantile_value,
        latency_relative_accuracy=0.01,
    )
    f = figures(metrics, 0.95)
    ordered = sorted(samples)
    for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        exact = ordered[int(q * (len(ordered) - 1))]
        estimate = f.latency_us[name]
        assert estimate.value == pytest.approx(exact, rel=0.01)  # DDSketch's documented bound
        assert estimate.low is not None and estimate.high is not None
        assert estimate.low <= exact <= estimate.high


def test_percentiles_without_a_sketch_have_no_interval() -> None:
    metrics = VariantOperational(
        "v", "production", 10, latency_count=10, latency_percentiles={0.5: 100.0, 0.99: 900.0}
    )
    f = figures(metrics, 0.95)
    assert f.latency_us["p50"].value == 100.0 and f.latency_us["p50"].low is None
    assert f.latency_us["p90"].value is None
    assert any("no confidence intervals" in note for note in f.notes)


def test_error_rate_throughput_and_copies() -> None:
    copies = ShadowCopies(eligible=600, sent=270, shed=30, timeouts=2, errors=1, sampled=300)
    f = figures(operational("cand", "shadow", [1.0] * 270, errors=3, copies=copies), 0.95)
    assert f.error_rate.value == pytest.approx(3 / 270)
    assert f.error_rate.low is not None and f.error_rate.low < 3 / 270 < (f.error_rate.high or 0)
    assert f.window_seconds == 180 and f.throughput_per_second == pytest.approx(1.5)
    assert f.copy_rate == pytest.approx(0.45)
    interval = wilson(0, 100, z_value(0.95))
    assert (
        interval is not None
        and interval.low == 0
        and interval.high == pytest.approx(0.037, abs=1e-3)
    )
    assert quantile_ranks(1, 0.5, 1.96) == (0.0, 1.0)


def _metrics(
    shadow_latency: float, shadow_errors: int = 0, n: int = 1000
) -> list[VariantOperational]:
    return [
        operational("prod", "production", [25_400.0] * n, errors=1),
        operational("cand", "shadow", [shadow_latency] * n, errors=shadow_errors),
    ]


def test_verdict_passes_with_every_reason() -> None:
    pairs = label_pairs([i % 2 for i in range(200)], [i % 2 for i in range(200)])
    result = compare(pairs, _metrics(26_000.0), EXPERIMENT, CompareOptions(selector="labels"))
    verdict = result.verdict
    assert verdict.status == PASS, verdict
    assert [r.name for r in verdict.guardrails] == [
        "pairs",
        "latency p99",
        "error rate",
        "agreement",
    ]
    assert all(r.status == PASS for r in verdict.guardrails)
    latency = verdict.guardrails[1]
    assert latency.reason.startswith(
        "shadow p99 26.0 ms is 1.02x production's 25.4 ms (limit 1.10x"
    )
    assert "labels agree on 100.00% of 200 values from 200 pairs" in verdict.guardrails[3].reason
    assert "200 pairs of 200 production records" in verdict.guardrails[0].reason


def test_verdict_fails_with_the_failing_guardrails_reasons() -> None:
    production = [i % 2 for i in range(200)]
    shadow = [1 - a if i % 20 == 0 else a for i, a in enumerate(production)]  # 5% flips
    result = compare(
        label_pairs(production, shadow),
        _metrics(41_200.0, shadow_errors=5),
        EXPERIMENT,
        CompareOptions(selector="labels"),
    )
    verdict = result.verdict
    assert verdict.status == FAIL
    by_name = {r.name: r for r in verdict.guardrails}
    assert by_name["latency p99"].status == FAIL
    assert by_name["latency p99"].reason.startswith(
        "shadow p99 41.2 ms is 1.62x production's 25.4 ms (limit 1.10x"
    )
    assert by_name["error rate"].status == FAIL
    assert (
        "0.50% (5 of 1,000) is +0.40 points from production's 0.10%" in by_name["error rate"].reason
    )
    assert by_name["agreement"].status == FAIL
    assert (
        "95.00%" in by_name["agreement"].reason and "flip rate 5.00%" in by_name["agreement"].reason
    )
    assert "3 of 4 guardrails failed" in verdict.summary


def test_verdict_without_enough_data_says_what_is_missing() -> None:
    pairs = label_pairs([0] * 20, [0] * 20)
    result = compare(pairs, _metrics(25_000.0, n=50), EXPERIMENT, CompareOptions(selector="labels"))
    verdict = result.verdict
    assert verdict.status == INSUFFICIENT
    by_name = {r.name: r for r in verdict.guardrails}
    assert by_name["pairs"].reason.startswith("20 compared pairs")
    assert "at least 100 needed" in by_name["pairs"].reason
    assert by_name["latency p99"].reason == "production has 50 latency samples; at least 100 needed"
    assert by_name["agreement"].status == INSUFFICIENT


def test_guardrails_are_configurable_and_error_rate_falls_back_to_captures() -> None:
    pairs = label_pairs([0] * 30, [0] * 30)
    rails = Guardrails(min_pairs=10, min_invocations=10, max_p99_ratio=None)
    result = compare(pairs, options=CompareOptions(selector="labels", guardrails=rails))
    assert result.verdict.status == PASS
    names = [r.name for r in result.verdict.guardrails]
    assert names == ["pairs", "error rate", "agreement"]
    assert "from the captured pairs" in result.verdict.guardrails[1].reason


def test_no_shadow_at_all_is_not_enough_data() -> None:
    result = compare([])
    assert result.verdict.status == INSUFFICIENT and result.pairs_read == 0
