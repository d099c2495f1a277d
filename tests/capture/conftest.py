"""Fixtures: one moto S3 server for the module's tests that do not break it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.capture.support import MotoServer, s3_client


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto")).start()
    yield server
    server.stop()


@pytest.fixture
def s3(moto_server: MotoServer) -> Iterator[Any]:
    client = s3_client(moto_server.url)
    yield client
    client.close()


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"capture-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name
