"""Shared fixtures: databases (SQLite always, PostgreSQL when reachable) and real servers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

PG_URL = os.environ.get("SHADOWLAB_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def postgres_reachable() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_URL.replace("+psycopg", ""), connect_timeout=2):
            return True
    except Exception:
        return False


_PG = postgres_reachable()
DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def pg_available() -> bool:
    return _PG


def fresh_database_url(kind: str, tmp_dir: str) -> str | None:
    """A database of its own for one server or store: a SQLite file, or a PostgreSQL schema."""
    if kind == "sqlite":
        return None  # the server's default: <data-dir>/shadowlab.db
    if not _PG:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is not reachable at {PG_URL}; CI must test against it")
        pytest.skip(f"PostgreSQL is not reachable at {PG_URL} (start it to run these tests)")
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return f"{PG_URL}?options=-csearch_path%3D{schema}"


@pytest.fixture(params=DATABASES)
def database_kind(request: pytest.FixtureRequest) -> Iterator[str]:
    yield request.param
