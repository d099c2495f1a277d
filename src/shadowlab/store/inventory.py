"""Reading the asset-inventory view of inference experiments (migration 0003 creates it).

The rows come from the view itself, so what the HTTP route and `shadowlab inventory` export is
what a SQL client reads; only the engine's representation is evened out here: timestamps as ISO
8601 text (UTC, milliseconds, as SQLite's view holds them), JSON members and tags decoded.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, text

from shadowlab.store.store import Store

TABLE = "aws.sagemaker_inference_experiment"
COLUMNS = (
    "_key",
    "account_id",
    "arn",
    "completion_time",
    "creation_time",
    "data_storage_config",
    "description",
    "endpoint_metadata",
    "last_modified_time",
    "model_variants",
    "name",
    "role_arn",
    "schedule",
    "shadow_mode_config",
    "status",
    "status_reason",
    "tags",
    "type",
)
JSON_COLUMNS = frozenset(
    {
        "data_storage_config",
        "endpoint_metadata",
        "model_variants",
        "schedule",
        "shadow_mode_config",
        "tags",
    }
)
TIME_COLUMNS = frozenset({"completion_time", "creation_time", "last_modified_time"})


def inventory_schema(current_schema: str) -> str:
    """PostgreSQL: the schema holding the view, as migration 0003 chose it (`aws`, or
    `<schema>_aws` for a store kept in another schema than `public`)."""
    return "aws" if current_schema == "public" else f"{current_schema}_aws"


def view_name(conn: Connection) -> str:
    """The view's name, quoted, on the connection's engine."""
    if conn.dialect.name != "postgresql":
        return '"aws_sagemaker_inference_experiment"'
    current = str(conn.execute(text("SELECT current_schema()")).scalar())
    schema = inventory_schema(current).replace('"', '""')
    return f'"{schema}"."sagemaker_inference_experiment"'


def iso(moment: datetime) -> str:
    """The ISO 8601 form of the SQLite view: UTC, milliseconds, a Z."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _plain(column: str, value: Any) -> Any:
    if value is None:
        return None
    if column in TIME_COLUMNS:
        return iso(value) if isinstance(value, datetime) else str(value)
    if column in JSON_COLUMNS and isinstance(value, str):
        return json.loads(value)  # SQLite hands JSON out as text; psycopg decodes json itself
    return value


def read_rows(store: Store) -> list[dict[str, Any]]:
    """Every row of the view, oldest first."""
    with store.transaction(write=False) as conn:
        postgres = conn.dialect.name == "postgresql"
        # hstore arrives as text unless psycopg found the type when it connected (not when it
        # lives outside the search_path): its cast to json, which every schema sees, evens that.
        columns = ", ".join(
            '"tags"::json AS "tags"' if postgres and c == "tags" else f'"{c}"' for c in COLUMNS
        )
        query = f"SELECT {columns} FROM {view_name(conn)} ORDER BY creation_time, arn"
        result = conn.execute(text(query))
        return [{c: _plain(c, row[c]) for c in COLUMNS} for row in result.mappings()]
