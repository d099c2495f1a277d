"""shadowlab under test: `shadowlab serve`, six endpoints over the benchmark's model servers.

The endpoints are wired with boto3 exactly as a user would, each variant's container naming an
already-running model server (`SHADOWLAB_UPSTREAM_URL`), so no worker process is started and
shadowlab and nginx forward to the very same servers:
- `bench-plain`: production only;
- `bench-fast`: production plus a shadow at 100% sampling to the fast shadow server;
- `bench-slow`: the same with the 20 ms shadow;
- `bench-serial`: the same with the serial shadow (one request at a time, 1 ms each);
- `bench-plain-capture`, `bench-fast-capture`: `bench-plain` and `bench-fast` with the endpoint
  config's `DataCaptureConfig` capturing 100% (production and shadow records alike).
A shadow's sampling share is its weight over the production weight, so equal weights mean 100%.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from processes import Supervisor, free_port

ROLE = "arn:aws:iam::000000000000:role/bench"
# The key pair the server accepts: the setup's boto3 client and the signed row sign with it.
ACCESS_KEY, SECRET_KEY, REGION = "bench", "bench-secret", "us-east-1"
INSTANCE = "ml.m5.large"


def start_shadowlab(
    supervisor: Supervisor,
    data_dir: str,
    *,
    cpus: str | None,
    env: dict[str, str],
    wrapper: Sequence[str] = (),
    start_timeout_s: float = 30.0,
) -> tuple[subprocess.Popen[bytes], int]:
    """`shadowlab serve`; the environment passes through (SHADOWLAB_MIRROR_*), plus `env`.
    `wrapper`: a command it runs under (valgrind, say)."""
    port = free_port()
    argv = [*wrapper, sys.executable, "-m", "shadowlab", "serve"]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    argv += ["--data-dir", data_dir, "--hosting", "process", "--log-level", "warning"]
    # Most rows send unsigned requests (wrk); the signed row's are verified against the file.
    credentials = Path(data_dir) / "credentials"
    credentials.parent.mkdir(parents=True, exist_ok=True)
    credentials.write_text(
        f"[bench]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
    )
    argv += ["--credentials-file", str(credentials), "--allow-unsigned"]
    proc = supervisor.start("shadowlab", argv, cpus=cpus, env=env, port=port)
    try:
        _wait_healthy(port, start_timeout_s)
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
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )


def _variant(name: str, model: str) -> dict[str, Any]:
    return {
        "VariantName": name,
        "ModelName": model,
        "InitialInstanceCount": 1,
        "InstanceType": INSTANCE,
        "InitialVariantWeight": 1.0,  # equal to production's: a shadow then gets 100%
    }


def create_endpoints(
    port: int,
    *,
    production: int,
    shadows: dict[str, int],
    captured: Sequence[str | None] = (),
    capture_config: Mapping[str, Any] | None = None,
) -> None:
    """Create `bench-plain`, and `bench-<name>` for each shadow model server `name` -> port;
    for each of `captured` (None: no shadow, or a shadow's name) the same endpoint again as
    `bench-...-capture` with `capture_config` as its `DataCaptureConfig`. Wait until all are
    InService."""
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
    # endpoint -> (shadow, captures)
    endpoints: dict[str, tuple[str | None, bool]] = {"bench-plain": (None, False)}
    endpoints.update({f"bench-{name}": (name, False) for name in shadows})
    if captured and capture_config is None:
        raise ValueError("captured endpoints need a capture_config")
    for shadow in captured:
        endpoints[f"bench-{shadow or 'plain'}-capture"] = (shadow, True)
    for endpoint, (shadow, captures) in endpoints.items():
        config: dict[str, Any] = {
            "EndpointConfigName": endpoint,
            "ProductionVariants": [_variant("production", "prod")],
        }
        if shadow is not None:
            config["ShadowProductionVariants"] = [_variant("shadow", shadow)]
        if captures and capture_config is not None:
            config["DataCaptureConfig"] = dict(capture_config)
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


def signed_headers(url: str, body: str, headers: Mapping[str, str]) -> dict[str, str]:
    """The SigV4 headers boto3 would send for this POST (valid for the server's clock skew
    allowance, 15 minutes: sign right before the row runs)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method="POST", url=url, data=body.encode(), headers=dict(headers))
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "sagemaker", REGION).add_auth(request)
    return {name: value for name, value in request.headers.items() if name not in headers}


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


def capture_counters(snapshot: dict[str, Any]) -> dict[str, int]:
    """The capture writer's counters (one writer for all endpoints): records captured, written,
    dropped (and why), shed copies counted, records still queued ..."""
    capture = snapshot.get("capture") or {}
    return {k: v for k, v in capture.items() if isinstance(v, int)}


def invocations(snapshot: dict[str, Any], endpoint: str) -> int:
    return sum(r["invocations"] for r in snapshot.get("variants", []) if r["endpoint"] == endpoint)
