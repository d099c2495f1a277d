"""The seven inference-experiment operations.

Calls validate and record intent (status, schedule, a stop plan); the reconciler
(`experiment_progress`) carries the intent out on the endpoint, so a restart resumes it.
An experiment holds its endpoint from creation until it ends: `endpoint.state["experiment"]`
names it, which is how "one active experiment per endpoint" holds across replicas. Every
operation is one unit of work (`services.atomic`): the claim, the experiment and its tags are
written together or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from shadowlab.domain import experiments as rules
from shadowlab.domain.arns import make_arn
from shadowlab.domain.kinds import ResourceKind
from shadowlab.domain.status import EndpointStatus, ExperimentStatus, ModelVariantStatus
from shadowlab.errors import ConflictException, ResourceInUse, ServiceError, ValidationException
from shadowlab.services import experiment_views as views
from shadowlab.services.atomic import run_atomically
from shadowlab.services.common import list_page, not_found, plain, require
from shadowlab.services.context import Clock, RequestContext
from shadowlab.services.endpoints import EndpointService, target_of
from shadowlab.services.tags import TagService
from shadowlab.store import AlreadyExists, Record, Store

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
    def _refuse_if_held(endpoint: Record) -> None:
        held = endpoint.state.get("experiment")
        if held:
            raise ResourceInUse(
                f"Endpoint '{endpoint.name}' already has an active inference experiment "
                f"'{held['name']}'. An endpoint can run one inference experiment at a time."
            )

    def release_endpoint(self, ctx: RequestContext, endpoint_name: str, experiment: str) -> None:
        """Let go of the endpoint if `experiment` holds it, in the caller's unit of work: a
        concurrent change to the endpoint aborts the whole unit rather than leave it held."""
        with self.store.unit_of_work():
            endpoint = self.store.get(ctx.region, ResourceKind.ENDPOINT, endpoint_name)
            if endpoint is None or (endpoint.state.get("experiment") or {}).get("name") != (
                experiment
            ):
                return
            endpoint.state.pop("experiment", None)
            self.store.update(endpoint)

    # -- checks ---------------------------------------------------------------------------------

    def _check_variants(
        self, ctx: RequestContext, endpoint: Record, params: Mapping[str, Any]
    ) -> rules.VariantRoles:
        roles = rules.check_model_variants(params["ModelVariants"], params["ShadowModeConfig"])
        for variant in params["ModelVariants"]:
            if self.store.get(ctx.region, ResourceKind.MODEL, variant["ModelName"]) is None:
                raise not_found(ctx, ResourceKind.MODEL, variant["ModelName"])
        target = target_of(endpoint)
        live = {v.name: v for v in target.variants} if target else {}
        source = roles.source["VariantName"]
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
        self, ctx: RequestContext, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        endpoint = params["EndpointName"]
        return run_atomically(
            self.store,
            lambda: self._create(ctx, params),
            busy=lambda: ValidationException(f"Endpoint '{endpoint}' is busy; retry."),
        )

    def _create(self, ctx: RequestContext, params: Mapping[str, Any]) -> dict[str, Any]:
        name = params["Name"]
        if self.store.get(ctx.region, _KIND, name) is not None:
            raise ResourceInUse(f"Inference experiment '{name}' already exists.")
        now = self.clock.now()
        schedule = rules.resolve_schedule(plain(params.get("Schedule")), now)
        endpoint = require(self.store, ctx, ResourceKind.ENDPOINT, params["EndpointName"])
        self._refuse_if_held(endpoint)
        self._check_variants(ctx, endpoint, params)
        tags = self.tags.check_new(params.get("Tags"))
        arn = make_arn(ctx.region, ctx.account, _KIND, name)
        document: dict[str, Any] = {
            "Arn": arn,
            "Name": name,
            "Type": params["Type"],
            "Schedule": schedule.to_document(),
            "Status": ExperimentStatus.CREATING.value,
            "RoleArn": params["RoleArn"],
            "EndpointName": endpoint.name,
            "ModelVariants": [dict(v) for v in params["ModelVariants"]],
            "ShadowModeConfig": dict(params["ShadowModeConfig"]),
        }
        for optional in ("Description", "DataStorageConfig", "KmsKey"):
            if optional in params:
                document[optional] = params[optional]
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
            state={"variant_status": ModelVariantStatus.CREATING.value},
        )
        if endpoint.status != EndpointStatus.IN_SERVICE.value:
            raise ValidationException(
                f"Endpoint '{endpoint.name}' is {endpoint.status}; an inference experiment "
                "needs an InService endpoint."
            )
        # Claim the endpoint (a compare-and-set: of two concurrent claims one goes stale and is
        # run again, to find the endpoint held), then store the experiment and its tags, all in
        # one unit: a failure anywhere leaves no claim by an experiment that does not exist.
        endpoint.state["experiment"] = {"name": name, "shadows": []}
        self.store.update(endpoint)
        try:
            self.store.insert(record)
        except AlreadyExists:
            raise ResourceInUse(f"Inference experiment '{name}' already exists.") from None
        if tags:
            self.store.put_tags(arn, tags)
        return {"InferenceExperimentArn": arn}

    def describe_inference_experiment(
        self, ctx: RequestContext, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        record = require(self.store, ctx, _KIND, params["Name"])
        endpoint_name = record.document["EndpointName"]
        return views.describe(
            record, self.store.get(ctx.region, ResourceKind.ENDPOINT, endpoint_name)
        )

    def list_inference_experiments(
        self, ctx: RequestContext, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        # Type has the single value ShadowMode in botocore's model, so every experiment matches
        # it; the filter is validated by the wire layer and needs no column.
        items, token = list_page(self.store, ctx, _KIND, params, views.summary)
        return {"InferenceExperiments": items, "NextToken": token}

    @staticmethod
    def _require_status(record: Record, allowed: tuple[ExperimentStatus, ...], verb: str) -> None:
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
        change: Callable[[Record], None],
        allowed: tuple[ExperimentStatus, ...],
        verb: str,
    ) -> Record:
        """Read-check-write with compare-and-set; `change` mutates the record in place."""

        def attempt() -> Record:
            record = require(self.store, ctx, _KIND, name)
            self._require_status(record, allowed, verb)
            change(record)
            record.modified_at = self.clock.now()
            record.document["Status"] = record.status
            return self.store.update(record)

        return run_atomically(self.store, attempt, busy=lambda: self._changed_meanwhile(name))

    def update_inference_experiment(
        self, ctx: RequestContext, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        def change(record: Record) -> None:
            document = record.document
            now = self.clock.now()
            running = record.status == ExperimentStatus.RUNNING.value
            if "ModelVariants" in params and running:
                raise ValidationException(
                    "ModelVariants can only change before the experiment starts."
                )
            variants = params.get("ModelVariants", document["ModelVariants"])
            shadow_mode = params.get("ShadowModeConfig", document["ShadowModeConfig"])
            old = rules.check_model_variants(
                document["ModelVariants"], document["ShadowModeConfig"]
            )
            new = rules.check_model_variants(variants, shadow_mode)
            if (new.source["VariantName"], *sorted(new.sampling)) != (
                old.source["VariantName"],
                *sorted(old.sampling),
            ):
                raise ValidationException(
                    "UpdateInferenceExperiment cannot rename variants: keep source "
                    f"'{old.source['VariantName']}' and shadow(s) {', '.join(old.sampling)}."
                )
            if "ModelVariants" in params:
                endpoint = require(self.store, ctx, ResourceKind.ENDPOINT, document["EndpointName"])
                self._check_variants(
                    ctx, endpoint, {"ModelVariants": variants, "ShadowModeConfig": shadow_mode}
                )
            if "Schedule" in params:
                given = plain(params["Schedule"])
                if (
                    running
                    and abs(
                        given.get("StartTime", document["Schedule"]["StartTime"])
                        - document["Schedule"]["StartTime"]
                    )
                    > 1e-3
                ):
                    raise ValidationException(
                        "Schedule.StartTime cannot change once the experiment is Running."
                    )
                merged = {**document["Schedule"], **given}
                document["Schedule"] = rules.resolve_schedule(merged, now).to_document()
            document["ModelVariants"] = [dict(v) for v in variants]
            document["ShadowModeConfig"] = dict(shadow_mode)
            for optional in ("Description", "DataStorageConfig"):
                if optional in params:
                    document[optional] = params[optional]
            record.state["resume"] = record.status
            record.status = ExperimentStatus.UPDATING.value
            record.state["variant_status"] = (
                ModelVariantStatus.UPDATING.value
                if running
                else record.state.get("variant_status", ModelVariantStatus.CREATING.value)
            )

        record = self._transition(
            ctx,
            params["Name"],
            change,
            (ExperimentStatus.CREATED, ExperimentStatus.RUNNING),
            "update",
        )
        return {"InferenceExperimentArn": record.arn}

    def start_inference_experiment(
        self, ctx: RequestContext, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        def change(record: Record) -> None:
            now = self.clock.now()
            current = rules.Schedule(
                record.document["Schedule"]["StartTime"], record.document["Schedule"]["EndTime"]
            )
            record.document["Schedule"] = rules.start_now(current, now).to_document()
            record.status = ExperimentStatus.STARTING.value

        record = self._transition(ctx, params["Name"], change, (ExperimentStatus.CREATED,), "start")
        return {"InferenceExperimentArn": record.arn}

    def stop_inference_experiment(
        self, ctx: RequestContext, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        def change(record: Record) -> None:
            document = record.document
            roles = rules.check_model_variants(
                document["ModelVariants"], document["ShadowModeConfig"]
            )
            plan = rules.plan_stop(
                params["ModelVariantActions"],
                roles.source["VariantName"],
                list(roles.sampling),
                document["ModelVariants"],
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
            record.state["stop"] = {
                "plan": plan.to_dict(),
                "desired_state": params.get("DesiredState", ExperimentStatus.COMPLETED.value),
                "actions": dict(params["ModelVariantActions"]),
            }
            if params.get("Reason"):
                document["StatusReason"] = params["Reason"]
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
        self, ctx: RequestContext, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        name = params["Name"]
        allowed = (ExperimentStatus.CREATED, ExperimentStatus.COMPLETED, ExperimentStatus.CANCELLED)

        def attempt() -> Record:
            record = require(self.store, ctx, _KIND, name)
            self._require_status(record, allowed, "delete")
            # Endpoint before experiment, the order every unit writes them in (PostgreSQL then
            # never has two units each waiting for the row the other holds).
            self.release_endpoint(ctx, record.document["EndpointName"], record.name)
            self.store.delete(record)
            return record

        record = run_atomically(self.store, attempt, busy=lambda: self._changed_meanwhile(name))
        return {"InferenceExperimentArn": record.arn}
