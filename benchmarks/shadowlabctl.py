"""shadowlab under test: `shadowlab serve`, four endpoints over the benchmark's model servers.

The endpoints are wired with boto3 exactly as a user would, each variant's container naming an
already-running model server (`SHADOWLAB_UPSTREAM_URL`), so no worker process is started and
shadowlab and nginx forward to the very same servers:
- `bench-plain`: production only;
- `bench-fast`: production plus a shadow at 100% sampling to the fast shadow server;
- `bench-slow`: the same with the 20 ms shadow;
- `bench-serial`: the same with the serial shadow (one request at a time, 1 ms each).
A shadow's sampling share is its weight over the production weight, so equal weights mean 100%.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from typing import Any

from processes import Supervisor, free_port

ROLE = "arn:aws:iam::000000000000:role/bench"
INSTANCE = "ml.m5.large"


def start_shadowlab(
    supervisor: Supervisor, data_dir: str, *, cpus: str | None, env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], int]:
    """`shadowlab serve`; the environment passes through (SHADOWLAB_MIRROR_*), plus `env`."""
    port = free_port()
    argv = [sys.executable, "-m", "shadowlab", "serve", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--data-dir", data_dir, "--hosting", "process", "--log-level", "warning"]
    proc = supervisor.start("shadowlab", argv, cpus=cpus, env=env, port=port)
    try:
        _wait_healthy(port)
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}; see {supervisor.log_path('shadowlab')}") from None
    return proc, port


def _wait_healthy(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"shadowlab on port {port} not healthy within {timeout_s:g}s")


def _client(port: int) -> Any:
    import boto3  # imported here: it takes a while and only the setup needs it

    return boto3.client(
        "sagemaker",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )


def _variant(name: str, model: str) -> dict[str, Any]:
    return {
        "VariantName": name,
        "ModelName": model,
        "InitialInstanceCount": 1,
        "InstanceType": INSTANCE,
        "InitialVariantWeight": 1.0,  # equal to production's: a shadow then gets 100%
    }


def create_endpoints(port: int, *, production: int, shadows: dict[str, int]) -> None:
    """Create `bench-plain`, and `bench-<name>` for each shadow model server `name` -> port;
    wait until all are InService."""
    sm = _client(port)
    for model, upstream in (("prod", production), *shadows.items()):
        sm.create_model(
            ModelName=model,
            ExecutionRoleArn=ROLE,
            PrimaryContainer={
                "Image": "external",
                "Environment": {"SHADOWLAB_UPSTREAM_URL": f"http://127.0.0.1:{upstream}"},
            },
        )
    endpoints: dict[str, str | None] = {"bench-plain": None}
    endpoints.update({f"bench-{name}": name for name in shadows})
    for endpoint, shadow in endpoints.items():
        config: dict[str, Any] = {
            "EndpointConfigName": endpoint,
            "ProductionVariants": [_variant("production", "prod")],
        }
        if shadow is not None:
            config["ShadowProductionVariants"] = [_variant("shadow", shadow)]
        sm.create_endpoint_config(**config)
        sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=endpoint)
    deadline = time.monotonic() + 60
    pending = set(endpoints)
    while pending:
        for endpoint in sorted(pending):
            described = sm.describe_endpoint(EndpointName=endpoint)
            status = described["EndpointStatus"]
            if status == "InService":
                pending.discard(endpoint)
            elif status == "Failed":
                raise RuntimeError(f"{endpoint} failed: {described.get('FailureReason')}")
        if pending and time.monotonic() > deadline:
            raise RuntimeError(f"endpoints not InService within 60s: {sorted(pending)}")
        time.sleep(0.1)


def stats(port: int) -> dict[str, Any]:
    """`GET /shadowlab/stats`: counters since start per production variant and per shadow."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/shadowlab/stats", timeout=5) as r:
        data: dict[str, Any] = json.load(r)
    return data


def shadow_counters(snapshot: dict[str, Any], endpoint: str) -> dict[str, int]:
    for row in snapshot.get("shadows", []):
        if row["endpoint"] == endpoint:
            return {k: v for k, v in row.items() if isinstance(v, int)}
    return {}


def invocations(snapshot: dict[str, Any], endpoint: str) -> int:
    return sum(r["invocations"] for r in snapshot.get("variants", []) if r["endpoint"] == endpoint)
