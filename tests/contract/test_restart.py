"""A server killed with SIGKILL mid-experiment resumes from the store on restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DATABASES, fresh_database_url
from tests.contract.helpers import (
    checked,
    create_endpoint,
    create_model,
    experiment_request,
    in_seconds,
    unique,
    wait_experiment,
)
from tests.serverproc import ServerProcess


@pytest.fixture(params=DATABASES)
def restartable(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    url = fresh_database_url(request.param, str(tmp_path))
    proc = ServerProcess(data_dir=tmp_path / "data", database_url=url).start()
    yield proc
    proc.stop()


def test_sigkill_while_running_then_restart_completes_at_end_time(
    restartable: ServerProcess,
) -> None:
    sm = restartable.client()
    endpoint = create_endpoint(sm)
    name = unique("exp")
    # Far enough ahead that a loaded machine cannot reach it before the restart; once the new
    # process is up, the experiment is given an EndTime a moment away.
    checked(
        sm,
        "CreateInferenceExperiment",
        **experiment_request(
            name,
            endpoint,
            create_model(sm),
            schedule={"StartTime": in_seconds(0.2), "EndTime": in_seconds(600)},
        ),
    )
    wait_experiment(sm, name, "Running")
    checked(
        sm,
        "AddTags",
        ResourceArn=checked(sm, "DescribeEndpoint", EndpointName=endpoint["endpoint"])[
            "EndpointArn"
        ],
        Tags=[{"Key": "k", "Value": "v"}],
    )

    restartable.kill()
    restartable.start()
    sm = restartable.client()

    # Everything is still there, and the experiment is still running...
    assert checked(sm, "DescribeInferenceExperiment", Name=name)["Status"] == "Running"
    described = checked(sm, "DescribeEndpoint", EndpointName=endpoint["endpoint"])
    assert [v["VariantName"] for v in described["ShadowProductionVariants"]] == ["shadow-1"]
    assert checked(sm, "ListTags", ResourceArn=described["EndpointArn"])["Tags"] == [
        {"Key": "k", "Value": "v"}
    ]
    for model in endpoint["models"]:
        checked(sm, "DescribeModel", ModelName=model)
    checked(sm, "DescribeEndpointConfig", EndpointConfigName=endpoint["config"])

    # ...and the restarted server ends it at its EndTime, not before.
    end = in_seconds(3)
    checked(sm, "UpdateInferenceExperiment", Name=name, Schedule={"EndTime": end})
    completed = wait_experiment(sm, name, "Completed", timeout=30)
    assert completed["CompletionTime"] >= end
    described = checked(sm, "DescribeEndpoint", EndpointName=endpoint["endpoint"])
    assert described["EndpointStatus"] == "InService"
    assert "ShadowProductionVariants" not in described
