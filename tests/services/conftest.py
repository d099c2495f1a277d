"""A `World` per test: the real services and reconciler on a temporary SQLite store, a fake
clock and scripted hosting (see harness.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services.harness import World


@pytest.fixture(scope="session")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory whose store is created and migrated once; each test gets a copy (a
    fresh migration costs tens of milliseconds, a copy a few)."""
    data_dir = tmp_path_factory.mktemp("migrated") / "data"
    World(data_dir).close()
    return data_dir


@pytest.fixture
def world(migrated: Path, tmp_path: Path) -> Iterator[World]:
    data_dir = tmp_path / "data"
    shutil.copytree(migrated, data_dir)
    w = World(data_dir)
    yield w
    w.close()
