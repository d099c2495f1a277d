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
from typing import Any

from shadowlab.domain.kinds import ResourceKind
from shadowlab.domain.status import EndpointStatus
from shadowlab.services.context import Clock
from shadowlab.services.deployments import EndpointDeployment, Hosting, HostingState
from shadowlab.services.endpoints import deployed_of, target_of
from shadowlab.store import Record, StaleRecord, Store

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
        for record in self.store.find(ResourceKind.ENDPOINT, statuses=_WATCHED):
            try:
                self.step(record)
            except StaleRecord:
                pass  # changed meanwhile; the next tick sees the new state
            except Exception:
                log.exception("endpoint %s: step failed", record.arn)

    def _save(self, record: Record, status: EndpointStatus, reason: str | None = None) -> None:
        record.status = status.value
        record.document["EndpointStatus"] = status.value
        if reason:
            record.document["FailureReason"] = reason[:1024]
        record.modified_at = self.clock.now()
        self.store.update(record)

    def step(self, record: Record) -> None:
        status = EndpointStatus(record.status or EndpointStatus.CREATING.value)
        if status is EndpointStatus.DELETING:
            if self.hosting.remove(f"{record.region}/{record.name_key}"):
                self.store.delete(record)
            return
        target = target_of(record)
        if target is None:
            return
        if status is EndpointStatus.IN_SERVICE:
            self._maintain(record, deployed_of(record) or target)
            return
        outcome = self.hosting.ensure(target)
        if outcome.state is HostingState.PENDING:
            return
        if outcome.state is HostingState.READY:
            record.state["deployed"] = target.to_dict()
            record.state["deployed_from"] = _planned_from(record)
            record.state["instances"] = dict(outcome.instances)
            reason = record.state.pop("rollback_reason", None)
            self._save(record, EndpointStatus.IN_SERVICE, reason)
            return
        reason = outcome.reason or "the deployment failed"
        previous = deployed_of(record)
        if status is EndpointStatus.ROLLING_BACK or previous is None:
            self.hosting.remove(target.key)
            record.state["instances"] = {}
            self._save(record, EndpointStatus.FAILED, reason)
            return
        # An update failed: go back to what ran before, as SageMaker does, and say why.
        rollback = replace(previous)
        record.state["target"] = rollback.to_dict()
        _restore_planned_from(record)
        record.state["rollback_reason"] = f"Update failed and was rolled back: {reason}"
        self._save(record, EndpointStatus.ROLLING_BACK)

    def _maintain(self, record: Record, deployment: EndpointDeployment) -> None:
        outcome = self.hosting.ensure(deployment)
        if outcome.state is HostingState.FAILED:
            # What ran before can no longer start (after a server restart: its artifact was
            # deleted, its code broke): say so instead of staying InService with no instance.
            self.hosting.remove(deployment.key)
            record.state["instances"] = {}
            reason = outcome.reason or "the endpoint's instances could not be started again"
            self._save(record, EndpointStatus.FAILED, reason)
            return
        if dict(outcome.instances) != record.state.get("instances"):
            record.state["instances"] = dict(outcome.instances)
            self.store.update(record)


def _planned_from(record: Record) -> dict[str, Any]:
    """What the endpoint's target was planned from (its configuration, the weight/capacity
    overrides, the holding experiment's shadows), kept with what runs so a rollback can restore
    it: every later plan (UpdateEndpointWeightsAndCapacities, an experiment's step) starts there."""
    return {
        "parent": record.parent,
        "config_name": record.document.get("EndpointConfigName"),
        "overrides": dict(record.state.get("overrides", {})),
        "experiment": dict(held) if (held := record.state.get("experiment")) else None,
    }


def _restore_planned_from(record: Record) -> None:
    """After a failed update: the endpoint names the configuration that runs again, as
    SageMaker's DescribeEndpoint does, and plans from what runs, not from what failed."""
    before = record.state.get("deployed_from")
    if before is None:  # stored before this was recorded: nothing better to restore
        return
    record.parent = before["parent"]
    record.document["EndpointConfigName"] = before["config_name"]
    if before["overrides"]:
        record.state["overrides"] = before["overrides"]
    else:
        record.state.pop("overrides", None)
    held = record.state.get("experiment")
    if held:
        # The claim stays (only its experiment lets go of it); its shadows are those that run.
        ran = before["experiment"] or {}
        same = ran.get("name") == held["name"]
        held["shadows"] = ran.get("shadows", []) if same else []
        held["data_storage"] = ran.get("data_storage") if same else None
