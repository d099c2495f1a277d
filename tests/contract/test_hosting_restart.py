"""Process hosting across a crash and a clean shutdown of the server itself."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from tests.contract import hosting_helpers as h
from tests.contract.helpers import checked, wait_for
from tests.serverproc import ServerProcess


def _worker_pids(data_dir: Path) -> set[int]:
    """Worker processes serving models from this server's data dir."""
    out = subprocess.run(
        ["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True, check=True
    )
    return {
        int(line.split(None, 1)[0])
        for line in out.stdout.splitlines()
        if "shadowlab.hosting.worker" in line and str(data_dir) in line
    }


def _answer(runtime: Any, endpoint: str) -> bytes | None:
    try:
        response = runtime.invoke_endpoint(
            EndpointName=endpoint, Body=b"ping", ContentType="application/octet-stream"
        )
    except ClientError:
        return None
    body: bytes = response["Body"].read()
    return body


def test_sigkill_restart_brings_workers_back_and_sigterm_stops_them(tmp_path: Path) -> None:
    server = ServerProcess(data_dir=tmp_path / "data", hosting="process").start()
    try:
        sm = server.client()
        model = h.register(sm, h.echo_model(server, tmp_path))
        endpoint = h.deploy(sm, [("AllTraffic", model, 1.0, 2)])["endpoint"]
        assert (_answer(server.client("sagemaker-runtime"), endpoint) or b"").endswith(b"ping")
        first = _worker_pids(server.data_dir)
        assert len(first) == 2

        server.kill()
        # Workers notice that their parent died and exit instead of holding ports.
        wait_for(lambda: _worker_pids(server.data_dir) & first, lambda left: not left, 20)

        server.start()
        runtime = server.client("sagemaker-runtime")
        wait_for(lambda: _answer(runtime, endpoint), lambda body: body is not None, 60)
        assert checked(sm, "DescribeEndpoint", EndpointName=endpoint)["EndpointStatus"] == (
            "InService"
        )
        second = wait_for(lambda: _worker_pids(server.data_dir), lambda p: len(p) == 2, 30)
        assert not second & first
    finally:
        code = server.stop()
    assert code == 0
    wait_for(lambda: _worker_pids(server.data_dir), lambda left: not left, 20)
