"""Real model artifacts in a hosted server's object store, and endpoints that serve them."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from tests.contract.helpers import ROLE, checked, unique, wait_endpoint, wait_experiment
from tests.hosting.modelfiles import (
    ECHO_INFERENCE,
    code_only_model_dir,
    iris_model_dir,
    make_tar,
)
from tests.serverproc import ServerProcess

# Shadows that misbehave in each way a real model can; production must not notice any of them.
SLOW_INFERENCE = textwrap.dedent(
    """
    import time

    def model_fn(model_dir):
        return None

    def transform_fn(model, data, content_type, accept):
        time.sleep(0.3)
        return b"slow", "text/plain"
    """
)
FAILING_PREDICT = textwrap.dedent(
    """
    def model_fn(model_dir):
        return None

    def transform_fn(model, data, content_type, accept):
        raise RuntimeError("shadow model bug")
    """
)
CRASHING_PREDICT = textwrap.dedent(
    """
    import os

    def model_fn(model_dir):
        return None

    def transform_fn(model, data, content_type, accept):
        os._exit(3)
    """
)
UNLOADABLE = textwrap.dedent(
    """
    def model_fn(model_dir):
        raise RuntimeError("weights are corrupt: checksum mismatch")
    """
)


def store_model(server: ServerProcess, source: Path, name: str) -> str:
    """Pack `source` as model.tar.gz into the server's embedded object store; its s3:// URL."""
    make_tar(source, server.data_dir / "s3" / "models" / name / "model.tar.gz")
    return f"s3://models/{name}/model.tar.gz"


def code_model(server: ServerProcess, tmp: Path, inference: str) -> str:
    name = unique("code")
    return store_model(server, code_only_model_dir(tmp / name, inference), name)


def echo_model(server: ServerProcess, tmp: Path) -> str:
    return code_model(server, tmp, ECHO_INFERENCE)


def iris_model(server: ServerProcess, tmp: Path, *, with_code: bool = True) -> str:
    name = unique("iris")
    return store_model(server, iris_model_dir(tmp / name, with_code=with_code), name)


def register(sm: Any, model_data_url: str | None, environment: dict[str, str] | None = None) -> str:
    name = unique("model")
    container: dict[str, Any] = {"Image": "shadowlab/builtin"}
    if model_data_url:
        container["ModelDataUrl"] = model_data_url
    if environment:
        container["Environment"] = environment
    checked(sm, "CreateModel", ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer=container)
    return name


def deploy(
    sm: Any,
    production: list[tuple[str, str, float, int]],
    shadows: list[tuple[str, str, float]] = (),  # type: ignore[assignment]
    *,
    status: str = "InService",
) -> dict[str, Any]:
    """An endpoint with (variant, model, weight, instances) production variants; waits."""
    config = unique("config")
    params: dict[str, Any] = {
        "EndpointConfigName": config,
        "ProductionVariants": [
            {
                "VariantName": variant,
                "ModelName": model,
                "InitialVariantWeight": weight,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": count,
            }
            for variant, model, weight, count in production
        ],
    }
    if shadows:
        params["ShadowProductionVariants"] = [
            {
                "VariantName": variant,
                "ModelName": model,
                "InitialVariantWeight": weight,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
            for variant, model, weight in shadows
        ]
    checked(sm, "CreateEndpointConfig", **params)
    endpoint = unique("endpoint")
    checked(sm, "CreateEndpoint", EndpointName=endpoint, EndpointConfigName=config)
    described = wait_endpoint(sm, endpoint, status, timeout=90)
    return {
        "endpoint": endpoint,
        "config": config,
        "described": described,
        "models": [m for _, m, _, _ in production],
    }


def shadow_experiment(
    sm: Any,
    production: str,
    candidate: str,
    data_storage: dict[str, Any],
    tags: list[dict[str, str]] | None = None,
) -> tuple[str, str]:
    """An endpoint serving `production` as variant "prod", and a Running shadow-mode inference
    experiment copying 100% of its traffic to `candidate` as variant "cand", captured to
    `data_storage`. Returns (endpoint name, experiment name)."""
    endpoint = deploy(sm, [("prod", production, 1.0, 1)])["endpoint"]
    name = unique("exp")
    infra = {
        "InfrastructureType": "RealTimeInference",
        "RealTimeInferenceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }
    checked(
        sm,
        "CreateInferenceExperiment",
        Name=name,
        Type="ShadowMode",
        RoleArn=ROLE,
        EndpointName=endpoint,
        ModelVariants=[
            {"ModelName": production, "VariantName": "prod", "InfrastructureConfig": infra},
            {"ModelName": candidate, "VariantName": "cand", "InfrastructureConfig": infra},
        ],
        ShadowModeConfig={
            "SourceModelVariantName": "prod",
            "ShadowModelVariants": [{"ShadowModelVariantName": "cand", "SamplingPercentage": 100}],
        },
        DataStorageConfig=data_storage,
        Tags=tags or [],
    )
    wait_experiment(sm, name, "Running", timeout=90)
    return endpoint, name
