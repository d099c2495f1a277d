"""`make demo`: shadowlab end to end on embedded defaults, with real models.

Trains a production model and two candidates on data that ships with scikit-learn
(`demo_models`), starts `shadowlab serve`, and drives it with boto3 exactly as one drives
SageMaker. Each candidate gets a shadow test: an inference experiment capturing production and
shadow traffic, tagged to be promoted automatically if the verdict passes. Live traffic flows,
the test is ended (its schedule moved to now), and shadowlab compares the two variants request
by request. The slow, disagreeing candidate is stopped by the verdict; the retrained one is
promoted. The reports (terminal and HTML) come from `shadowlab report`.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shadowlab import report
from shadowlab.demo_models import TrainedModel, train_and_package
from shadowlab.remote import signed_request

ROLE = "arn:aws:iam::000000000000:role/ShadowlabDemo"
CAPTURE_BUCKET = "demo-captures"
# The team's guardrails for this endpoint, set on each experiment as tags (the API is SageMaker's).
# The p99 limit is generous because here, unlike on SageMaker, the shadow's worker shares two
# cores with production's, the server and the load generator, and its copy arrives just after
# production's request: an identical model measures 1.4-2.7x slower at p99 on this machine.
MAX_P99_RATIO = "4"  # a tag value: a number, or "off"
REQUESTS_PER_SECOND = 100


def guardrail_tags(max_p99_ratio: str = MAX_P99_RATIO) -> list[dict[str, str]]:
    return [
        {"Key": "shadowlab:auto-promote", "Value": "true"},
        {"Key": "shadowlab:selector", "Value": "labels"},
        {"Key": "shadowlab:max-p99-ratio", "Value": max_p99_ratio},
        {"Key": "shadowlab:min-agreement", "Value": "0.99"},
    ]


def _say(text: str) -> None:
    print(text, flush=True)


def _free_port(preferred: int) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])


def demo_credentials(data_dir: Path) -> Path:
    """A credentials file with one fresh key pair, which this process's clients sign with.

    The server verifies every request's signature against it; the demo's boto3 clients and the
    report command find the pair where any AWS SDK looks first, the environment."""
    key, secret = "AKIDSHADOWLABDEMO", secrets.token_urlsafe(30)
    path = data_dir / "credentials"
    path.write_text(f"[demo]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n")
    path.chmod(0o600)
    os.environ.update({"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret})
    for variable in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(variable, None)
    return path


def start_server(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    log = (data_dir / "server.log").open("ab")
    command = [sys.executable, "-m", "shadowlab", "serve", "--port", str(port)]
    command += ["--data-dir", str(data_dir), "--credentials-file", str(demo_credentials(data_dir))]
    env = {
        **os.environ,
        "SHADOWLAB_RECONCILE_INTERVAL": "0.2",
        "SHADOWLAB_CAPTURE_FILE_SECONDS": "2",  # captures in the store within seconds
    }
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
    """The mirror's counters once the copies still in flight have come back."""
    deadline = time.monotonic() + patience
    while True:
        request = signed_request(f"{url}/shadowlab/stats", "us-east-1")
        with urllib.request.urlopen(request, timeout=5) as reply:
            rows = [r for r in json.loads(reply.read())["shadows"] if r["endpoint"] == endpoint]
        if all(r["in_flight"] == 0 for r in rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def wait(describe: Any, key: str, wanted: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        state: dict[str, Any] = describe()
        if state[key] == wanted:
            return state
        if state[key] == "Failed" or time.monotonic() > deadline:
            raise SystemExit(f"expected {wanted}, got {state[key]}: {state.get('FailureReason')}")
        time.sleep(0.2)


class Demo:
    def __init__(
        self,
        url: str,
        data_dir: Path,
        rows: list[list[float]],
        suffix: str,
        max_p99_ratio: str = MAX_P99_RATIO,
    ) -> None:
        import boto3

        # Credentials come from the environment (demo_credentials), as for any SDK user.
        self.sm = boto3.client("sagemaker", region_name="us-east-1", endpoint_url=url)
        self.runtime = boto3.client("sagemaker-runtime", region_name="us-east-1", endpoint_url=url)
        self.url = url
        self.data_dir = data_dir
        self.rows = rows
        self.suffix = suffix
        self.max_p99_ratio = max_p99_ratio
        self.endpoint = f"demo-endpoint-{suffix}"

    def model_name(self, model: TrainedModel) -> str:
        return f"demo-{model.name}-{self.suffix}"

    def create_endpoint(self, models: list[TrainedModel]) -> None:
        for model in models:
            container = {"Image": "shadowlab/sklearn", "ModelDataUrl": model.model_data_url}
            self.sm.create_model(
                ModelName=self.model_name(model), ExecutionRoleArn=ROLE, PrimaryContainer=container
            )
        config = f"demo-config-{self.suffix}"
        variant = {
            "VariantName": "production",
            "ModelName": self.model_name(models[0]),
            "InstanceType": "ml.m5.large",
            "InitialInstanceCount": 1,
        }
        self.sm.create_endpoint_config(EndpointConfigName=config, ProductionVariants=[variant])
        self.sm.create_endpoint(EndpointName=self.endpoint, EndpointConfigName=config)
        wait(
            lambda: self.sm.describe_endpoint(EndpointName=self.endpoint),
            "EndpointStatus",
            "InService",
        )

    def production_model(self) -> str:
        config_name = self.sm.describe_endpoint(EndpointName=self.endpoint)["EndpointConfigName"]
        config = self.sm.describe_endpoint_config(EndpointConfigName=config_name)
        return str(config["ProductionVariants"][0]["ModelName"])

    def shadow_test(self, step: int, candidate: TrainedModel, requests: int) -> str:
        experiment = f"demo-{candidate.name}-{self.suffix}"
        _say(
            f"{step}. Shadow test of {candidate.name} ({candidate.kind}): 100% of traffic "
            "mirrored, captured, auto-promote if the verdict passes"
        )
        infra = {
            "InfrastructureType": "RealTimeInference",
            "RealTimeInferenceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        }
        self.sm.create_inference_experiment(
            Name=experiment,
            Type="ShadowMode",
            RoleArn=ROLE,
            EndpointName=self.endpoint,
            ModelVariants=[
                {
                    "ModelName": self.production_model(),
                    "VariantName": "production",
                    "InfrastructureConfig": infra,
                },
                {
                    "ModelName": self.model_name(candidate),
                    "VariantName": candidate.name,
                    "InfrastructureConfig": infra,
                },
            ],
            ShadowModeConfig={
                "SourceModelVariantName": "production",
                "ShadowModelVariants": [
                    {"ShadowModelVariantName": candidate.name, "SamplingPercentage": 100}
                ],
            },
            DataStorageConfig={
                "Destination": f"s3://{CAPTURE_BUCKET}/shadow-tests",
                "ContentType": {"JsonContentTypes": ["application/json"]},
            },
            Tags=guardrail_tags(self.max_p99_ratio),
        )
        described = wait(
            lambda: self.sm.describe_inference_experiment(Name=experiment), "Status", "Running"
        )
        _say(f"   experiment {experiment} is Running")
        self.traffic(requests)
        for shadow in shadow_counters(self.url, self.endpoint):
            if shadow["shadow"] != candidate.name:
                continue
            _say(
                f"   shadow copies: sampled {shadow['sampled']}, completed {shadow['completed']}, "
                f"shed {shadow['shed']}, errors {shadow['errors']}, "
                f"timeouts {shadow['timeouts']}, dropped {shadow['dropped']}"
            )
            share = shadow["effective_sampling_percentage"]
            why = (
                f" (the rest shed: the candidate's capacity, admission limit {shadow['limit']})"
                if shadow["shed"]
                else ""
            )
            _say(f"   delivered share {share:.1f}% of requests{why}")
        # End the test now: move its EndTime, as UpdateInferenceExperiment allows while Running.
        start = described["Schedule"]["StartTime"]
        self.sm.update_inference_experiment(
            Name=experiment,
            Schedule={"StartTime": start, "EndTime": datetime.now(UTC) + timedelta(seconds=2)},
        )
        final = wait(
            lambda: self.sm.describe_inference_experiment(Name=experiment), "Status", "Completed"
        )
        wait(
            lambda: self.sm.describe_endpoint(EndpointName=self.endpoint),
            "EndpointStatus",
            "InService",
        )
        _say(f"   experiment Completed: {final.get('StatusReason', '')}")
        return experiment

    def traffic(self, requests: int) -> None:
        started = time.perf_counter()
        variants: dict[str, int] = {}
        for i in range(requests):
            # Paced, as live traffic is: flat out, this client, the server and both workers share
            # two cores, and the tail latencies the guardrail compares measure that contention.
            # One reading of the clock: checking it and then reading it again can go negative.
            wait_for = started + i / REQUESTS_PER_SECOND - time.perf_counter()
            if wait_for > 0:
                time.sleep(wait_for)
            row = self.rows[i % len(self.rows)]
            response = self.runtime.invoke_endpoint(
                EndpointName=self.endpoint,
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
        print(flush=True)
        elapsed = time.perf_counter() - started
        _say(f"   {requests} requests in {elapsed:.1f}s; answered by {variants}")

    def report(self, experiment: str, html: Path) -> int:
        parser = argparse.ArgumentParser()
        report.add_parser(parser.add_subparsers())
        args = parser.parse_args(
            [
                "report",
                experiment,
                "--endpoint-url",
                self.url,
                "--data-dir",
                str(self.data_dir),
                "--html",
                str(html),
                "--quiet",
            ]
        )
        text = io.StringIO()
        code = report.run(args, out=text)
        _say("   " + text.getvalue().rstrip().replace("\n", "\n   "))
        return code


def run(
    requests: int,
    data_dir: Path,
    separate_minutes: bool = True,
    max_p99_ratio: str = MAX_P99_RATIO,
) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    _say("1. Training a production model and two candidates, packaged as SageMaker model.tar.gz")
    models, rows = train_and_package(data_dir / "s3")
    for model in models:
        _say(f"   {model.name:<20} {model.kind:<24} held-out accuracy {model.accuracy:.3f}")
    port = _free_port(7070)
    _say(f"2. Starting shadowlab serve on 127.0.0.1:{port} (data dir {data_dir})")
    server = start_server(data_dir, port)
    try:
        suffix = time.strftime("%H%M%S")
        demo = Demo(f"http://127.0.0.1:{port}", data_dir, rows, suffix, max_p99_ratio)
        _say("3. Creating the models, an endpoint config and the endpoint with boto3")
        demo.create_endpoint(models)
        _say(f"   endpoint {demo.endpoint} is InService, answering from 'production'")
        step = 4
        for n, candidate in enumerate(models[1:]):
            if n and separate_minutes:
                # Metrics have SageMaker's one-minute resolution: start the next test in a new
                # minute so that its report does not count the previous test's traffic.
                pause = 60 - time.time() % 60 + 0.5
                _say(f"   (waiting {pause:.0f}s for a new minute: metrics are kept per minute)")
                time.sleep(pause)
            experiment = demo.shadow_test(step, candidate, requests)
            html = data_dir / f"report-{candidate.name}.html"
            _say(f"{step + 1}. shadowlab report {experiment}")
            demo.report(experiment, html)
            step += 2
        answer = demo.runtime.invoke_endpoint(
            EndpointName=demo.endpoint,
            ContentType="application/json",
            Body=json.dumps({"instances": [rows[0]]}),
        )
        _say(
            f"Done. The endpoint now answers from '{answer['InvokedProductionVariant']}'. "
            f"Server log: {data_dir / 'server.log'}"
        )
        demo.sm.delete_endpoint(EndpointName=demo.endpoint)
    finally:
        server.terminate()
        server.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shadowlab.demo")
    parser.add_argument("--requests", type=int, default=int(os.environ.get("DEMO_REQUESTS", 1500)))
    parser.add_argument("--data-dir", type=Path, default=Path(".shadowlab/demo"))
    parser.add_argument(
        "--no-minute-wait",
        action="store_true",
        help="start the second shadow test at once (its report then shares a minute of metrics)",
    )
    parser.add_argument(
        "--max-p99-ratio",
        default=MAX_P99_RATIO,
        help="the p99 guardrail's limit, shadow over production, or 'off' (default %(default)s)",
    )
    args = parser.parse_args(argv)
    run(
        args.requests,
        args.data_dir,
        separate_minutes=not args.no_minute_wait,
        max_p99_ratio=args.max_p99_ratio,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
