"""Data capture through the public interface: boto3 configures it, sagemaker-runtime (and raw
HTTP) drives traffic, real workers answer, the records land in the embedded store or in a real
S3-compatible server (moto), and `shadowlab captures` reads them back.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.capture.support import MotoServer, s3_client
from tests.contract import hosting_helpers as h
from tests.contract.helpers import checked, unique, wait_endpoint, wait_for
from tests.hosting.modelfiles import code_only_model_dir, make_tar
from tests.serverproc import CREDENTIALS, ServerProcess, sign, signed_urlopen

# Answers "<name>:<body>" and logs every body it ran, so counts can be checked from its side.
LOGGING_ECHO = textwrap.dedent(
    """
    import os

    def model_fn(model_dir):
        return open(os.environ["RAN_LOG"], "ab", buffering=0)

    def transform_fn(log, data, content_type, accept):
        data = data.encode() if isinstance(data, str) else data
        log.write(data + b"\\n")
        return os.environ["ANSWER_PREFIX"].encode() + data, "text/csv"
    """
)
CAPTURE_ENV = {"SHADOWLAB_CAPTURE_FILE_SECONDS": "0.5"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("capture")
    proc = ServerProcess(data_dir=root / "data", hosting="process", extra_env=CAPTURE_ENV)
    yield proc.start()
    proc.stop()


def logging_model(sm: Any, url: str, log: Path, prefix: str) -> str:
    return h.register(sm, url, {"RAN_LOG": str(log), "ANSWER_PREFIX": prefix})


def capture_endpoint(sm: Any, production: str, shadow: str, capture: dict[str, Any] | None) -> str:
    config = unique("config")
    variant = {"InstanceType": "ml.m5.large", "InitialInstanceCount": 1, "InitialVariantWeight": 1}
    params: dict[str, Any] = {
        "EndpointConfigName": config,
        "ProductionVariants": [{"VariantName": "prod", "ModelName": production, **variant}],
        "ShadowProductionVariants": [{"VariantName": "shadow", "ModelName": shadow, **variant}],
    }
    if capture is not None:
        params["DataCaptureConfig"] = capture
    checked(sm, "CreateEndpointConfig", **params)
    endpoint = unique("endpoint")
    checked(sm, "CreateEndpoint", EndpointName=endpoint, EndpointConfigName=config)
    wait_endpoint(sm, endpoint, "InService", timeout=90)
    return endpoint


def captured_lines(root: Path) -> dict[str, list[dict[str, Any]]]:
    """variant -> records, from the embedded store's files under `root` (.../<endpoint>)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(root.rglob("*.jsonl")):
        variant = path.relative_to(root).parts[0]
        found.setdefault(variant, []).extend(json.loads(x) for x in path.read_text().splitlines())
    return found


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **CREDENTIALS}
    return subprocess.run(
        [sys.executable, "-m", "shadowlab", "captures", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_endpoint_capture_in_sagemaker_format_to_the_embedded_store(
    server: ServerProcess, tmp_path: Path
) -> None:
    sm, runtime = server.client(), server.client("sagemaker-runtime")
    code = h.code_model(server, tmp_path, LOGGING_ECHO)
    production = logging_model(sm, code, tmp_path / "prod.log", "p:")
    shadow = logging_model(sm, code, tmp_path / "shadow.log", "s:")
    capture = {
        "EnableCapture": True,
        "InitialSamplingPercentage": 100,
        "DestinationS3Uri": "s3://captures/datacapture",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"]},
    }
    endpoint = capture_endpoint(sm, production, shadow, capture)
    described = checked(sm, "DescribeEndpoint", EndpointName=endpoint)["DataCaptureConfig"]
    assert described == {
        "EnableCapture": True,
        "CaptureStatus": "Started",
        "CurrentSamplingPercentage": 100,
        "DestinationS3Uri": "s3://captures/datacapture",
        "KmsKeyId": "",
    }

    n = 60
    for i in range(n):
        answer = runtime.invoke_endpoint(
            EndpointName=endpoint, ContentType="text/csv", Body=f"{i},1.5", InferenceId=f"inf-{i}"
        )
        assert answer["Body"].read() == f"p:{i},1.5".encode()
    runtime.invoke_endpoint(
        EndpointName=endpoint, ContentType="application/x-bin", Body=b"\x00\xff"
    )

    root = server.data_dir / "s3" / "captures" / "datacapture" / endpoint
    shadow_ran = wait_for(
        lambda: len((tmp_path / "shadow.log").read_bytes().split()), lambda k: k == n + 1
    )
    lines = wait_for(
        lambda: captured_lines(root),
        lambda f: len(f.get("prod", [])) == n + 1 and len(f.get("shadow", [])) == shadow_ran,
    )
    # The documented SageMaker record, key by key, encoding by encoding.
    first = next(r for r in lines["prod"] if r["eventMetadata"]["inferenceId"] == "inf-0")
    assert list(first) == ["captureData", "eventMetadata", "eventVersion"]
    assert first["eventVersion"] == "0"
    assert first["captureData"] == {
        "endpointInput": {
            "observedContentType": "text/csv",
            "mode": "INPUT",
            "data": "0,1.5",
            "encoding": "CSV",
        },
        "endpointOutput": {
            "observedContentType": "text/csv",
            "mode": "OUTPUT",
            "data": "p:0,1.5",
            "encoding": "CSV",
        },
    }
    assert list(first["eventMetadata"]) == ["eventId", "inferenceId", "inferenceTime"]
    assert time.strptime(first["eventMetadata"]["inferenceTime"], "%Y-%m-%dT%H:%M:%SZ")
    binary = next(r for r in lines["prod"] if "inferenceId" not in r["eventMetadata"])
    assert binary["captureData"]["endpointInput"]["encoding"] == "BASE64"
    assert base64.b64decode(binary["captureData"]["endpointInput"]["data"]) == b"\x00\xff"
    # Production and shadow records pair on eventId, one shadow record per production one.
    shadow_by_id = {r["eventMetadata"]["eventId"]: r for r in lines["shadow"]}
    assert len(shadow_by_id) == len(lines["shadow"])
    paired = shadow_by_id[first["eventMetadata"]["eventId"]]
    assert paired["captureData"]["endpointOutput"]["data"] == "s:0,1.5"
    assert Counter(r["eventMetadata"]["eventId"] for r in lines["prod"]).most_common(1)[0][1] == 1

    with signed_urlopen(server.url + "/shadowlab/stats", timeout=5) as reply:
        counters = json.loads(reply.read())["capture"]
    assert counters["records_written"] >= 2 * n + 1 and counters["dropped"] == 0, counters

    # `shadowlab captures` lists per variant and exports the pairs.
    pairs_path = tmp_path / "pairs.jsonl"
    result = run_cli(
        endpoint,
        "--endpoint-url",
        server.url,
        "--data-dir",
        str(server.data_dir),
        "--pairs",
        str(pairs_path),
    )
    assert result.returncode == 0, result.stderr
    assert f"endpoint {endpoint}: endpoint {endpoint}, captured to s3://captures/datacapture" in (
        result.stdout
    )
    table = {line.split()[0]: line.split() for line in result.stdout.splitlines()[2:4]}
    assert table["prod"][1:4] == ["production", table["prod"][2], str(n + 1)]
    assert table["shadow"][1] == "shadow" and table["shadow"][3] == str(shadow_ran)
    exported = [json.loads(x) for x in pairs_path.read_text().splitlines()]
    assert len(exported) == n + 1
    assert all(p["productionVariant"] == "prod" and "shadow" in p["shadows"] for p in exported)


def test_capture_sampling_and_options_and_disabled_capture(
    server: ServerProcess, tmp_path: Path
) -> None:
    sm, runtime = server.client(), server.client("sagemaker-runtime")
    code = h.code_model(server, tmp_path, LOGGING_ECHO)
    production = logging_model(sm, code, tmp_path / "prod.log", "p:")
    shadow = logging_model(sm, code, tmp_path / "shadow.log", "s:")
    sampled = capture_endpoint(
        sm,
        production,
        shadow,
        {
            "InitialSamplingPercentage": 30,
            "DestinationS3Uri": "s3://captures/sampled",
            "CaptureOptions": [{"CaptureMode": "Input"}],
        },
    )
    disabled = capture_endpoint(
        sm,
        production,
        shadow,
        {
            "EnableCapture": False,
            "InitialSamplingPercentage": 100,
            "DestinationS3Uri": "s3://captures/disabled",
            "CaptureOptions": [{"CaptureMode": "InputAndOutput"}],
        },
    )
    assert checked(sm, "DescribeEndpoint", EndpointName=disabled)["DataCaptureConfig"][
        "CaptureStatus"
    ] == ("Stopped")
    n = 300
    for i in range(n):
        runtime.invoke_endpoint(EndpointName=sampled, ContentType="text/csv", Body=f"{i}")
        if i < 20:
            runtime.invoke_endpoint(EndpointName=disabled, ContentType="text/csv", Body=f"{i}")
    time.sleep(2.5)  # several file periods: anything captured is stored by now
    lines = captured_lines(server.data_dir / "s3" / "captures" / "sampled" / sampled)
    kept = len(lines["prod"])
    # Binomial(300, 0.3): sd 7.9; 5 sd either side.
    assert abs(kept - 90) < 40, kept
    assert all(list(r["captureData"]) == ["endpointInput"] for r in lines["prod"])
    # A production record and its shadow copy are kept or skipped together.
    prod_ids = {r["eventMetadata"]["eventId"] for r in lines["prod"]}
    assert {r["eventMetadata"]["eventId"] for r in lines.get("shadow", [])} <= prod_ids
    assert not (server.data_dir / "s3" / "captures" / "disabled").exists()


def _load_until_stopped(
    port: int, endpoint: str, stop: threading.Event, ok: list[int], client: int
) -> None:
    """Send numbered requests (unique over clients) until stopped or the server goes away."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    i = client * 10_000_000
    try:
        while not stop.is_set():
            try:
                path, body = f"/endpoints/{endpoint}/invocations", b"%d" % i
                url = f"http://127.0.0.1:{port}{path}"
                headers = sign("POST", url, body, {"Content-Type": "text/csv"})
                conn.request("POST", path, body=body, headers=headers)
                reply = conn.getresponse()
                reply.read()
            except (OSError, http.client.HTTPException):
                return
            if reply.status == 200:
                ok.append(i)
            i += 1
    finally:
        conn.close()


def _capturing_endpoint_under_load(
    tmp_path: Path, prefix: str
) -> tuple[ServerProcess, str, threading.Event, list[int], list[threading.Thread]]:
    """A server capturing 100% of an endpoint (production and shadow) to s3://captures/<prefix>,
    and three clients sending numbered requests to it for two seconds, still going."""
    proc = ServerProcess(data_dir=tmp_path / "data", hosting="process", extra_env=CAPTURE_ENV)
    proc.start()
    sm = proc.client()
    code = h.code_model(proc, tmp_path, LOGGING_ECHO)
    production = logging_model(sm, code, tmp_path / "prod.log", "p:")
    shadow = logging_model(sm, code, tmp_path / "shadow.log", "s:")
    capture = {
        "InitialSamplingPercentage": 100,
        "DestinationS3Uri": f"s3://captures/{prefix}",
        "CaptureOptions": [{"CaptureMode": "InputAndOutput"}],
        "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"]},
    }
    endpoint = capture_endpoint(sm, production, shadow, capture)
    stop, ok = threading.Event(), []
    threads = [
        threading.Thread(target=_load_until_stopped, args=(proc.port, endpoint, stop, ok, k))
        for k in range(3)
    ]
    for thread in threads:
        thread.start()
    time.sleep(2.0)
    return proc, endpoint, stop, ok, threads


def test_a_graceful_shutdown_mid_load_loses_no_record(tmp_path: Path) -> None:
    proc, endpoint, stop, ok, threads = _capturing_endpoint_under_load(tmp_path, "graceful")
    assert proc.stop() == 0  # SIGTERM in the middle of the load
    stop.set()
    for thread in threads:
        thread.join()

    lines = captured_lines(tmp_path / "data" / "s3" / "captures" / "graceful" / endpoint)
    shadow_ran = (tmp_path / "shadow.log").read_bytes().split()
    assert len(ok) > 50
    # Every answered request is captured once; so is every copy the shadow answered.
    assert sorted(int(r["captureData"]["endpointInput"]["data"]) for r in lines["prod"]) == sorted(
        ok
    )
    assert len(lines["shadow"]) == len(shadow_ran)
    assert not list((tmp_path / "data" / "capture-spool").glob("*.jsonl"))


@pytest.fixture
def moto(tmp_path: Path) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path).start()
    yield server
    server.stop()


def test_experiment_capture_to_s3_with_kms_and_the_cli_reads_it_back(
    moto: MotoServer, tmp_path: Path
) -> None:
    s3 = s3_client(moto.url)
    try:
        s3.create_bucket(Bucket="models")
        s3.create_bucket(Bucket="experiments")
        source = code_only_model_dir(tmp_path / "code", LOGGING_ECHO)
        archive = make_tar(source, tmp_path / "model.tar.gz")
        s3.upload_file(str(archive), "models", "echo/model.tar.gz")
        env = {
            **CAPTURE_ENV,
            **CREDENTIALS,
            "AWS_DEFAULT_REGION": "us-east-1",
            "SHADOWLAB_S3_ENDPOINT_URL": moto.url,
        }
        proc = ServerProcess(data_dir=tmp_path / "data", hosting="process", extra_env=env)
        proc.start()
        try:
            _run_experiment_with_storage(proc, s3, tmp_path, moto.url)
        finally:
            proc.stop()
    finally:
        s3.close()


def _run_experiment_with_storage(proc: ServerProcess, s3: Any, tmp_path: Path, s3_url: str) -> None:
    sm, runtime = proc.client(), proc.client("sagemaker-runtime")
    url = "s3://models/echo/model.tar.gz"
    production = logging_model(sm, url, tmp_path / "prod.log", "p:")
    candidate = logging_model(sm, url, tmp_path / "cand.log", "c:")
    kms = "arn:aws:kms:us-east-1:000000000000:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    storage = {
        "Destination": "s3://experiments/shadow-test",
        "KmsKey": kms,
        "ContentType": {"CsvContentTypes": ["text/csv"]},
    }
    endpoint, name = h.shadow_experiment(sm, production, candidate, storage)
    n = 40
    for i in range(n):
        runtime.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=f"{i}")

    prefix = f"shadow-test/{endpoint}/"

    def keys() -> list[str]:
        listed = s3.list_objects_v2(Bucket="experiments", Prefix=prefix)
        return [o["Key"] for o in listed.get("Contents", [])]

    def records() -> Counter[str]:
        found: Counter[str] = Counter()
        for key in keys():
            body = s3.get_object(Bucket="experiments", Key=key)["Body"].read()
            found[key[len(prefix) :].split("/")[0]] += len(body.splitlines())
        return found

    counted = wait_for(records, lambda c: c["prod"] == n and c["cand"] == n, timeout=30)
    assert counted == {"prod": n, "cand": n}
    for key in keys():
        head = s3.head_object(Bucket="experiments", Key=key)
        assert head["ServerSideEncryption"] == "aws:kms"
        assert head["SSEKMSKeyId"] == kms
    layout = keys()[0][len(prefix) :].split("/")
    assert len(layout) == 6 and layout[-1].endswith(".jsonl")  # variant/yyyy/mm/dd/hh/file
    assert time.strptime("/".join(layout[1:5]), "%Y/%m/%d/%H")

    result = run_cli(name, "--endpoint-url", proc.url, "--s3-endpoint-url", s3_url, "--pairs", "-")
    assert result.returncode == 0, result.stderr
    exported = [json.loads(x) for x in result.stdout.splitlines()]
    assert len(exported) == n
    for pair in exported:
        production_data = pair["production"]["captureData"]["endpointOutput"]["data"]
        shadow_data = pair["shadows"]["cand"]["captureData"]["endpointOutput"]["data"]
        assert production_data.replace("p:", "c:") == shadow_data

    missing = run_cli("no-such-thing", "--endpoint-url", proc.url, "--s3-endpoint-url", s3_url)
    assert missing.returncode == 2
    assert "no inference experiment or endpoint named no-such-thing" in missing.stderr


def test_a_sigkill_loses_at_most_the_last_flush_interval_and_a_restart_recovers_it(
    tmp_path: Path,
) -> None:
    proc, endpoint, stop, ok, threads = _capturing_endpoint_under_load(tmp_path, "killed")
    answered_before = len(ok)
    proc.kill()  # SIGKILL: no shutdown code runs
    stop.set()
    for thread in threads:
        thread.join()
    rate = answered_before / 2.0

    proc.start()  # the same data dir: the spool left behind is recovered and stored
    try:
        root = tmp_path / "data" / "s3" / "captures" / "killed" / endpoint
        lines = wait_for(
            lambda: captured_lines(root),
            lambda f: len(f.get("prod", [])) >= 0.5 * len(ok),
            timeout=20,
        )
        time.sleep(1.0)  # anything else recovered has been stored by now
        lines = captured_lines(root)
    finally:
        proc.stop()
    captured = [int(r["captureData"]["endpointInput"]["data"]) for r in lines["prod"]]
    assert len(captured) == len(set(captured)), "a record was stored twice"
    assert set(captured) <= set(ok), "a record of a request that was never answered"
    lost = len(set(ok) - set(captured))
    # The stated bound: at most one flush interval (1 s) of traffic.
    assert lost <= max(rate * 1.0, 5), (lost, rate, len(ok))
    for record in lines["prod"] + lines.get("shadow", []):  # nothing torn or corrupt
        assert record["captureData"]["endpointInput"]["mode"] == "INPUT"
