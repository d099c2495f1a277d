"""Data-plane counters driven by hand, as the invoker and the mirror drive them."""

from __future__ import annotations

from shadowlab.dataplane.admission import AdaptiveLimit
from shadowlab.dataplane.stats import ShadowStats, VariantStats

REGION = "us-east-1"


def production(endpoint: str, variant: str, region: str = REGION) -> VariantStats:
    return VariantStats(region, endpoint, variant)


def shadow(endpoint: str, variant: str, region: str = REGION) -> ShadowStats:
    return ShadowStats(AdaptiveLimit(initial=8), region, endpoint, variant)


def answer(stats: VariantStats, model_s: float, overhead_s: float, status: int = 200) -> None:
    """One request the model answered, counted as `Invoker` counts it."""
    stats.invocations += 1
    if 400 <= status < 500:
        stats.invocation_4xx += 1
        stats.model_errors += 1
    elif status >= 500:
        stats.invocation_5xx += 1
        stats.model_errors += 1
    stats.model_latencies.append(model_s)
    stats.overhead_latencies.append(overhead_s)


def copy(stats: ShadowStats, outcome: str, model_s: float = 0.0) -> None:
    """One eligible request whose copy ended in `outcome`, counted as `Mirror` counts it."""
    stats.eligible += 1
    if outcome == "skipped":  # not sampled
        return
    stats.sampled += 1
    if outcome in ("shed", "dropped"):
        setattr(stats, outcome, getattr(stats, outcome) + 1)
        return
    stats.sent += 1
    if outcome == "completed":
        stats.completed += 1
        stats.model_latencies.append(model_s)
    elif outcome == "timeout":
        stats.timeouts += 1
    else:  # a 500
        stats.errors += 1
        stats.invocation_5xx += 1
