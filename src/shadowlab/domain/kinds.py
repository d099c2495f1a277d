"""The kinds of resource shadowlab manages, named as in their ARNs."""

from __future__ import annotations

from enum import StrEnum


class ResourceKind(StrEnum):
    MODEL = "model"
    ENDPOINT_CONFIG = "endpoint-config"
    ENDPOINT = "endpoint"
    INFERENCE_EXPERIMENT = "inference-experiment"

    @property
    def label(self) -> str:
        """How SageMaker's messages name the kind ("Could not find endpoint configuration ...")."""
        return _LABELS[self]


_LABELS = {
    ResourceKind.MODEL: "model",
    ResourceKind.ENDPOINT_CONFIG: "endpoint configuration",
    ResourceKind.ENDPOINT: "endpoint",
    ResourceKind.INFERENCE_EXPERIMENT: "inference experiment",
}
