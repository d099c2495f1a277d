"""Builders and waits shared by the contract tests."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tests.serverproc import ACCOUNT
from tests.shapecheck import assert_output_shape

ROLE = f"arn:aws:iam::{ACCOUNT}:role/SageMakerRole"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sklearn:latest"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def checked(client: Any, operation: str, **params: Any) -> dict[str, Any]:
    """Call `operation` and check the response against botocore's output shape."""
    method = getattr(client, _snake(operation))
    response: dict[str, Any] = method(**params)
    assert_output_shape("sagemaker", operation, response)
    return response


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def wait_for(probe: Callable[[], Any], accept: Callable[[Any], bool], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    value = probe()
    while not accept(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; last value: {value!r}")
        time.sleep(0.1)
        value = probe()
    return value


def create_model(sm: Any, name: str | None = None) -> str:
    name = name or unique("model")
    checked(
        sm,
        "CreateModel",
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": "s3://models/demo/model.tar.gz"},
    )
    return name


def create_endpoint(
    sm: Any, *, variants: int = 1, instance_count: int = 1, shadow_model: str | None = None
) -> dict[str, Any]:
    """Models, a config and an InService endpoint; returns their names."""
    models = [create_model(sm) for _ in range(variants)]
    config = unique("config")
    production = [
        {
            "VariantName": f"variant-{i + 1}",
            "ModelName": model,
            "InstanceType": "ml.m5.large",
            "InitialInstanceCount": instance_count,
            "InitialVariantWeight": 1.0,
        }
        for i, model in enumerate(models)
    ]
    params: dict[str, Any] = {"EndpointConfigName": config, "ProductionVariants": production}
    if shadow_model:
        params["ShadowProductionVariants"] = [
            {
                "VariantName": "config-shadow",
                "ModelName": shadow_model,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
                "InitialVariantWeight": 0.5,
            }
        ]
    checked(sm, "CreateEndpointConfig", **params)
    endpoint = unique("endpoint")
    checked(sm, "CreateEndpoint", EndpointName=endpoint, EndpointConfigName=config)
    wait_endpoint(sm, endpoint, "InService")
    return {"endpoint": endpoint, "config": config, "models": models}


def wait_endpoint(sm: Any, name: str, status: str, timeout: float = 20.0) -> dict[str, Any]:
    result: dict[str, Any] = wait_for(
        lambda: checked(sm, "DescribeEndpoint", EndpointName=name),
        lambda d: d["EndpointStatus"] == status,
        timeout,
    )
    return result


def wait_experiment(sm: Any, name: str, status: str, timeout: float = 20.0) -> dict[str, Any]:
    result: dict[str, Any] = wait_for(
        lambda: checked(sm, "DescribeInferenceExperiment", Name=name),
        lambda d: d["Status"] == status,
        timeout,
    )
    return result


def stop_and_wait(sm: Any, name: str) -> dict[str, Any]:
    """Stop an experiment the plain way (keep production, remove the shadow) until Completed."""
    checked(
        sm,
        "StopInferenceExperiment",
        Name=name,
        ModelVariantActions={"variant-1": "Retain", "shadow-1": "Remove"},
    )
    return wait_experiment(sm, name, "Completed")


def experiment_request(
    name: str,
    endpoint: dict[str, Any],
    shadow_model: str,
    *,
    sampling: int = 50,
    schedule: dict[str, datetime] | None = None,
    shadow_count: int = 1,
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "Name": name,
        "Type": "ShadowMode",
        "RoleArn": ROLE,
        "EndpointName": endpoint["endpoint"],
        "Description": "shadow test of the candidate",
        "ModelVariants": [
            {
                "ModelName": endpoint["models"][0],
                "VariantName": "variant-1",
                "InfrastructureConfig": {
                    "InfrastructureType": "RealTimeInference",
                    "RealTimeInferenceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
                },
            },
            {
                "ModelName": shadow_model,
                "VariantName": "shadow-1",
                "InfrastructureConfig": {
                    "InfrastructureType": "RealTimeInference",
                    "RealTimeInferenceConfig": {
                        "InstanceType": "ml.m5.xlarge",
                        "InstanceCount": shadow_count,
                    },
                },
            },
        ],
        "ShadowModeConfig": {
            "SourceModelVariantName": "variant-1",
            "ShadowModelVariants": [
                {"ShadowModelVariantName": "shadow-1", "SamplingPercentage": sampling}
            ],
        },
    }
    if schedule is not None:
        request["Schedule"] = schedule
    return request


def in_seconds(seconds: float) -> datetime:
    return datetime.fromtimestamp(time.time() + seconds, tz=UTC)
