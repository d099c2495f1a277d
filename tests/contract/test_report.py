"""Comparing a shadow test through the public interface: `shadowlab report` (terminal, JSON,
HTML), the server's comparison route, and the guardrails set by tags, on real workers whose
answers disagree in a known share of requests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.contract import hosting_helpers as h
from tests.contract.helpers import checked
from tests.serverproc import CREDENTIALS, ServerProcess, signed_urlopen

# {"x": n} in, {"labels": [n % 2]} out; the candidate flips the label of every tenth request.
LABELLER = textwrap.dedent(
    """
    import json
    import os

    def model_fn(model_dir):
        return int(os.environ.get("FLIP_EVERY", "0"))

    def transform_fn(flip_every, data, content_type, accept):
        n = json.loads(data)["x"]
        label = n % 2
        if flip_every and n % flip_every == 0:
            label = 1 - label
        return json.dumps({"labels": [label], "n": n}), "application/json"
    """
)
N = 200


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("report")
    env = {"SHADOWLAB_CAPTURE_FILE_SECONDS": "60", "SHADOWLAB_METRICS_INTERVAL": "60"}
    proc = ServerProcess(data_dir=root / "data", hosting="process", extra_env=env)
    yield proc.start()
    proc.stop()


def run_report(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "shadowlab", "report", *args]
    command += ["--endpoint-url", server.url, "--data-dir", str(server.data_dir)]
    env = {**os.environ, **CREDENTIALS}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


def experiment_with_traffic(
    server: ServerProcess, tmp_path: Path, tags: list[dict[str, str]]
) -> str:
    sm, runtime = server.client(), server.client("sagemaker-runtime")
    code = h.code_model(server, tmp_path, LABELLER)
    production = h.register(sm, code)
    candidate = h.register(sm, code, {"FLIP_EVERY": "10"})
    storage = {
        "Destination": "s3://reports/tests",
        "ContentType": {"JsonContentTypes": ["application/json"]},
    }
    endpoint, name = h.shadow_experiment(sm, production, candidate, storage, tags)
    for n in range(N):
        runtime.invoke_endpoint(
            EndpointName=endpoint, ContentType="application/json", Body=json.dumps({"x": n})
        )
    return name


def test_report_json_html_and_route_agree_on_a_known_disagreement(
    server: ServerProcess, tmp_path: Path
) -> None:
    tags = [
        {"Key": "shadowlab:selector", "Value": "labels"},
        {"Key": "shadowlab:min-pairs", "Value": "50"},
        {"Key": "shadowlab:max-p99-ratio", "Value": "off"},
    ]
    name = experiment_with_traffic(server, tmp_path, tags)
    html = tmp_path / "report.html"
    result = run_report(server, name, "--json", str(tmp_path / "report.json"), "--html", str(html))
    # Captures are still in open files (60 s) and metrics unflushed (60 s): the report asks the
    # server to store both first, so it sees every request.
    assert result.returncode == 1, result.stdout + result.stderr  # 1: the verdict is fail
    assert "VERDICT: FAIL" in result.stdout
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["verdict"]["status"] == "fail"
    (agreement,) = data["agreements"]
    assert agreement["pairs"] == N
    assert agreement["comparedPairs"] == agreement["values"] == N
    assert agreement["agreeingValues"] == N - N // 10  # every tenth label flipped
    failed = [g for g in data["verdict"]["guardrails"] if g["status"] == "fail"]
    assert [g["name"] for g in failed] == ["agreement"]
    assert {g["name"] for g in data["verdict"]["guardrails"]} == {
        "pairs",
        "error rate",
        "agreement",
    }  # the p99 guardrail is off by tag
    production = next(v for v in data["variants"] if v["role"] == "production")
    assert production["invocations"] == N
    page = html.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page

    # The server's route gives the same data.
    with signed_urlopen(
        f"{server.url}/shadowlab/experiments/{name}/comparison", timeout=60
    ) as reply:
        routed = json.loads(reply.read())
    assert routed["verdict"]["status"] == "fail"
    assert routed["agreements"][0]["agreeingValues"] == N - N // 10


def test_errors_are_clear(server: ServerProcess, tmp_path: Path) -> None:
    missing = run_report(server, "no-such-experiment")
    assert missing.returncode == 2
    assert "ResourceNotFound" in missing.stderr and "no-such-experiment" in missing.stderr
    with pytest.raises(urllib.error.HTTPError) as caught:
        signed_urlopen(f"{server.url}/shadowlab/experiments/nope/comparison", timeout=30)
    assert caught.value.code == 404
    assert json.loads(caught.value.read())["code"] == "ResourceNotFound"

    name = experiment_with_traffic(
        server, tmp_path, [{"Key": "shadowlab:min-agreement", "Value": "most"}]
    )
    bad_tag = run_report(server, name)
    assert bad_tag.returncode == 2
    assert "tag shadowlab:min-agreement='most' is not a valid float" in bad_tag.stderr
    sm = server.client()
    arn = checked(sm, "DescribeInferenceExperiment", Name=name)["Arn"]
    checked(sm, "DeleteTags", ResourceArn=arn, TagKeys=["shadowlab:min-agreement"])
    bad_selector = run_report(server, name, "--selector", "labels[")
    assert bad_selector.returncode == 2 and "selector" in bad_selector.stderr


def test_capture_sync_route(server: ServerProcess) -> None:
    with signed_urlopen(f"{server.url}/shadowlab/capture/sync", method="POST", timeout=60) as reply:
        assert json.loads(reply.read()) == {"complete": True}
