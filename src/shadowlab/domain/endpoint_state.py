"""What shadowlab keeps about an endpoint beyond what DescribeEndpoint shows.

An endpoint's document is its AWS shape; its `EndpointState` is the rest: the deployment it
should run (`target`) and the one that runs (`deployed`), the weight and capacity changes made
since its configuration (`overrides`), and the inference experiment holding it (`experiment`).
The store keeps it as JSON (`to_json`/`from_json`); the keys are those earlier versions wrote,
so a store written by them reads back unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shadowlab.domain.deployments import EndpointDeployment, VariantDeployment


@dataclass(frozen=True)
class VariantOverride:
    """What UpdateEndpointWeightsAndCapacities changed on one variant: its weight, its instance
    count, and for a serverless variant the members of its ServerlessUpdateConfig."""

    weight: float | None = None
    count: int | None = None
    serverless: Mapping[str, int] | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {}
        if self.weight is not None:
            out["weight"] = self.weight
        if self.count is not None:
            out["count"] = self.count
        if self.serverless is not None:
            out["serverless"] = dict(self.serverless)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VariantOverride:
        weight, count, serverless = data.get("weight"), data.get("count"), data.get("serverless")
        return cls(
            weight=None if weight is None else float(weight),
            count=None if count is None else int(count),
            serverless=None if serverless is None else dict(serverless),
        )


Overrides = dict[str, VariantOverride]


def _overrides_json(overrides: Overrides) -> dict[str, object]:
    return {name: override.to_json() for name, override in overrides.items()}


def _overrides(data: Mapping[str, Any] | None) -> Overrides:
    return {name: VariantOverride.from_json(o) for name, o in (data or {}).items()}


@dataclass(frozen=True)
class ExperimentClaim:
    """An inference experiment holding the endpoint: only it may change the endpoint until it
    ends. While it runs, its shadow variants and its DataStorageConfig go into every plan."""

    name: str
    shadows: tuple[VariantDeployment, ...] = ()
    data_storage: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "shadows": [s.to_dict() for s in self.shadows],
            "data_storage": dict(self.data_storage) if self.data_storage else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExperimentClaim:
        return cls(
            name=str(data["name"]),
            shadows=tuple(VariantDeployment.from_dict(v) for v in data.get("shadows") or ()),
            data_storage=data.get("data_storage") or None,
        )


@dataclass(frozen=True)
class PlannedFrom:
    """What a deployment was planned from, kept with what runs so that a rolled-back update can
    restore it: every later plan then starts from what runs, not from what failed."""

    config_key: str | None  # the configuration's name_key (the record's parent)
    config_name: str | None
    overrides: Overrides
    experiment: ExperimentClaim | None

    def to_json(self) -> dict[str, object]:
        return {
            "parent": self.config_key,
            "config_name": self.config_name,
            "overrides": _overrides_json(self.overrides),
            "experiment": self.experiment.to_json() if self.experiment else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PlannedFrom:
        experiment = data.get("experiment")
        return cls(
            config_key=data.get("parent"),
            config_name=data.get("config_name"),
            overrides=_overrides(data.get("overrides")),
            experiment=ExperimentClaim.from_json(experiment) if experiment else None,
        )


@dataclass
class EndpointState:
    # What the endpoint should run; hosting converges on it. None until it is first planned.
    target: EndpointDeployment | None = None
    # Counts plans: a deployment is planned at generation + 1, so "runs generation n" is exact.
    generation: int = 0
    # What runs (last converged), and what it was planned from.
    deployed: EndpointDeployment | None = None
    deployed_from: PlannedFrom | None = None
    # Live instances per variant, for CurrentInstanceCount.
    instances: dict[str, int] = field(default_factory=dict)
    overrides: Overrides = field(default_factory=dict)
    experiment: ExperimentClaim | None = None
    # Set when an update failed and the endpoint goes back: DescribeEndpoint's FailureReason
    # once it is InService again.
    rollback_reason: str | None = None

    @property
    def running(self) -> EndpointDeployment | None:
        """What runs, or while nothing has run yet, what will."""
        return self.deployed or self.target

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"generation": self.generation}
        if self.target is not None:
            out["target"] = self.target.to_dict()
        if self.deployed is not None:
            out["deployed"] = self.deployed.to_dict()
        if self.deployed_from is not None:
            out["deployed_from"] = self.deployed_from.to_json()
        if self.instances:
            out["instances"] = dict(self.instances)
        if self.overrides:
            out["overrides"] = _overrides_json(self.overrides)
        if self.experiment is not None:
            out["experiment"] = self.experiment.to_json()
        if self.rollback_reason is not None:
            out["rollback_reason"] = self.rollback_reason
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EndpointState:
        target, deployed = data.get("target"), data.get("deployed")
        deployed_from, experiment = data.get("deployed_from"), data.get("experiment")
        return cls(
            target=EndpointDeployment.from_dict(target) if target else None,
            generation=int(data.get("generation", 0)),
            deployed=EndpointDeployment.from_dict(deployed) if deployed else None,
            deployed_from=PlannedFrom.from_json(deployed_from) if deployed_from else None,
            instances={k: int(v) for k, v in (data.get("instances") or {}).items()},
            overrides=_overrides(data.get("overrides")),
            experiment=ExperimentClaim.from_json(experiment) if experiment else None,
            rollback_reason=data.get("rollback_reason"),
        )
