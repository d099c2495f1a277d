"""Contract suite: real boto3 and AWS CLI clients against `shadowlab serve` on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DATABASES, fresh_database_url
from tests.contract.rejecting import rejected, unchecked  # noqa: F401 (fixtures)
from tests.serverproc import ServerProcess


@pytest.fixture(scope="module", params=DATABASES)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    root: Path = tmp_path_factory.mktemp(f"server-{request.param}")
    url = fresh_database_url(request.param, str(root))
    proc = ServerProcess(data_dir=root / "data", database_url=url).start()
    yield proc
    proc.stop()


@pytest.fixture
def sm(server: ServerProcess):  # type: ignore[no-untyped-def]
    return server.client()
