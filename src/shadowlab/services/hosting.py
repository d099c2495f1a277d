"""The interface to whatever runs deployments.

The services decide *what* runs (a `domain.deployments.EndpointDeployment`); a `Hosting`
implementation makes it so: real worker processes in `shadowlab.hosting`, or nothing at all for
a control-plane-only server. The reconciler calls `ensure` until it reports ready or failed, so
implementations must be idempotent and must not block.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from shadowlab.domain.deployments import EndpointDeployment


class HostingState(StrEnum):
    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True)
class HostingStatus:
    state: HostingState
    reason: str | None = None
    # Live instances per variant name, for CurrentInstanceCount.
    instances: dict[str, int] = field(default_factory=dict)


class Hosting(Protocol):
    def ensure(self, deployment: EndpointDeployment) -> HostingStatus:
        """Converge towards `deployment` (idempotent, non-blocking) and say how far it is."""
        ...

    def remove(self, key: str) -> bool:
        """Stop everything for the endpoint `key`; True once nothing is left."""
        ...


class ImmediateHosting:
    """Control plane only (`--hosting none`): every deployment is ready at once, nothing runs.

    Useful to manage SageMaker resources without spending processes on them; invocations then
    find no instance and answer ServiceUnavailable.
    """

    def __init__(self) -> None:
        self.deployments: dict[str, EndpointDeployment] = {}

    def ensure(self, deployment: EndpointDeployment) -> HostingStatus:
        self.deployments[deployment.key] = deployment
        counts = {v.name: v.instance_count for v in deployment.variants}
        return HostingStatus(HostingState.READY, instances=counts)

    def remove(self, key: str) -> bool:
        self.deployments.pop(key, None)
        return True
