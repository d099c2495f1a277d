"""Per-minute metrics of every variant, one row per server replica.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Spelled out rather than imported from schema.py: a migration must stay what it was when
# later revisions change the table.
_COUNTERS = (
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


def upgrade() -> None:
    op.create_table(
        "metric_minutes",
        sa.Column("replica", sa.String(64), primary_key=True),
        sa.Column("region", sa.String(32), primary_key=True),
        sa.Column("endpoint", sa.String(64), primary_key=True),
        sa.Column("variant", sa.String(64), primary_key=True),
        sa.Column("role", sa.String(16), primary_key=True),
        sa.Column("minute", sa.Integer, primary_key=True),
        *(sa.Column(name, sa.Integer, nullable=False) for name in _COUNTERS),
        sa.Column("cpu_utilization_sum", sa.Float, nullable=False),
        sa.Column("memory_utilization_sum", sa.Float, nullable=False),
        sa.Column("utilization_samples", sa.Integer, nullable=False),
        sa.Column("model_latency", sa.JSON),
        sa.Column("overhead_latency", sa.JSON),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index(
        "ix_metric_minutes_endpoint_minute", "metric_minutes", ["region", "endpoint", "minute"]
    )


def downgrade() -> None:
    op.drop_index("ix_metric_minutes_endpoint_minute", table_name="metric_minutes")
    op.drop_table("metric_minutes")
