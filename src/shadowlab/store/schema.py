"""Table definitions. Alembic migrations in ``migrations/versions`` create and evolve them.

Every SageMaker resource is one row of ``resources``: the columns hold what lists filter and sort
on, ``document`` holds the resource as DescribeX returns it and ``state`` what only shadowlab
needs (the deployment an endpoint should have, the experiment holding it). ``version`` makes every
update a compare-and-set, so several replicas can share one PostgreSQL without locks.

``metric_minutes`` holds one row per server replica, region, endpoint, variant, role and minute:
each replica writes only its own rows (no contention, no read-modify-write), and readers sum
the counters and merge the latency sketches of all replicas.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Float, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

resources = Table(
    "resources",
    metadata,
    Column("region", String(32), primary_key=True),
    Column("kind", String(32), primary_key=True),
    # Lower-cased name: SageMaker names are unique regardless of case.
    Column("name_key", String(128), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("arn", String(512), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("modified_at", Float, nullable=False),
    Column("status", String(32)),
    Column("parent", String(128)),
    Column("document", JSON, nullable=False),
    Column("state", JSON, nullable=False),
    Column("version", Integer, nullable=False),
)

tags = Table(
    "tags",
    metadata,
    Column("arn", String(512), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("value", Text, nullable=False),
)

# Counters of a metric minute, in the order of their columns (see store.metric_minutes).
METRIC_COUNTERS = (
    "invocations",
    "invocation_4xx_errors",
    "invocation_5xx_errors",
    "invocation_model_errors",
    "unavailable",
    "eligible",
    "sampled",
    "completed",
    "timeouts",
    "shed",
    "dropped",
)

metric_minutes = Table(
    "metric_minutes",
    metadata,
    Column("replica", String(64), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("endpoint", String(64), primary_key=True),
    Column("variant", String(64), primary_key=True),
    # production | shadow: a promoted shadow keeps its name, and its minute as a shadow must
    # not be overwritten by its minute as production.
    Column("role", String(16), primary_key=True),
    Column("minute", Integer, primary_key=True),  # minutes since the epoch, UTC
    *(Column(name, Integer, nullable=False) for name in METRIC_COUNTERS),
    Column("cpu_utilization_sum", Float, nullable=False),
    Column("memory_utilization_sum", Float, nullable=False),
    Column("utilization_samples", Integer, nullable=False),
    Column("model_latency", JSON),  # a DDSketch of microseconds, see metrics.sketch
    Column("overhead_latency", JSON),
    Column("updated_at", Float, nullable=False),
    Index("ix_metric_minutes_endpoint_minute", "region", "endpoint", "minute"),
)
