"""Table definitions. Alembic migrations in ``migrations/versions`` create and evolve them.

Every SageMaker resource is one row of ``resources``: the columns hold what lists filter and sort
on, ``document`` holds the resource as DescribeX returns it and ``state`` what only shadowlab
needs (the deployment an endpoint should have, the experiment holding it). ``version`` makes every
update a compare-and-set, so several replicas can share one PostgreSQL without locks.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Float, Integer, MetaData, String, Table, Text

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
