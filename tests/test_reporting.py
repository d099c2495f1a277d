"""Comparison options from an experiment's tags (every tag the README lists)."""

from __future__ import annotations

import pytest

from shadowlab.analysis import CompareOptions
from shadowlab.reporting import TAG_OPTIONS, ReportError, options_from_tags


def test_every_documented_tag_sets_its_option() -> None:
    tags = [
        ("shadowlab:selector", "predictions[*].score"),
        ("shadowlab:abs-tolerance", "0.01"),
        ("shadowlab:rel-tolerance", "0.05"),
        ("shadowlab:max-p99-ratio", "1.3"),
        ("shadowlab:max-error-rate-increase", "off"),
        ("shadowlab:min-agreement", "0.95"),
        ("shadowlab:min-pairs", "500"),
        ("shadowlab:min-invocations", "50"),
        ("team", "payments"),  # not ours: ignored
    ]
    options = options_from_tags(tags, CompareOptions())
    assert options.selector == "predictions[*].score"
    assert (options.abs_tolerance, options.rel_tolerance) == (0.01, 0.05)
    rails = options.guardrails
    assert rails.max_p99_ratio == 1.3 and rails.max_error_rate_increase is None
    assert rails.min_agreement == 0.95
    assert (rails.min_pairs, rails.min_invocations) == (500, 50)
    assert {key for key, _ in tags[:-1]} == set(TAG_OPTIONS)


@pytest.mark.parametrize(
    ("tag", "value", "message"),
    [
        ("shadowlab:min-pairs", "many", "tag shadowlab:min-pairs='many' is not a valid int"),
        ("shadowlab:max-p99-ratio", "inf", "is not a finite number"),
        ("shadowlab:min-agreement", "nan", "is not a finite number"),
    ],
)
def test_a_bad_tag_value_says_which(tag: str, value: str, message: str) -> None:
    with pytest.raises(ReportError, match=message.replace("[", r"\[")):
        options_from_tags([(tag, value)], CompareOptions())
