"""An inference experiment as the services carry it out: what it tests, on which endpoint, when.

The stored document is the experiment as DescribeInferenceExperiment shows it (timestamps as
epoch seconds); `ExperimentSpec` is the typed view of the parts the reconciler acts on. Member
types are botocore's shapes (generated TypedDicts, for the type checker only).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shadowlab.domain.experiments import Schedule, VariantRoles, check_model_variants

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import (
        InferenceExperimentDataStorageConfigTypeDef,
        ModelVariantConfigTypeDef,
        ShadowModeConfigUnionTypeDef,
    )


@dataclass(frozen=True)
class ExperimentSpec:
    endpoint_name: str
    model_variants: tuple[ModelVariantConfigTypeDef, ...]
    shadow_mode: ShadowModeConfigUnionTypeDef
    schedule: Schedule
    data_storage: InferenceExperimentDataStorageConfigTypeDef | None = None

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> ExperimentSpec:
        schedule = document["Schedule"]
        return cls(
            endpoint_name=document["EndpointName"],
            model_variants=tuple(document["ModelVariants"]),
            shadow_mode=document["ShadowModeConfig"],
            schedule=Schedule(float(schedule["StartTime"]), float(schedule["EndTime"])),
            data_storage=document.get("DataStorageConfig") or None,
        )

    @property
    def roles(self) -> VariantRoles:
        """The source variant and the shadows with their sampling (checked when stored)."""
        return check_model_variants(self.model_variants, self.shadow_mode)

    def variant(self, name: str) -> ModelVariantConfigTypeDef:
        return next(v for v in self.model_variants if v["VariantName"] == name)
