"""CreateModel, DescribeModel, ListModels, DeleteModel."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shadowlab.domain.arns import make_arn
from shadowlab.domain.environment import DEFAULT_UPSTREAM_HOSTS, UpstreamHosts, environment_problem
from shadowlab.domain.kinds import ResourceKind
from shadowlab.domain.status import ACTIVE_EXPERIMENT_STATUSES
from shadowlab.errors import ResourceInUse, ValidationException
from shadowlab.services.atomic import run_atomically
from shadowlab.services.common import (
    Output,
    being_changed,
    insert_new,
    list_page,
    require,
    with_datetimes,
)
from shadowlab.services.context import Clock, RequestContext, to_datetime
from shadowlab.services.tags import TagService
from shadowlab.store import ENDPOINT_CONFIGS, ENDPOINTS, EXPERIMENTS, MODELS, NoState, Record, Store
from shadowlab.store.records import ListQuery

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import (
        CreateModelInputTypeDef,
        DeleteModelInputTypeDef,
        DescribeModelInputTypeDef,
        ListModelsInputTypeDef,
    )

_DESCRIBED = (
    "ModelName",
    "PrimaryContainer",
    "Containers",
    "InferenceExecutionConfig",
    "ExecutionRoleArn",
    "VpcConfig",
    "EnableNetworkIsolation",
)


def primary_container(model: Record[NoState]) -> dict[str, object]:
    """The container that serves: PrimaryContainer, or the first of Containers."""
    document = model.document
    if document.get("PrimaryContainer"):
        return dict(document["PrimaryContainer"])
    return dict(document["Containers"][0])


class ModelService:
    def __init__(
        self,
        store: Store,
        tags: TagService,
        clock: Clock,
        upstream_hosts: UpstreamHosts | None = None,
    ) -> None:
        self.store = store
        self.tags = tags
        self.clock = clock
        self.upstream_hosts = upstream_hosts or UpstreamHosts.parse(DEFAULT_UPSTREAM_HOSTS)

    def create_model(self, ctx: RequestContext, params: CreateModelInputTypeDef) -> Output:
        name = params["ModelName"]
        has_primary = "PrimaryContainer" in params
        has_containers = bool(params.get("Containers"))
        if has_primary == has_containers:
            raise ValidationException(
                "Exactly one of PrimaryContainer or Containers must be specified for model "
                f"'{name}'."
            )
        containers = [*(params.get("Containers") or [])]
        if "PrimaryContainer" in params:
            containers.append(params["PrimaryContainer"])
        for container in containers:
            problem = environment_problem(container.get("Environment"), self.upstream_hosts)
            if problem:
                raise ValidationException(problem)
        tags = self.tags.check_new(params.get("Tags"))
        arn = make_arn(ctx.region, ctx.account, ResourceKind.MODEL, name)
        now = self.clock.now()
        document: dict[str, object] = {k: v for k, v in params.items() if k in _DESCRIBED}
        document.update(ModelArn=arn, CreationTime=now)
        record = Record(
            ctx.region, ResourceKind.MODEL, name, arn, now, now, document, state=NoState()
        )
        insert_new(self.store, ctx, record, tags)
        return {"ModelArn": arn}

    def describe_model(self, ctx: RequestContext, params: DescribeModelInputTypeDef) -> Output:
        record = require(self.store, ctx, MODELS, params["ModelName"])
        return with_datetimes(record.document, ("CreationTime",))

    def list_models(self, ctx: RequestContext, params: ListModelsInputTypeDef) -> Output:
        def summary(r: Record[NoState]) -> Output:
            return {
                "ModelName": r.name,
                "ModelArn": r.arn,
                "CreationTime": to_datetime(r.created_at),
            }

        items, token = list_page(self.store, ctx, MODELS, params, summary)
        return {"Models": items, "NextToken": token}

    def delete_model(self, ctx: RequestContext, params: DeleteModelInputTypeDef) -> Output:
        name = params["ModelName"]

        def attempt() -> None:
            # Check and delete in one unit: nothing starts using the model in between (SQLite).
            record = require(self.store, ctx, MODELS, name)
            user = self.used_by(ctx, record.name)
            if user is not None:
                raise ResourceInUse(
                    f"Cannot delete model '{record.name}': it is in use by {user}. Delete or "
                    "update that first."
                )
            self.store.delete(record)

        run_atomically(
            self.store, attempt, busy=lambda: being_changed(ctx, ResourceKind.MODEL, name)
        )
        return {}

    def used_by(self, ctx: RequestContext, model_name: str) -> str | None:
        """What keeps a model from being deleted: a live endpoint serving it (through its
        configuration or an experiment), or an experiment that will deploy it."""
        key = model_name.lower()
        for endpoint in self.store.find(ENDPOINTS, region=ctx.region):
            # What it should run and what it runs now (they differ while it converges).
            for deployment in (endpoint.state.target, endpoint.state.deployed):
                for variant in deployment.variants if deployment else ():
                    if variant.model_name.lower() == key:
                        return f"endpoint '{endpoint.name}'"
        for config in self.store.list_records(
            ctx.region, ENDPOINT_CONFIGS, ListQuery(limit=1_000_000)
        ):
            variants = config.document.get("ProductionVariants", []) + config.document.get(
                "ShadowProductionVariants", []
            )
            if any(v.get("ModelName", "").lower() == key for v in variants) and self.store.find(
                ENDPOINTS, parent=config.name_key, region=ctx.region
            ):
                return f"endpoint configuration '{config.name}' of a live endpoint"
        for experiment in self.store.find(
            EXPERIMENTS,
            statuses=[s.value for s in ACTIVE_EXPERIMENT_STATUSES],
            region=ctx.region,
        ):
            for variant in experiment.document["ModelVariants"]:
                if variant["ModelName"].lower() == key:
                    return f"inference experiment '{experiment.name}'"
        return None
