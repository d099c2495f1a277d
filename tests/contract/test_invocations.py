"""InvokeEndpoint on real worker processes: models, routing, shadows, failures, promotion.

One `shadowlab serve --hosting process` for the module; every endpoint runs real workers that
load real artifacts the tests build and put in the server's embedded object store.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.contract import hosting_helpers as h
from tests.contract.helpers import (
    checked,
    experiment_request,
    unique,
    wait_endpoint,
    wait_experiment,
    wait_for,
)
from tests.hosting.modelfiles import iris_model_dir, running_worker
from tests.serverproc import ServerProcess, signed_urlopen
from tests.shapecheck import assert_output_shape

IRIS_ROW = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture(scope="module")
def hosted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("hosted")
    proc = ServerProcess(data_dir=root / "data", hosting="process").start()
    yield proc
    proc.stop()


@pytest.fixture
def sm(hosted: ServerProcess) -> Any:
    return hosted.client()


@pytest.fixture
def runtime(hosted: ServerProcess) -> Any:
    return hosted.client("sagemaker-runtime")


def invoke(runtime: Any, endpoint: str, body: bytes | str, **extra: Any) -> dict[str, Any]:
    extra.setdefault("ContentType", "application/octet-stream")  # the echo model wants bytes
    response: dict[str, Any] = runtime.invoke_endpoint(EndpointName=endpoint, Body=body, **extra)
    assert_output_shape("sagemaker-runtime", "InvokeEndpoint", response)
    response["Payload"] = response["Body"].read()
    return response


def stats(server: ServerProcess, endpoint: str) -> dict[str, dict[str, int]]:
    with signed_urlopen(server.url + "/shadowlab/stats", timeout=5) as reply:
        data = json.loads(reply.read())
    rows = {r["variant"]: r for r in data["variants"] if r["endpoint"] == endpoint}
    rows.update({r["shadow"]: r for r in data["shadows"] if r["endpoint"] == endpoint})
    return rows


def test_sklearn_model_with_inference_py(
    hosted: ServerProcess, sm: Any, runtime: Any, tmp_path: Path
) -> None:
    model = h.register(sm, h.iris_model(hosted, tmp_path))
    endpoint = h.deploy(sm, [("AllTraffic", model, 1.0, 1)])["endpoint"]
    response = invoke(
        runtime,
        endpoint,
        json.dumps({"features": [IRIS_ROW]}),
        ContentType="application/json",
        Accept="application/json",
        CustomAttributes="trace=1",
    )
    body = json.loads(response["Payload"])
    assert body["predictions"] == ["setosa"]
    assert response["InvokedProductionVariant"] == "AllTraffic"
    assert response["CustomAttributes"] == "seen=trace=1"
    assert response["ContentType"] == "application/json"


def test_default_handlers_without_inference_py(
    hosted: ServerProcess, sm: Any, runtime: Any, tmp_path: Path
) -> None:
    model = h.register(sm, h.iris_model(hosted, tmp_path, with_code=False))
    endpoint = h.deploy(sm, [("AllTraffic", model, 1.0, 1)])["endpoint"]
    csv = invoke(
        runtime,
        endpoint,
        "5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n",
        ContentType="text/csv",
        Accept="application/json",
    )
    assert json.loads(csv["Payload"]) == [0, 2]
    as_csv = invoke(
        runtime, endpoint, json.dumps([IRIS_ROW]), ContentType="application/json", Accept="text/csv"
    )
    assert as_csv["Payload"].decode().strip() == "0"


def test_cli_invoke_endpoint(hosted: ServerProcess, sm: Any, tmp_path: Path) -> None:
    model = h.register(sm, h.echo_model(hosted, tmp_path))
    endpoint = h.deploy(sm, [("AllTraffic", model, 1.0, 1)])["endpoint"]
    out = tmp_path / "out.txt"
    result = hosted.aws_cli(
        "sagemaker-runtime",
        "invoke-endpoint",
        "--endpoint-name",
        endpoint,
        "--content-type",
        "text/plain",
        "--body",
        "hello",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["InvokedProductionVariant"] == "AllTraffic"
    assert out.read_bytes().endswith(b"body=hello")


def test_external_upstream(hosted: ServerProcess, sm: Any, runtime: Any, tmp_path: Path) -> None:
    model_dir = iris_model_dir(tmp_path / "external")
    with running_worker(model_dir, tmp_path) as (_proc, ready):
        url = f"http://127.0.0.1:{ready['port']}"
        model = h.register(sm, None, {"SHADOWLAB_UPSTREAM_URL": url})
        endpoint = h.deploy(sm, [("Existing", model, 1.0, 1)])["endpoint"]
        response = invoke(
            runtime, endpoint, json.dumps({"features": [IRIS_ROW]}), ContentType="application/json"
        )
        assert json.loads(response["Payload"])["predictions"] == ["setosa"]


def test_weights_split_traffic_and_target_variant(
    hosted: ServerProcess, sm: Any, runtime: Any, tmp_path: Path
) -> None:
    blue = h.register(sm, h.echo_model(hosted, tmp_path))
    green = h.register(sm, h.echo_model(hosted, tmp_path))
    endpoint = h.deploy(sm, [("blue", blue, 3.0, 1), ("green", green, 1.0, 1)])["endpoint"]
    n = 800
    seen = Counter(invoke(runtime, endpoint, b"x")["InvokedProductionVariant"] for _ in range(n))
    # Binomial(800, 0.75): sd = 12.2; 5 sd either side.
    assert abs(seen["blue"] - 0.75 * n) < 5 * (n * 0.75 * 0.25) ** 0.5, seen
    targeted = {
        invoke(runtime, endpoint, b"x", TargetVariant="green")["InvokedProductionVariant"]
        for _ in range(20)
    }
    assert targeted == {"green"}
    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint(EndpointName=endpoint, Body=b"x", TargetVariant="nope")
    assert caught.value.response["Error"]["Code"] == "ValidationError"
    assert "nope" in caught.value.response["Error"]["Message"]


def test_errors_as_aws_sends_them(
    hosted: ServerProcess, sm: Any, runtime: Any, tmp_path: Path
) -> None:
    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint(EndpointName="no-such-endpoint", Body=b"x")
    assert caught.value.response["Error"] == {
        "Code": "ValidationError",
        "Message": "Endpoint no-such-endpoint of account 123456789012 not found.",
    }
    model = h.register(sm, h.code_model(hosted, tmp_path, h.FAILING_PREDICT))
    endpoint = h.deploy(sm, [("AllTraffic", model, 1.0, 1)])["endpoint"]
    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint(EndpointName=endpoint, Body=b"x")
    error = caught.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["OriginalStatusCode"] == 500
    assert "shadow model bug" in error["OriginalMessage"]
    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint(EndpointName=endpoint, Body=b"x" * (6 * 1024 * 1024 + 1))
    assert caught.value.response["Error"]["Code"] == "ValidationError"


def test_model_that_cannot_load_fails_the_endpoint(
    hosted: ServerProcess, sm: Any, tmp_path: Path
) -> None:
    model = h.register(sm, h.code_model(hosted, tmp_path, h.UNLOADABLE))
    described = h.deploy(sm, [("AllTraffic", model, 1.0, 1)], status="Failed")["described"]
    assert "weights are corrupt: checksum mismatch" in described["FailureReason"]
    missing = h.register(sm, "s3://models/nothing-here/model.tar.gz")
    described = h.deploy(sm, [("AllTraffic", missing, 1.0, 1)], status="Failed")["described"]
    assert "s3://models/nothing-here/model.tar.gz" in described["FailureReason"]


def _pid_of(payload: bytes) -> int:
    """The worker's pid, from the echo model's answer "pid=<pid> body=<body>"."""
    return int(payload.split(b" ")[0].removeprefix(b"pid="))


def _pids(runtime: Any, endpoint: str, count: int) -> Counter[int]:
    pids: Counter[int] = Counter()
    for _ in range(count):
        payload = invoke(runtime, endpoint, b"x")["Payload"]
        pids[_pid_of(payload)] += 1
    return pids


def test_killed_worker_is_restarted_and_endpoint_keeps_answering(
    hosted: ServerProcess, sm: Any, runtime: Any, tmp_path: Path
) -> None:
    model = h.register(sm, h.echo_model(hosted, tmp_path))
    endpoint = h.deploy(sm, [("AllTraffic", model, 1.0, 2)])["endpoint"]
    before = _pids(runtime, endpoint, 40)
    assert len(before) == 2  # least-outstanding spreads over both instances
    victim = next(iter(before))
    os.kill(victim, signal.SIGKILL)
    failures = []
    deadline = time.monotonic() + 20
    seen: set[int] = set()
    while time.monotonic() < deadline:
        try:
            payload = invoke(runtime, endpoint, b"x")["Payload"]
            seen.add(_pid_of(payload))
        except ClientError as exc:  # a request caught mid-kill gets a clean AWS error
            failures.append(exc.response["Error"]["Code"])
        if len(seen - {victim}) == 2:
            break
    assert len(seen - {victim}) == 2, "the killed instance was not replaced"
    assert set(failures) <= {"ServiceUnavailable", "ModelError"}
    assert len(failures) <= 2
    assert checked(sm, "DescribeEndpoint", EndpointName=endpoint)["EndpointStatus"] == "InService"


def test_scaling_up_and_down_keeps_answering(
    hosted: ServerProcess, sm: Any, runtime: Any, tmp_path: Path
) -> None:
    model = h.register(sm, h.echo_model(hosted, tmp_path))
    endpoint = h.deploy(sm, [("AllTraffic", model, 1.0, 1)])["endpoint"]
    checked(
        sm,
        "UpdateEndpointWeightsAndCapacities",
        EndpointName=endpoint,
        DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 3}],
    )
    while checked(sm, "DescribeEndpoint", EndpointName=endpoint)["EndpointStatus"] != "InService":
        invoke(runtime, endpoint, b"during scale-up")
    assert len(_pids(runtime, endpoint, 60)) == 3
    checked(
        sm,
        "UpdateEndpointWeightsAndCapacities",
        EndpointName=endpoint,
        DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 1}],
    )
    while checked(sm, "DescribeEndpoint", EndpointName=endpoint)["EndpointStatus"] != "InService":
        invoke(runtime, endpoint, b"during scale-down")
    wait_for(lambda: len(_pids(runtime, endpoint, 20)), lambda n: n == 1, timeout=15)


@pytest.mark.serial  # production's time with a slow shadow is bounded
@pytest.mark.parametrize("behaviour", ["slow", "failing", "crashing"])
def test_misbehaving_shadow_never_touches_production(
    hosted: ServerProcess, sm: Any, runtime: Any, tmp_path: Path, behaviour: str
) -> None:
    inference = {
        "slow": h.SLOW_INFERENCE,
        "failing": h.FAILING_PREDICT,
        "crashing": h.CRASHING_PREDICT,
    }[behaviour]
    production = h.register(sm, h.echo_model(hosted, tmp_path))
    shadow = h.register(sm, h.code_model(hosted, tmp_path, inference))
    endpoint = h.deploy(sm, [("prod", production, 1.0, 1)], [("shadow", shadow, 1.0)])["endpoint"]
    started = time.monotonic()
    n = 150
    bodies = [invoke(runtime, endpoint, f"r{i}")["Payload"] for i in range(n)]
    elapsed = time.monotonic() - started
    assert all(b.endswith(f"body=r{i}".encode()) for i, b in enumerate(bodies))
    if behaviour == "slow":
        # 150 sequential requests against a 0.3 s shadow would take 45 s if they waited.
        assert elapsed < 30
    counters = wait_for(
        lambda: stats(hosted, endpoint), lambda s: s["shadow"]["in_flight"] == 0, timeout=15
    )
    assert counters["prod"]["invocations"] == n
    assert counters["prod"]["model_errors"] == 0 and counters["prod"]["unavailable"] == 0
    shadow_counts = counters["shadow"]
    assert shadow_counts["eligible"] == shadow_counts["sampled"] == n  # 100% sampled
    settled = sum(shadow_counts[k] for k in ("completed", "errors", "timeouts", "shed", "dropped"))
    assert settled == n, shadow_counts  # every copy accounted for
    if behaviour == "slow":
        assert shadow_counts["completed"] > 0 and shadow_counts["errors"] == 0
    elif behaviour == "failing":
        assert shadow_counts["errors"] == shadow_counts["sent"] > 0
    else:  # a crashing worker is restarted: copies meanwhile have nowhere to go
        assert shadow_counts["errors"] > 0 and shadow_counts["completed"] == 0


def test_experiment_shadow_share_and_promotion(
    hosted: ServerProcess, sm: Any, runtime: Any, tmp_path: Path
) -> None:
    # Production answers with the default handlers ([label]); the candidate's inference.py
    # answers {"predictions": [...]}: after promotion the answer shows which model served it.
    production = h.register(sm, h.iris_model(hosted, tmp_path, with_code=False))
    candidate = h.register(sm, h.iris_model(hosted, tmp_path, with_code=True))
    body = json.dumps({"instances": [IRIS_ROW], "features": [IRIS_ROW]})
    endpoint = h.deploy(sm, [("variant-1", production, 1.0, 1)])
    name = unique("exp")
    checked(
        sm,
        "CreateInferenceExperiment",
        **experiment_request(name, endpoint, candidate, sampling=30),
    )
    wait_experiment(sm, name, "Running", timeout=90)
    n = 600
    for _ in range(n):
        answer = invoke(runtime, endpoint["endpoint"], body, ContentType="application/json")
        assert json.loads(answer["Payload"]) == [0]
    counters = wait_for(
        lambda: stats(hosted, endpoint["endpoint"]),
        lambda s: s["shadow-1"]["in_flight"] == 0,
        timeout=15,
    )
    copies = counters["shadow-1"]["sampled"]
    # Binomial(600, 0.3): sd = 11.2; 5 sd either side.
    assert abs(copies - 0.3 * n) < 5 * (n * 0.3 * 0.7) ** 0.5, counters
    assert counters["shadow-1"]["completed"] == counters["shadow-1"]["sent"]

    checked(
        sm,
        "StopInferenceExperiment",
        Name=name,
        ModelVariantActions={"variant-1": "Remove", "shadow-1": "Promote"},
    )
    wait_experiment(sm, name, "Completed", timeout=90)
    wait_endpoint(sm, endpoint["endpoint"], "InService", timeout=60)
    response = invoke(runtime, endpoint["endpoint"], body, ContentType="application/json")
    assert response["InvokedProductionVariant"] == "shadow-1"
    assert json.loads(response["Payload"])["predictions"] == ["setosa"]


def test_worker_processes_stop_with_the_endpoint(
    hosted: ServerProcess, sm: Any, runtime: Any, tmp_path: Path
) -> None:
    model = h.register(sm, h.echo_model(hosted, tmp_path))
    endpoint = h.deploy(sm, [("AllTraffic", model, 1.0, 2)])["endpoint"]
    pids = set(_pids(runtime, endpoint, 20))
    checked(sm, "DeleteEndpoint", EndpointName=endpoint)

    def alive() -> set[int]:
        out = subprocess.run(
            ["ps", "-o", "pid=", "-p", ",".join(map(str, pids))],
            capture_output=True,
            text=True,
            check=False,
        )
        return {int(p) for p in out.stdout.split()}

    wait_for(alive, lambda left: not left, timeout=20)


def test_same_endpoint_name_in_two_regions(hosted: ServerProcess, tmp_path: Path) -> None:
    """Names are unique per region: each region's endpoint answers its own requests."""
    name = unique("regional")
    answers = {}
    for region in ("us-east-1", "eu-west-1"):
        sm = hosted.client(region=region)
        inference = (
            "def model_fn(model_dir):\n    return None\n\n"
            "def transform_fn(model, data, content_type, accept):\n"
            f"    return b'{region}', 'text/plain'\n"
        )
        model = h.register(sm, h.code_model(hosted, tmp_path, inference))
        config = unique("config")
        checked(
            sm,
            "CreateEndpointConfig",
            EndpointConfigName=config,
            ProductionVariants=[
                {
                    "VariantName": "v",
                    "ModelName": model,
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": 1,
                }
            ],
        )
        checked(sm, "CreateEndpoint", EndpointName=name, EndpointConfigName=config)
        wait_endpoint(sm, name, "InService", timeout=60)
    for region in ("us-east-1", "eu-west-1"):
        runtime = hosted.client("sagemaker-runtime", region=region)
        answers[region] = invoke(runtime, name, b"x")["Payload"]
    assert answers == {"us-east-1": b"us-east-1", "eu-west-1": b"eu-west-1"}
    checked(hosted.client(region="eu-west-1"), "DeleteEndpoint", EndpointName=name)
    east = hosted.client("sagemaker-runtime", region="us-east-1")
    wait_for(lambda: invoke(east, name, b"x")["Payload"], lambda p: p == b"us-east-1", 10)
    with pytest.raises(ClientError) as caught:
        wait_for(
            lambda: invoke(hosted.client("sagemaker-runtime", region="eu-west-1"), name, b"x"),
            lambda _: False,
            10,
        )
    assert caught.value.response["Error"]["Code"] == "ValidationError"


def test_model_server_workers_serve_one_instance_and_a_killed_one_is_replaced(
    hosted: ServerProcess, sm: Any, runtime: Any, tmp_path: Path
) -> None:
    model = h.register(sm, h.echo_model(hosted, tmp_path), {"SAGEMAKER_MODEL_SERVER_WORKERS": "3"})
    endpoint = h.deploy(sm, [("AllTraffic", model, 1.0, 1)])["endpoint"]
    described = checked(sm, "DescribeEndpoint", EndpointName=endpoint)
    assert described["ProductionVariants"][0]["CurrentInstanceCount"] == 1
    with signed_urlopen(hosted.url + "/shadowlab/stats", timeout=5) as reply:
        routed = [r for r in json.loads(reply.read())["instances"] if r["endpoint"] == endpoint]
    assert len(routed[0]["instances"]) == 3  # one instance, three model-server processes
    pids = _pids(runtime, endpoint, 30)
    assert len(pids) == 3, pids
    victim = next(iter(pids))
    os.kill(victim, signal.SIGKILL)
    seen: set[int] = set()
    failures: list[str] = []
    deadline = time.monotonic() + 20
    while len(seen - {victim}) < 3 and time.monotonic() < deadline:
        try:
            seen.add(_pid_of(invoke(runtime, endpoint, b"x")["Payload"]))
        except ClientError as exc:  # a request caught mid-kill gets a clean AWS error
            failures.append(exc.response["Error"]["Code"])
    assert len(seen - {victim}) == 3, "the killed process was not replaced"
    assert set(failures) <= {"ServiceUnavailable", "ModelError"} and len(failures) <= 2


def test_a_bad_model_server_workers_value_fails_the_endpoint_with_the_reason(
    hosted: ServerProcess, sm: Any, tmp_path: Path
) -> None:
    model = h.register(sm, h.echo_model(hosted, tmp_path), {"SAGEMAKER_MODEL_SERVER_WORKERS": "0"})
    described = h.deploy(sm, [("AllTraffic", model, 1.0, 1)], status="Failed")["described"]
    assert "SAGEMAKER_MODEL_SERVER_WORKERS='0' is not valid" in described["FailureReason"]


@pytest.mark.serial  # refusals are timed
def test_a_full_model_server_queue_answers_service_unavailable_at_once(
    hosted: ServerProcess, sm: Any, runtime: Any, tmp_path: Path
) -> None:
    model = h.register(sm, h.echo_model(hosted, tmp_path), {"SHADOWLAB_WORKER_MAX_QUEUE": "1"})
    endpoint = h.deploy(sm, [("AllTraffic", model, 1.0, 1)])["endpoint"]
    # The test clients do not retry; botocore's default would re-send a 503, as it should.
    invoke(runtime, endpoint, b"sleep 0.05")  # predictions now leave the event loop
    outcomes: list[str] = []

    def call() -> None:
        try:
            invoke(runtime, endpoint, b"sleep 0.5")
            outcomes.append("ok")
        except ClientError as exc:
            error = exc.response["Error"]
            outcomes.append(error["Code"])
            assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 503
            assert "is at capacity and did not run the request" in error["Message"]
            assert "queue is full (1 requests)" in error["Message"]

    started = time.monotonic()
    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("ok") >= 1 and outcomes.count("ServiceUnavailable") >= 2, outcomes
    assert time.monotonic() - started < 1.6  # the refused ones did not wait their turn
