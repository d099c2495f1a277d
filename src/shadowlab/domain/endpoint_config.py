"""An endpoint configuration as the services plan from it: its variants and its capture.

The stored document is CreateEndpointConfig's request as DescribeEndpointConfig returns it; this
is the typed view of the parts a deployment is planned from. The member types are botocore's
shapes (generated TypedDicts, for the type checker only).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import DataCaptureConfigTypeDef, ProductionVariantTypeDef


@dataclass(frozen=True)
class EndpointConfig:
    name: str
    production: tuple[ProductionVariantTypeDef, ...]
    shadows: tuple[ProductionVariantTypeDef, ...] = ()
    data_capture: DataCaptureConfigTypeDef | None = None

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> EndpointConfig:
        return cls(
            name=document["EndpointConfigName"],
            production=tuple(document["ProductionVariants"]),
            shadows=tuple(document.get("ShadowProductionVariants") or ()),
            data_capture=document.get("DataCaptureConfig") or None,
        )

    def variant(self, name: str) -> ProductionVariantTypeDef | None:
        return next(
            (v for v in (*self.production, *self.shadows) if v["VariantName"] == name), None
        )
