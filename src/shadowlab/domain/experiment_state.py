"""What shadowlab keeps about an inference experiment beyond what Describe shows.

The reconciler moves an experiment on one step per tick and must pick up after a crash where
the last step left off: each step records here what it asked the endpoint for (the generation
of the deployment it planned) before it waits for it. The store keeps it as JSON with the keys
earlier versions wrote; the inventory view (store migration 0003) reads `variant_status` and
`variant_statuses` from it, so those two keep their names and values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shadowlab.domain.experiments import StopPlan
from shadowlab.domain.status import ExperimentStatus, ModelVariantStatus


@dataclass
class StopRequest:
    """A stop, asked for by StopInferenceExperiment or by the schedule's end, being carried out."""

    plan: StopPlan
    desired_state: ExperimentStatus
    actions: dict[str, str]  # ModelVariantActions: variant -> Promote | Remove | Retain
    # The endpoint deployment the stop planned, once it did.
    generation: int | None = None
    # Why that deployment did not apply, when a follow-up deployment removes the shadows instead.
    failed: str | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "plan": self.plan.to_dict(),
            "desired_state": self.desired_state.value,
            "actions": dict(self.actions),
        }
        if self.generation is not None:
            out["generation"] = self.generation
        if self.failed is not None:
            out["failed"] = self.failed
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StopRequest:
        generation = data.get("generation")
        return cls(
            plan=StopPlan.from_dict(data["plan"]),
            desired_state=ExperimentStatus(data["desired_state"]),
            actions={str(k): str(v) for k, v in data["actions"].items()},
            generation=None if generation is None else int(generation),
            failed=data.get("failed"),
        )


@dataclass
class ExperimentState:
    # The shadow variants' status while the experiment lives (the source is InService).
    shadow_status: ModelVariantStatus = ModelVariantStatus.CREATING
    # Every variant's final status, once the experiment has ended.
    final_statuses: dict[str, ModelVariantStatus] = field(default_factory=dict)
    # While Updating: the status to return to.
    resume: ExperimentStatus | None = None
    # The endpoint deployments that add the shadows at the start, and apply an update.
    start_generation: int | None = None
    update_generation: int | None = None
    stop: StopRequest | None = None

    def variant_status(self, name: str, source: str) -> ModelVariantStatus:
        """ModelVariants[].Status of DescribeInferenceExperiment."""
        default = ModelVariantStatus.IN_SERVICE if name == source else self.shadow_status
        return self.final_statuses.get(name, default)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"variant_status": self.shadow_status.value}
        if self.final_statuses:
            out["variant_statuses"] = {k: v.value for k, v in self.final_statuses.items()}
        if self.resume is not None:
            out["resume"] = self.resume.value
        if self.start_generation is not None:
            out["start_generation"] = self.start_generation
        if self.update_generation is not None:
            out["update_generation"] = self.update_generation
        if self.stop is not None:
            out["stop"] = self.stop.to_json()
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExperimentState:
        resume, stop = data.get("resume"), data.get("stop")
        start, update = data.get("start_generation"), data.get("update_generation")
        return cls(
            shadow_status=ModelVariantStatus(data.get("variant_status", "Creating")),
            final_statuses={
                k: ModelVariantStatus(v) for k, v in (data.get("variant_statuses") or {}).items()
            },
            resume=None if resume is None else ExperimentStatus(resume),
            start_generation=None if start is None else int(start),
            update_generation=None if update is None else int(update),
            stop=StopRequest.from_json(stop) if stop else None,
        )
