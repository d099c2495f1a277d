"""What an endpoint runs: its variants, their models, weights and roles, and its capture.

The services plan a deployment from an endpoint configuration (`services.endpoint_plan`); a
`Hosting` (`services.hosting`) makes it run. Stored in the endpoint's state as JSON, so
`to_dict`/`from_dict` must read what earlier versions wrote.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Role(StrEnum):
    PRODUCTION = "production"
    SHADOW = "shadow"


@dataclass(frozen=True)
class VariantDeployment:
    name: str
    model_name: str
    instance_type: str
    instance_count: int
    weight: float
    role: Role = Role.PRODUCTION
    # Share of production requests copied to a shadow, 0-100.
    sampling_percentage: int = 0
    # The model's container: Image, ModelDataUrl, Environment (as CreateModel took them).
    container: dict[str, Any] = field(default_factory=dict)
    # A serverless variant's ServerlessConfig (MemorySizeInMB, MaxConcurrency, optional
    # ProvisionedConcurrency) as the endpoint configuration gave it; None for instances. It runs
    # one worker (instance_count 1) with that much memory and at most MaxConcurrency requests.
    serverless: dict[str, Any] | None = None

    @property
    def max_concurrency(self) -> int:
        """Requests the data plane lets in at once; 0: no cap (instance-based variants)."""
        return int(self.serverless["MaxConcurrency"]) if self.serverless else 0

    @property
    def memory_mb(self) -> int:
        """The worker's memory limit in MiB; 0: none beyond the server's settings."""
        return int(self.serverless["MemorySizeInMB"]) if self.serverless else 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VariantDeployment:
        return cls(**{**data, "role": Role(data["role"])})


@dataclass(frozen=True)
class EndpointDeployment:
    region: str
    endpoint_name: str
    generation: int
    variants: tuple[VariantDeployment, ...]
    # The endpoint configuration's DataCaptureConfig, as CreateEndpointConfig took it.
    data_capture: dict[str, Any] | None = None
    # While an inference experiment runs on the endpoint: its name and DataStorageConfig.
    experiment_name: str | None = None
    data_storage: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        return f"{self.region}/{self.endpoint_name.lower()}"

    def production(self) -> tuple[VariantDeployment, ...]:
        return tuple(v for v in self.variants if v.role is Role.PRODUCTION)

    def shadows(self) -> tuple[VariantDeployment, ...]:
        return tuple(v for v in self.variants if v.role is Role.SHADOW)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EndpointDeployment:
        variants = tuple(VariantDeployment.from_dict(v) for v in data["variants"])
        return cls(
            region=data["region"],
            endpoint_name=data["endpoint_name"],
            generation=data["generation"],
            variants=variants,
            data_capture=data.get("data_capture"),
            experiment_name=data.get("experiment_name"),
            data_storage=data.get("data_storage"),
        )
