"""CreateEndpoint, DescribeEndpoint, ListEndpoints, UpdateEndpoint,
UpdateEndpointWeightsAndCapacities, DeleteEndpoint.

The calls only record what the endpoint should run (`EndpointState.target`) and set its status;
the reconciler makes hosting converge and moves the status on (Creating/Updating -> InService,
Deleting -> gone).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from shadowlab.domain.arns import make_arn
from shadowlab.domain.deployments import EndpointDeployment
from shadowlab.domain.endpoint_config import EndpointConfig
from shadowlab.domain.endpoint_state import EndpointState, VariantOverride
from shadowlab.domain.kinds import ResourceKind
from shadowlab.domain.status import EndpointStatus
from shadowlab.errors import (
    ResourceInUse,
    ResourceLimitExceeded,
    ServiceError,
    ValidationException,
)
from shadowlab.services.atomic import run_atomically
from shadowlab.services.common import (
    Output,
    already_exists,
    insert_new,
    list_page,
    not_found,
    require,
)
from shadowlab.services.context import Clock, RequestContext, to_datetime
from shadowlab.services.endpoint_configs import check_provisioned
from shadowlab.services.endpoint_plan import ContainerOf, plan_deployment, variant_summaries
from shadowlab.services.models import primary_container
from shadowlab.services.tags import TagService
from shadowlab.store import ENDPOINT_CONFIGS, ENDPOINTS, MODELS, NoState, Record, Store

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import (
        CreateEndpointInputTypeDef,
        DeleteEndpointInputTypeDef,
        DescribeEndpointInputTypeDef,
        DesiredWeightAndCapacityTypeDef,
        ListEndpointsInputTypeDef,
        ProductionVariantUnionTypeDef,
        UpdateEndpointInputTypeDef,
        UpdateEndpointWeightsAndCapacitiesInputTypeDef,
    )

Endpoint = Record[EndpointState]


class EndpointService:
    def __init__(
        self, store: Store, tags: TagService, clock: Clock, max_instances: int | None
    ) -> None:
        self.store = store
        self.tags = tags
        self.clock = clock
        self.max_instances = max_instances

    # -- helpers --------------------------------------------------------------------------------

    def _container_of(self, ctx: RequestContext) -> ContainerOf:
        def container(model_name: str) -> dict[str, object]:
            return primary_container(require(self.store, ctx, MODELS, model_name))

        return container

    def _check_quota(self, ctx: RequestContext, deployment: EndpointDeployment) -> None:
        """Every instance is a process here: keep the total under the configured limit. None:
        no limit (`--hosting none` runs no process, so there is nothing to protect)."""
        if self.max_instances is None:
            return
        in_use = 0
        for endpoint in self.store.find(ENDPOINTS):
            if (
                endpoint.region == ctx.region
                and endpoint.name_key == deployment.endpoint_name.lower()
            ):
                continue
            target = endpoint.state.target
            if target is not None:
                in_use += sum(v.instance_count for v in target.variants)
        wanted = sum(v.instance_count for v in deployment.variants)
        if in_use + wanted > self.max_instances:
            raise ResourceLimitExceeded(
                f"The account-level service limit 'total instances' is {self.max_instances} "
                f"instances, with current utilization of {in_use} instances and a request delta "
                f"of {wanted} instances. Stop other endpoints or raise SHADOWLAB_MAX_INSTANCES."
            )

    def plan(
        self, ctx: RequestContext, record: Endpoint, config: Record[NoState]
    ) -> EndpointDeployment:
        """The deployment `record` should run under `config`, one generation on: as overridden
        by UpdateEndpointWeightsAndCapacities, with the shadows of the experiment holding it."""
        deployment = plan_deployment(
            region=record.region,
            endpoint_name=record.name,
            generation=record.state.generation + 1,
            config=EndpointConfig.from_document(config.document),
            container_of=self._container_of(ctx),
            overrides=record.state.overrides,
            experiment=record.state.experiment,
        )
        self._check_quota(ctx, deployment)
        return deployment

    def retarget(
        self, ctx: RequestContext, name: str, change: Callable[[Endpoint], EndpointDeployment]
    ) -> Endpoint:
        """Read, let `change` compute a new target, write it as Updating; the whole of it again
        on a lost race (or, inside a larger unit of work, abort that unit)."""

        def attempt() -> Endpoint:
            record = require(self.store, ctx, ENDPOINTS, name)
            deployment = change(record)
            record.state.target = deployment
            record.state.generation = deployment.generation
            record.state.rollback_reason = None
            record.status = EndpointStatus.UPDATING.value
            record.document.pop("FailureReason", None)
            record.modified_at = self.clock.now()
            return self.store.update(record)

        return run_atomically(self.store, attempt, busy=lambda: self._being_changed(name))

    @staticmethod
    def _being_changed(name: str) -> ServiceError:
        return ValidationException(f"Endpoint '{name}' is being changed by another request; retry.")

    @staticmethod
    def _require_in_service(record: Endpoint) -> None:
        if record.status != EndpointStatus.IN_SERVICE.value:
            raise ValidationException(
                f'Cannot update in-progress endpoint "{record.arn}": its status is '
                f"{record.status}. Wait until it is InService."
            )

    @staticmethod
    def _require_not_in_experiment(record: Endpoint, action: str) -> None:
        held = record.state.experiment
        if held:
            raise ValidationException(
                f"Cannot {action} endpoint '{record.name}' while inference experiment "
                f"'{held.name}' is using it. Stop the experiment first."
            )

    # -- operations -----------------------------------------------------------------------------

    def create_endpoint(self, ctx: RequestContext, params: CreateEndpointInputTypeDef) -> Output:
        # One unit: the quota counts what other endpoints hold when this one is stored, and the
        # endpoint never exists without its tags.
        with self.store.unit_of_work():
            return self._create(ctx, params)

    def _create(self, ctx: RequestContext, params: CreateEndpointInputTypeDef) -> Output:
        name = params["EndpointName"]
        config = self.store.get(ctx.region, ENDPOINT_CONFIGS, params["EndpointConfigName"])
        if config is None:
            raise not_found(ctx, ResourceKind.ENDPOINT_CONFIG, params["EndpointConfigName"])
        tags = self.tags.check_new(params.get("Tags"))
        arn = make_arn(ctx.region, ctx.account, ResourceKind.ENDPOINT, name)
        if self.store.get(ctx.region, ENDPOINTS, name) is not None:
            raise already_exists(ctx, ResourceKind.ENDPOINT, name)
        now = self.clock.now()
        record = Record(
            ctx.region, ResourceKind.ENDPOINT, name, arn, now, now, {}, state=EndpointState()
        )
        deployment = self.plan(ctx, record, config)
        record.status = EndpointStatus.CREATING.value
        record.parent = config.name_key
        record.state = EndpointState(target=deployment, generation=deployment.generation)
        record.document = {
            "EndpointName": name,
            "EndpointArn": arn,
            "EndpointConfigName": config.name,
            "CreationTime": now,
        }
        if params.get("DeploymentConfig"):
            record.document["LastDeploymentConfig"] = params["DeploymentConfig"]
        insert_new(self.store, ctx, record, tags)
        return {"EndpointArn": arn}

    def describe(self, record: Endpoint) -> Output:
        state = record.state
        production, shadows = variant_summaries(
            state.target, state.deployed, state.instances, record.status, record.modified_at
        )
        out: Output = dict(record.document)
        out["EndpointStatus"] = record.status
        out["CreationTime"] = to_datetime(record.created_at)
        out["LastModifiedTime"] = to_datetime(record.modified_at)
        out["ProductionVariants"] = production
        if shadows:
            out["ShadowProductionVariants"] = shadows
        running = state.running
        capture = running.data_capture if running else None
        if capture:
            out["DataCaptureConfig"] = {
                "EnableCapture": capture.get("EnableCapture", True),
                "CaptureStatus": "Started" if capture.get("EnableCapture", True) else "Stopped",
                "CurrentSamplingPercentage": capture["InitialSamplingPercentage"],
                "DestinationS3Uri": capture["DestinationS3Uri"],
                # Required in the output shape (min length 0): "" when no key was given.
                "KmsKeyId": capture.get("KmsKeyId") or "",
            }
        return out

    def describe_endpoint(
        self, ctx: RequestContext, params: DescribeEndpointInputTypeDef
    ) -> Output:
        return self.describe(require(self.store, ctx, ENDPOINTS, params["EndpointName"]))

    def list_endpoints(self, ctx: RequestContext, params: ListEndpointsInputTypeDef) -> Output:
        def summary(r: Endpoint) -> Output:
            return {
                "EndpointName": r.name,
                "EndpointArn": r.arn,
                "CreationTime": to_datetime(r.created_at),
                "LastModifiedTime": to_datetime(r.modified_at),
                "EndpointStatus": r.status,
            }

        items, token = list_page(self.store, ctx, ENDPOINTS, params, summary)
        return {"Endpoints": items, "NextToken": token}

    def update_endpoint(self, ctx: RequestContext, params: UpdateEndpointInputTypeDef) -> Output:
        retain = bool(params.get("RetainAllVariantProperties", False))

        def attempt() -> Endpoint:
            # Read in the unit too: the configuration cannot go between this check and the write.
            config_name = params["EndpointConfigName"]
            config = self.store.get(ctx.region, ENDPOINT_CONFIGS, config_name)
            if config is None:
                raise not_found(ctx, ResourceKind.ENDPOINT_CONFIG, config_name)

            def change(record: Endpoint) -> EndpointDeployment:
                self._require_in_service(record)
                self._require_not_in_experiment(record, "update")
                if not retain:
                    record.state.overrides = {}
                record.parent = config.name_key
                record.document["EndpointConfigName"] = config.name
                if params.get("DeploymentConfig"):
                    record.document["LastDeploymentConfig"] = params["DeploymentConfig"]
                return self.plan(ctx, record, config)

            return self.retarget(ctx, params["EndpointName"], change)

        name = params["EndpointName"]
        record = run_atomically(self.store, attempt, busy=lambda: self._being_changed(name))
        return {"EndpointArn": record.arn}

    def update_endpoint_weights_and_capacities(
        self, ctx: RequestContext, params: UpdateEndpointWeightsAndCapacitiesInputTypeDef
    ) -> Output:
        desired = params["DesiredWeightsAndCapacities"]

        def change(record: Endpoint) -> EndpointDeployment:
            self._require_in_service(record)
            config = require(self.store, ctx, ENDPOINT_CONFIGS, record.parent or "")
            typed = EndpointConfig.from_document(config.document)
            known = {v["VariantName"]: v for v in (*typed.production, *typed.shadows)}
            overrides = dict(record.state.overrides)
            for item in desired:
                variant = item["VariantName"]
                if variant not in known:
                    raise ValidationException(
                        f"The variant name(s) [{variant}] is/are not present in the endpoint "
                        f"'{record.name}'. Variants: {', '.join(known)}."
                    )
                changes = ("DesiredWeight", "DesiredInstanceCount", "ServerlessUpdateConfig")
                if not any(member in item for member in changes):
                    raise ValidationException(
                        f"Variant '{variant}': give DesiredWeight, DesiredInstanceCount or "
                        "ServerlessUpdateConfig."
                    )
                if item.get("DesiredInstanceCount") == 0:
                    raise ValidationException(
                        f"Variant '{variant}': DesiredInstanceCount must be at least 1."
                    )
                overrides[variant] = _override(
                    known[variant], item, overrides.get(variant, VariantOverride())
                )
            record.state.overrides = overrides
            deployment = self.plan(ctx, record, config)
            if sum(v.weight for v in deployment.production()) <= 0:
                raise ValidationException(
                    "The sum of the production variants' weights must be greater than 0."
                )
            return deployment

        record = self.retarget(ctx, params["EndpointName"], change)
        return {"EndpointArn": record.arn}

    def delete_endpoint(self, ctx: RequestContext, params: DeleteEndpointInputTypeDef) -> Output:
        def attempt() -> None:
            record = require(self.store, ctx, ENDPOINTS, params["EndpointName"])
            held = record.state.experiment
            if held:
                raise ResourceInUse(
                    f"Cannot delete endpoint '{record.name}': inference experiment "
                    f"'{held.name}' is using it. Stop the experiment first."
                )
            if record.status == EndpointStatus.DELETING.value:
                return
            record.status = EndpointStatus.DELETING.value
            record.modified_at = self.clock.now()
            self.store.update(record)

        run_atomically(
            self.store,
            attempt,
            busy=lambda: ValidationException(
                "The endpoint is being changed by another request; retry."
            ),
        )
        return {}


def _override(
    spec: ProductionVariantUnionTypeDef,
    item: DesiredWeightAndCapacityTypeDef,
    before: VariantOverride,
) -> VariantOverride:
    """`before` with one DesiredWeightAndCapacity applied, checked against the variant's kind
    (a serverless variant changes its ServerlessUpdateConfig, not an instance count)."""
    name = spec["VariantName"]
    serverless = spec.get("ServerlessConfig")
    changed: dict[str, int] | None = dict(before.serverless) if before.serverless else None
    if serverless is None and "ServerlessUpdateConfig" in item:
        raise ValidationException(
            f"Variant '{name}' is not serverless: ServerlessUpdateConfig does not apply."
        )
    if serverless is not None and "DesiredInstanceCount" in item:
        raise ValidationException(
            f"Variant '{name}' is serverless: it has no instance count; change its "
            "ServerlessUpdateConfig instead."
        )
    update = item.get("ServerlessUpdateConfig")
    if serverless is not None and update:
        changed = dict(changed or {})
        for member, value in update.items():
            if isinstance(value, int):
                changed[member] = value
        check_provisioned(name, {**dict(serverless), **changed})
    weight, count = item.get("DesiredWeight"), item.get("DesiredInstanceCount")
    return VariantOverride(
        weight=before.weight if weight is None else float(weight),
        count=before.count if count is None else int(count),
        serverless=changed,
    )
