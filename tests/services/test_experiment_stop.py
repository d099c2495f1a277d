"""StopInferenceExperiment on a running experiment: Promote / Remove / Retain per variant and
DesiredState; what the endpoint becomes; automatic promotion at EndTime."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from shadowlab.services.judging import AUTO_PROMOTE_TAG, Judgement
from tests.services.harness import MINUTE, World, experiment_request


def _variants(world: World) -> tuple[dict[str, Any], dict[str, Any]]:
    described = world.endpoint()
    production = {v["VariantName"]: v for v in described["ProductionVariants"]}
    shadows = {v["VariantName"]: v for v in described.get("ShadowProductionVariants", [])}
    return production, shadows


def _config(world: World) -> dict[str, Any]:
    name = world.endpoint()["EndpointConfigName"]
    return world.services.configs.describe_endpoint_config(world.ctx, {"EndpointConfigName": name})


@pytest.mark.parametrize("desired_state", ["Completed", "Cancelled"])
@pytest.mark.parametrize("shadow_action", ["Promote", "Remove", "Retain"])
def test_stop_with_each_action(world: World, shadow_action: str, desired_state: str) -> None:
    world.running_experiment(sampling=40, shadow_count=2)
    source_action = "Remove" if shadow_action == "Promote" else "Retain"
    world.clock.advance(MINUTE)
    world.stop(
        {"variant-1": source_action, "shadow-1": shadow_action},
        DesiredState=desired_state,
        Reason="decided after review",
    )
    assert world.experiment_status() == "Stopping"
    world.tick()  # the endpoint is retargeted
    assert world.endpoint_status() == "Updating"
    assert world.experiment_status() == "Stopping"
    world.hosting.finish("ep")
    world.tick(2)
    stopped = world.experiment()
    assert (stopped["Status"], stopped["StatusReason"]) == (desired_state, "decided after review")
    assert stopped["CompletionTime"].timestamp() == world.clock.now()
    assert world.holder() is None
    assert world.endpoint_status() == "InService"
    production, shadows = _variants(world)
    config = _config(world)
    if shadow_action == "Promote":
        assert list(production) == ["shadow-1"]
        assert production["shadow-1"]["CurrentInstanceCount"] == 2
        assert shadows == {}
        assert config["EndpointConfigName"] != "config"
        [variant] = config["ProductionVariants"]
        assert (variant["ModelName"], variant["InstanceType"]) == ("candidate", "ml.m5.xlarge")
        assert world.variant_statuses() == {"variant-1": "Deleted", "shadow-1": "InService"}
    elif shadow_action == "Remove":
        assert list(production) == ["variant-1"]
        assert shadows == {}
        assert config["EndpointConfigName"] == "config"
        assert world.variant_statuses() == {"variant-1": "InService", "shadow-1": "Deleted"}
    else:
        assert list(production) == ["variant-1"]
        assert list(shadows) == ["shadow-1"]
        assert shadows["shadow-1"]["CurrentWeight"] == pytest.approx(0.4)
        assert shadows["shadow-1"]["CurrentInstanceCount"] == 2
        [kept] = config["ShadowProductionVariants"]
        assert (kept["VariantName"], kept["ModelName"]) == ("shadow-1", "candidate")
        assert world.variant_statuses() == {"variant-1": "InService", "shadow-1": "InService"}


def test_promote_with_desired_model_variants(world: World) -> None:
    world.running_experiment()
    world.stop(
        {"variant-1": "Remove", "shadow-1": "Promote"},
        DesiredModelVariants=[
            {
                "ModelName": "candidate",
                "VariantName": "shadow-1",
                "InfrastructureConfig": {
                    "InfrastructureType": "RealTimeInference",
                    "RealTimeInferenceConfig": {"InstanceType": "ml.c5.xlarge", "InstanceCount": 3},
                },
            }
        ],
    )
    world.drive(lambda: world.experiment_status() == "Completed")
    production, _ = _variants(world)
    assert production["shadow-1"]["CurrentInstanceCount"] == 3
    [variant] = _config(world)["ProductionVariants"]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.c5.xlarge", 3)


def test_stop_while_starting_removes_the_shadow_being_deployed(world: World) -> None:
    world.in_service_endpoint()
    world.create_experiment()
    world.tick(3)  # Created, Starting, the endpoint retargeted with the shadow
    assert world.experiment_status() == "Starting"
    assert world.hosting.pending("ep").shadows()  # asked for, never finished
    world.stop({"variant-1": "Retain", "shadow-1": "Remove"}, DesiredState="Cancelled")
    world.drive(lambda: world.experiment_status() == "Cancelled")
    assert world.hosting.running("ep") is not None
    assert world.hosting.pending("ep").shadows() == ()
    assert world.holder() is None


# -- automatic promotion at EndTime --------------------------------------------------------------


def _auto_promoting(world: World, judge: Any) -> World:
    """`world` restarted with `judge`, and an experiment tagged for automatic promotion that
    runs until its EndTime."""
    world = world.restart(judge=judge) if judge is not None else world
    world.in_service_endpoint()
    now = world.clock.now()
    request_tags = [{"Key": AUTO_PROMOTE_TAG, "Value": "true"}]
    world.services.experiments.create_inference_experiment(
        world.ctx,
        {
            **experiment_request("exp", schedule={"StartTime": now, "EndTime": now + MINUTE}),
            "Tags": request_tags,
        },
    )
    world.drive(lambda: world.experiment_status() == "Running")
    world.clock.advance(MINUTE)
    world.drive(lambda: world.experiment_status() == "Completed")
    return world


def _judge(outcome: Judgement | Exception) -> Any:
    seen: list[Mapping[str, Any]] = []

    def judge(region: str, experiment: Mapping[str, Any]) -> Judgement:
        seen.append(experiment)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    judge.seen = seen  # type: ignore[attr-defined]
    return judge


def test_auto_promotion_with_a_passing_verdict_promotes(world: World) -> None:
    judge = _judge(Judgement(True, "pass", "p99 within 1.2x, 99% agreement."))
    world = _auto_promoting(world, judge)
    described = world.experiment()
    assert described["StatusReason"] == (
        "Promoted automatically: verdict pass. p99 within 1.2x, 99% agreement."
    )
    assert judge.seen[0]["Name"] == "exp" and judge.seen[0]["Status"] == "Running"
    production, shadows = _variants(world)
    assert (list(production), shadows) == (["shadow-1"], {})
    assert world.variant_statuses() == {"variant-1": "Deleted", "shadow-1": "InService"}


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [
        (
            Judgement(False, "fail", "p99 4.1x production's."),
            "Not promoted automatically: verdict fail. p99 4.1x production's.",
        ),
        (
            RuntimeError("captures unreadable"),
            "Not promoted automatically: the verdict failed (captures unreadable).",
        ),
        (None, "Not promoted automatically: this server has no judge configured."),
    ],
    ids=["fail", "judge-raises", "no-judge"],
)
def test_auto_promotion_without_a_pass_keeps_production(
    world: World, outcome: Judgement | Exception | None, reason: str
) -> None:
    world = _auto_promoting(world, None if outcome is None else _judge(outcome))
    assert world.experiment()["StatusReason"] == reason
    production, shadows = _variants(world)
    assert (list(production), shadows) == (["variant-1"], {})
    assert world.variant_statuses() == {"variant-1": "InService", "shadow-1": "Deleted"}
