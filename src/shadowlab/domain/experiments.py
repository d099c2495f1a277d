"""Rules of a shadow-mode inference experiment that need nothing but their inputs.

Kept free of storage and transport so they can be read (and tested) as the specification:
how a schedule defaults and is bounded, which variants an experiment may name, and what the
endpoint becomes when the experiment stops with a given set of ModelVariantActions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from shadowlab.errors import ValidationException

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.literals import ProductionVariantInstanceTypeType
    from mypy_boto3_sagemaker.type_defs import (
        ModelVariantConfigTypeDef,
        ShadowModeConfigUnionTypeDef,
    )

# (instance type, instance count) of a variant that runs on instances.
Infrastructure = tuple["ProductionVariantInstanceTypeType", int]

DEFAULT_DURATION = 7 * 24 * 3600.0
MAX_DURATION = 30 * 24 * 3600.0


@dataclass(frozen=True)
class Schedule:
    start: float
    end: float

    def to_document(self) -> dict[str, float]:
        return {"StartTime": self.start, "EndTime": self.end}


def resolve_schedule(given: Mapping[str, float] | None, now: float) -> Schedule:
    """No schedule: start now, end after 7 days. At most 30 days; the end must lie ahead."""
    given = given or {}
    start = given.get("StartTime", now)
    end = given.get("EndTime", max(start, now) + DEFAULT_DURATION)
    if end <= start:
        raise ValidationException("Schedule.EndTime must be later than Schedule.StartTime.")
    if end <= now:
        raise ValidationException("Schedule.EndTime must be in the future.")
    if end - start > MAX_DURATION:
        raise ValidationException(
            "The duration of an inference experiment (EndTime - StartTime) can be at most 30 days."
        )
    return Schedule(start, end)


def start_now(schedule: Schedule, now: float) -> Schedule:
    """StartInferenceExperiment: begin now; past 30 days the end moves to 30 days from now."""
    return Schedule(now, min(schedule.end, now + MAX_DURATION))


@dataclass(frozen=True)
class VariantRoles:
    source: ModelVariantConfigTypeDef
    shadows: tuple[ModelVariantConfigTypeDef, ...]
    sampling: dict[str, int]  # shadow variant -> SamplingPercentage

    @property
    def source_name(self) -> str:
        return self.source["VariantName"]

    @property
    def shadow_names(self) -> list[str]:
        return list(self.sampling)


def check_model_variants(
    model_variants: Sequence[ModelVariantConfigTypeDef], shadow_mode: ShadowModeConfigUnionTypeDef
) -> VariantRoles:
    """ModelVariants must be exactly the source variant and the shadow variants."""
    by_name: dict[str, ModelVariantConfigTypeDef] = {}
    for variant in model_variants:
        if variant["VariantName"] in by_name:
            raise ValidationException(
                f"ModelVariants names variant '{variant['VariantName']}' more than once."
            )
        by_name[variant["VariantName"]] = variant
    source_name = shadow_mode["SourceModelVariantName"]
    if source_name not in by_name:
        raise ValidationException(
            f"ShadowModeConfig.SourceModelVariantName '{source_name}' is not one of ModelVariants "
            f"({', '.join(by_name)})."
        )
    shadows = []
    sampling = {}
    for shadow in shadow_mode["ShadowModelVariants"]:
        name = shadow["ShadowModelVariantName"]
        if name == source_name:
            raise ValidationException(
                f"Variant '{name}' cannot be both the source and a shadow variant."
            )
        if name not in by_name:
            raise ValidationException(
                f"Shadow variant '{name}' is not one of ModelVariants ({', '.join(by_name)})."
            )
        percentage = int(shadow["SamplingPercentage"])
        # botocore's Percentage shape bounds it above only; a negative share means nothing.
        if percentage < 0:
            raise ValidationException(
                f"SamplingPercentage of shadow variant '{name}' must be between 0 and 100; "
                f"got {percentage}."
            )
        shadows.append(by_name[name])
        sampling[name] = percentage
    named = {source_name, *sampling}
    extra = [n for n in by_name if n not in named]
    if extra:
        raise ValidationException(
            f"ModelVariants entries {', '.join(extra)} are neither the source nor a shadow variant "
            "of ShadowModeConfig."
        )
    return VariantRoles(by_name[source_name], tuple(shadows), sampling)


def infrastructure(variant: ModelVariantConfigTypeDef) -> Infrastructure:
    config = variant["InfrastructureConfig"]["RealTimeInferenceConfig"]
    return config["InstanceType"], int(config["InstanceCount"])


@dataclass(frozen=True)
class StopPlan:
    """What the endpoint becomes when the experiment stops."""

    # The variant that will serve production instead of the source (Promote), if any.
    promoted: str | None
    # The shadow variant kept on the endpoint as a shadow (Retain), if any.
    retained_shadow: str | None
    # Infrastructure for the promoted variant: (instance type, count).
    promoted_infrastructure: Infrastructure | None

    @property
    def changes_config(self) -> bool:
        return self.promoted is not None or self.retained_shadow is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "promoted": self.promoted,
            "retained_shadow": self.retained_shadow,
            "promoted_infrastructure": list(self.promoted_infrastructure)
            if self.promoted_infrastructure
            else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StopPlan:
        infra = data.get("promoted_infrastructure")
        promoted_infrastructure = (
            (cast("ProductionVariantInstanceTypeType", str(infra[0])), int(infra[1]))
            if infra
            else None
        )
        return cls(data.get("promoted"), data.get("retained_shadow"), promoted_infrastructure)


# When an experiment reaches its EndTime nobody chose actions: the endpoint returns to what it was.
def default_actions(source: str, shadows: Sequence[str]) -> dict[str, str]:
    return {source: "Retain", **dict.fromkeys(shadows, "Remove")}


def plan_stop(
    actions: Mapping[str, str],
    source: str,
    shadows: Sequence[str],
    model_variants: Sequence[ModelVariantConfigTypeDef],
    desired: Sequence[ModelVariantConfigTypeDef] | None,
) -> StopPlan:
    variants = {source, *shadows}
    unknown = sorted(set(actions) - variants)
    if unknown:
        raise ValidationException(
            f"ModelVariantActions names {', '.join(unknown)}, which is not a variant of this "
            f"experiment ({', '.join(sorted(variants))})."
        )
    missing = sorted(variants - set(actions))
    if missing:
        raise ValidationException(
            f"ModelVariantActions must give an action for every variant; missing: "
            f"{', '.join(missing)}."
        )
    if actions[source] == "Promote":
        raise ValidationException(
            f"Variant '{source}' is already the production variant; only a shadow variant can be "
            "promoted."
        )
    promoted = [s for s in shadows if actions[s] == "Promote"]
    retained = [s for s in shadows if actions[s] == "Retain"]
    if promoted and actions[source] != "Remove":
        raise ValidationException(
            f"Promoting '{promoted[0]}' replaces the production variant '{source}': its action "
            "must be Remove."
        )
    if not promoted and actions[source] == "Remove":
        raise ValidationException(
            f"Removing the production variant '{source}' requires promoting a shadow variant."
        )
    promoted_name = promoted[0] if promoted else None
    by_name = {v["VariantName"]: v for v in model_variants}
    infra = infrastructure(by_name[promoted_name]) if promoted_name else None
    for variant in desired or ():
        name = variant["VariantName"]
        if name != promoted_name:
            raise ValidationException(
                f"DesiredModelVariants names '{name}', which is not being promoted."
            )
        if variant["ModelName"] != by_name[name]["ModelName"]:
            raise ValidationException(
                f"DesiredModelVariants: variant '{name}' must keep model "
                f"'{by_name[name]['ModelName']}'."
            )
        infra = infrastructure(variant)
    return StopPlan(promoted_name, retained[0] if retained else None, infra)
