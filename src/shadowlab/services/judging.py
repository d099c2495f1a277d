"""Whether an inference experiment's shadow may be promoted automatically at its end.

An experiment asks for it with the tag `shadowlab:auto-promote` = `true`, so the SageMaker API
stays unchanged. The decision itself (comparing captured predictions and latencies against the
guardrails) belongs to the analysis; the services only see a `Judge`: a function from the
experiment, as DescribeInferenceExperiment shows it, to a `Judgement`. The composition root
passes the real one; without one, nothing is promoted automatically.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

AUTO_PROMOTE_TAG = "shadowlab:auto-promote"


@dataclass(frozen=True)
class Judgement:
    passed: bool
    verdict: str  # "pass" | "fail" | "not enough data" (the analysis' words)
    reason: str  # one line a person can act on


# region, DescribeInferenceExperiment output -> Judgement
Judge = Callable[[str, Mapping[str, object]], Judgement]


def wants_auto_promotion(tags: list[tuple[str, str]]) -> bool:
    return any(key == AUTO_PROMOTE_TAG and value.lower() == "true" for key, value in tags)
