"""The life of an inference experiment, driven by boto3 as SageMaker users drive it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.helpers import (
    checked,
    create_endpoint,
    create_model,
    experiment_request,
    in_seconds,
    stop_and_wait,
    unique,
    wait_endpoint,
    wait_experiment,
)


def _shadow_summaries(sm: Any, endpoint: str) -> list[dict[str, Any]]:
    described = checked(sm, "DescribeEndpoint", EndpointName=endpoint)
    return list(described.get("ShadowProductionVariants", []))


def test_scheduled_experiment_runs_and_completes_on_time(sm: Any) -> None:
    """The one real-time path through a schedule; its rules (and their edges) are checked on a
    fake clock in tests/services/test_experiment_schedule.py."""
    endpoint = create_endpoint(sm)
    shadow = create_model(sm)
    name = unique("exp")
    start, end = in_seconds(1.0), in_seconds(3.0)
    arn = checked(
        sm,
        "CreateInferenceExperiment",
        **experiment_request(name, endpoint, shadow, schedule={"StartTime": start, "EndTime": end}),
    )["InferenceExperimentArn"]
    assert arn == f"arn:aws:sagemaker:us-east-1:123456789012:inference-experiment/{name}"

    created = wait_experiment(sm, name, "Created")
    assert created["Schedule"]["StartTime"].timestamp() == pytest.approx(
        start.timestamp(), abs=1e-3
    )
    assert {v["VariantName"]: v["Status"] for v in created["ModelVariants"]} == {
        "variant-1": "InService",
        "shadow-1": "Creating",
    }
    assert _shadow_summaries(sm, endpoint["endpoint"]) == []

    running = wait_experiment(sm, name, "Running", timeout=10)
    assert running["EndpointMetadata"]["EndpointStatus"] == "InService"
    assert running["EndpointMetadata"]["EndpointConfigName"] == endpoint["config"]
    assert {v["Status"] for v in running["ModelVariants"]} == {"InService"}
    [shadow_summary] = _shadow_summaries(sm, endpoint["endpoint"])
    assert shadow_summary["VariantName"] == "shadow-1"
    assert shadow_summary["CurrentWeight"] == pytest.approx(0.5)  # 50% of production weight 1.0
    assert shadow_summary["CurrentInstanceCount"] == 1

    completed = wait_experiment(sm, name, "Completed", timeout=10)
    assert completed["CompletionTime"].timestamp() >= end.timestamp() - 0.5
    assert {v["VariantName"]: v["Status"] for v in completed["ModelVariants"]} == {
        "variant-1": "InService",
        "shadow-1": "Deleted",
    }
    wait_endpoint(sm, endpoint["endpoint"], "InService")
    assert _shadow_summaries(sm, endpoint["endpoint"]) == []


def test_start_early(sm: Any) -> None:
    endpoint = create_endpoint(sm)
    name = unique("exp")
    schedule = {"StartTime": in_seconds(3600), "EndTime": in_seconds(7200)}
    checked(
        sm,
        "CreateInferenceExperiment",
        **experiment_request(name, endpoint, create_model(sm), schedule=schedule),
    )
    wait_experiment(sm, name, "Created")
    checked(sm, "StartInferenceExperiment", Name=name)
    running = wait_experiment(sm, name, "Running")
    assert running["Schedule"]["StartTime"] < in_seconds(5)
    assert running["Schedule"]["EndTime"].timestamp() == pytest.approx(
        schedule["EndTime"].timestamp(), abs=1e-3
    )


def test_sampling_change_while_running(sm: Any) -> None:
    endpoint = create_endpoint(sm)
    name = unique("exp")
    request = experiment_request(name, endpoint, create_model(sm), sampling=50)
    checked(sm, "CreateInferenceExperiment", **request)
    wait_experiment(sm, name, "Running")
    config = request["ShadowModeConfig"]
    config["ShadowModelVariants"][0]["SamplingPercentage"] = 20
    checked(
        sm,
        "UpdateInferenceExperiment",
        Name=name,
        ShadowModeConfig=config,
        Description="now at 20 percent",
    )
    updated = wait_experiment(sm, name, "Running")
    assert updated["ShadowModeConfig"]["ShadowModelVariants"][0]["SamplingPercentage"] == 20
    assert updated["Description"] == "now at 20 percent"
    [shadow] = _shadow_summaries(sm, endpoint["endpoint"])
    assert shadow["CurrentWeight"] == pytest.approx(0.2)


# Each action and each DesiredState once over the wire; every combination, with rollbacks, is
# checked in tests/services/test_experiment_stop.py.
@pytest.mark.parametrize(
    ("shadow_action", "desired_state"),
    [("Promote", "Completed"), ("Remove", "Cancelled"), ("Retain", "Completed")],
)
def test_stop_with_each_action(sm: Any, shadow_action: str, desired_state: str) -> None:
    endpoint = create_endpoint(sm)
    shadow_model = create_model(sm)
    name = unique("exp")
    checked(
        sm,
        "CreateInferenceExperiment",
        **experiment_request(name, endpoint, shadow_model, sampling=40, shadow_count=2),
    )
    wait_experiment(sm, name, "Running")
    source_action = "Remove" if shadow_action == "Promote" else "Retain"
    checked(
        sm,
        "StopInferenceExperiment",
        Name=name,
        ModelVariantActions={"variant-1": source_action, "shadow-1": shadow_action},
        DesiredState=desired_state,
        Reason="decided after review",
    )
    stopped = wait_experiment(sm, name, desired_state)
    assert stopped["StatusReason"] == "decided after review"
    assert stopped["CompletionTime"] is not None
    described = wait_endpoint(sm, endpoint["endpoint"], "InService")
    production = {v["VariantName"]: v for v in described["ProductionVariants"]}
    shadows = {v["VariantName"]: v for v in described.get("ShadowProductionVariants", [])}
    statuses = {v["VariantName"]: v["Status"] for v in stopped["ModelVariants"]}
    if shadow_action == "Promote":
        assert list(production) == ["shadow-1"]
        assert production["shadow-1"]["CurrentInstanceCount"] == 2
        assert shadows == {}
        assert described["EndpointConfigName"] != endpoint["config"]
        new_config = checked(
            sm, "DescribeEndpointConfig", EndpointConfigName=described["EndpointConfigName"]
        )
        assert new_config["ProductionVariants"][0]["ModelName"] == shadow_model
        assert statuses == {"variant-1": "Deleted", "shadow-1": "InService"}
    elif shadow_action == "Remove":
        assert list(production) == ["variant-1"]
        assert shadows == {}
        assert described["EndpointConfigName"] == endpoint["config"]
        assert statuses == {"variant-1": "InService", "shadow-1": "Deleted"}
    else:
        assert list(production) == ["variant-1"]
        assert list(shadows) == ["shadow-1"]
        assert shadows["shadow-1"]["CurrentWeight"] == pytest.approx(0.4)
        assert statuses == {"variant-1": "InService", "shadow-1": "InService"}
    # The endpoint is free again: a second experiment may use it.
    wait_endpoint(sm, endpoint["endpoint"], "InService")


def test_promote_with_desired_model_variants(sm: Any) -> None:
    endpoint = create_endpoint(sm)
    shadow_model = create_model(sm)
    name = unique("exp")
    checked(sm, "CreateInferenceExperiment", **experiment_request(name, endpoint, shadow_model))
    wait_experiment(sm, name, "Running")
    checked(
        sm,
        "StopInferenceExperiment",
        Name=name,
        ModelVariantActions={"variant-1": "Remove", "shadow-1": "Promote"},
        DesiredModelVariants=[
            {
                "ModelName": shadow_model,
                "VariantName": "shadow-1",
                "InfrastructureConfig": {
                    "InfrastructureType": "RealTimeInference",
                    "RealTimeInferenceConfig": {"InstanceType": "ml.c5.xlarge", "InstanceCount": 3},
                },
            }
        ],
    )
    wait_experiment(sm, name, "Completed")
    described = wait_endpoint(sm, endpoint["endpoint"], "InService")
    [variant] = described["ProductionVariants"]
    assert variant["CurrentInstanceCount"] == 3
    config = checked(
        sm, "DescribeEndpointConfig", EndpointConfigName=described["EndpointConfigName"]
    )
    assert config["ProductionVariants"][0]["InstanceType"] == "ml.c5.xlarge"


def test_delete_experiment_after_completion(sm: Any) -> None:
    endpoint = create_endpoint(sm)
    name = unique("exp")
    checked(sm, "CreateInferenceExperiment", **experiment_request(name, endpoint, create_model(sm)))
    wait_experiment(sm, name, "Running")
    stop_and_wait(sm, name)
    arn = checked(sm, "DeleteInferenceExperiment", Name=name)["InferenceExperimentArn"]
    assert arn.endswith(f"inference-experiment/{name}")
    with pytest.raises(sm.exceptions.ResourceNotFound):
        sm.describe_inference_experiment(Name=name)
    # The endpoint can carry a new experiment now.
    again = unique("exp")
    checked(
        sm, "CreateInferenceExperiment", **experiment_request(again, endpoint, create_model(sm))
    )
    wait_experiment(sm, again, "Running")
