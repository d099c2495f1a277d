"""Pure functions between an endpoint's configuration and what it runs.

`plan_deployment` turns an endpoint configuration (plus weight/capacity overrides and the shadow
variants of a running inference experiment) into the `EndpointDeployment` hosting converges to;
`variant_summaries` turns the desired and deployed deployments back into what DescribeEndpoint
shows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from shadowlab.services.context import to_datetime
from shadowlab.services.deployments import EndpointDeployment, Role, VariantDeployment


def shadow_sampling(shadow_weight: float, production_weight: float) -> int:
    """An endpoint-config shadow variant receives copies in proportion to its weight relative to
    the production variant (weight 0.5 against 1.0 copies half of the requests)."""
    if production_weight <= 0:
        return 0
    return max(0, min(100, round(100 * shadow_weight / production_weight)))


def production_weight(
    config: Mapping[str, Any], overrides: Mapping[str, Mapping[str, Any]]
) -> float:
    """Total weight of the production variants: the configuration's, as overridden by
    UpdateEndpointWeightsAndCapacities. Shadow sampling is relative to it."""
    return sum(
        float(overrides.get(v["VariantName"], {}).get("weight", v.get("InitialVariantWeight", 1.0)))
        for v in config["ProductionVariants"]
    )


def shadow_weight(sampling_percentage: int, production_weight: float) -> float:
    return production_weight * sampling_percentage / 100


def plan_deployment(
    *,
    region: str,
    endpoint_name: str,
    generation: int,
    config: Mapping[str, Any],
    container_of: Callable[[str], dict[str, Any]],
    overrides: Mapping[str, Mapping[str, Any]],
    experiment_shadows: Sequence[VariantDeployment] = (),
    experiment_name: str | None = None,
    experiment_storage: Mapping[str, Any] | None = None,
) -> EndpointDeployment:
    def variant(spec: Mapping[str, Any], role: Role) -> VariantDeployment:
        override = overrides.get(spec["VariantName"], {})
        serverless = spec.get("ServerlessConfig")
        if serverless:  # as UpdateEndpointWeightsAndCapacities' ServerlessUpdateConfig left it
            serverless = {**serverless, **override.get("serverless", {})}
        return VariantDeployment(
            name=spec["VariantName"],
            model_name=spec["ModelName"],
            # A serverless variant is one worker, whatever its concurrency: requests beyond
            # MaxConcurrency are throttled by the data plane, not queued on more processes.
            instance_type="" if serverless else spec["InstanceType"],
            instance_count=1
            if serverless
            else int(override.get("count", spec["InitialInstanceCount"])),
            weight=float(override.get("weight", spec.get("InitialVariantWeight", 1.0))),
            role=role,
            container=container_of(spec["ModelName"]),
            serverless=dict(serverless) if serverless else None,
        )

    production = [variant(v, Role.PRODUCTION) for v in config["ProductionVariants"]]
    total = production_weight(config, overrides)
    shadows = []
    for spec in config.get("ShadowProductionVariants", []):
        planned = variant(spec, Role.SHADOW)
        shadows.append(replace(planned, sampling_percentage=shadow_sampling(planned.weight, total)))
    shadows.extend(experiment_shadows)
    return EndpointDeployment(
        region=region,
        endpoint_name=endpoint_name,
        generation=generation,
        variants=(*production, *shadows),
        data_capture=dict(config["DataCaptureConfig"]) if config.get("DataCaptureConfig") else None,
        experiment_name=experiment_name,
        data_storage=dict(experiment_storage) if experiment_storage else None,
    )


def variant_summaries(
    target: EndpointDeployment | None,
    deployed: EndpointDeployment | None,
    live_instances: Mapping[str, int],
    status: str | None,
    since: float,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """ProductionVariants and ShadowProductionVariants of DescribeEndpoint."""
    desired = {v.name: v for v in target.variants} if target else {}
    current = {v.name: v for v in deployed.variants} if deployed else {}
    converging = status in ("Creating", "Updating", "RollingBack")
    production: list[dict[str, Any]] = []
    shadows: list[dict[str, Any]] = []
    for name in [*desired, *(n for n in current if n not in desired)]:
        want, have = desired.get(name), current.get(name)
        variant = want or have
        assert variant is not None
        summary: dict[str, Any] = {
            "VariantName": name,
            "DeployedImages": [{"SpecifiedImage": variant.container.get("Image", "")}]
            if variant.container.get("Image")
            else [],
            "CurrentWeight": have.weight if have else 0.0,
            "DesiredWeight": want.weight if want else 0.0,
        }
        if variant.serverless is None:
            summary["CurrentInstanceCount"] = live_instances.get(name, 0)
            summary["DesiredInstanceCount"] = want.instance_count if want else 0
        else:
            # As SageMaker shows a serverless variant: its configuration, no instance counts.
            if have is not None and have.serverless is not None:
                summary["CurrentServerlessConfig"] = dict(have.serverless)
            if want is not None and want.serverless is not None:
                summary["DesiredServerlessConfig"] = dict(want.serverless)
        if converging and (want != have):
            step = "Creating" if have is None else "Deleting" if want is None else "Updating"
            summary["VariantStatus"] = [{"Status": step, "StartTime": to_datetime(since)}]
        else:
            summary["VariantStatus"] = []
        (shadows if variant.role is Role.SHADOW else production).append(summary)
    return production, shadows
