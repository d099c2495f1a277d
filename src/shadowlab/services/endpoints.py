"""CreateEndpoint, DescribeEndpoint, ListEndpoints, UpdateEndpoint,
UpdateEndpointWeightsAndCapacities, DeleteEndpoint.

The calls only record what the endpoint should run (``state.target``) and set its status; the
reconciler makes hosting converge and moves the status on (Creating/Updating -> InService,
Deleting -> gone).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from shadowlab.domain.arns import make_arn
from shadowlab.domain.kinds import ResourceKind
from shadowlab.domain.status import EndpointStatus
from shadowlab.errors import (
    ResourceInUse,
    ResourceLimitExceeded,
    ServiceError,
    ValidationException,
)
from shadowlab.services.atomic import run_atomically
from shadowlab.services.common import already_exists, insert_new, list_page, not_found, require
from shadowlab.services.context import Clock, RequestContext, to_datetime
from shadowlab.services.deployments import EndpointDeployment, VariantDeployment
from shadowlab.services.endpoint_configs import check_provisioned
from shadowlab.services.endpoint_plan import plan_deployment, variant_summaries
from shadowlab.services.models import primary_container
from shadowlab.services.tags import TagService
from shadowlab.store import Record, Store


def target_of(record: Record) -> EndpointDeployment | None:
    data = record.state.get("target")
    return EndpointDeployment.from_dict(data) if data else None


def deployed_of(record: Record) -> EndpointDeployment | None:
    data = record.state.get("deployed")
    return EndpointDeployment.from_dict(data) if data else None


class EndpointService:
    def __init__(
        self, store: Store, tags: TagService, clock: Clock, max_instances: int | None
    ) -> None:
        self.store = store
        self.tags = tags
        self.clock = clock
        self.max_instances = max_instances

    # -- helpers --------------------------------------------------------------------------------

    def _container_of(self, ctx: RequestContext) -> Callable[[str], dict[str, Any]]:
        def container(model_name: str) -> dict[str, Any]:
            return primary_container(require(self.store, ctx, ResourceKind.MODEL, model_name))

        return container

    def _check_quota(self, ctx: RequestContext, deployment: EndpointDeployment) -> None:
        """Every instance is a process here: keep the total under the configured limit. None:
        no limit (`--hosting none` runs no process, so there is nothing to protect)."""
        if self.max_instances is None:
            return
        in_use = 0
        for endpoint in self.store.find(ResourceKind.ENDPOINT):
            if (
                endpoint.region == ctx.region
                and endpoint.name_key == deployment.endpoint_name.lower()
            ):
                continue
            target = target_of(endpoint)
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
        self,
        ctx: RequestContext,
        record: Record,
        config: Record,
        *,
        experiment_shadows: Sequence[VariantDeployment] | None = None,
    ) -> EndpointDeployment:
        """The deployment `record` should run under `config`, one generation on."""
        held = record.state.get("experiment") or {}
        if experiment_shadows is None:
            experiment_shadows = [VariantDeployment.from_dict(v) for v in held.get("shadows", [])]
        deployment = plan_deployment(
            region=record.region,
            endpoint_name=record.name,
            generation=int(record.state.get("generation", 0)) + 1,
            config=config.document,
            container_of=self._container_of(ctx),
            overrides=record.state.get("overrides", {}),
            experiment_shadows=experiment_shadows,
            # Capture for the experiment applies while its shadows are on the endpoint.
            experiment_name=held.get("name") if experiment_shadows else None,
            experiment_storage=held.get("data_storage") if experiment_shadows else None,
        )
        self._check_quota(ctx, deployment)
        return deployment

    def retarget(
        self,
        ctx: RequestContext,
        name: str,
        change: Callable[[Record], EndpointDeployment],
    ) -> Record:
        """Read, let `change` compute a new target, write it as Updating; the whole of it again
        on a lost race (or, inside a larger unit of work, abort that unit)."""

        def attempt() -> Record:
            record = require(self.store, ctx, ResourceKind.ENDPOINT, name)
            deployment = change(record)
            record.state["target"] = deployment.to_dict()
            record.state["generation"] = deployment.generation
            record.state.pop("rollback_reason", None)
            record.status = EndpointStatus.UPDATING.value
            record.document["EndpointStatus"] = record.status
            record.document.pop("FailureReason", None)
            record.modified_at = self.clock.now()
            return self.store.update(record)

        return run_atomically(self.store, attempt, busy=lambda: self._being_changed(name))

    @staticmethod
    def _being_changed(name: str) -> ServiceError:
        return ValidationException(f"Endpoint '{name}' is being changed by another request; retry.")

    @staticmethod
    def _require_in_service(record: Record) -> None:
        if record.status != EndpointStatus.IN_SERVICE.value:
            raise ValidationException(
                f'Cannot update in-progress endpoint "{record.arn}": its status is '
                f"{record.status}. Wait until it is InService."
            )

    @staticmethod
    def _require_not_in_experiment(record: Record, action: str) -> None:
        held = record.state.get("experiment")
        if held:
            raise ValidationException(
                f"Cannot {action} endpoint '{record.name}' while inference experiment "
                f"'{held['name']}' is using it. Stop the experiment first."
            )

    # -- operations -----------------------------------------------------------------------------

    def create_endpoint(self, ctx: RequestContext, params: Mapping[str, Any]) -> dict[str, Any]:
        # One unit: the quota counts what other endpoints hold when this one is stored, and the
        # endpoint never exists without its tags.
        with self.store.unit_of_work():
            return self._create(ctx, params)

    def _create(self, ctx: RequestContext, params: Mapping[str, Any]) -> dict[str, Any]:
        name = params["EndpointName"]
        config = self.store.get(
            ctx.region, ResourceKind.ENDPOINT_CONFIG, params["EndpointConfigName"]
        )
        if config is None:
            raise not_found(ctx, ResourceKind.ENDPOINT_CONFIG, params["EndpointConfigName"])
        tags = self.tags.check_new(params.get("Tags"))
        arn = make_arn(ctx.region, ctx.account, ResourceKind.ENDPOINT, name)
        if self.store.get(ctx.region, ResourceKind.ENDPOINT, name) is not None:
            raise already_exists(ctx, ResourceKind.ENDPOINT, name)
        now = self.clock.now()
        record = Record(ctx.region, ResourceKind.ENDPOINT, name, arn, now, now, {})
        deployment = self.plan(ctx, record, config)
        record.status = EndpointStatus.CREATING.value
        record.parent = config.name_key
        record.state = {"target": deployment.to_dict(), "generation": deployment.generation}
        record.document = {
            "EndpointName": name,
            "EndpointArn": arn,
            "EndpointConfigName": config.name,
            "EndpointStatus": record.status,
            "CreationTime": now,
        }
        if params.get("DeploymentConfig"):
            record.document["LastDeploymentConfig"] = params["DeploymentConfig"]
        insert_new(self.store, ctx, record, tags)
        return {"EndpointArn": arn}

    def describe(self, record: Record) -> dict[str, Any]:
        target, deployed = target_of(record), deployed_of(record)
        production, shadows = variant_summaries(
            target, deployed, record.state.get("instances", {}), record.status, record.modified_at
        )
        out = dict(record.document)
        out["CreationTime"] = to_datetime(record.created_at)
        out["LastModifiedTime"] = to_datetime(record.modified_at)
        out["ProductionVariants"] = production
        if shadows:
            out["ShadowProductionVariants"] = shadows
        running = deployed or target
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

    def describe_endpoint(self, ctx: RequestContext, params: Mapping[str, Any]) -> dict[str, Any]:
        return self.describe(
            require(self.store, ctx, ResourceKind.ENDPOINT, params["EndpointName"])
        )

    def list_endpoints(self, ctx: RequestContext, params: Mapping[str, Any]) -> dict[str, Any]:
        def summary(r: Record) -> dict[str, Any]:
            return {
                "EndpointName": r.name,
                "EndpointArn": r.arn,
                "CreationTime": to_datetime(r.created_at),
                "LastModifiedTime": to_datetime(r.modified_at),
                "EndpointStatus": r.status,
            }

        items, token = list_page(self.store, ctx, ResourceKind.ENDPOINT, params, summary)
        return {"Endpoints": items, "NextToken": token}

    def update_endpoint(self, ctx: RequestContext, params: Mapping[str, Any]) -> dict[str, Any]:
        retain = bool(params.get("RetainAllVariantProperties", False))

        def attempt() -> Record:
            # Read in the unit too: the configuration cannot go between this check and the write.
            config_name = params["EndpointConfigName"]
            config = self.store.get(ctx.region, ResourceKind.ENDPOINT_CONFIG, config_name)
            if config is None:
                raise not_found(ctx, ResourceKind.ENDPOINT_CONFIG, config_name)

            def change(record: Record) -> EndpointDeployment:
                self._require_in_service(record)
                self._require_not_in_experiment(record, "update")
                if not retain:
                    record.state.pop("overrides", None)
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
        self, ctx: RequestContext, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        desired = params["DesiredWeightsAndCapacities"]

        def change(record: Record) -> EndpointDeployment:
            self._require_in_service(record)
            config = require(self.store, ctx, ResourceKind.ENDPOINT_CONFIG, record.parent or "")
            known = {
                v["VariantName"]: v
                for v in config.document["ProductionVariants"]
                + config.document.get("ShadowProductionVariants", [])
            }
            overrides = {k: dict(v) for k, v in record.state.get("overrides", {}).items()}
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
                entry = overrides.setdefault(variant, {})
                _serverless_update(known[variant], item, entry)
                if "DesiredWeight" in item:
                    entry["weight"] = float(item["DesiredWeight"])
                if "DesiredInstanceCount" in item:
                    entry["count"] = int(item["DesiredInstanceCount"])
            record.state["overrides"] = overrides
            deployment = self.plan(ctx, record, config)
            if sum(v.weight for v in deployment.production()) <= 0:
                raise ValidationException(
                    "The sum of the production variants' weights must be greater than 0."
                )
            return deployment

        record = self.retarget(ctx, params["EndpointName"], change)
        return {"EndpointArn": record.arn}

    def delete_endpoint(self, ctx: RequestContext, params: Mapping[str, Any]) -> dict[str, Any]:
        def attempt() -> None:
            record = require(self.store, ctx, ResourceKind.ENDPOINT, params["EndpointName"])
            held = record.state.get("experiment")
            if held:
                raise ResourceInUse(
                    f"Cannot delete endpoint '{record.name}': inference experiment "
                    f"'{held['name']}' is using it. Stop the experiment first."
                )
            if record.status == EndpointStatus.DELETING.value:
                return
            record.status = EndpointStatus.DELETING.value
            record.document["EndpointStatus"] = record.status
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


def _serverless_update(
    spec: Mapping[str, Any], item: Mapping[str, Any], entry: dict[str, Any]
) -> None:
    """Check one DesiredWeightAndCapacity against the variant's kind and record its
    ServerlessUpdateConfig (MaxConcurrency, ProvisionedConcurrency) in `entry`."""
    name = spec["VariantName"]
    serverless = spec.get("ServerlessConfig")
    if serverless is None:
        if "ServerlessUpdateConfig" in item:
            raise ValidationException(
                f"Variant '{name}' is not serverless: ServerlessUpdateConfig does not apply."
            )
        return
    if "DesiredInstanceCount" in item:
        raise ValidationException(
            f"Variant '{name}' is serverless: it has no instance count; change its "
            "ServerlessUpdateConfig instead."
        )
    update = item.get("ServerlessUpdateConfig")
    if update:
        merged = {**serverless, **entry.get("serverless", {}), **update}
        check_provisioned(name, merged)
        entry["serverless"] = {**entry.get("serverless", {}), **update}
