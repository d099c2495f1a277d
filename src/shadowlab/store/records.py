"""The row types the store hands out: plain data, no session attached."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shadowlab.domain.kinds import ResourceKind


@dataclass
class Record:
    region: str
    kind: ResourceKind
    name: str
    arn: str
    created_at: float
    modified_at: float
    document: dict[str, Any]
    status: str | None = None
    parent: str | None = None
    state: dict[str, Any] = field(default_factory=dict)
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
