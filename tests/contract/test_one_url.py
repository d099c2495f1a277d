"""Issue 14's first acceptance test: one AWS_ENDPOINT_URL and nothing else.

A script, run as its own process with only the endpoint URL, the test key pair and a region in
its environment, does what a team's existing SageMaker code does: uploads a model.tar.gz larger
than 8 MB with boto3's `upload_file` (multipart), creates model, endpoint config (with data
capture), endpoint and a shadow inference experiment from that s3:// URI on real worker
processes, invokes it, and lists and downloads objects with the AWS CLI. Every boto3 response is
checked against botocore's output shape.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hosting.modelfiles import iris_model_dir, make_tar
from tests.serverproc import CREDENTIALS, REGION, ServerProcess

REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import json
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    import boto3

    sys.path.insert(0, sys.argv[1])
    from tests.shapecheck import assert_output_shape

    archive, work = Path(sys.argv[2]), Path(sys.argv[3])
    ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"


    def call(client, operation, **params):
        name = "".join("_" + c.lower() if c.isupper() else c for c in operation)[1:]
        response = getattr(client, name)(**params)
        assert_output_shape(client.meta.service_model.service_name, operation, response)
        return response


    def wait(probe, done, timeout=120):
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if done(value):
                return value
            assert time.monotonic() < deadline, value
            time.sleep(0.2)


    s3, sm = boto3.client("s3"), boto3.client("sagemaker")
    runtime = boto3.client("sagemaker-runtime")
    call(s3, "CreateBucket", Bucket="team-models")
    s3.upload_file(str(archive), "team-models", "iris/model.tar.gz")
    head = call(s3, "HeadObject", Bucket="team-models", Key="iris/model.tar.gz")
    assert head["ETag"].endswith('-2"'), head["ETag"]  # multipart: two parts
    url = "s3://team-models/iris/model.tar.gz"

    for name in ("iris-prod", "iris-candidate"):
        call(sm, "CreateModel", ModelName=name, ExecutionRoleArn=ROLE,
             PrimaryContainer={"Image": "shadowlab/builtin", "ModelDataUrl": url})
    variant = {"InstanceType": "ml.m5.large", "InitialInstanceCount": 1}
    call(sm, "CreateEndpointConfig", EndpointConfigName="iris-config",
         ProductionVariants=[{"VariantName": "variant-1", "ModelName": "iris-prod", **variant}],
         DataCaptureConfig={
             "EnableCapture": True, "InitialSamplingPercentage": 100,
             "DestinationS3Uri": "s3://team-captures/iris",
             "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
         })
    call(sm, "CreateEndpoint", EndpointName="iris", EndpointConfigName="iris-config")
    wait(lambda: call(sm, "DescribeEndpoint", EndpointName="iris"),
         lambda d: d["EndpointStatus"] == "InService")
    realtime = {"InfrastructureType": "RealTimeInference",
                "RealTimeInferenceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1}}
    call(sm, "CreateInferenceExperiment", Name="iris-shadow", Type="ShadowMode", RoleArn=ROLE,
         EndpointName="iris",
         ModelVariants=[
             {"ModelName": "iris-prod", "VariantName": "variant-1",
              "InfrastructureConfig": realtime},
             {"ModelName": "iris-candidate", "VariantName": "shadow-1",
              "InfrastructureConfig": realtime},
         ],
         ShadowModeConfig={"SourceModelVariantName": "variant-1", "ShadowModelVariants": [
             {"ShadowModelVariantName": "shadow-1", "SamplingPercentage": 100}]})
    wait(lambda: call(sm, "DescribeInferenceExperiment", Name="iris-shadow"),
         lambda d: d["Status"] == "Running")

    body = json.dumps({"features": [[5.1, 3.5, 1.4, 0.2]]})
    answer = call(runtime, "InvokeEndpoint", EndpointName="iris",
                  ContentType="application/json", Body=body)
    assert json.loads(answer["Body"].read())["predictions"] == ["setosa"], answer

    aws = [str(Path(sys.executable).with_name("aws")), "--output", "json"]

    def cli(*args):
        done = subprocess.run([*aws, *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def listing(uri):
        # Until capture has stored its first file the bucket does not exist (NoSuchBucket) or
        # holds nothing under the prefix: both exit 1, and both mean "not yet".
        done = subprocess.run([*aws, "s3", "ls", uri, "--recursive"], capture_output=True,
                              text=True, timeout=60)
        return done.stdout if done.returncode == 0 else ""

    listed = cli("s3", "ls", "s3://team-models/", "--recursive")
    assert "iris/model.tar.gz" in listed and str(archive.stat().st_size) in listed, listed
    cli("s3", "cp", url, str(work / "downloaded.tar.gz"))
    assert (work / "downloaded.tar.gz").read_bytes() == archive.read_bytes()
    captures = wait(lambda: listing("s3://team-captures/iris/"),
                    lambda out: "/variant-1/" in out and "/shadow-1/" in out
                                and ".jsonl" in out, timeout=30)
    key = next(line.split()[-1] for line in captures.splitlines()
               if "/shadow-1/" in line and line.endswith(".jsonl"))
    cli("s3", "cp", "s3://team-captures/" + key, str(work / "capture.jsonl"))
    record = json.loads((work / "capture.jsonl").read_text().splitlines()[0])
    assert record["captureData"]["endpointInput"]["data"]
    print("one url: ok")
    """
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("one-url")
    env = {"SHADOWLAB_CAPTURE_FILE_SECONDS": "0.3"}
    proc = ServerProcess(data_dir=root / "data", hosting="process", extra_env=env)
    yield proc.start()
    proc.stop()


def model_archive(tmp_path: Path) -> Path:
    """A real scikit-learn model padded past boto3's 8 MB multipart threshold with bytes that
    gzip cannot shrink."""
    model = iris_model_dir(tmp_path / "model")
    (model / "padding.bin").write_bytes(os.urandom(9 * 1024 * 1024))
    archive = make_tar(model, tmp_path / "model.tar.gz")
    assert archive.stat().st_size > 8 * 1024 * 1024
    return archive


def test_one_endpoint_url_serves_the_whole_workflow(server: ServerProcess, tmp_path: Path) -> None:
    archive = model_archive(tmp_path)
    script = tmp_path / "workflow.py"
    script.write_text(SCRIPT)
    keep = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    env = {
        **keep,
        **CREDENTIALS,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": server.url,
        # Nothing from the developer's own AWS setup may leak in.
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
    }
    done = subprocess.run(
        [sys.executable, str(script), str(REPO), str(archive), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr + server.log_path.read_text()[-3000:]
    assert done.stdout.strip().endswith("one url: ok")
