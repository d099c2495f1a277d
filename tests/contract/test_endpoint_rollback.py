"""A failed UpdateEndpoint over the wire, on real workers: the endpoint rolls back and names the
configuration that runs again, as SageMaker's DescribeEndpoint does. The update fails fast (its
model's artifact does not exist), so one echo worker is the only process this costs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.contract import hosting_helpers as h
from tests.contract.helpers import checked, unique, wait_endpoint
from tests.serverproc import ServerProcess


@pytest.fixture(scope="module")
def hosted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("rollback")
    proc = ServerProcess(data_dir=root / "data", hosting="process").start()
    yield proc
    proc.stop()


def test_a_rolled_back_update_names_the_configuration_that_runs(
    hosted: ServerProcess, tmp_path: Path
) -> None:
    sm = hosted.client()
    model = h.register(sm, h.echo_model(hosted, tmp_path))
    deployed = h.deploy(sm, [("AllTraffic", model, 1.0, 1)])
    endpoint, config = deployed["endpoint"], deployed["config"]
    missing = h.register(sm, "s3://models/nothing-here/model.tar.gz")
    failing = unique("config")
    checked(
        sm,
        "CreateEndpointConfig",
        EndpointConfigName=failing,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": missing,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 2,
            }
        ],
    )
    checked(sm, "UpdateEndpoint", EndpointName=endpoint, EndpointConfigName=failing)
    described = wait_endpoint(sm, endpoint, "InService", timeout=60)
    assert described["FailureReason"].startswith("Update failed and was rolled back")
    assert described["EndpointConfigName"] == config
    # A weight change plans from what runs: still one instance of the echo model.
    checked(
        sm,
        "UpdateEndpointWeightsAndCapacities",
        EndpointName=endpoint,
        DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredWeight": 2.0}],
    )
    described = wait_endpoint(sm, endpoint, "InService", timeout=60)
    assert described["EndpointConfigName"] == config
    [variant] = described["ProductionVariants"]
    assert (variant["CurrentWeight"], variant["CurrentInstanceCount"]) == (2.0, 1)
    checked(sm, "DeleteEndpoint", EndpointName=endpoint)
