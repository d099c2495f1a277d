"""How an endpoint converges on what it should run: one idempotent step per reconciler tick.

Creating/Updating: ask hosting to run ``state.target``; ready -> InService, failed -> Failed
(a new endpoint) or RollingBack to what ran before (an update), ending InService with the
FailureReason. Deleting: ask hosting to remove everything, then forget the endpoint.
InService endpoints are ensured too, so that after a restart their instances come back; one
whose instances can no longer start (its model no longer loads) becomes Failed with the reason.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from shadowlab.domain.deployments import EndpointDeployment
from shadowlab.domain.endpoint_state import PlannedFrom
from shadowlab.domain.status import EndpointStatus
from shadowlab.services.context import Clock
from shadowlab.services.endpoints import Endpoint
from shadowlab.services.hosting import Hosting, HostingState
from shadowlab.store import ENDPOINTS, StaleRecord, Store

log = logging.getLogger(__name__)

_WATCHED = [
    s.value
    for s in (
        EndpointStatus.CREATING,
        EndpointStatus.UPDATING,
        EndpointStatus.ROLLING_BACK,
        EndpointStatus.IN_SERVICE,
        EndpointStatus.DELETING,
    )
]


class EndpointProgress:
    def __init__(self, store: Store, clock: Clock, hosting: Hosting) -> None:
        self.store = store
        self.clock = clock
        self.hosting = hosting

    def tick(self) -> None:
        for record in self.store.find(ENDPOINTS, statuses=_WATCHED):
            try:
                self.step(record)
            except StaleRecord:
                pass  # changed meanwhile; the next tick sees the new state
            except Exception:
                log.exception("endpoint %s: step failed", record.arn)

    def _save(self, record: Endpoint, status: EndpointStatus, reason: str | None = None) -> None:
        record.status = status.value
        if reason:
            record.document["FailureReason"] = reason[:1024]
        record.modified_at = self.clock.now()
        self.store.update(record)

    def step(self, record: Endpoint) -> None:
        status = EndpointStatus(record.status or EndpointStatus.CREATING.value)
        state = record.state
        if status is EndpointStatus.DELETING:
            if self.hosting.remove(f"{record.region}/{record.name_key}"):
                self.store.delete(record)
            return
        target = state.target
        if target is None:
            return
        if status is EndpointStatus.IN_SERVICE:
            self._maintain(record, state.deployed or target)
            return
        outcome = self.hosting.ensure(target)
        if outcome.state is HostingState.PENDING:
            return
        if outcome.state is HostingState.READY:
            state.deployed = target
            state.deployed_from = _planned_from(record)
            state.instances = dict(outcome.instances)
            reason, state.rollback_reason = state.rollback_reason, None
            self._save(record, EndpointStatus.IN_SERVICE, reason)
            return
        reason = outcome.reason or "the deployment failed"
        previous = state.deployed
        if status is EndpointStatus.ROLLING_BACK or previous is None:
            self.hosting.remove(target.key)
            state.instances = {}
            self._save(record, EndpointStatus.FAILED, reason)
            return
        # An update failed: go back to what ran before, as SageMaker does, and say why.
        state.target = previous
        _restore_planned_from(record)
        state.rollback_reason = f"Update failed and was rolled back: {reason}"
        self._save(record, EndpointStatus.ROLLING_BACK)

    def _maintain(self, record: Endpoint, deployment: EndpointDeployment) -> None:
        outcome = self.hosting.ensure(deployment)
        if outcome.state is HostingState.FAILED:
            # What ran before can no longer start (after a server restart: its artifact was
            # deleted, its code broke): say so instead of staying InService with no instance.
            self.hosting.remove(deployment.key)
            record.state.instances = {}
            reason = outcome.reason or "the endpoint's instances could not be started again"
            self._save(record, EndpointStatus.FAILED, reason)
            return
        if dict(outcome.instances) != record.state.instances:
            record.state.instances = dict(outcome.instances)
            self.store.update(record)


def _planned_from(record: Endpoint) -> PlannedFrom:
    """What the endpoint's target was planned from (its configuration, the weight/capacity
    overrides, the holding experiment's shadows), kept with what runs so a rollback can restore
    it: every later plan (UpdateEndpointWeightsAndCapacities, an experiment's step) starts there."""
    return PlannedFrom(
        config_key=record.parent,
        config_name=record.document.get("EndpointConfigName"),
        overrides=dict(record.state.overrides),
        experiment=record.state.experiment,
    )


def _restore_planned_from(record: Endpoint) -> None:
    """After a failed update: the endpoint names the configuration that runs again, as
    SageMaker's DescribeEndpoint does, and plans from what runs, not from what failed."""
    state = record.state
    before = state.deployed_from
    if before is None:  # stored before this was recorded: nothing better to restore
        return
    record.parent = before.config_key
    record.document["EndpointConfigName"] = before.config_name
    state.overrides = dict(before.overrides)
    held = state.experiment
    if held:
        # The claim stays (only its experiment lets go of it); its shadows are those that run.
        ran = before.experiment
        same = ran is not None and ran.name == held.name
        state.experiment = replace(
            held,
            shadows=ran.shadows if ran is not None and same else (),
            data_storage=ran.data_storage if ran is not None and same else None,
        )
