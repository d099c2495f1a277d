"""The asset-inventory view of inference experiments (`aws.sagemaker_inference_experiment`).

A view, not a table: every row is computed from `resources` and `tags` when it is read, so it
cannot drift from what DescribeInferenceExperiment answers. Each column derives what Describe
derives (see services/experiment_views.py): a model variant's Status from the experiment's state,
EndpointMetadata from the endpoint's row, the Schedule's epoch seconds as timestamps.

PostgreSQL: schema `aws` (`<schema>_aws` for a store kept in a schema other than `public`,
since a database has one `aws` schema and several stores may share it), timestamps as
timestamptz, JSON members as json, tags as hstore (the extension is created here).
SQLite: `aws_sagemaker_inference_experiment`, timestamps as ISO 8601 text (UTC, milliseconds),
JSON members as JSON text, tags as a JSON object.

A later migration that rebuilds `resources` or `tags` (batch mode on SQLite copies and renames the
table) must drop this view first and create it again after.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import Connection, text

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

VIEW = "sagemaker_inference_experiment"
SQLITE_VIEW = f"aws_{VIEW}"
# Any fixed number: serialises CREATE EXTENSION between stores migrating one database at once.
_EXTENSION_LOCK = 7_150_015


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def inventory_schema(current_schema: str) -> str:
    """The schema holding the view. Spelled out again in store/inventory.py, which reads it: a
    migration must stay what it was when it ran."""
    return "aws" if current_schema == "public" else f"{current_schema}_aws"


def _hstore_schema(conn: Connection) -> str:
    """Create hstore if missing and say where it lives: in `public`, not in whichever store's
    schema migrated first (a database has one hstore; dropping that schema would take it from
    every store). The view names the type with its schema, so no search_path needs it."""
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _EXTENSION_LOCK})
    found = conn.execute(
        text("SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'hstore'")
    ).scalar()
    if found is not None:
        return str(found)
    has_public = conn.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = 'public'")).scalar()
    target = "public" if has_public else str(conn.execute(text("SELECT current_schema()")).scalar())
    conn.execute(text(f"CREATE EXTENSION IF NOT EXISTS hstore WITH SCHEMA {_ident(target)}"))
    return target


# Epoch seconds as the timestamp Describe returns: the wire carries milliseconds, truncated
# (awsprotocol.wirevalues.epoch_seconds) after rounding to the microsecond (datetime does), and
# a stored time (a Schedule given by a client) may be finer than that.
def _pg_time(epoch: str) -> str:
    return f"to_timestamp(floor(round({epoch} * 1000000) / 1000) / 1000)"


def _pg_iso(epoch: str) -> str:
    # As the ISO 8601 text the SQLite timestamp columns hold (UTC, milliseconds, Z).
    return f"to_char({_pg_time(epoch)} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"


_POSTGRES = """
CREATE VIEW {schema}.{view} AS
SELECT
    r.arn::text AS _key,
    split_part(r.arn, ':', 5) AS account_id,
    r.arn::text AS arn,
    {completion} AS completion_time,
    {created} AS creation_time,
    r.document->'DataStorageConfig' AS data_storage_config,
    r.document->>'Description' AS description,
    jsonb_strip_nulls(jsonb_build_object(
        'EndpointName', r.document->>'EndpointName',
        'EndpointConfigName', e.document->>'EndpointConfigName',
        'EndpointStatus', e.status,
        'FailureReason', nullif(e.document->>'FailureReason', '')
    ))::json AS endpoint_metadata,
    {modified} AS last_modified_time,
    (
        SELECT json_agg(
            v.value::jsonb || jsonb_build_object('Status', coalesce(
                r.state->'variant_statuses'->>(v.value->>'VariantName'),
                CASE
                    WHEN v.value->>'VariantName'
                        = r.document->'ShadowModeConfig'->>'SourceModelVariantName'
                    THEN 'InService'
                    ELSE coalesce(r.state->>'variant_status', 'Creating')
                END
            ))
            ORDER BY v.position
        )
        FROM json_array_elements(r.document->'ModelVariants') WITH ORDINALITY AS v(value, position)
    ) AS model_variants,
    r.name::text AS name,
    r.document->>'RoleArn' AS role_arn,
    (
        SELECT json_object_agg(s.key, {iso})
        FROM json_each_text(r.document->'Schedule') AS s
    ) AS schedule,
    r.document->'ShadowModeConfig' AS shadow_mode_config,
    r.document->>'Status' AS status,
    r.document->>'StatusReason' AS status_reason,
    (
        SELECT coalesce(
            {hstore}.hstore(
                array_agg(t.key::text ORDER BY t.key), array_agg(t.value ORDER BY t.key)
            ),
            ''::{hstore}.hstore
        )
        FROM tags AS t
        WHERE t.arn = r.arn
    ) AS tags,
    r.document->>'Type' AS type
FROM resources AS r
LEFT JOIN resources AS e
    ON e.region = r.region AND e.kind = 'endpoint'
    AND e.name_key = lower(r.document->>'EndpointName')
WHERE r.kind = 'inference-experiment'
"""


def _sqlite_account(arn: str) -> str:
    """The fifth field of an ARN (the account): SQLite has no split_part."""
    rest = arn
    for _ in range(4):
        rest = f"substr({rest}, instr({rest}, ':') + 1)"
    return f"substr({rest}, 1, instr({rest}, ':') - 1)"


def _sqlite_iso(epoch: str) -> str:
    # Truncated to the millisecond as _pg_time, in integers (SQLite would round).
    ms = f"(CAST(round({epoch} * 1000000) AS INTEGER) / 1000)"
    return f"strftime('%Y-%m-%dT%H:%M:%fZ', {ms} / 1000.0, 'unixepoch')"


_SQLITE = """
CREATE VIEW {view} AS
SELECT
    r.arn AS _key,
    {account} AS account_id,
    r.arn AS arn,
    {completion} AS completion_time,
    {created} AS creation_time,
    r.document -> '$.DataStorageConfig' AS data_storage_config,
    r.document ->> '$.Description' AS description,
    json_patch(
        json_object('EndpointName', r.document ->> '$.EndpointName'),
        -- json_patch drops the members whose value is null, as Describe leaves them out.
        json_object(
            'EndpointConfigName', e.document ->> '$.EndpointConfigName',
            'EndpointStatus', e.status,
            'FailureReason', nullif(e.document ->> '$.FailureReason', '')
        )
    ) AS endpoint_metadata,
    {modified} AS last_modified_time,
    (
        -- json_each yields the array's elements in order, and the aggregate keeps that order.
        SELECT json_group_array(json_set(v.value, '$.Status', coalesce(
            (
                SELECT s.value FROM json_each(r.state, '$.variant_statuses') AS s
                WHERE s.key = v.value ->> '$.VariantName'
            ),
            CASE
                WHEN v.value ->> '$.VariantName'
                    = r.document ->> '$.ShadowModeConfig.SourceModelVariantName'
                THEN 'InService'
                ELSE coalesce(r.state ->> '$.variant_status', 'Creating')
            END
        )))
        FROM json_each(r.document, '$.ModelVariants') AS v
    ) AS model_variants,
    r.name AS name,
    r.document ->> '$.RoleArn' AS role_arn,
    (
        SELECT json_group_object(s.key, {schedule_iso})
        FROM json_each(r.document, '$.Schedule') AS s
    ) AS schedule,
    r.document -> '$.ShadowModeConfig' AS shadow_mode_config,
    r.document ->> '$.Status' AS status,
    r.document ->> '$.StatusReason' AS status_reason,
    (SELECT json_group_object(t.key, t.value) FROM tags AS t WHERE t.arn = r.arn) AS tags,
    r.document ->> '$.Type' AS type
FROM resources AS r
LEFT JOIN resources AS e
    ON e.region = r.region AND e.kind = 'endpoint'
    AND e.name_key = lower(r.document ->> '$.EndpointName')
WHERE r.kind = 'inference-experiment'
"""


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        hstore = _ident(_hstore_schema(conn))
        current = str(conn.execute(text("SELECT current_schema()")).scalar())
        schema = _ident(inventory_schema(current))
        conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {schema}"))
        sql = _POSTGRES.format(
            schema=schema,
            view=VIEW,
            hstore=hstore,
            completion=_pg_time("(r.document->>'CompletionTime')::double precision"),
            created=_pg_time("r.created_at"),
            modified=_pg_time("r.modified_at"),
            iso=_pg_iso("s.value::double precision"),
        )
    else:
        sql = _SQLITE.format(
            view=SQLITE_VIEW,
            account=_sqlite_account("r.arn"),
            completion=_sqlite_iso("r.document ->> '$.CompletionTime'"),
            created=_sqlite_iso("r.created_at"),
            modified=_sqlite_iso("r.modified_at"),
            schedule_iso=_sqlite_iso("s.value"),
        )
    conn.execute(text(sql))


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        conn.execute(text(f"DROP VIEW IF EXISTS {SQLITE_VIEW}"))
        return
    current = str(conn.execute(text("SELECT current_schema()")).scalar())
    schema = _ident(inventory_schema(current))
    conn.execute(text(f"DROP VIEW IF EXISTS {schema}.{VIEW}"))
    # The schema goes too unless something else lives in it; hstore stays (others may use it).
    conn.execute(
        text(
            f"DO $$ BEGIN DROP SCHEMA IF EXISTS {schema}; "
            "EXCEPTION WHEN dependent_objects_still_exist THEN NULL; END $$"
        )
    )
