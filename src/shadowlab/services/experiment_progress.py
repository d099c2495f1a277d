"""How an inference experiment moves on: one idempotent step per reconciler tick.

Creating -> Created -> (StartTime) Starting -> Running -> (EndTime or Stop) Stopping ->
Completed | Cancelled, with Updating in between while an update is applied. Each step reads the
experiment and its endpoint, does at most one thing and records it (in `ExperimentState`), so a
crash or a restart at any point resumes where the store says it was.
"""

from __future__ import annotations

import logging

from shadowlab.domain import experiments as rules
from shadowlab.domain.deployments import EndpointDeployment, Role, VariantDeployment
from shadowlab.domain.endpoint_config import EndpointConfig
from shadowlab.domain.endpoint_state import ExperimentClaim
from shadowlab.domain.experiment_state import StopRequest
from shadowlab.domain.inference_experiment import ExperimentSpec
from shadowlab.domain.status import EndpointStatus, ExperimentStatus, ModelVariantStatus
from shadowlab.services.common import require
from shadowlab.services.context import Clock, RequestContext
from shadowlab.services.endpoint_configs import EndpointConfigService
from shadowlab.services.endpoint_plan import config_after_stop, production_weight, shadow_weight
from shadowlab.services.endpoints import Endpoint, EndpointService
from shadowlab.services.experiment_views import Experiment
from shadowlab.services.experiments import ExperimentService
from shadowlab.services.judging import Judge, wants_auto_promotion
from shadowlab.services.models import primary_container
from shadowlab.store import ENDPOINT_CONFIGS, ENDPOINTS, EXPERIMENTS, MODELS, StaleRecord, Store

log = logging.getLogger(__name__)

_ACTIVE = [
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
        for record in self.store.find(EXPERIMENTS, statuses=_ACTIVE):
            try:
                self.step(record)
            except StaleRecord:
                pass  # someone else moved it; look again next tick
            except Exception:
                log.exception("inference experiment %s: step failed", record.arn)

    def _save(self, record: Experiment, status: ExperimentStatus | None = None) -> None:
        if status is not None:
            record.status = status.value
        record.modified_at = self.clock.now()
        self.store.update(record)

    def step(self, record: Experiment) -> None:
        ctx = RequestContext(record.region, self.account)
        now = self.clock.now()
        status = ExperimentStatus(record.status or ExperimentStatus.CREATING.value)
        schedule = ExperimentSpec.from_document(record.document).schedule
        two_record_steps = {
            ExperimentStatus.STARTING: self._starting,
            ExperimentStatus.UPDATING: self._updating,
            ExperimentStatus.STOPPING: self._stopping,
        }
        if status is ExperimentStatus.CREATING:
            self._save(record, ExperimentStatus.CREATED)
        elif status is ExperimentStatus.CREATED and now >= schedule.start:
            self._save(record, ExperimentStatus.STARTING)
        elif status is ExperimentStatus.RUNNING and now >= schedule.end:
            # One write; judging may read captures for a while, so no unit (on SQLite its write
            # lock would stall every other writer meanwhile).
            self._end_of_schedule(ctx, record)
        elif status in two_record_steps:
            # These write the endpoint (and maybe a new configuration) and the experiment: one
            # unit, or a crash in between leaves an endpoint retargeted for a step the
            # experiment never recorded (or released by an experiment still Stopping).
            with self.store.unit_of_work():
                two_record_steps[status](ctx, record)

    def _end_of_schedule(self, ctx: RequestContext, record: Experiment) -> None:
        """Stop as SageMaker does at EndTime (the endpoint back as it was), or promote the shadow
        when the experiment asked for it and the verdict passes."""
        spec = ExperimentSpec.from_document(record.document)
        roles = spec.roles
        source = roles.source_name
        actions = rules.default_actions(source, roles.shadow_names)
        if wants_auto_promotion(self.store.list_tags(record.arn)):
            if self.judge is None:
                reason = "Not promoted automatically: this server has no judge configured."
            else:
                described = self.experiments.describe(ctx, record)
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
        plan = rules.plan_stop(actions, source, roles.shadow_names, spec.model_variants, None)
        record.state.stop = StopRequest(plan, ExperimentStatus.COMPLETED, actions)
        self._save(record, ExperimentStatus.STOPPING)

    # -- helpers --------------------------------------------------------------------------------

    def _endpoint(self, ctx: RequestContext, record: Experiment) -> Endpoint:
        return require(self.store, ctx, ENDPOINTS, record.document["EndpointName"])

    def _shadow_deployments(
        self, ctx: RequestContext, spec: ExperimentSpec, production_weight: float
    ) -> list[VariantDeployment]:
        roles = spec.roles
        shadows = []
        for variant in roles.shadows:
            instance_type, count = rules.infrastructure(variant)
            sampling = roles.sampling[variant["VariantName"]]
            model = require(self.store, ctx, MODELS, variant["ModelName"])
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
        self, ctx: RequestContext, record: Experiment, with_shadows: bool
    ) -> int:
        """Point the endpoint at its configuration plus (or minus) this experiment's shadows;
        the generation of that deployment."""
        spec = ExperimentSpec.from_document(record.document)

        def change(endpoint: Endpoint) -> EndpointDeployment:
            config = require(self.store, ctx, ENDPOINT_CONFIGS, endpoint.parent or "")
            production = EndpointConfig.from_document(config.document).production
            weight = production_weight(production, endpoint.state.overrides)
            shadows = self._shadow_deployments(ctx, spec, weight) if with_shadows else []
            storage = spec.data_storage if with_shadows else None
            endpoint.state.experiment = ExperimentClaim(record.name, tuple(shadows), storage)
            return self.endpoints.plan(ctx, endpoint, config)

        return self.endpoints.retarget(ctx, spec.endpoint_name, change).state.generation

    def _converged(self, ctx: RequestContext, record: Experiment, generation: int) -> str | None:
        """None while the endpoint converges; "ok" once it runs `generation`; else the reason
        it could not (it rolled back or failed)."""
        endpoint = self._endpoint(ctx, record)
        deployed = endpoint.state.deployed
        if endpoint.status == EndpointStatus.FAILED.value:
            return str(endpoint.document.get("FailureReason", "the endpoint failed"))
        if endpoint.status != EndpointStatus.IN_SERVICE.value:
            return None
        if deployed is not None and deployed.generation >= generation:
            return "ok"
        return str(endpoint.document.get("FailureReason", "the endpoint update was rolled back"))

    # -- steps ----------------------------------------------------------------------------------

    def _starting(self, ctx: RequestContext, record: Experiment) -> None:
        generation = record.state.start_generation
        if generation is None:
            record.state.start_generation = self._retarget_with_shadows(ctx, record, True)
            self._save(record)
            return
        outcome = self._converged(ctx, record, generation)
        if outcome == "ok":
            record.state.shadow_status = ModelVariantStatus.IN_SERVICE
            self._save(record, ExperimentStatus.RUNNING)
        elif outcome is not None:
            self._finish(
                ctx,
                record,
                ExperimentStatus.CANCELLED,
                f"The shadow variant could not be deployed: {outcome}",
            )

    def _updating(self, ctx: RequestContext, record: Experiment) -> None:
        state = record.state
        resume = state.resume or ExperimentStatus.CREATED
        if resume is not ExperimentStatus.RUNNING:
            state.resume = None
            self._save(record, resume)
            return
        generation = state.update_generation
        if generation is None:
            state.update_generation = self._retarget_with_shadows(ctx, record, True)
            self._save(record)
            return
        outcome = self._converged(ctx, record, generation)
        if outcome is not None:
            state.resume = state.update_generation = None
            state.shadow_status = ModelVariantStatus.IN_SERVICE
            if outcome != "ok":
                record.document["StatusReason"] = f"The update could not be applied: {outcome}"
            self._save(record, ExperimentStatus.RUNNING)

    def _stopping(self, ctx: RequestContext, record: Experiment) -> None:
        stop = record.state.stop
        assert stop is not None, "Stopping is only ever set with its StopRequest"
        if stop.generation is None:
            held = self._endpoint(ctx, record).state.experiment
            if stop.plan.changes_config:
                stop.generation = self._apply_new_config(ctx, record, stop.plan)
            elif held is not None and held.shadows:
                stop.generation = self._retarget_with_shadows(ctx, record, False)
            else:
                self._finish(ctx, record, stop.desired_state, None)
                return
            self._save(record)
            return
        outcome = self._converged(ctx, record, stop.generation)
        if outcome is None:
            return
        if outcome != "ok" and stop.failed is None and self._shadows_run(ctx, record):
            # The endpoint rolled back to what ran during the experiment, its shadows included.
            # Take them off before letting go of the endpoint, or they would keep running (and
            # capturing) for an experiment that has ended.
            stop.failed = outcome
            stop.generation = self._retarget_with_shadows(ctx, record, False)
            self._save(record)
            return
        reason = None
        if stop.failed is not None:
            reason = f"Stopping did not apply cleanly: {stop.failed}. " + (
                "The shadow variants were removed in a follow-up deployment."
                if outcome == "ok"
                else f"Removing the shadow variants failed too: {outcome}"
            )
        elif outcome != "ok":
            reason = f"Stopping did not apply cleanly: {outcome}"
        self._finish(ctx, record, stop.desired_state, reason)

    def _shadows_run(self, ctx: RequestContext, record: Experiment) -> bool:
        """Whether the InService endpoint runs one of this experiment's shadow variants."""
        endpoint = self._endpoint(ctx, record)
        deployed = endpoint.state.deployed
        if endpoint.status != EndpointStatus.IN_SERVICE.value or deployed is None:
            return False
        names = set(ExperimentSpec.from_document(record.document).roles.sampling)
        return any(v.name in names for v in deployed.shadows())

    def _apply_new_config(
        self, ctx: RequestContext, record: Experiment, plan: rules.StopPlan
    ) -> int:
        """Promote/Retain: a new endpoint configuration, as SageMaker makes one, then update."""
        endpoint = self._endpoint(ctx, record)
        config = require(self.store, ctx, ENDPOINT_CONFIGS, endpoint.parent or "")
        # Named after the experiment, deterministically: a step retried after a crash finds the
        # configuration it made before instead of making a second one.
        name = f"{record.name[:50]}-{int(record.created_at) % 10**8}"
        if self.store.get(ctx.region, ENDPOINT_CONFIGS, name) is None:
            derived = config_after_stop(
                EndpointConfig.from_document(config.document),
                ExperimentSpec.from_document(record.document),
                plan,
                name,
            )
            self.configs.create_derived(ctx, derived)
        new_config = require(self.store, ctx, ENDPOINT_CONFIGS, name)

        def change(endpoint: Endpoint) -> EndpointDeployment:
            endpoint.state.overrides = {}
            endpoint.state.experiment = ExperimentClaim(record.name)
            endpoint.parent = new_config.name_key
            endpoint.document["EndpointConfigName"] = new_config.name
            return self.endpoints.plan(ctx, endpoint, new_config)

        return self.endpoints.retarget(ctx, endpoint.name, change).state.generation

    def _finish(
        self, ctx: RequestContext, record: Experiment, status: ExperimentStatus, reason: str | None
    ) -> None:
        endpoint = self.store.get(ctx.region, ENDPOINTS, record.document["EndpointName"])
        deployed = endpoint.state.deployed if endpoint is not None else None
        if endpoint is not None and endpoint.status == EndpointStatus.IN_SERVICE.value and deployed:
            # What the endpoint runs, not what the stop asked for: they differ when the stop's
            # deployment was rolled back.
            kept = {v.name for v in deployed.variants}
        else:  # not InService (Failed: nothing runs, or still converging): what was asked for
            actions = record.state.stop.actions if record.state.stop else {}
            source = record.document["ShadowModeConfig"]["SourceModelVariantName"]
            kept = {n for n, a in actions.items() if a != "Remove"} if actions else {source}
        record.state.final_statuses = {
            v["VariantName"]: ModelVariantStatus.IN_SERVICE
            if v["VariantName"] in kept
            else ModelVariantStatus.DELETED
            for v in record.document["ModelVariants"]
        }
        record.document["CompletionTime"] = self.clock.now()
        if reason:
            record.document["StatusReason"] = reason
        # Endpoint before experiment, the order every unit writes them in (PostgreSQL then never
        # has two units each waiting for the row the other holds).
        self.experiments.release_endpoint(ctx, record.document["EndpointName"], record.name)
        self._save(record, status)
