"""`make demo`: shadowlab end to end on embedded defaults, with real models.

Trains two scikit-learn classifiers on a dataset that ships with scikit-learn, packages each as
a SageMaker `model.tar.gz` with an `inference.py`, starts `shadowlab serve`, and drives it with
boto3 exactly as one drives SageMaker: models, endpoint config, endpoint, a shadow-mode inference
experiment, live invocations, and the stop that promotes the candidate.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path
from typing import Any

INFERENCE_PY = '''\
"""SageMaker inference-toolkit handlers: JSON rows in, labels and probabilities out."""
import json
import os

import joblib
import numpy as np


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def input_fn(body, content_type):
    if content_type != "application/json":
        raise ValueError(f"unsupported content type {content_type}")
    return np.asarray(json.loads(body)["instances"], dtype=float)


def predict_fn(data, model):
    return {"labels": model.predict(data).tolist(),
            "probabilities": model.predict_proba(data).round(4).tolist()}


def output_fn(prediction, accept):
    return json.dumps(prediction), "application/json"
'''

ROLE = "arn:aws:iam::000000000000:role/ShadowlabDemo"


def _say(text: str) -> None:
    print(text, flush=True)


def package_models(object_store: Path) -> tuple[str, str, list[list[float]]]:
    """Train production and candidate models; store them as s3://demo-models/<name>/model.tar.gz."""
    import joblib
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, labels = load_breast_cancer(return_X_y=True)
    train_x, test_x, train_y, test_y = train_test_split(features, labels, random_state=7)
    models = {
        "production": make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
        "candidate": RandomForestClassifier(n_estimators=50, random_state=7),
    }
    for name, model in models.items():
        model.fit(train_x, train_y)
        accuracy = model.score(test_x, test_y)
        _say(f"  trained {name:<10} {type(model).__name__:<22} held-out accuracy {accuracy:.3f}")
        buffer = io.BytesIO()
        joblib.dump(model, buffer)
        target = object_store / "demo-models" / name / "model.tar.gz"
        target.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(target, "w:gz") as archive:
            _add(archive, "model.joblib", buffer.getvalue())
            _add(archive, "code/inference.py", INFERENCE_PY.encode())
    return (
        "s3://demo-models/production/model.tar.gz",
        "s3://demo-models/candidate/model.tar.gz",
        test_x.tolist(),
    )


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def _free_port(preferred: int) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])


def start_server(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    log = (data_dir / "server.log").open("ab")
    command = [
        sys.executable,
        "-m",
        "shadowlab",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
    ]
    env = {**os.environ, "SHADOWLAB_RECONCILE_INTERVAL": "0.2"}
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return proc
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit(f"the server did not start; see {data_dir / 'server.log'}")


def shadow_counters(url: str, endpoint: str, patience: float = 15.0) -> list[dict[str, Any]]:
    """The mirror's counters once the copies still in flight have come back (or patience ran
    out: a shadow slower than production lags behind it, which is the point of a shadow)."""
    deadline = time.monotonic() + patience
    while True:
        with urllib.request.urlopen(f"{url}/shadowlab/stats", timeout=5) as reply:
            rows = [r for r in json.loads(reply.read())["shadows"] if r["endpoint"] == endpoint]
        if all(r["in_flight"] == 0 for r in rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def wait(describe: Any, key: str, wanted: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        state: dict[str, Any] = describe()
        if state[key] == wanted:
            return state
        if state[key] == "Failed" or time.monotonic() > deadline:
            raise SystemExit(f"expected {wanted}, got {state[key]}: {state.get('FailureReason')}")
        time.sleep(0.2)


def run(requests: int, data_dir: Path) -> None:
    import boto3

    data_dir.mkdir(parents=True, exist_ok=True)
    _say("1. Training two models and packaging them as SageMaker model.tar.gz")
    production_url, candidate_url, rows = package_models(data_dir / "s3")
    port = _free_port(7070)
    _say(f"2. Starting shadowlab serve on 127.0.0.1:{port} (data dir {data_dir})")
    server = start_server(data_dir, port)
    try:
        url = f"http://127.0.0.1:{port}"
        creds = {
            "region_name": "us-east-1",
            "aws_access_key_id": "demo",
            "aws_secret_access_key": "demo",
            "endpoint_url": url,
        }
        sm = boto3.client("sagemaker", **creds)
        runtime = boto3.client("sagemaker-runtime", **creds)
        suffix = time.strftime("%H%M%S")
        endpoint = f"demo-endpoint-{suffix}"
        _say("3. Creating models, endpoint config and endpoint with boto3")
        for name, model_url in (("production", production_url), ("candidate", candidate_url)):
            container = {"Image": "shadowlab/sklearn", "ModelDataUrl": model_url}
            sm.create_model(
                ModelName=f"demo-{name}-{suffix}", ExecutionRoleArn=ROLE, PrimaryContainer=container
            )
        sm.create_endpoint_config(
            EndpointConfigName=f"demo-config-{suffix}",
            ProductionVariants=[
                {
                    "VariantName": "production",
                    "ModelName": f"demo-production-{suffix}",
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": 1,
                }
            ],
        )
        sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=f"demo-config-{suffix}")
        wait(lambda: sm.describe_endpoint(EndpointName=endpoint), "EndpointStatus", "InService")
        _say(f"   endpoint {endpoint} is InService")

        experiment = f"demo-shadow-test-{suffix}"
        _say("4. Creating a shadow-mode inference experiment (100% of traffic mirrored)")
        infra = {
            "InfrastructureType": "RealTimeInference",
            "RealTimeInferenceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        }
        sm.create_inference_experiment(
            Name=experiment,
            Type="ShadowMode",
            RoleArn=ROLE,
            EndpointName=endpoint,
            ModelVariants=[
                {
                    "ModelName": f"demo-production-{suffix}",
                    "VariantName": "production",
                    "InfrastructureConfig": infra,
                },
                {
                    "ModelName": f"demo-candidate-{suffix}",
                    "VariantName": "candidate",
                    "InfrastructureConfig": infra,
                },
            ],
            ShadowModeConfig={
                "SourceModelVariantName": "production",
                "ShadowModelVariants": [
                    {"ShadowModelVariantName": "candidate", "SamplingPercentage": 100}
                ],
            },
        )
        wait(lambda: sm.describe_inference_experiment(Name=experiment), "Status", "Running")
        _say("   experiment is Running")

        _say(f"5. Sending {requests} invocations through sagemaker-runtime")
        started = time.perf_counter()
        variants: dict[str, int] = {}
        for i in range(requests):
            row = rows[i % len(rows)]
            response = runtime.invoke_endpoint(
                EndpointName=endpoint,
                ContentType="application/json",
                Accept="application/json",
                Body=json.dumps({"instances": [row]}),
            )
            json.loads(response["Body"].read())
            name = response["InvokedProductionVariant"]
            variants[name] = variants.get(name, 0) + 1
            if (i + 1) % max(1, requests // 10) == 0:
                bar = "#" * ((i + 1) * 30 // requests)
                print(f"\r   [{bar:<30}] {i + 1}/{requests}", end="", flush=True)
        elapsed = time.perf_counter() - started
        print(flush=True)
        _say(f"   {requests} requests in {elapsed:.1f}s; answered by {variants}")
        _say("   shadow copies (GET /shadowlab/stats):")
        for shadow in shadow_counters(url, endpoint):
            _say(
                f"     {shadow['shadow']}: sampled {shadow['sampled']}, "
                f"completed {shadow['completed']}, shed {shadow['shed']}, "
                f"errors {shadow['errors']}, timeouts {shadow['timeouts']}, "
                f"dropped {shadow['dropped']}"
            )
            _say(
                f"     delivered share {shadow['effective_sampling_percentage']:.1f}% of requests "
                f"(the rest shed: the shadow's capacity, admission limit {shadow['limit']})"
                if shadow["shed"]
                else f"     delivered share {shadow['effective_sampling_percentage']:.1f}% "
                "of requests"
            )

        _say("6. Stopping the experiment and promoting the candidate")
        sm.stop_inference_experiment(
            Name=experiment,
            ModelVariantActions={"production": "Remove", "candidate": "Promote"},
            DesiredState="Completed",
            Reason="demo: candidate promoted",
        )
        final = wait(
            lambda: sm.describe_inference_experiment(Name=experiment), "Status", "Completed"
        )
        wait(lambda: sm.describe_endpoint(EndpointName=endpoint), "EndpointStatus", "InService")
        response = runtime.invoke_endpoint(
            EndpointName=endpoint,
            ContentType="application/json",
            Body=json.dumps({"instances": [rows[0]]}),
        )
        _say(
            f"   experiment {final['Status']}; the endpoint now answers from "
            f"'{response['InvokedProductionVariant']}'"
        )
        sm.delete_endpoint(EndpointName=endpoint)
        _say(f"Done. Server log: {data_dir / 'server.log'}")
    finally:
        server.terminate()
        server.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shadowlab.demo")
    parser.add_argument("--requests", type=int, default=int(os.environ.get("DEMO_REQUESTS", 2000)))
    parser.add_argument("--data-dir", type=Path, default=Path(".shadowlab/demo"))
    args = parser.parse_args(argv)
    run(args.requests, args.data_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
