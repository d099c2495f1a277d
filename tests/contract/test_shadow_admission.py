"""A shadow slower than its offered load still gets a fair, usable sample (real server, real
workers, paced load through the public invocation route).

The shadow's model is ten times slower than production's and production is offered about three
times what the shadow can serve. The shadow must answer what its capacity allows, steadily,
with (almost) no timeouts, and its worker must not run copies nobody waits for any more.
"""

from __future__ import annotations

import http.client
import json
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.contract import hosting_helpers as h
from tests.contract.helpers import wait_for
from tests.serverproc import ServerProcess, sign, signed_urlopen

pytestmark = pytest.mark.serial  # a shadow's share of a paced load depends on CPU time

PRODUCTION_S, SHADOW_S = 0.002, 0.02
# Logs the body of every request it runs, so the test knows exactly which copies were served.
SLOW_LOGGING_INFERENCE = textwrap.dedent(
    f"""
    import os
    import time

    def model_fn(model_dir):
        return open(os.environ["SHADOW_LOG"], "ab", buffering=0)

    def transform_fn(log, data, content_type, accept):
        time.sleep({SHADOW_S})
        log.write(data + b"\\n")
        return b"shadow:" + data, "text/plain"
    """
)
FAST_INFERENCE = textwrap.dedent(
    f"""
    import time

    def model_fn(model_dir):
        return None

    def transform_fn(model, data, content_type, accept):
        time.sleep({PRODUCTION_S})
        return b"prod:" + data, "text/plain"
    """
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("admission")
    proc = ServerProcess(data_dir=root / "data", hosting="process").start()
    yield proc
    proc.stop()


def get_json(url: str) -> Any:
    with signed_urlopen(url, timeout=5) as reply:
        return json.loads(reply.read())


def rows(server: ServerProcess, endpoint: str) -> dict[str, dict[str, Any]]:
    data = get_json(server.url + "/shadowlab/stats")
    found = {r["variant"]: r for r in data["variants"] if r["endpoint"] == endpoint}
    found.update({r["shadow"]: r for r in data["shadows"] if r["endpoint"] == endpoint})
    found.update(
        {f"instances:{r['variant']}": r for r in data["instances"] if r["endpoint"] == endpoint}
    )
    return found


def paced_load(port: int, path: str, rate: float, duration_s: float, clients: int) -> list[int]:
    """`rate` requests/s for `duration_s`, spread over `clients` keep-alive connections.

    Request i is due at i / rate; each client takes every clients-th request, so the offered
    load stays paced even when one response is slow. Bodies are the request numbers."""
    total = int(rate * duration_s)
    statuses = [0] * total
    start = time.monotonic() + 0.1
    url = f"http://127.0.0.1:{port}{path}"

    def client(first: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            for i in range(first, total, clients):
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                body = b"%d" % i
                headers = sign("POST", url, body, {"Content-Type": "text/plain"})
                conn.request("POST", path, body=body, headers=headers)
                reply = conn.getresponse()
                reply.read()
                statuses[i] = reply.status
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def shadow_capacity(address: str, seconds: float = 2.0) -> float:
    """Answers per second of the shadow's worker alone, measured with two callers."""
    host, port = address.removeprefix("http://").split(":")
    done = [0, 0]
    until = time.monotonic() + seconds

    def caller(k: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            while time.monotonic() < until:
                conn.request("POST", "/invocations", body=b"capacity")
                conn.getresponse().read()
                done[k] += 1
        finally:
            conn.close()

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / seconds


def test_a_ten_times_slower_shadow_gets_its_capacity_steadily_without_timeouts(
    server: ServerProcess, tmp_path: Path
) -> None:
    sm = server.client()
    log_path = tmp_path / "shadow-ran.log"
    production = h.register(sm, h.code_model(server, tmp_path, FAST_INFERENCE))
    shadow = h.register(
        sm, h.code_model(server, tmp_path, SLOW_LOGGING_INFERENCE), {"SHADOW_LOG": str(log_path)}
    )
    endpoint = h.deploy(sm, [("prod", production, 1.0, 1)], [("shadow", shadow, 1.0)])["endpoint"]
    (worker,) = rows(server, endpoint)["instances:shadow"]["instances"]
    capacity = shadow_capacity(worker)
    log_path.write_bytes(b"")  # forget the capacity probe's own requests
    before = get_json(worker + "/shadowlab/worker")

    rate, duration_s = 3 * capacity, 9.0
    statuses = paced_load(
        server.port, f"/endpoints/{endpoint}/invocations", rate, duration_s, clients=4
    )
    total = len(statuses)

    counters = wait_for(
        lambda: rows(server, endpoint), lambda r: r["shadow"]["in_flight"] == 0, timeout=15
    )
    copies = counters["shadow"]
    after = get_json(worker + "/shadowlab/worker")
    ran = [int(line) for line in log_path.read_bytes().split()]
    summary = {"capacity": capacity, "copies": copies, "worker": after, "total": total}

    # Production: every request answered, none failed.
    assert statuses == [200] * total
    assert counters["prod"]["model_errors"] == counters["prod"]["unavailable"] == 0
    # Every copy is accounted for: the whole 100% sample, nothing silent.
    assert copies["sampled"] == total
    settled = sum(copies[k] for k in ("completed", "errors", "timeouts", "shed", "dropped"))
    assert settled == total and copies["errors"] == copies["dropped"] == 0, summary
    # The shadow answered at least 90% of what its capacity allows over the load ...
    assert copies["completed"] >= 0.9 * capacity * duration_s, summary
    # ... with timeouts under 1% of copies ...
    assert copies["timeouts"] < 0.01 * total, summary
    # ... and its worker ran nothing whose answer was not waited for: every run was a completed
    # copy, and none finished after its deadline.
    assert after["ran"] - before["ran"] == copies["completed"] == len(ran), summary
    assert after["late"] == before["late"], summary
    # The admitted share does not decay: the last third within 10% of the first.
    first = sum(1 for i in ran if i < total // 3)
    last = sum(1 for i in ran if i >= total - total // 3)
    assert abs(last - first) <= 0.1 * first, (first, last, summary)
    # The effective sampling rate is reported, and it is the share that was sent.
    assert copies["effective_sampling_percentage"] == pytest.approx(
        100 * copies["sent"] / copies["eligible"], abs=0.01
    )
    assert sum(m["eligible"] for m in copies["per_minute"]) == copies["eligible"]
    assert 1 <= copies["limit"] <= 16, summary


def test_the_admission_cap_is_configurable(tmp_path: Path) -> None:
    proc = ServerProcess(
        data_dir=tmp_path / "data",
        hosting="process",
        extra_env={"SHADOWLAB_MIRROR_MAX_IN_FLIGHT": "2"},
    ).start()
    try:
        sm = proc.client()
        production = h.register(sm, h.code_model(proc, tmp_path, FAST_INFERENCE))
        shadow = h.register(
            sm,
            h.code_model(proc, tmp_path, SLOW_LOGGING_INFERENCE),
            {"SHADOW_LOG": str(tmp_path / "ran.log")},
        )
        endpoint = h.deploy(sm, [("prod", production, 1.0, 1)], [("shadow", shadow, 1.0)])
        path = f"/endpoints/{endpoint['endpoint']}/invocations"
        assert paced_load(proc.port, path, 200.0, 1.0, clients=4) == [200] * 200
        copies = wait_for(
            lambda: rows(proc, endpoint["endpoint"])["shadow"],
            lambda r: r["in_flight"] == 0,
            timeout=15,
        )
        assert copies["limit"] <= 2 and copies["shed"] > 0, copies
        assert copies["completed"] + copies["shed"] == 200, copies
    finally:
        proc.stop()
