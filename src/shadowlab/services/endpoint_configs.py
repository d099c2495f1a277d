"""CreateEndpointConfig, DescribeEndpointConfig, ListEndpointConfigs, DeleteEndpointConfig."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from shadowlab.domain.arns import make_arn
from shadowlab.domain.endpoint_config import EndpointConfig
from shadowlab.domain.kinds import ResourceKind
from shadowlab.errors import ResourceInUse, ValidationException
from shadowlab.services.atomic import run_atomically
from shadowlab.services.common import (
    Output,
    being_changed,
    insert_new,
    list_page,
    not_found,
    require,
    with_datetimes,
)
from shadowlab.services.context import Clock, RequestContext, to_datetime
from shadowlab.services.tags import TagService
from shadowlab.store import ENDPOINT_CONFIGS, ENDPOINTS, MODELS, NoState, Record, Store

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import (
        CreateEndpointConfigInputTypeDef,
        DeleteEndpointConfigInputTypeDef,
        DescribeEndpointConfigInputTypeDef,
        ListEndpointConfigsInputTypeDef,
        ProductionVariantUnionTypeDef,
    )

_KIND = ResourceKind.ENDPOINT_CONFIG
# Serverless memory sizes: 1 GB steps within the model's bounds (1024-6144).
MEMORY_STEP_MB = 1024
MEMORY_SIZES_MB = tuple(range(1024, 6144 + 1, MEMORY_STEP_MB))
_DESCRIBED = (
    "EndpointConfigName",
    "ProductionVariants",
    "ShadowProductionVariants",
    "DataCaptureConfig",
    "KmsKeyId",
    "AsyncInferenceConfig",
    "ExplainerConfig",
    "ExecutionRoleArn",
    "VpcConfig",
    "EnableNetworkIsolation",
    "MetricsConfig",
)


def check_variants(
    store: Store,
    ctx: RequestContext,
    production: Sequence[ProductionVariantUnionTypeDef],
    shadows: Sequence[ProductionVariantUnionTypeDef],
) -> None:
    """The rules SageMaker applies to the variants of an endpoint configuration."""
    check_memory_sizes(production, "productionVariants")
    check_memory_sizes(shadows, "shadowProductionVariants")
    names = [v["VariantName"] for v in [*production, *shadows]]
    duplicates = sorted({n for n in names if [m.lower() for m in names].count(n.lower()) > 1})
    if duplicates:
        raise ValidationException(
            f"Variant names must be unique within an endpoint configuration: "
            f"{', '.join(duplicates)} appears more than once."
        )
    serverless = [v["VariantName"] for v in production if "ServerlessConfig" in v]
    if serverless and len(production) != 1:
        # SageMaker's Serverless Inference excludes multiple production variants.
        raise ValidationException(
            f"Variant '{serverless[0]}' is serverless: an endpoint configuration with a "
            f"serverless variant must have exactly one production variant; it has "
            f"{len(production)}."
        )
    for variant in shadows:
        if "ServerlessConfig" in variant:
            raise ValidationException(
                f"Shadow variant '{variant['VariantName']}': ServerlessConfig is not supported "
                "for shadow variants; give InstanceType and InitialInstanceCount."
            )
    if shadows and len(production) != 1:
        raise ValidationException(
            "An endpoint configuration with ShadowProductionVariants must have exactly one "
            f"production variant; it has {len(production)}."
        )
    for variant in [*production, *shadows]:
        name = variant["VariantName"]
        if not variant.get("ModelName"):
            raise ValidationException(f"ModelName is required for variant '{name}'.")
        if store.get(ctx.region, MODELS, variant["ModelName"]) is None:
            raise not_found(ctx, ResourceKind.MODEL, variant["ModelName"])
        if "ServerlessConfig" in variant:
            check_serverless(variant)
            continue
        for member in ("InstanceType", "InitialInstanceCount"):
            if member not in variant:
                raise ValidationException(f"{member} is required for variant '{name}'.")
    if sum(float(v.get("InitialVariantWeight", 1.0)) for v in production) <= 0:
        raise ValidationException(
            "The sum of InitialVariantWeight over the production variants must be greater than 0."
        )


def check_memory_sizes(variants: Sequence[ProductionVariantUnionTypeDef], root: str) -> None:
    """MemorySizeInMB comes in 1 GB steps; botocore's model only bounds it (1024-6144, checked
    with the rest of the request), so the step is checked here, in the words AWS uses for a
    constraint violation (one message listing each)."""
    sizes = ", ".join(map(str, MEMORY_SIZES_MB))
    problems = [
        f"Value '{memory}' at '{root}.{index}.member.serverlessConfig.memorySizeInMB' failed to "
        f"satisfy constraint: Member must satisfy enum value set: [{sizes}]"
        for index, variant in enumerate(variants, start=1)
        if (memory := _memory_size(variant)) is not None and memory % MEMORY_STEP_MB != 0
    ]
    if problems:
        noun = "error" if len(problems) == 1 else "errors"
        raise ValidationException(
            f"{len(problems)} validation {noun} detected: " + "; ".join(problems)
        )


def _memory_size(variant: ProductionVariantUnionTypeDef) -> int | None:
    serverless = variant.get("ServerlessConfig")
    return serverless["MemorySizeInMB"] if serverless else None


def check_serverless(variant: ProductionVariantUnionTypeDef) -> None:
    name, config = variant["VariantName"], variant["ServerlessConfig"]
    given = [m for m in ("InstanceType", "InitialInstanceCount") if m in variant]
    if given:
        raise ValidationException(
            f"Variant '{name}': give either ServerlessConfig or InstanceType and "
            f"InitialInstanceCount, not both ({', '.join(given)} given with ServerlessConfig)."
        )
    check_provisioned(name, config)


def check_provisioned(name: str, config: Mapping[str, object]) -> None:
    """`config`: a ServerlessConfig, as ServerlessUpdateConfig changes may have left it."""
    provisioned, most = config.get("ProvisionedConcurrency"), config["MaxConcurrency"]
    if isinstance(provisioned, int) and isinstance(most, int) and provisioned > most:
        raise ValidationException(
            f"Variant '{name}': ProvisionedConcurrency ({provisioned}) must be less than or "
            f"equal to MaxConcurrency ({config['MaxConcurrency']})."
        )


class EndpointConfigService:
    def __init__(self, store: Store, tags: TagService, clock: Clock) -> None:
        self.store = store
        self.tags = tags
        self.clock = clock

    def create_endpoint_config(
        self, ctx: RequestContext, params: CreateEndpointConfigInputTypeDef
    ) -> Output:
        # One unit: the models checked are there when the configuration is stored, and the
        # configuration never exists without its tags.
        with self.store.unit_of_work():
            return self._create(ctx, params)

    def _create(self, ctx: RequestContext, params: CreateEndpointConfigInputTypeDef) -> Output:
        production = params["ProductionVariants"]
        shadows = params.get("ShadowProductionVariants", [])
        check_variants(self.store, ctx, production, shadows)
        capture = params.get("DataCaptureConfig")
        if capture is not None and not any(
            o.get("CaptureMode") for o in capture.get("CaptureOptions", [])
        ):
            raise ValidationException("DataCaptureConfig.CaptureOptions must name a CaptureMode.")
        tags = self.tags.check_new(params.get("Tags"))
        document: dict[str, object] = {k: v for k, v in params.items() if k in _DESCRIBED}
        return {"EndpointConfigArn": self._insert(ctx, document, tags)}

    def create_derived(self, ctx: RequestContext, config: EndpointConfig) -> None:
        """Store a configuration shadowlab makes itself, as SageMaker makes one when an
        experiment promotes or retains a shadow: CreateEndpointConfig's checks, no tags."""
        check_variants(self.store, ctx, config.production, config.shadows)
        document: dict[str, object] = {
            "EndpointConfigName": config.name,
            "ProductionVariants": list(config.production),
        }
        if config.shadows:
            document["ShadowProductionVariants"] = list(config.shadows)
        if config.data_capture:
            document["DataCaptureConfig"] = config.data_capture
        self._insert(ctx, document, [])

    def _insert(
        self, ctx: RequestContext, document: dict[str, object], tags: list[tuple[str, str]]
    ) -> str:
        """Store a checked configuration document and its tags; its ARN."""
        name = str(document["EndpointConfigName"])
        arn = make_arn(ctx.region, ctx.account, _KIND, name)
        now = self.clock.now()
        # SageMaker fills the weight in when the caller leaves it out.
        for member in ("ProductionVariants", "ShadowProductionVariants"):
            variants = document.get(member)
            if isinstance(variants, list):
                document[member] = [{"InitialVariantWeight": 1.0, **v} for v in variants]
        document.update(EndpointConfigArn=arn, CreationTime=now)
        record = Record(ctx.region, _KIND, name, arn, now, now, document, state=NoState())
        insert_new(self.store, ctx, record, tags)
        return arn

    def describe_endpoint_config(
        self, ctx: RequestContext, params: DescribeEndpointConfigInputTypeDef
    ) -> Output:
        record = require(self.store, ctx, ENDPOINT_CONFIGS, params["EndpointConfigName"])
        return with_datetimes(record.document, ("CreationTime",))

    def list_endpoint_configs(
        self, ctx: RequestContext, params: ListEndpointConfigsInputTypeDef
    ) -> Output:
        def summary(r: Record[NoState]) -> Output:
            return {
                "EndpointConfigName": r.name,
                "EndpointConfigArn": r.arn,
                "CreationTime": to_datetime(r.created_at),
            }

        items, token = list_page(self.store, ctx, ENDPOINT_CONFIGS, params, summary)
        return {"EndpointConfigs": items, "NextToken": token}

    def delete_endpoint_config(
        self, ctx: RequestContext, params: DeleteEndpointConfigInputTypeDef
    ) -> Output:
        name = params["EndpointConfigName"]

        def attempt() -> None:
            # Check and delete in one unit: no endpoint starts using it in between (SQLite).
            record = require(self.store, ctx, ENDPOINT_CONFIGS, name)
            users = self.store.find(ENDPOINTS, parent=record.name_key, region=ctx.region)
            if users:
                raise ResourceInUse(
                    f"Cannot delete endpoint configuration '{record.name}': endpoint "
                    f"'{users[0].name}' uses it. Delete the endpoint or update it to another "
                    "configuration first."
                )
            self.store.delete(record)

        run_atomically(self.store, attempt, busy=lambda: being_changed(ctx, _KIND, name))
        return {}
