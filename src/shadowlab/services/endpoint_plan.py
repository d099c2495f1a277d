"""Pure functions between an endpoint's configuration and what it runs.

`plan_deployment` turns an endpoint configuration (plus weight/capacity overrides and the shadow
variants of a running inference experiment) into the `EndpointDeployment` hosting converges to;
`variant_summaries` turns the desired and deployed deployments back into what DescribeEndpoint
shows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from shadowlab.domain.deployments import EndpointDeployment, Role, VariantDeployment
from shadowlab.domain.endpoint_config import EndpointConfig
from shadowlab.domain.endpoint_state import ExperimentClaim, Overrides, VariantOverride
from shadowlab.domain.experiments import StopPlan, infrastructure
from shadowlab.domain.inference_experiment import ExperimentSpec
from shadowlab.services.context import to_datetime

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import ProductionVariantTypeDef

# Model name -> its serving container (Image, ModelDataUrl, Environment).
ContainerOf = Callable[[str], dict[str, object]]


def shadow_sampling(shadow_weight: float, production_weight: float) -> int:
    """An endpoint-config shadow variant receives copies in proportion to its weight relative to
    the production variant (weight 0.5 against 1.0 copies half of the requests)."""
    if production_weight <= 0:
        return 0
    return max(0, min(100, round(100 * shadow_weight / production_weight)))


def _weight(spec: ProductionVariantTypeDef, override: VariantOverride | None) -> float:
    if override is not None and override.weight is not None:
        return override.weight
    return float(spec.get("InitialVariantWeight", 1.0))


def production_weight(
    production: Sequence[ProductionVariantTypeDef], overrides: Overrides
) -> float:
    """Total weight of the production variants: the configuration's, as overridden by
    UpdateEndpointWeightsAndCapacities. Shadow sampling is relative to it."""
    return sum(_weight(v, overrides.get(v["VariantName"])) for v in production)


def shadow_weight(sampling_percentage: int, production_weight: float) -> float:
    return production_weight * sampling_percentage / 100


def plan_deployment(
    *,
    region: str,
    endpoint_name: str,
    generation: int,
    config: EndpointConfig,
    container_of: ContainerOf,
    overrides: Overrides,
    experiment: ExperimentClaim | None = None,
) -> EndpointDeployment:
    """The deployment of `config` as overridden; with a claiming experiment's shadows, and while
    it has shadows on the endpoint, its capture (DataStorageConfig)."""

    def variant(spec: ProductionVariantTypeDef, role: Role) -> VariantDeployment:
        override = overrides.get(spec["VariantName"])
        serverless: dict[str, object] | None = None
        if "ServerlessConfig" in spec:  # as ServerlessUpdateConfig changes left it
            changed = override.serverless if override and override.serverless else {}
            serverless = {**dict(spec["ServerlessConfig"]), **changed}
        count = override.count if override and override.count is not None else None
        return VariantDeployment(
            name=spec["VariantName"],
            model_name=spec["ModelName"],
            # A serverless variant is one worker, whatever its concurrency: requests beyond
            # MaxConcurrency are throttled by the data plane, not queued on more processes.
            instance_type="" if serverless else spec["InstanceType"],
            instance_count=1 if serverless else count or int(spec["InitialInstanceCount"]),
            weight=_weight(spec, override),
            role=role,
            container=container_of(spec["ModelName"]),
            serverless=serverless,
        )

    production = [variant(v, Role.PRODUCTION) for v in config.production]
    total = production_weight(config.production, overrides)
    shadows = []
    for spec in config.shadows:
        planned = variant(spec, Role.SHADOW)
        shadows.append(replace(planned, sampling_percentage=shadow_sampling(planned.weight, total)))
    running = experiment is not None and bool(experiment.shadows)
    if experiment is not None:
        shadows.extend(experiment.shadows)
    return EndpointDeployment(
        region=region,
        endpoint_name=endpoint_name,
        generation=generation,
        variants=(*production, *shadows),
        data_capture=dict(config.data_capture) if config.data_capture else None,
        # Capture for the experiment applies while its shadows are on the endpoint.
        experiment_name=experiment.name if running and experiment else None,
        data_storage=dict(experiment.data_storage)
        if running and experiment and experiment.data_storage
        else None,
    )


def config_after_stop(
    config: EndpointConfig, experiment: ExperimentSpec, plan: StopPlan, name: str
) -> EndpointConfig:
    """The endpoint configuration SageMaker makes when an experiment stops with Promote or
    Retain: the promoted shadow in place of the source (with the source's weight), the retained
    shadow as the configuration's shadow variant, the capture unchanged."""
    roles = experiment.roles
    production = list(config.production)
    if plan.promoted is not None:
        candidate = experiment.variant(plan.promoted)
        instance_type, count = plan.promoted_infrastructure or infrastructure(candidate)
        index = next(i for i, v in enumerate(production) if v["VariantName"] == roles.source_name)
        production[index] = {
            "VariantName": plan.promoted,
            "ModelName": candidate["ModelName"],
            "InstanceType": instance_type,
            "InitialInstanceCount": count,
            "InitialVariantWeight": production[index].get("InitialVariantWeight", 1.0),
        }
    shadows: list[ProductionVariantTypeDef] = []
    if plan.retained_shadow is not None:
        retained = experiment.variant(plan.retained_shadow)
        instance_type, count = infrastructure(retained)
        total = production_weight(production, {})
        shadows.append(
            {
                "VariantName": plan.retained_shadow,
                "ModelName": retained["ModelName"],
                "InstanceType": instance_type,
                "InitialInstanceCount": count,
                "InitialVariantWeight": shadow_weight(roles.sampling[plan.retained_shadow], total),
            }
        )
    return EndpointConfig(name, tuple(production), tuple(shadows), config.data_capture)


def variant_summaries(
    target: EndpointDeployment | None,
    deployed: EndpointDeployment | None,
    live_instances: Mapping[str, int],
    status: str | None,
    since: float,
) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """ProductionVariants and ShadowProductionVariants of DescribeEndpoint."""
    desired = {v.name: v for v in target.variants} if target else {}
    current = {v.name: v for v in deployed.variants} if deployed else {}
    converging = status in ("Creating", "Updating", "RollingBack")
    production: list[dict[str, object]] = []
    shadows: list[dict[str, object]] = []
    for name in [*desired, *(n for n in current if n not in desired)]:
        want, have = desired.get(name), current.get(name)
        variant = want or have
        assert variant is not None
        image = variant.container.get("Image")
        summary: dict[str, object] = {
            "VariantName": name,
            "DeployedImages": [{"SpecifiedImage": image}] if image else [],
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
