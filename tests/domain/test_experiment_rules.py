"""The pure rules of shadow-mode experiments: schedules, variant roles, stop plans."""

from __future__ import annotations

from typing import Any

import pytest

from shadowlab.domain import experiments as rules
from shadowlab.errors import ValidationException

DAY = 24 * 3600.0


def _variant(name: str, model: str, count: int = 1) -> dict[str, Any]:
    return {
        "VariantName": name,
        "ModelName": model,
        "InfrastructureConfig": {
            "InfrastructureType": "RealTimeInference",
            "RealTimeInferenceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": count},
        },
    }


SHADOW_MODE = {
    "SourceModelVariantName": "prod",
    "ShadowModelVariants": [{"ShadowModelVariantName": "cand", "SamplingPercentage": 25}],
}
VARIANTS = [_variant("prod", "m1"), _variant("cand", "m2", 2)]


def test_schedule_defaults_to_now_plus_seven_days() -> None:
    assert rules.resolve_schedule(None, 1000.0) == rules.Schedule(1000.0, 1000.0 + 7 * DAY)
    later = rules.resolve_schedule({"StartTime": 5000.0}, 1000.0)
    assert later == rules.Schedule(5000.0, 5000.0 + 7 * DAY)


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        (
            {"StartTime": 10.0, "EndTime": 5.0},
            "Schedule.EndTime must be later than Schedule.StartTime.",
        ),
        ({"StartTime": 0.0, "EndTime": 500.0}, "Schedule.EndTime must be in the future."),
        (
            {"StartTime": 1000.0, "EndTime": 1000.0 + 31 * DAY},
            "The duration of an inference experiment (EndTime - StartTime) can be at most 30 days.",
        ),
    ],
)
def test_schedule_bounds(schedule: dict[str, float], message: str) -> None:
    with pytest.raises(ValidationException) as caught:
        rules.resolve_schedule(schedule, 1000.0)
    assert caught.value.message == message


def test_start_now_caps_the_duration_at_thirty_days() -> None:
    schedule = rules.Schedule(10 * DAY, 40 * DAY)
    assert rules.start_now(schedule, 0.0) == rules.Schedule(0.0, 30 * DAY)
    assert rules.start_now(schedule, 20 * DAY) == rules.Schedule(20 * DAY, 40 * DAY)


def test_variant_roles() -> None:
    roles = rules.check_model_variants(VARIANTS, SHADOW_MODE)
    assert roles.source["VariantName"] == "prod"
    assert roles.sampling == {"cand": 25}
    with pytest.raises(ValidationException) as caught:
        rules.check_model_variants([VARIANTS[0]], SHADOW_MODE)
    assert caught.value.message == "Shadow variant 'cand' is not one of ModelVariants (prod)."
    extra = [*VARIANTS[:1], _variant("other", "m3")]
    mode = {
        **SHADOW_MODE,
        "ShadowModelVariants": [{"ShadowModelVariantName": "prod", "SamplingPercentage": 1}],
    }
    with pytest.raises(ValidationException, match="both the source and a shadow"):
        rules.check_model_variants(extra, mode)


@pytest.mark.parametrize(
    ("actions", "expected"),
    [
        ({"prod": "Retain", "cand": "Remove"}, rules.StopPlan(None, None, None)),
        ({"prod": "Retain", "cand": "Retain"}, rules.StopPlan(None, "cand", None)),
        ({"prod": "Remove", "cand": "Promote"}, rules.StopPlan("cand", None, ("ml.m5.large", 2))),
    ],
)
def test_stop_plans(actions: dict[str, str], expected: rules.StopPlan) -> None:
    assert rules.plan_stop(actions, "prod", ["cand"], VARIANTS, None) == expected
    assert rules.StopPlan.from_dict(expected.to_dict()) == expected


@pytest.mark.parametrize(
    ("actions", "message"),
    [
        (
            {"prod": "Retain"},
            "ModelVariantActions must give an action for every variant; missing: cand.",
        ),
        (
            {"prod": "Retain", "cand": "Remove", "x": "Remove"},
            "ModelVariantActions names x, which is not a variant of this experiment (cand, prod).",
        ),
        (
            {"prod": "Promote", "cand": "Remove"},
            "Variant 'prod' is already the production variant; "
            "only a shadow variant can be promoted.",
        ),
        (
            {"prod": "Retain", "cand": "Promote"},
            "Promoting 'cand' replaces the production variant 'prod': its action must be Remove.",
        ),
        (
            {"prod": "Remove", "cand": "Remove"},
            "Removing the production variant 'prod' requires promoting a shadow variant.",
        ),
    ],
)
def test_stop_plan_rejects(actions: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationException) as caught:
        rules.plan_stop(actions, "prod", ["cand"], VARIANTS, None)
    assert caught.value.message == message


def test_desired_model_variants_set_the_promoted_infrastructure() -> None:
    desired = [_variant("cand", "m2", 4)]
    plan = rules.plan_stop(
        {"prod": "Remove", "cand": "Promote"}, "prod", ["cand"], VARIANTS, desired
    )
    assert plan.promoted_infrastructure == ("ml.m5.large", 4)
    with pytest.raises(ValidationException, match="must keep model 'm2'"):
        rules.plan_stop(
            {"prod": "Remove", "cand": "Promote"},
            "prod",
            ["cand"],
            VARIANTS,
            [_variant("cand", "other")],
        )
