"""Fixtures for data-plane tests: a model farm per module, data planes and clients per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from shadowlab.dataplane import DataPlaneServer, RoutingTable
from tests.dataplane.harness import DataPlaneThread, ModelFarm


@pytest.fixture(scope="module")
def farm() -> Iterator[ModelFarm]:
    models = ModelFarm()
    yield models
    models.close()


@pytest.fixture
def routing() -> RoutingTable:
    return RoutingTable()


@pytest.fixture
def start_dataplane(routing: RoutingTable) -> Iterator[Callable[..., DataPlaneThread]]:
    """Start a data plane over `routing` (keyword arguments go to DataPlaneServer)."""
    started: list[DataPlaneThread] = []

    def start(app: Any = None, **kwargs: Any) -> DataPlaneThread:
        plane = DataPlaneThread(DataPlaneServer(routing, app, **kwargs))
        started.append(plane)
        return plane

    yield start
    for plane in started:
        plane.close()


@pytest.fixture
def dataplane(start_dataplane: Callable[..., DataPlaneThread]) -> DataPlaneThread:
    return start_dataplane()


def runtime_client(url: str) -> Any:
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        # One attempt: a test must see exactly what the server answered, not botocore's retry.
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )


@pytest.fixture
def runtime(dataplane: DataPlaneThread) -> Iterator[Any]:
    client = runtime_client(dataplane.url)
    yield client
    client.close()
