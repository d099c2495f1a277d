"""How an inference experiment moves on: one idempotent step per reconciler tick.

Creating -> Created -> (StartTime) Starting -> Running -> (EndTime or Stop) Stopping ->
Completed | Cancelled, with Updating in between while an update is applied. Each step reads the
experiment and its endpoint, does at most one thing and records it, so a crash or a restart at
any point resumes where the store says it was.
"""

from __future__ import annotations

import logging
from typing import Any

from shadowlab.domain import experiments as rules
from shadowlab.domain.kinds import ResourceKind
from shadowlab.domain.status import EndpointStatus, ExperimentStatus, ModelVariantStatus
from shadowlab.services.common import require
from shadowlab.services.context import Clock, RequestContext
from shadowlab.services.deployments import EndpointDeployment, Role, VariantDeployment
from shadowlab.services.endpoint_configs import EndpointConfigService
from shadowlab.services.endpoint_plan import production_weight, shadow_weight
from shadowlab.services.endpoints import EndpointService, deployed_of
from shadowlab.services.experiments import ExperimentService
from shadowlab.services.judging import Judge, wants_auto_promotion
from shadowlab.services.models import primary_container
from shadowlab.store import Record, StaleRecord, Store

log = logging.getLogger(__name__)
_KIND = ResourceKind.INFERENCE_EXPERIMENT


class ExperimentProgress:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        endpoints: EndpointService,
        configs: EndpointConfigService,
        experiments: ExperimentService,
        account: str,
        judge: Judge | None = None,
    ) -> None:
        self.configs = configs
        self.store = store
        self.clock = clock
        self.endpoints = endpoints
        self.experiments = experiments
        self.account = account
        self.judge = judge

    def tick(self) -> None:
        active = [
            s.value
            for s in (
                ExperimentStatus.CREATING,
                ExperimentStatus.CREATED,
                ExperimentStatus.STARTING,
                ExperimentStatus.RUNNING,
                ExperimentStatus.UPDATING,
                ExperimentStatus.STOPPING,
            )
        ]
        for record in self.store.find(_KIND, statuses=active):
            try:
                self.step(record)
            except StaleRecord:
                pass  # someone else moved it; look again next tick
            except Exception:
                log.exception("inference experiment %s: step failed", record.arn)

    def _save(self, record: Record, status: ExperimentStatus | None = None) -> None:
        if status is not None:
            record.status = status.value
            record.document["Status"] = status.value
        record.modified_at = self.clock.now()
        self.store.update(record)

    def step(self, record: Record) -> None:
        ctx = RequestContext(record.region, self.account)
        now = self.clock.now()
        status = ExperimentStatus(record.status or ExperimentStatus.CREATING.value)
        schedule = record.document["Schedule"]
        two_record_steps = {
            ExperimentStatus.STARTING: self._starting,
            ExperimentStatus.UPDATING: self._updating,
            ExperimentStatus.STOPPING: self._stopping,
        }
        if status is ExperimentStatus.CREATING:
            self._save(record, ExperimentStatus.CREATED)
        elif status is ExperimentStatus.CREATED and now >= schedule["StartTime"]:
            self._save(record, ExperimentStatus.STARTING)
        elif status is ExperimentStatus.RUNNING and now >= schedule["EndTime"]:
            # One write; judging may read captures for a while, so no unit (on SQLite its write
            # lock would stall every other writer meanwhile).
            self._end_of_schedule(ctx, record)
        elif status in two_record_steps:
            # These write the endpoint (and maybe a new configuration) and the experiment: one
            # unit, or a crash in between leaves an endpoint retargeted for a step the
            # experiment never recorded (or released by an experiment still Stopping).
            with self.store.unit_of_work():
                two_record_steps[status](ctx, record)

    def _end_of_schedule(self, ctx: RequestContext, record: Record) -> None:
        """Stop as SageMaker does at EndTime (the endpoint back as it was), or promote the shadow
        when the experiment asked for it and the verdict passes."""
        roles = self._roles(record)
        source = roles.source["VariantName"]
        actions = rules.default_actions(source, list(roles.sampling))
        if wants_auto_promotion(self.store.list_tags(record.arn)):
            if self.judge is None:
                reason = "Not promoted automatically: this server has no judge configured."
            else:
                described = self.experiments.describe_inference_experiment(
                    ctx, {"Name": record.name}
                )
                try:
                    judgement = self.judge(ctx.region, described)
                except Exception as exc:  # a broken analysis must not wedge the experiment
                    log.exception("judging inference experiment %s failed", record.arn)
                    reason = f"Not promoted automatically: the verdict failed ({exc})."
                else:
                    if judgement.passed and len(roles.sampling) == 1:
                        (shadow,) = roles.sampling
                        actions = {source: "Remove", shadow: "Promote"}
                        reason = f"Promoted automatically: verdict {judgement.verdict}. "
                    else:
                        reason = f"Not promoted automatically: verdict {judgement.verdict}. "
                    reason += judgement.reason
            record.document["StatusReason"] = reason[:1024]
        plan = rules.plan_stop(
            actions, source, list(roles.sampling), record.document["ModelVariants"], None
        )
        record.state["stop"] = {
            "plan": plan.to_dict(),
            "desired_state": ExperimentStatus.COMPLETED.value,
            "actions": actions,
        }
        self._save(record, ExperimentStatus.STOPPING)

    # -- helpers --------------------------------------------------------------------------------

    @staticmethod
    def _roles(record: Record) -> rules.VariantRoles:
        return rules.check_model_variants(
            record.document["ModelVariants"], record.document["ShadowModeConfig"]
        )

    def _shadow_deployments(
        self, ctx: RequestContext, record: Record, production_weight: float
    ) -> list[VariantDeployment]:
        roles = self._roles(record)
        shadows = []
        for variant in roles.shadows:
            instance_type, count = rules.infrastructure(variant)
            sampling = roles.sampling[variant["VariantName"]]
            model = require(self.store, ctx, ResourceKind.MODEL, variant["ModelName"])
            shadows.append(
                VariantDeployment(
                    name=variant["VariantName"],
                    model_name=variant["ModelName"],
                    instance_type=instance_type,
                    instance_count=count,
                    weight=shadow_weight(sampling, production_weight),
                    role=Role.SHADOW,
                    sampling_percentage=sampling,
                    container=primary_container(model),
                )
            )
        return shadows

    def _retarget_with_shadows(
        self, ctx: RequestContext, record: Record, with_shadows: bool
    ) -> int:
        """Point the endpoint at its configuration plus (or minus) this experiment's shadows."""

        def change(endpoint: Record) -> EndpointDeployment:
            config = require(self.store, ctx, ResourceKind.ENDPOINT_CONFIG, endpoint.parent or "")
            weight = production_weight(config.document, endpoint.state.get("overrides", {}))
            shadows = self._shadow_deployments(ctx, record, weight) if with_shadows else []
            endpoint.state["experiment"] = {
                "name": record.name,
                "shadows": [s.to_dict() for s in shadows],
                "data_storage": record.document.get("DataStorageConfig") if with_shadows else None,
            }
            return self.endpoints.plan(ctx, endpoint, config, experiment_shadows=shadows)

        endpoint = self.endpoints.retarget(ctx, record.document["EndpointName"], change)
        return int(endpoint.state["generation"])

    def _converged(self, ctx: RequestContext, record: Record, generation: int) -> str | None:
        """None while the endpoint converges; "ok" once it runs `generation`; else the reason
        it could not (it rolled back or failed)."""
        endpoint = require(self.store, ctx, ResourceKind.ENDPOINT, record.document["EndpointName"])
        deployed = deployed_of(endpoint)
        if endpoint.status == EndpointStatus.FAILED.value:
            return str(endpoint.document.get("FailureReason", "the endpoint failed"))
        if endpoint.status != EndpointStatus.IN_SERVICE.value:
            return None
        if deployed is not None and deployed.generation >= generation:
            return "ok"
        return str(endpoint.document.get("FailureReason", "the endpoint update was rolled back"))

    # -- steps ----------------------------------------------------------------------------------

    def _starting(self, ctx: RequestContext, record: Record) -> None:
        generation = record.state.get("start_generation")
        if generation is None:
            record.state["start_generation"] = self._retarget_with_shadows(ctx, record, True)
            self._save(record)
            return
        outcome = self._converged(ctx, record, generation)
        if outcome == "ok":
            record.state["variant_status"] = ModelVariantStatus.IN_SERVICE.value
            self._save(record, ExperimentStatus.RUNNING)
        elif outcome is not None:
            self._finish(
                ctx,
                record,
                ExperimentStatus.CANCELLED,
                f"The shadow variant could not be deployed: {outcome}",
            )

    def _updating(self, ctx: RequestContext, record: Record) -> None:
        resume = ExperimentStatus(record.state.get("resume", ExperimentStatus.CREATED.value))
        if resume is not ExperimentStatus.RUNNING:
            record.state.pop("resume", None)
            self._save(record, resume)
            return
        generation = record.state.get("update_generation")
        if generation is None:
            record.state["update_generation"] = self._retarget_with_shadows(ctx, record, True)
            self._save(record)
            return
        outcome = self._converged(ctx, record, generation)
        if outcome is not None:
            for key in ("resume", "update_generation"):
                record.state.pop(key, None)
            record.state["variant_status"] = ModelVariantStatus.IN_SERVICE.value
            if outcome != "ok":
                record.document["StatusReason"] = f"The update could not be applied: {outcome}"
            self._save(record, ExperimentStatus.RUNNING)

    def _stopping(self, ctx: RequestContext, record: Record) -> None:
        stop = record.state["stop"]
        plan = rules.StopPlan.from_dict(stop["plan"])
        generation = stop.get("generation")
        if generation is None:
            endpoint = require(
                self.store, ctx, ResourceKind.ENDPOINT, record.document["EndpointName"]
            )
            had_shadows = bool((endpoint.state.get("experiment") or {}).get("shadows"))
            if plan.changes_config:
                stop["generation"] = self._apply_new_config(ctx, record, plan)
            elif had_shadows:
                stop["generation"] = self._retarget_with_shadows(ctx, record, False)
            else:
                self._finish(ctx, record, ExperimentStatus(stop["desired_state"]), None)
                return
            self._save(record)
            return
        outcome = self._converged(ctx, record, generation)
        if outcome is None:
            return
        failed = stop.get("failed")
        if outcome != "ok" and failed is None and self._shadows_run(ctx, record):
            # The endpoint rolled back to what ran during the experiment, its shadows included.
            # Take them off before letting go of the endpoint, or they would keep running (and
            # capturing) for an experiment that has ended.
            stop["failed"] = outcome
            stop["generation"] = self._retarget_with_shadows(ctx, record, False)
            self._save(record)
            return
        reason = None
        if failed is not None:
            reason = f"Stopping did not apply cleanly: {failed}. " + (
                "The shadow variants were removed in a follow-up deployment."
                if outcome == "ok"
                else f"Removing the shadow variants failed too: {outcome}"
            )
        elif outcome != "ok":
            reason = f"Stopping did not apply cleanly: {outcome}"
        self._finish(ctx, record, ExperimentStatus(stop["desired_state"]), reason)

    def _shadows_run(self, ctx: RequestContext, record: Record) -> bool:
        """Whether the InService endpoint runs one of this experiment's shadow variants."""
        endpoint = require(self.store, ctx, ResourceKind.ENDPOINT, record.document["EndpointName"])
        deployed = deployed_of(endpoint)
        if endpoint.status != EndpointStatus.IN_SERVICE.value or deployed is None:
            return False
        names = set(self._roles(record).sampling)
        return any(v.name in names for v in deployed.shadows())

    def _apply_new_config(self, ctx: RequestContext, record: Record, plan: rules.StopPlan) -> int:
        """Promote/Retain: a new endpoint configuration, as SageMaker makes one, then update."""
        endpoint = require(self.store, ctx, ResourceKind.ENDPOINT, record.document["EndpointName"])
        config = require(self.store, ctx, ResourceKind.ENDPOINT_CONFIG, endpoint.parent or "")
        roles = self._roles(record)
        source = roles.source["VariantName"]
        by_name = {v["VariantName"]: v for v in record.document["ModelVariants"]}
        production = [dict(v) for v in config.document["ProductionVariants"]]
        if plan.promoted is not None:
            instance_type, count = plan.promoted_infrastructure or rules.infrastructure(
                by_name[plan.promoted]
            )
            replaced = next(v for v in production if v["VariantName"] == source)
            promoted = {
                "VariantName": plan.promoted,
                "ModelName": by_name[plan.promoted]["ModelName"],
                "InstanceType": instance_type,
                "InitialInstanceCount": count,
                "InitialVariantWeight": replaced.get("InitialVariantWeight", 1.0),
            }
            production = [promoted if v is replaced else v for v in production]
        # Named after the experiment, deterministically: a step retried after a crash finds the
        # configuration it made before instead of making a second one.
        request: dict[str, Any] = {
            "EndpointConfigName": f"{record.name[:50]}-{int(record.created_at) % 10**8}",
            "ProductionVariants": production,
        }
        if plan.retained_shadow is not None:
            variant = by_name[plan.retained_shadow]
            instance_type, count = rules.infrastructure(variant)
            total = production_weight({"ProductionVariants": production}, {})
            request["ShadowProductionVariants"] = [
                {
                    "VariantName": plan.retained_shadow,
                    "ModelName": variant["ModelName"],
                    "InstanceType": instance_type,
                    "InitialInstanceCount": count,
                    "InitialVariantWeight": shadow_weight(
                        roles.sampling[plan.retained_shadow], total
                    ),
                }
            ]
        if config.document.get("DataCaptureConfig"):
            request["DataCaptureConfig"] = config.document["DataCaptureConfig"]
        if (
            self.store.get(ctx.region, ResourceKind.ENDPOINT_CONFIG, request["EndpointConfigName"])
            is None
        ):
            self.configs.create_endpoint_config(ctx, request)
        new_config = require(
            self.store, ctx, ResourceKind.ENDPOINT_CONFIG, request["EndpointConfigName"]
        )

        def change(endpoint: Record) -> EndpointDeployment:
            endpoint.state.pop("overrides", None)
            endpoint.state["experiment"] = {"name": record.name, "shadows": []}
            endpoint.parent = new_config.name_key
            endpoint.document["EndpointConfigName"] = new_config.name
            return self.endpoints.plan(ctx, endpoint, new_config, experiment_shadows=[])

        updated = self.endpoints.retarget(ctx, endpoint.name, change)
        return int(updated.state["generation"])

    def _finish(
        self, ctx: RequestContext, record: Record, status: ExperimentStatus, reason: str | None
    ) -> None:
        endpoint = self.store.get(
            ctx.region, ResourceKind.ENDPOINT, record.document["EndpointName"]
        )
        deployed = deployed_of(endpoint) if endpoint is not None else None
        if endpoint is not None and endpoint.status == EndpointStatus.IN_SERVICE.value and deployed:
            # What the endpoint runs, not what the stop asked for: they differ when the stop's
            # deployment was rolled back.
            kept = {v.name for v in deployed.variants}
        else:  # not InService (Failed: nothing runs, or still converging): what was asked for
            actions = (record.state.get("stop") or {}).get("actions", {})
            source = record.document["ShadowModeConfig"]["SourceModelVariantName"]
            kept = {n for n, a in actions.items() if a != "Remove"} if actions else {source}
        statuses = {
            v["VariantName"]: ModelVariantStatus.IN_SERVICE.value
            if v["VariantName"] in kept
            else ModelVariantStatus.DELETED.value
            for v in record.document["ModelVariants"]
        }
        record.state["variant_statuses"] = statuses
        record.document["CompletionTime"] = self.clock.now()
        if reason:
            record.document["StatusReason"] = reason
        # Endpoint before experiment, the order every unit writes them in (PostgreSQL then never
        # has two units each waiting for the row the other holds).
        self.experiments.release_endpoint(ctx, record.document["EndpointName"], record.name)
        self._save(record, status)
