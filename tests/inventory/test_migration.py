"""Migration 0003 on both engines: the view comes and goes with it, and stores kept in
schemas of one PostgreSQL database each get a view of their own."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, text

from shadowlab.domain.experiment_state import ExperimentState
from shadowlab.domain.kinds import ResourceKind
from shadowlab.store import Record, Store
from shadowlab.store.inventory import read_rows
from shadowlab.store.migrate import MIGRATIONS
from tests.conftest import fresh_database_url


def _open(kind: str, tmp_path: Path) -> Store:
    url = fresh_database_url(kind, str(tmp_path))
    return Store.open(url or f"sqlite:///{tmp_path / 'shadowlab.db'}")


def _migrate(store: Store, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        if revision == "head":
            command.upgrade(config, revision)
        else:
            command.downgrade(config, revision)


def _views(store: Store) -> set[str]:
    with store.engine.connect() as conn:
        if conn.dialect.name != "postgresql":
            return set(inspect(conn).get_view_names())
        schema = conn.execute(text("SELECT current_schema()")).scalar()
        return {f"{s}.{v}" for s in (f"{schema}_aws",) for v in inspect(conn).get_view_names(s)}


def _experiment(store: Store, name: str) -> None:
    arn = f"arn:aws:sagemaker:us-east-1:123456789012:inference-experiment/{name}"
    document = {
        "Name": name,
        "Status": "Created",
        "EndpointName": "gone",  # an endpoint deleted since: EndpointMetadata keeps the name
        "Schedule": {"StartTime": 1.0005, "EndTime": 2.0},
        "ModelVariants": [{"VariantName": "v"}, {"VariantName": "s"}],
        "ShadowModeConfig": {"SourceModelVariantName": "v"},
    }
    kind = ResourceKind.INFERENCE_EXPERIMENT
    state = ExperimentState()
    store.insert(Record("us-east-1", kind, name, arn, 1.0, 1.0, document, "Created", state=state))


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_view_follows_the_migration(kind: str, tmp_path: Path) -> None:
    store = _open(kind, tmp_path / "a")
    try:
        name = "aws_sagemaker_inference_experiment" if kind == "sqlite" else None
        views = _views(store)
        assert len(views) == 1 and (name is None or views == {name})
        _experiment(store, "e1")
        [row] = read_rows(store)
        assert row["endpoint_metadata"] == {"EndpointName": "gone"}
        assert row["schedule"] == {
            "StartTime": "1970-01-01T00:00:01.000Z",  # truncated to the millisecond, as the wire
            "EndTime": "1970-01-01T00:00:02.000Z",
        }
        assert [v["Status"] for v in row["model_variants"]] == ["InService", "Creating"]
        assert row["tags"] == {} and row["completion_time"] is None
        if kind == "postgres":  # a second store in the same database has a view of its own
            other = _open(kind, tmp_path / "b")
            try:
                assert read_rows(other) == []
            finally:
                other.close()
        _migrate(store, "0002")
        assert _views(store) == set()
        _migrate(store, "head")
        assert [r["name"] for r in read_rows(store)] == ["e1"]
    finally:
        store.close()
