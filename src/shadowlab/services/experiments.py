"""The seven inference-experiment operations.

Calls validate and record intent (status, schedule, a stop plan); the reconciler
(`experiment_progress`) carries the intent out on the endpoint, so a restart resumes it.
An experiment holds its endpoint from creation until it ends: the endpoint's
`EndpointState.experiment` names it, which is how "one active experiment per endpoint" holds
across replicas. Every operation is one unit of work (`services.atomic`): the claim, the
experiment and its tags are written together or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from shadowlab.domain import experiments as rules
from shadowlab.domain.arns import make_arn
from shadowlab.domain.endpoint_state import ExperimentClaim
from shadowlab.domain.experiment_state import ExperimentState, StopRequest
from shadowlab.domain.inference_experiment import ExperimentSpec
from shadowlab.domain.kinds import ResourceKind
from shadowlab.domain.status import EndpointStatus, ExperimentStatus, ModelVariantStatus
from shadowlab.errors import ConflictException, ResourceInUse, ServiceError, ValidationException
from shadowlab.services import experiment_views as views
from shadowlab.services.atomic import run_atomically
from shadowlab.services.common import Output, list_page, not_found, require, stored_times
from shadowlab.services.context import Clock, RequestContext
from shadowlab.services.endpoints import Endpoint, EndpointService
from shadowlab.services.experiment_views import Experiment
from shadowlab.services.tags import TagService
from shadowlab.store import ENDPOINTS, EXPERIMENTS, MODELS, AlreadyExists, Record, Store

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import (
        CreateInferenceExperimentRequestTypeDef,
        DeleteInferenceExperimentRequestTypeDef,
        DescribeInferenceExperimentRequestTypeDef,
        ListInferenceExperimentsRequestTypeDef,
        ModelVariantConfigTypeDef,
        ShadowModeConfigUnionTypeDef,
        StartInferenceExperimentRequestTypeDef,
        StopInferenceExperimentRequestTypeDef,
        UpdateInferenceExperimentRequestTypeDef,
    )

_KIND = ResourceKind.INFERENCE_EXPERIMENT


class ExperimentService:
    def __init__(
        self, store: Store, tags: TagService, clock: Clock, endpoints: EndpointService
    ) -> None:
        self.store = store
        self.tags = tags
        self.clock = clock
        self.endpoints = endpoints

    # -- holding the endpoint -------------------------------------------------------------------

    @staticmethod
    def _refuse_if_held(endpoint: Endpoint) -> None:
        held = endpoint.state.experiment
        if held:
            raise ResourceInUse(
                f"Endpoint '{endpoint.name}' already has an active inference experiment "
                f"'{held.name}'. An endpoint can run one inference experiment at a time."
            )

    def release_endpoint(self, ctx: RequestContext, endpoint_name: str, experiment: str) -> None:
        """Let go of the endpoint if `experiment` holds it, in the caller's unit of work: a
        concurrent change to the endpoint aborts the whole unit rather than leave it held."""
        with self.store.unit_of_work():
            endpoint = self.store.get(ctx.region, ENDPOINTS, endpoint_name)
            held = endpoint.state.experiment if endpoint else None
            if endpoint is None or held is None or held.name != experiment:
                return
            endpoint.state.experiment = None
            self.store.update(endpoint)

    # -- checks ---------------------------------------------------------------------------------

    def _check_variants(
        self,
        ctx: RequestContext,
        endpoint: Endpoint,
        variants: Sequence[ModelVariantConfigTypeDef],
        shadow_mode: ShadowModeConfigUnionTypeDef,
    ) -> rules.VariantRoles:
        roles = rules.check_model_variants(variants, shadow_mode)
        for variant in variants:
            if self.store.get(ctx.region, MODELS, variant["ModelName"]) is None:
                raise not_found(ctx, ResourceKind.MODEL, variant["ModelName"])
        target = endpoint.state.target
        live = {v.name: v for v in target.variants} if target else {}
        source = roles.source_name
        production = [v.name for v in (target.production() if target else ())]
        if source not in production:
            raise ValidationException(
                f"Source variant '{source}' is not a production variant of endpoint "
                f"'{endpoint.name}' (production variants: {', '.join(production)})."
            )
        if live[source].model_name.lower() != roles.source["ModelName"].lower():
            raise ValidationException(
                f"Source variant '{source}' of endpoint '{endpoint.name}' serves model "
                f"'{live[source].model_name}', not '{roles.source['ModelName']}'."
            )
        for shadow in roles.shadows:
            if shadow["VariantName"] in live:
                raise ValidationException(
                    f"Shadow variant name '{shadow['VariantName']}' is already a variant of "
                    f"endpoint '{endpoint.name}'; choose a new name."
                )
        return roles

    # -- operations -----------------------------------------------------------------------------

    def create_inference_experiment(
        self, ctx: RequestContext, params: CreateInferenceExperimentRequestTypeDef
    ) -> Output:
        endpoint = params["EndpointName"]
        return run_atomically(
            self.store,
            lambda: self._create(ctx, params),
            busy=lambda: ValidationException(f"Endpoint '{endpoint}' is busy; retry."),
        )

    def _create(
        self, ctx: RequestContext, params: CreateInferenceExperimentRequestTypeDef
    ) -> Output:
        name = params["Name"]
        if self.store.get(ctx.region, EXPERIMENTS, name) is not None:
            raise ResourceInUse(f"Inference experiment '{name}' already exists.")
        now = self.clock.now()
        schedule = rules.resolve_schedule(stored_times(params.get("Schedule")), now)
        endpoint = require(self.store, ctx, ENDPOINTS, params["EndpointName"])
        self._refuse_if_held(endpoint)
        self._check_variants(ctx, endpoint, params["ModelVariants"], params["ShadowModeConfig"])
        tags = self.tags.check_new(params.get("Tags"))
        arn = make_arn(ctx.region, ctx.account, _KIND, name)
        document: dict[str, object] = {
            "Arn": arn,
            "Name": name,
            "Type": params["Type"],
            "Schedule": schedule.to_document(),
            "RoleArn": params["RoleArn"],
            "EndpointName": endpoint.name,
            "ModelVariants": [dict(v) for v in params["ModelVariants"]],
            "ShadowModeConfig": dict(params["ShadowModeConfig"]),
        }
        if "Description" in params:
            document["Description"] = params["Description"]
        if "DataStorageConfig" in params:
            document["DataStorageConfig"] = params["DataStorageConfig"]
        if "KmsKey" in params:
            document["KmsKey"] = params["KmsKey"]
        record = Record(
            ctx.region,
            _KIND,
            name,
            arn,
            now,
            now,
            document,
            status=ExperimentStatus.CREATING.value,
            parent=endpoint.name_key,
            state=ExperimentState(),
        )
        if endpoint.status != EndpointStatus.IN_SERVICE.value:
            raise ValidationException(
                f"Endpoint '{endpoint.name}' is {endpoint.status}; an inference experiment "
                "needs an InService endpoint."
            )
        # Claim the endpoint (a compare-and-set: of two concurrent claims one goes stale and is
        # run again, to find the endpoint held), then store the experiment and its tags, all in
        # one unit: a failure anywhere leaves no claim by an experiment that does not exist.
        endpoint.state.experiment = ExperimentClaim(name)
        self.store.update(endpoint)
        try:
            self.store.insert(record)
        except AlreadyExists:
            raise ResourceInUse(f"Inference experiment '{name}' already exists.") from None
        if tags:
            self.store.put_tags(arn, tags)
        return {"InferenceExperimentArn": arn}

    def describe_inference_experiment(
        self, ctx: RequestContext, params: DescribeInferenceExperimentRequestTypeDef
    ) -> Output:
        return self.describe(ctx, require(self.store, ctx, EXPERIMENTS, params["Name"]))

    def describe(self, ctx: RequestContext, record: Experiment) -> Output:
        endpoint_name = record.document["EndpointName"]
        return views.describe(record, self.store.get(ctx.region, ENDPOINTS, endpoint_name))

    def list_inference_experiments(
        self, ctx: RequestContext, params: ListInferenceExperimentsRequestTypeDef
    ) -> Output:
        # Type has the single value ShadowMode in botocore's model, so every experiment matches
        # it; the filter is validated by the wire layer and needs no column.
        items, token = list_page(self.store, ctx, EXPERIMENTS, params, views.summary)
        return {"InferenceExperiments": items, "NextToken": token}

    @staticmethod
    def _require_status(
        record: Experiment, allowed: tuple[ExperimentStatus, ...], verb: str
    ) -> None:
        if record.status not in {s.value for s in allowed}:
            raise ConflictException(
                f"Cannot {verb} inference experiment '{record.name}' while it is "
                f"{record.status}; allowed in: {', '.join(s.value for s in allowed)}."
            )

    @staticmethod
    def _changed_meanwhile(name: str) -> ServiceError:
        return ConflictException(f"Inference experiment '{name}' changed meanwhile; retry.")

    def _transition(
        self,
        ctx: RequestContext,
        name: str,
        change: Callable[[Experiment], None],
        allowed: tuple[ExperimentStatus, ...],
        verb: str,
    ) -> Experiment:
        """Read-check-write with compare-and-set; `change` mutates the record in place."""

        def attempt() -> Experiment:
            record = require(self.store, ctx, EXPERIMENTS, name)
            self._require_status(record, allowed, verb)
            change(record)
            record.modified_at = self.clock.now()
            return self.store.update(record)

        return run_atomically(self.store, attempt, busy=lambda: self._changed_meanwhile(name))

    def update_inference_experiment(
        self, ctx: RequestContext, params: UpdateInferenceExperimentRequestTypeDef
    ) -> Output:
        def change(record: Experiment) -> None:
            document = record.document
            spec = ExperimentSpec.from_document(document)
            now = self.clock.now()
            running = record.status == ExperimentStatus.RUNNING.value
            if "ModelVariants" in params and running:
                raise ValidationException(
                    "ModelVariants can only change before the experiment starts."
                )
            variants = params.get("ModelVariants", spec.model_variants)
            shadow_mode = params.get("ShadowModeConfig", spec.shadow_mode)
            old = spec.roles
            new = rules.check_model_variants(variants, shadow_mode)
            if (new.source_name, *sorted(new.sampling)) != (old.source_name, *sorted(old.sampling)):
                raise ValidationException(
                    "UpdateInferenceExperiment cannot rename variants: keep source "
                    f"'{old.source_name}' and shadow(s) {', '.join(old.sampling)}."
                )
            if "ModelVariants" in params:
                endpoint = require(self.store, ctx, ENDPOINTS, spec.endpoint_name)
                self._check_variants(ctx, endpoint, variants, shadow_mode)
            if "Schedule" in params:
                given = stored_times(params["Schedule"])
                start = spec.schedule.start
                if running and abs(given.get("StartTime", start) - start) > 1e-3:
                    raise ValidationException(
                        "Schedule.StartTime cannot change once the experiment is Running."
                    )
                merged = {**spec.schedule.to_document(), **given}
                document["Schedule"] = rules.resolve_schedule(merged, now).to_document()
            document["ModelVariants"] = [dict(v) for v in variants]
            document["ShadowModeConfig"] = dict(shadow_mode)
            if "Description" in params:
                document["Description"] = params["Description"]
            if "DataStorageConfig" in params:
                document["DataStorageConfig"] = params["DataStorageConfig"]
            record.state.resume = ExperimentStatus(record.status or ExperimentStatus.CREATED)
            record.status = ExperimentStatus.UPDATING.value
            if running:
                record.state.shadow_status = ModelVariantStatus.UPDATING

        record = self._transition(
            ctx,
            params["Name"],
            change,
            (ExperimentStatus.CREATED, ExperimentStatus.RUNNING),
            "update",
        )
        return {"InferenceExperimentArn": record.arn}

    def start_inference_experiment(
        self, ctx: RequestContext, params: StartInferenceExperimentRequestTypeDef
    ) -> Output:
        def change(record: Experiment) -> None:
            current = ExperimentSpec.from_document(record.document).schedule
            record.document["Schedule"] = rules.start_now(current, self.clock.now()).to_document()
            record.status = ExperimentStatus.STARTING.value

        record = self._transition(ctx, params["Name"], change, (ExperimentStatus.CREATED,), "start")
        return {"InferenceExperimentArn": record.arn}

    def stop_inference_experiment(
        self, ctx: RequestContext, params: StopInferenceExperimentRequestTypeDef
    ) -> Output:
        def change(record: Experiment) -> None:
            spec = ExperimentSpec.from_document(record.document)
            roles = spec.roles
            plan = rules.plan_stop(
                params["ModelVariantActions"],
                roles.source_name,
                roles.shadow_names,
                spec.model_variants,
                params.get("DesiredModelVariants"),
            )
            started = record.status in (
                ExperimentStatus.STARTING.value,
                ExperimentStatus.RUNNING.value,
            )
            if plan.changes_config and not started:
                raise ValidationException(
                    "Promote and Retain need a started experiment; this one never ran. Use "
                    "Remove for the shadow variant, or start the experiment first."
                )
            record.state.stop = StopRequest(
                plan=plan,
                desired_state=ExperimentStatus(params.get("DesiredState", "Completed")),
                actions=dict(params["ModelVariantActions"]),
            )
            if params.get("Reason"):
                record.document["StatusReason"] = params["Reason"]
            record.status = ExperimentStatus.STOPPING.value

        record = self._transition(
            ctx,
            params["Name"],
            change,
            (ExperimentStatus.CREATED, ExperimentStatus.STARTING, ExperimentStatus.RUNNING),
            "stop",
        )
        return {"InferenceExperimentArn": record.arn}

    def delete_inference_experiment(
        self, ctx: RequestContext, params: DeleteInferenceExperimentRequestTypeDef
    ) -> Output:
        name = params["Name"]
        allowed = (ExperimentStatus.CREATED, ExperimentStatus.COMPLETED, ExperimentStatus.CANCELLED)

        def attempt() -> Experiment:
            record = require(self.store, ctx, EXPERIMENTS, name)
            self._require_status(record, allowed, "delete")
            # Endpoint before experiment, the order every unit writes them in (PostgreSQL then
            # never has two units each waiting for the row the other holds).
            self.release_endpoint(ctx, record.document["EndpointName"], record.name)
            self.store.delete(record)
            return record

        record = run_atomically(self.store, attempt, busy=lambda: self._changed_meanwhile(name))
        return {"InferenceExperimentArn": record.arn}
