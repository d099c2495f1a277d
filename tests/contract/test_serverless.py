"""Serverless variants (`ServerlessConfig`) on a real server with real workers: one worker per
variant, at most MaxConcurrency invocations in flight (the rest throttled as SageMaker does),
MemorySizeInMB validated in 1 GB steps and applied as the worker's memory limit."""

from __future__ import annotations

import json
import subprocess
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.contract import hosting_helpers as h
from tests.contract.helpers import checked, unique, wait_endpoint, wait_for
from tests.contract.rejecting import both_ways
from tests.hosting.modelfiles import RECORDING_INFERENCE, ran_bodies
from tests.serverproc import ACCESS_KEY, REGION, SECRET_KEY, ServerProcess, signed_urlopen

# Allocates the MiB its body names: beyond the worker's memory limit that is a MemoryError.
ALLOCATING_INFERENCE = textwrap.dedent(
    """
    def model_fn(model_dir):
        return None

    def transform_fn(model, data, content_type, accept):
        block = bytearray(int(data) * 1024 * 1024)
        return b"allocated %d MiB" % (len(block) // (1024 * 1024)), "text/plain"
    """
)


@pytest.fixture(scope="module")
def hosted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("serverless")
    proc = ServerProcess(data_dir=root / "data", hosting="process").start()
    yield proc
    proc.stop()


@pytest.fixture
def sm(hosted: ServerProcess) -> Any:
    return hosted.client()


@pytest.fixture
def runtime(hosted: ServerProcess) -> Any:
    return hosted.client("sagemaker-runtime")


def serverless_config(
    sm: Any, model: str, serverless: dict[str, int], **extra: Any
) -> dict[str, Any]:
    config = unique("config")
    variant = {"VariantName": "AllTraffic", "ModelName": model, "ServerlessConfig": serverless}
    checked(sm, "CreateEndpointConfig", EndpointConfigName=config, ProductionVariants=[variant])
    return {"config": config, **extra}


def deploy_serverless(sm: Any, model: str, serverless: dict[str, int]) -> str:
    config = serverless_config(sm, model, serverless)["config"]
    endpoint = unique("endpoint")
    checked(sm, "CreateEndpoint", EndpointName=endpoint, EndpointConfigName=config)
    wait_endpoint(sm, endpoint, "InService", timeout=90)
    return endpoint


def invoke(runtime: Any, endpoint: str, body: bytes) -> bytes:
    response = runtime.invoke_endpoint(
        EndpointName=endpoint, Body=body, ContentType="application/octet-stream"
    )
    payload: bytes = response["Body"].read()
    return payload


def worker_pid(hosted: ServerProcess, endpoint: str) -> int:
    """The one worker process serving `endpoint` (its model dir names the endpoint)."""
    out = subprocess.run(
        ["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True, check=True
    )
    pids = [
        int(line.split(None, 1)[0])
        for line in out.stdout.splitlines()
        if "shadowlab.hosting.worker" in line
        and str(hosted.data_dir) in line
        and endpoint.lower() in line
    ]
    assert len(pids) == 1, out.stdout
    return pids[0]


def data_limit(pid: int) -> tuple[str, str]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max data size"):
            soft, hard = line.split()[3:5]
            return soft, hard
    raise AssertionError("no data size limit listed")


def test_serverless_endpoint_answers_and_shows_its_configuration(
    hosted: ServerProcess, sm: Any, runtime: Any, tmp_path: Path
) -> None:
    model = h.register(sm, h.echo_model(hosted, tmp_path))
    serverless = {"MemorySizeInMB": 2048, "MaxConcurrency": 3, "ProvisionedConcurrency": 1}
    config = serverless_config(sm, model, serverless)["config"]
    described_config = checked(sm, "DescribeEndpointConfig", EndpointConfigName=config)
    (variant,) = described_config["ProductionVariants"]
    assert variant["ServerlessConfig"] == serverless
    assert "InstanceType" not in variant and "InitialInstanceCount" not in variant

    endpoint = unique("endpoint")
    checked(sm, "CreateEndpoint", EndpointName=endpoint, EndpointConfigName=config)
    described = wait_endpoint(sm, endpoint, "InService", timeout=90)
    (summary,) = described["ProductionVariants"]
    assert summary["CurrentServerlessConfig"] == serverless
    assert summary["DesiredServerlessConfig"] == serverless
    assert "CurrentInstanceCount" not in summary and "DesiredInstanceCount" not in summary

    assert invoke(runtime, endpoint, b"hello").endswith(b"body=hello")
    soft, hard = data_limit(worker_pid(hosted, endpoint))
    assert soft == hard == str(2048 * 1024 * 1024)


def test_requests_beyond_max_concurrency_are_throttled(
    hosted: ServerProcess, sm: Any, runtime: Any, tmp_path: Path
) -> None:
    # Two predictions that hold until the test opens their gate (at most 30 s), so exactly two
    # are in flight however slowly this machine sends the other three.
    record_dir = tmp_path / "record"
    record_dir.mkdir()
    url = h.code_model(hosted, tmp_path, RECORDING_INFERENCE)
    model = h.register(sm, url, {"RECORD_DIR": str(record_dir)})
    endpoint = deploy_serverless(sm, model, {"MemorySizeInMB": 1024, "MaxConcurrency": 2})
    held: list[Any] = []

    def hold() -> None:
        try:
            held.append(invoke(hosted.client("sagemaker-runtime"), endpoint, b"wait gate"))
        except ClientError as exc:
            held.append(exc)

    holders = [threading.Thread(target=hold) for _ in range(2)]
    try:
        for thread in holders:
            thread.start()
        # Both are counted in (the data plane counts an invocation as it admits it).
        wait_for(lambda: invocations(hosted, endpoint), lambda n: n == 2, 20)
        beyond: list[Any] = [None] * 3

        def call(index: int) -> None:
            try:
                beyond[index] = invoke(hosted.client("sagemaker-runtime"), endpoint, b"more")
            except ClientError as exc:
                beyond[index] = exc

        callers = [threading.Thread(target=call, args=(i,)) for i in range(3)]
        for thread in callers:
            thread.start()
        for thread in callers:
            thread.join(30)
    finally:
        (record_dir / "gate").touch()
        for thread in holders:
            thread.join(30)
    assert held == [b"ran wait gate", b"ran wait gate"]
    assert all(isinstance(o, ClientError) for o in beyond), beyond
    for exc in beyond:
        assert exc.response["Error"]["Code"] == "ThrottlingException"
        assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert exc.response["Error"]["Message"].startswith("Rate exceeded: variant AllTraffic")
        assert "MaxConcurrency 2" in exc.response["Error"]["Message"]
    assert ran_bodies(record_dir) == [b"wait gate", b"wait gate"]  # throttled ones never ran
    # Once those are answered, the variant takes requests again.
    assert invoke(runtime, endpoint, b"again") == b"ran again"


def invocations(hosted: ServerProcess, endpoint: str) -> int:
    with signed_urlopen(hosted.url + "/shadowlab/stats", timeout=5) as reply:
        data = json.loads(reply.read())
    return sum(r["invocations"] for r in data["variants"] if r["endpoint"] == endpoint)


def test_max_concurrency_follows_update_weights_and_capacities(
    hosted: ServerProcess, sm: Any, tmp_path: Path
) -> None:
    model = h.register(sm, h.echo_model(hosted, tmp_path))
    endpoint = deploy_serverless(sm, model, {"MemorySizeInMB": 1024, "MaxConcurrency": 1})
    with pytest.raises(ClientError) as refused:
        sm.update_endpoint_weights_and_capacities(
            EndpointName=endpoint,
            DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 2}],
        )
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "is serverless" in refused.value.response["Error"]["Message"]
    checked(
        sm,
        "UpdateEndpointWeightsAndCapacities",
        EndpointName=endpoint,
        DesiredWeightsAndCapacities=[
            {"VariantName": "AllTraffic", "ServerlessUpdateConfig": {"MaxConcurrency": 4}}
        ],
    )
    described = wait_endpoint(sm, endpoint, "InService", timeout=30)
    (summary,) = described["ProductionVariants"]
    assert summary["CurrentServerlessConfig"] == {"MemorySizeInMB": 1024, "MaxConcurrency": 4}


def test_memory_limit_applies_to_the_worker_and_a_sklearn_model_loads_under_it(
    hosted: ServerProcess, sm: Any, runtime: Any, tmp_path: Path
) -> None:
    iris = h.register(sm, h.iris_model(hosted, tmp_path))
    endpoint = deploy_serverless(sm, iris, {"MemorySizeInMB": 1024, "MaxConcurrency": 1})
    soft, hard = data_limit(worker_pid(hosted, endpoint))
    assert soft == hard == str(1024 * 1024 * 1024)
    response = runtime.invoke_endpoint(
        EndpointName=endpoint,
        Body=b'{"features": [[5.1, 3.5, 1.4, 0.2]]}',
        ContentType=("application/json"),
    )
    assert b"setosa" in response["Body"].read()

    greedy = h.register(sm, h.code_model(hosted, tmp_path, ALLOCATING_INFERENCE))
    endpoint = deploy_serverless(sm, greedy, {"MemorySizeInMB": 1024, "MaxConcurrency": 1})
    assert invoke(runtime, endpoint, b"64") == b"allocated 64 MiB"
    with pytest.raises(ClientError) as over:
        invoke(runtime, endpoint, b"1536")
    assert over.value.response["Error"]["Code"] == "ModelError"
    assert "MemoryError" in over.value.response["Error"]["Message"]


@pytest.mark.parametrize(
    ("memory", "constraint"),
    [
        (1500, "Member must satisfy enum value set: [1024, 2048, 3072, 4096, 5120, 6144]"),
        (512, "Member must have value greater than or equal to 1024"),
        (7168, "Member must have value less than or equal to 6144"),
    ],
)
def test_invalid_memory_size_is_refused_as_aws_does(
    hosted: ServerProcess, sm: Any, memory: int, constraint: str
) -> None:
    model = h.register(sm, None)
    # Client-side checks off: boto3 itself refuses 512 and 7168 (the model's bounds).
    client = boto3.client(
        "sagemaker", endpoint_url=hosted.url, region_name=REGION,
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
        config=Config(parameter_validation=False, retries={"max_attempts": 1}),
    )  # fmt: skip
    variant = {
        "VariantName": "AllTraffic",
        "ModelName": model,
        "ServerlessConfig": {"MemorySizeInMB": memory, "MaxConcurrency": 1},
    }
    code, message = both_ways(
        hosted,
        client,
        "CreateEndpointConfig",
        EndpointConfigName=unique("config"),
        ProductionVariants=[variant],
    )
    assert code == "ValidationException"
    assert message == (
        f"1 validation error detected: Value '{memory}' at "
        "'productionVariants.1.member.serverlessConfig.memorySizeInMB' failed to satisfy "
        f"constraint: {constraint}"
    )


def test_serverless_rules(sm: Any) -> None:
    model = h.register(sm, None)

    def refused(**params: Any) -> str:
        with pytest.raises(ClientError) as caught:
            sm.create_endpoint_config(EndpointConfigName=unique("config"), **params)
        assert caught.value.response["Error"]["Code"] == "ValidationException"
        message: str = caught.value.response["Error"]["Message"]
        return message

    base = {"VariantName": "AllTraffic", "ModelName": model}
    over = {"MemorySizeInMB": 1024, "MaxConcurrency": 2, "ProvisionedConcurrency": 3}
    assert refused(ProductionVariants=[{**base, "ServerlessConfig": over}]) == (
        "Variant 'AllTraffic': ProvisionedConcurrency (3) must be less than or equal to "
        "MaxConcurrency (2)."
    )
    ok = {"MemorySizeInMB": 1024, "MaxConcurrency": 2}
    both = {**base, "ServerlessConfig": ok, "InstanceType": "ml.m5.large"}
    assert "not both" in refused(ProductionVariants=[both])
    instances = {"InstanceType": "ml.m5.large", "InitialInstanceCount": 1}
    two = [{**base, "ServerlessConfig": ok}, {**base, "VariantName": "Other", **instances}]
    assert "exactly one production variant" in refused(ProductionVariants=two)
    shadow = {**base, "VariantName": "Shadow", "ServerlessConfig": ok}
    message = refused(ProductionVariants=[{**base, **instances}], ShadowProductionVariants=[shadow])
    assert "not supported for shadow variants" in message
