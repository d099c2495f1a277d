"""`GET /metrics` and `GET /shadowlab/metrics/query` on a real `shadowlab serve` with real workers.

Scraped over HTTP and parsed with prometheus_client's own text parser; the query answers from
the store, so the second test also restarts the server and finds the minutes it wrote.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

from tests.contract import hosting_helpers as h
from tests.contract.helpers import wait_for
from tests.serverproc import ServerProcess, signed_urlopen

# Sample and write metrics twice a second so the test need not wait for the 5 s default.
FAST = {"SHADOWLAB_METRICS_INTERVAL": "0.5"}


@pytest.fixture(scope="module")
def hosted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("metrics")
    proc = ServerProcess(data_dir=root / "data", hosting="process", extra_env=FAST).start()
    yield proc
    proc.stop()


def _deploy(server: ServerProcess, tmp_path: Path) -> str:
    """An endpoint whose production variant "prod" is copied to the shadow "candidate" (100%)."""
    sm = server.client()
    echo = h.register(sm, h.echo_model(server, tmp_path))
    shadow = h.register(sm, h.echo_model(server, tmp_path))
    return str(h.deploy(sm, [("prod", echo, 1.0, 1)], [("candidate", shadow, 1.0)])["endpoint"])


def _deploy_broken(server: ServerProcess, tmp_path: Path) -> str:
    """An endpoint whose only variant "broken" fails every prediction (a 500 from the model)."""
    sm = server.client()
    broken = h.register(sm, h.code_model(server, tmp_path, h.FAILING_PREDICT))
    return str(h.deploy(sm, [("broken", broken, 1.0, 1)])["endpoint"])


def _load(server: ServerProcess, endpoint: str, n: int) -> None:
    runtime = server.client("sagemaker-runtime")
    for i in range(n):
        runtime.invoke_endpoint(EndpointName=endpoint, Body=f"r{i}", ContentType="text/plain")


def _fail(server: ServerProcess, endpoint: str, n: int) -> None:
    runtime = server.client("sagemaker-runtime")
    for _ in range(n):
        with pytest.raises(ClientError) as caught:
            runtime.invoke_endpoint(EndpointName=endpoint, Body=b"x", ContentType="text/plain")
        assert caught.value.response["Error"]["Code"] == "ModelError"


def _scrape(server: ServerProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(server.url + "/metrics", timeout=5) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def _value(samples: dict[Any, float], name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def _query(server: ServerProcess, endpoint: str, **extra: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    params = {
        "endpoint": endpoint,
        "start": (now - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end": (now + timedelta(minutes=2)).isoformat(),  # "+00:00" arrives as " 00:00"
        **extra,
    }
    url = server.url + "/shadowlab/metrics/query?" + urllib.parse.urlencode(params)
    with signed_urlopen(url, timeout=10) as reply:
        return dict(json.loads(reply.read()))


def _routed(server: ServerProcess, endpoint: str) -> bool:
    with signed_urlopen(server.url + "/shadowlab/stats", timeout=5) as reply:
        rows = json.loads(reply.read())["instances"]
    return any(
        r["endpoint"] == endpoint and r["variant"] == "prod" and r["instances"] for r in rows
    )


def test_scrape_and_query_count_a_known_load_exactly(hosted: ServerProcess, tmp_path: Path) -> None:
    endpoint, failing = _deploy(hosted, tmp_path), _deploy_broken(hosted, tmp_path)
    _load(hosted, endpoint, 120)
    _fail(hosted, failing, 5)
    prod = {"region": "us-east-1", "endpoint": endpoint, "variant": "prod", "role": "production"}
    broken = {**prod, "endpoint": failing, "variant": "broken"}
    shadow = {"region": "us-east-1", "endpoint": endpoint, "variant": "candidate"}

    def settled(samples: dict[Any, float]) -> bool:
        # Latencies reach the sketches within a second; copies finish after their answers.
        done = _value(samples, "shadowlab_shadow_copies_in_flight", **shadow) == 0
        counted = _value(samples, "shadowlab_model_latency_seconds_count", **prod) == 120
        measured = _value(samples, "shadowlab_worker_cpu_utilization_percent", **prod)
        return done and counted and measured is not None

    samples = wait_for(lambda: _scrape(hosted), settled, timeout=20)
    assert _value(samples, "shadowlab_invocations_total", **prod) == 120
    assert _value(samples, "shadowlab_invocation_model_errors_total", **prod) == 0
    assert _value(samples, "shadowlab_invocations_total", **broken) == 5
    assert _value(samples, "shadowlab_invocation_5xx_errors_total", **broken) == 5
    assert _value(samples, "shadowlab_invocation_model_errors_total", **broken) == 5
    assert _value(samples, "shadowlab_shadow_eligible_requests_total", **shadow) == 120
    completed = _value(samples, "shadowlab_shadow_copies_total", **shadow, outcome="completed")
    sent = _value(samples, "shadowlab_invocations_total", **shadow, role="shadow")
    shed = _value(samples, "shadowlab_shadow_copies_total", **shadow, outcome="shed")
    # Admission may shed a copy or two while it learns the shadow (more on a loaded machine).
    assert completed == sent and sent is not None and shed is not None
    assert completed + shed == 120 and sent >= 100
    ratio = _value(samples, "shadowlab_shadow_effective_sampling_ratio", **shadow)
    assert ratio == pytest.approx(sent / 120)
    assert _value(samples, "shadowlab_model_latency_seconds_bucket", **prod, le="+Inf") == 120
    assert _value(samples, "shadowlab_overhead_latency_seconds_count", **prod) == 120
    memory = _value(samples, "shadowlab_worker_memory_utilization_percent", **prod)
    assert memory is not None and 0 < memory < 100
    assert _value(samples, "process_cpu_seconds_total") is not None  # the server's own

    answer = wait_for(
        lambda: _query(hosted, endpoint),
        lambda a: (
            a["variants"].get("prod", {}).get("Invocations") == 120
            and a["variants"]["prod"]["CPUUtilization"] is not None
            and a["variants"].get("candidate", {}).get("copies", {}).get("eligible") == 120
        ),
        timeout=20,
    )
    assert answer["endpoint"] == endpoint and answer["region"] == "us-east-1"
    assert set(answer["variants"]) == {"prod", "candidate"}
    prod_json = answer["variants"]["prod"]
    assert prod_json["role"] == "production" and prod_json["replicas"] == 1
    latency = prod_json["ModelLatency"]
    assert latency["count"] == 120 and 0 < latency["p50"] <= latency["p90"] <= latency["p99"]
    assert latency["sketch"]["count"] == 120
    assert prod_json["OverheadLatency"]["count"] == 120
    assert sum(m["Invocations"] for m in prod_json["minutes"]) == 120
    broken_json = _query(hosted, failing)["variants"]["broken"]
    assert broken_json["Invocations"] == 5
    assert broken_json["Invocation5XXErrors"] == broken_json["InvocationModelErrors"] == 5
    copies = answer["variants"]["candidate"]["copies"]
    assert copies["sent"] == sent and copies["completed"] == completed
    assert copies["effective_sampling_percentage"] == pytest.approx(100 * sent / 120, abs=0.01)


def test_query_rejects_bad_parameters(hosted: ServerProcess) -> None:
    for query, reason in (
        ("start=2026-01-01T00:00:00Z&end=2026-01-02T00:00:00Z", "endpoint is required"),
        ("endpoint=e&start=yesterday&end=2026-01-02T00:00:00Z", "not an ISO 8601 time"),
        ("endpoint=e&start=2026-01-02T00:00:00Z&end=2026-01-01T00:00:00Z", "after start"),
    ):
        with pytest.raises(urllib.error.HTTPError) as caught:
            signed_urlopen(f"{hosted.url}/shadowlab/metrics/query?{query}", timeout=5)
        assert caught.value.code == 400
        assert reason in json.loads(caught.value.read())["error"]


def test_a_restart_keeps_the_stored_minutes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = ServerProcess(data_dir=data, hosting="process", extra_env=FAST).start()
    try:
        endpoint = _deploy(first, tmp_path)
        _load(first, endpoint, 30)
        wait_for(
            lambda: _query(first, endpoint)["variants"].get("prod", {}).get("Invocations"),
            lambda n: n == 30,
        )
        _load(first, endpoint, 4)  # not written yet by the periodic flush: the stop writes it
    finally:
        first.stop()
    second = ServerProcess(data_dir=data, hosting="process", extra_env=FAST).start()
    try:
        assert _query(second, endpoint)["variants"]["prod"]["Invocations"] == 34
        # The new process starts the endpoint's workers again; route to them once they serve.
        wait_for(lambda: _routed(second, endpoint), lambda routed: routed, timeout=60)
        _load(second, endpoint, 6)
        answer = wait_for(
            lambda: _query(second, endpoint),
            lambda a: a["variants"]["prod"]["Invocations"] == 40,
        )
        # Each server process writes rows of its own; the query adds them up.
        assert answer["variants"]["prod"]["replicas"] == 2
        assert answer["variants"]["prod"]["ModelLatency"]["count"] == 40
    finally:
        second.stop()
