"""The row types the store hands out: plain data, no session attached.

A `Record[S]` is one resource: the columns lists filter and sort on, its AWS document, and its
typed state `S` (what shadowlab keeps beyond the document). Which state a kind of resource has
is said once, by its `RecordKind` (`MODELS`, `ENDPOINT_CONFIGS`, `ENDPOINTS`, `EXPERIMENTS`):
the store decodes the state with it, so `store.get(region, ENDPOINTS, name)` is a
`Record[EndpointState]`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from shadowlab.domain.endpoint_state import EndpointState
from shadowlab.domain.experiment_state import ExperimentState
from shadowlab.domain.kinds import ResourceKind


class ResourceState(Protocol):
    def to_json(self) -> dict[str, object]: ...


S = TypeVar("S", bound=ResourceState)


@dataclass(frozen=True)
class NoState:
    """Models and endpoint configurations: everything about them is in their document."""

    def to_json(self) -> dict[str, object]:
        return {}

    @classmethod
    def from_json(cls, _data: Mapping[str, Any]) -> NoState:
        return cls()


@dataclass(frozen=True, eq=False)
class RecordKind(Generic[S]):
    """A kind of resource and the type of its state."""

    resource: ResourceKind
    decode: Callable[[Mapping[str, Any]], S]


MODELS = RecordKind(ResourceKind.MODEL, NoState.from_json)
ENDPOINT_CONFIGS = RecordKind(ResourceKind.ENDPOINT_CONFIG, NoState.from_json)
ENDPOINTS = RecordKind(ResourceKind.ENDPOINT, EndpointState.from_json)
EXPERIMENTS = RecordKind(ResourceKind.INFERENCE_EXPERIMENT, ExperimentState.from_json)
RECORD_KINDS: Mapping[ResourceKind, RecordKind[Any]] = {
    k.resource: k for k in (MODELS, ENDPOINT_CONFIGS, ENDPOINTS, EXPERIMENTS)
}


@dataclass
class Record(Generic[S]):
    region: str
    kind: ResourceKind
    name: str
    arn: str
    created_at: float
    modified_at: float
    # The resource as DescribeX shows it, timestamps as epoch seconds. Its status member is
    # not kept here: `status` is the one status (DescribeX adds it).
    document: dict[str, Any]
    status: str | None = None
    parent: str | None = None
    state: S = field(kw_only=True)
    version: int = 0

    @property
    def name_key(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class ListQuery:
    """Filters, order and page of a ListX call, already validated by the service."""

    name_contains: str | None = None
    created_before: float | None = None
    created_after: float | None = None
    modified_before: float | None = None
    modified_after: float | None = None
    status: str | None = None
    sort_by: str = "created_at"  # a column: created_at | name_key | status
    descending: bool = True
    # Keyset: the (sort value, name_key) of the last row of the previous page.
    after: tuple[Any, str] | None = None
    limit: int = 10
