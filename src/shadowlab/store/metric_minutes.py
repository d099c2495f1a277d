"""Per-minute metric rows: written by each replica's flush (upsert), read back by any replica.

A row is the whole state of one (replica, region, endpoint, variant, role, minute) as that replica
knows it, so writing it again later simply replaces it: a flush that is repeated, or that
follows a failed one, never counts anything twice. Replicas never touch each other's rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite

from shadowlab.store.schema import METRIC_COUNTERS, metric_minutes
from shadowlab.store.store import Store

_KEY = ("replica", "region", "endpoint", "variant", "role", "minute")


@dataclass(frozen=True)
class MetricMinute:
    replica: str
    region: str
    endpoint: str
    variant: str
    minute: int  # minutes since the epoch, UTC
    role: str  # production | shadow
    counts: Mapping[str, int] = field(default_factory=dict)  # METRIC_COUNTERS; absent = 0
    cpu_utilization_sum: float = 0.0  # the sum of the samples taken in the minute
    memory_utilization_sum: float = 0.0
    utilization_samples: int = 0
    model_latency: dict[str, Any] | None = None  # encoded sketches (see metrics.sketch)
    overhead_latency: dict[str, Any] | None = None
    updated_at: float = 0.0


def _values(row: MetricMinute) -> dict[str, Any]:
    values: dict[str, Any] = {
        "replica": row.replica,
        "region": row.region,
        "endpoint": row.endpoint,
        "variant": row.variant,
        "minute": row.minute,
        "role": row.role,
        "cpu_utilization_sum": row.cpu_utilization_sum,
        "memory_utilization_sum": row.memory_utilization_sum,
        "utilization_samples": row.utilization_samples,
        "model_latency": row.model_latency,
        "overhead_latency": row.overhead_latency,
        "updated_at": row.updated_at,
    }
    for name in METRIC_COUNTERS:
        values[name] = int(row.counts.get(name, 0))
    return values


def _to_row(row: Any) -> MetricMinute:
    return MetricMinute(
        replica=row.replica,
        region=row.region,
        endpoint=row.endpoint,
        variant=row.variant,
        minute=row.minute,
        role=row.role,
        counts={name: getattr(row, name) for name in METRIC_COUNTERS},
        cpu_utilization_sum=row.cpu_utilization_sum,
        memory_utilization_sum=row.memory_utilization_sum,
        utilization_samples=row.utilization_samples,
        model_latency=row.model_latency,
        overhead_latency=row.overhead_latency,
        updated_at=row.updated_at,
    )


def upsert_metric_minutes(store: Store, rows: Sequence[MetricMinute]) -> None:
    """Insert the rows, or replace those that exist, in one transaction."""
    if not rows:
        return
    dialect = store.engine.dialect.name
    if dialect == "postgresql":
        statement: Any = postgresql.insert(metric_minutes)
    elif dialect == "sqlite":
        statement = sqlite.insert(metric_minutes)
    else:  # pragma: no cover - the store supports these two
        raise NotImplementedError(f"metric upserts on {dialect}")
    replaced = {
        column.name: statement.excluded[column.name]
        for column in metric_minutes.columns
        if column.name not in _KEY
    }
    statement = statement.on_conflict_do_update(index_elements=list(_KEY), set_=replaced)
    with store.transaction(write=True) as conn:
        conn.execute(statement, [_values(row) for row in rows])


def read_metric_minutes(
    store: Store, region: str, endpoint: str, first_minute: int, end_minute: int
) -> list[MetricMinute]:
    """Every replica's rows of the endpoint for minutes in [first_minute, end_minute)."""
    c = metric_minutes.c
    statement = (
        select(metric_minutes)
        .where(
            c.region == region,
            c.endpoint == endpoint,
            c.minute >= first_minute,
            c.minute < end_minute,
        )
        .order_by(c.variant, c.minute, c.role, c.replica)
    )
    with store.transaction(write=False) as conn:
        return [_to_row(row) for row in conn.execute(statement)]


def delete_metric_minutes_before(store: Store, minute: int) -> int:
    """Drop every replica's rows older than `minute`; how many went."""
    with store.transaction(write=True) as conn:
        result = conn.execute(delete(metric_minutes).where(metric_minutes.c.minute < minute))
        return int(result.rowcount or 0)
