"""Smaller hosting rules: the instance quota only where processes exist, and an endpoint whose
model no longer loads after a server restart becomes Failed with the reason."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.contract import hosting_helpers as h
from tests.contract.helpers import checked, create_model, unique, wait_endpoint, wait_for
from tests.hosting.modelfiles import ECHO_INFERENCE, code_only_model_dir
from tests.serverproc import ServerProcess


def test_instance_quota_does_not_apply_without_hosting(tmp_path: Path) -> None:
    server = ServerProcess(
        data_dir=tmp_path / "data", hosting="none", extra_env={"SHADOWLAB_MAX_INSTANCES": "2"}
    ).start()
    try:
        sm = server.client()
        config = unique("config")
        checked(
            sm,
            "CreateEndpointConfig",
            EndpointConfigName=config,
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": create_model(sm),
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": 40,
                }
            ],
        )
        endpoint = unique("endpoint")
        checked(sm, "CreateEndpoint", EndpointName=endpoint, EndpointConfigName=config)
        described = wait_endpoint(sm, endpoint, "InService")
        assert described["ProductionVariants"][0]["CurrentInstanceCount"] == 40
    finally:
        server.stop()


def test_a_model_that_no_longer_loads_after_a_restart_fails_the_endpoint(
    tmp_path: Path,
) -> None:
    server = ServerProcess(data_dir=tmp_path / "data", hosting="process").start()
    try:
        sm = server.client()
        source = code_only_model_dir(tmp_path / "model", ECHO_INFERENCE)
        model = h.register(sm, source.as_uri())
        endpoint = h.deploy(sm, [("AllTraffic", model, 1.0, 1)])["endpoint"]
        server.stop()
        shutil.rmtree(source)  # the artifact is gone while the server is down

        server.start()
        described = wait_endpoint(sm, endpoint, "Failed", timeout=60)
        assert "no such object" in described["FailureReason"]
        assert source.as_uri() in described["FailureReason"]
        assert described["ProductionVariants"][0]["CurrentInstanceCount"] == 0
        # A failed endpoint can still be deleted, and is gone afterwards.
        checked(sm, "DeleteEndpoint", EndpointName=endpoint)
        wait_for(
            lambda: {e["EndpointName"] for e in checked(sm, "ListEndpoints")["Endpoints"]},
            lambda names: endpoint not in names,
        )
    finally:
        server.stop()
