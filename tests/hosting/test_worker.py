"""The worker process over real HTTP: the container contract, keep-alive, pipelining, limits."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from shadowlab.hosting.artifacts import prepare_model_dir
from tests.hosting.modelfiles import (
    ECHO_INFERENCE,
    FAILING_INFERENCE,
    RECORDING_INFERENCE,
    code_only_model_dir,
    iris_model_dir,
    make_tar,
    ran_bodies,
    request,
    running_worker,
    worker_counters,
)

SETOSA = [5.1, 3.5, 1.4, 0.2]
VIRGINICA = [7.7, 3.0, 6.1, 2.3]

Answer = tuple[int, dict[str, str], bytes]


@pytest.fixture(scope="module")
def iris_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A worker serving a model.tar.gz with code/inference.py, prepared as hosting would."""
    root = tmp_path_factory.mktemp("iris")
    archive = make_tar(iris_model_dir(root / "src"), root / "store" / "m" / "model.tar.gz")
    model_dir = prepare_model_dir("s3://m/model.tar.gz", root / "model", root / "store")
    with running_worker(model_dir, root) as (_, ready):
        assert archive.exists()
        yield int(ready["port"])  # type: ignore[call-overload]


@pytest.fixture(scope="module")
def default_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A worker serving a bare model.joblib: the default handlers."""
    root = tmp_path_factory.mktemp("default")
    model_dir = iris_model_dir(root / "model", with_code=False)
    with running_worker(model_dir, root, {}, "--max-body-bytes", "100000") as (_, ready):
        yield int(ready["port"])  # type: ignore[call-overload]


@pytest.fixture(scope="module")
def echo_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    root = tmp_path_factory.mktemp("echo")
    model_dir = code_only_model_dir(root / "model", ECHO_INFERENCE)
    with running_worker(model_dir, root) as (_, ready):
        yield int(ready["port"])  # type: ignore[call-overload]


def test_ping_and_invocations_with_user_code(iris_port: int) -> None:
    assert request(iris_port, "GET", "/ping")[::2] == (200, b"")
    body = json.dumps({"features": [SETOSA, VIRGINICA]}).encode()
    status, headers, answer = request(
        iris_port,
        "POST",
        "/invocations",
        body,
        {"Content-Type": "application/json", "X-Amzn-SageMaker-Custom-Attributes": "a=1"},
    )
    assert status == 200, answer
    assert headers["Content-Type"] == "application/json"
    assert json.loads(answer)["predictions"] == ["setosa", "virginica"]
    # The model answered with its own custom attributes through the context.
    assert headers["X-Amzn-SageMaker-Custom-Attributes"] == "seen=a=1"


def test_model_errors_keep_their_status_and_text(iris_port: int) -> None:
    status, _, answer = request(
        iris_port, "POST", "/invocations", b"1,2,3,4", {"Content-Type": "text/csv"}
    )
    assert status == 500
    error = json.loads(answer)
    assert error["code"] == 500 and "unsupported content type text/csv" in error["message"]


def test_default_handlers_over_http(default_port: int) -> None:
    csv = f"{','.join(map(str, SETOSA))}\n{','.join(map(str, VIRGINICA))}".encode()
    status, headers, answer = request(
        default_port, "POST", "/invocations", csv, {"Content-Type": "text/csv"}
    )
    assert (status, headers["Content-Type"]) == (200, "application/json")
    assert json.loads(answer) == [0, 2]

    body = json.dumps({"instances": [VIRGINICA, SETOSA]}).encode()
    headers_in = {"Content-Type": "application/json", "Accept": "text/csv"}
    status, headers, answer = request(default_port, "POST", "/invocations", body, headers_in)
    assert (status, headers["Content-Type"], answer) == (200, "text/csv", b"2\n0\n")

    buffer = io.BytesIO()
    np.save(buffer, np.array([SETOSA, VIRGINICA]))
    npy = {"Content-Type": "application/x-npy", "Accept": "application/x-npy"}
    status, headers, answer = request(default_port, "POST", "/invocations", buffer.getvalue(), npy)
    assert (status, headers["Content-Type"]) == (200, "application/x-npy")
    assert np.load(io.BytesIO(answer)).tolist() == [0, 2]

    # No model code sets custom attributes here: the caller's come back unchanged.
    attrs = {"Content-Type": "text/csv", "X-Amzn-SageMaker-Custom-Attributes": "k=v; x"}
    _, headers, _ = request(default_port, "POST", "/invocations", csv, attrs)
    assert headers["X-Amzn-SageMaker-Custom-Attributes"] == "k=v; x"

    status, _, answer = request(
        default_port, "POST", "/invocations", b"x", {"Content-Type": "image/png"}
    )
    assert status == 415 and b"image/png" in answer


def test_routing_errors(default_port: int) -> None:
    assert request(default_port, "GET", "/invocations")[0] == 405
    assert request(default_port, "GET", "/nope")[0] == 404
    assert request(default_port, "POST", "/ping", b"")[0] == 405
    with socket.create_connection(("127.0.0.1", default_port)) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        [answer] = _read_responses(sock, 1)
        assert answer.startswith(b"HTTP/1.1 400 Bad Request ") and b"malformed" in answer


def test_oversized_bodies_get_413(default_port: int) -> None:
    status, headers, answer = request(
        default_port, "POST", "/invocations", b"1" * 100_001, {"Content-Type": "text/csv"}
    )
    assert status == 413 and headers.get("Connection") == "close"
    assert b"exceeds 100000 bytes" in answer
    # The worker is unharmed.
    assert request(default_port, "GET", "/ping")[0] == 200


def _read_responses(sock: socket.socket, count: int) -> list[bytes]:
    """Read `count` responses (each with Content-Length) from a raw socket."""
    data, bodies = b"", list[bytes]()
    sock.settimeout(10)
    while len(bodies) < count:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, "connection closed early"
            data += chunk
        head, _, data = data.partition(b"\r\n\r\n")
        length = int(
            next(
                line.split(b":")[1]
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
        )
        while len(data) < length:
            data += sock.recv(65536)
        bodies.append(head.split(b"\r\n")[0] + b" " + data[:length])
        data = data[length:]
    return bodies


def test_keep_alive_and_pipelining_answer_in_order(echo_port: int) -> None:
    def post(body: bytes) -> bytes:
        return (
            b"POST /invocations HTTP/1.1\r\nHost: w\r\nContent-Type: text/plain\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )

    with socket.create_connection(("127.0.0.1", echo_port)) as sock:
        # One write with five requests, a ping among them, sent in two odd-sized pieces.
        burst = post(b"one") + post(b"two") + b"GET /ping HTTP/1.1\r\nHost: w\r\n\r\n"
        burst += post(b"three") + post(b"sleep 0.01")
        sock.sendall(burst[:37])
        time.sleep(0.01)
        sock.sendall(burst[37:])
        answers = _read_responses(sock, 5)
        # And the same connection keeps serving.
        sock.sendall(post(b"four"))
        answers += _read_responses(sock, 1)
    texts = [a.decode() for a in answers]
    assert texts[0].startswith("HTTP/1.1 200 OK pid=") and texts[0].endswith("body=one")
    assert texts[1].endswith("body=two")
    assert texts[2] == "HTTP/1.1 200 OK "
    assert texts[3].endswith("body=three")
    assert texts[4].endswith("body=sleep 0.01")
    assert texts[5].endswith("body=four")


def test_ping_answers_while_a_slow_prediction_runs(echo_port: int) -> None:
    headers = {"Content-Type": "text/plain"}
    # A first slow-ish prediction teaches the worker that this model is slow ...
    assert request(echo_port, "POST", "/invocations", b"sleep 0.05", headers)[0] == 200
    # ... so the next long one runs off the event loop and /ping stays quick.
    results: list[int] = []
    slow = threading.Thread(
        target=lambda: results.append(
            request(echo_port, "POST", "/invocations", b"sleep 1.0", headers)[0]
        )
    )
    slow.start()
    try:
        time.sleep(0.2)
        started = time.monotonic()
        assert request(echo_port, "GET", "/ping")[0] == 200
        assert time.monotonic() - started < 0.5
    finally:
        slow.join(10)
    assert results == [200]


def test_load_failure_is_reported_and_exits_nonzero(tmp_path: Path) -> None:
    model_dir = code_only_model_dir(tmp_path / "model", FAILING_INFERENCE)
    with running_worker(model_dir, tmp_path) as (proc, ready):
        assert proc.wait(timeout=10) == 3
    message = "model_fn failed: RuntimeError: weights are corrupt: checksum mismatch"
    assert ready == {"error": message}
    assert "weights are corrupt" in (tmp_path / "worker.log").read_text()


def test_sigterm_stops_cleanly(tmp_path: Path) -> None:
    model_dir = code_only_model_dir(tmp_path / "model", ECHO_INFERENCE)
    with running_worker(model_dir, tmp_path, {"SHADOWLAB_WORKER_LOG_LEVEL": "INFO"}) as (
        proc,
        ready,
    ):
        port = int(ready["port"])  # type: ignore[call-overload]
        assert request(port, "GET", "/ping")[0] == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    assert "stopped" in (tmp_path / "worker.log").read_text()


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")  # exited; a zombie waits for a reaper that is not us


def test_worker_exits_when_its_parent_dies(tmp_path: Path) -> None:
    model_dir = code_only_model_dir(tmp_path / "model", ECHO_INFERENCE)
    ready = tmp_path / "ready.json"
    parent_code = (
        "import subprocess, sys, time\n"
        "worker = subprocess.Popen([sys.executable, '-m', 'shadowlab.hosting.worker',\n"
        f"    '--model-dir', {str(model_dir)!r}, '--port', '0', '--ready-file', {str(ready)!r}])\n"
        "print(worker.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        worker_pid = int(parent.stdout.readline())
        deadline = time.monotonic() + 20
        while not ready.exists():
            assert time.monotonic() < deadline, "worker did not start"
            time.sleep(0.02)
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
    deadline = time.monotonic() + 5
    while not _gone(worker_pid):
        if time.monotonic() > deadline:
            os.kill(worker_pid, signal.SIGKILL)
            raise AssertionError("the orphaned worker kept running")
        time.sleep(0.05)


# -- the bounded queue, deadlines, clients that leave, counters -----------------------------------

TEXT = {"Content-Type": "text/plain"}
SETTLED_KEYS = {"received", "ran", "rejected", "expired", "abandoned", "late", "queued", "pid"}


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not reached within {timeout}s"
        time.sleep(0.005)


def _invoke(port: int, body: bytes, headers: dict[str, str] | None = None) -> Answer:
    return request(port, "POST", "/invocations", body, {**TEXT, **(headers or {})})


def _assert_settled(port: int, **expected: int) -> dict[str, int]:
    """Counters of an idle worker: nothing queued, every invocation accounted for once."""
    counters = worker_counters(port)
    assert set(counters) == SETTLED_KEYS, counters
    assert counters["queued"] == 0, counters
    outcomes = ("ran", "rejected", "expired", "abandoned")
    assert counters["received"] == sum(counters[name] for name in outcomes), counters
    assert {name: counters[name] for name in expected} == expected, counters
    return counters


@contextmanager
def _recording_worker(
    tmp_path: Path, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """A RECORDING_INFERENCE worker that has run one slow prediction, so the next ones go to its
    prediction thread (and queue there) instead of running inline."""
    record = tmp_path / "record"
    record.mkdir()
    model_dir = code_only_model_dir(tmp_path / "model", RECORDING_INFERENCE)
    with running_worker(model_dir, tmp_path, {"RECORD_DIR": str(record), **(env or {})}) as (
        proc,
        ready,
    ):
        port = int(ready["port"])  # type: ignore[call-overload]
        status, _, answer = _invoke(port, b"sleep 0.02")
        assert (status, answer) == (200, b"ran sleep 0.02")
        try:
            yield proc, port, record
        finally:
            (record / "release-all").touch()  # a failed test leaves no prediction held


def test_worker_counters_endpoint(tmp_path: Path) -> None:
    model_dir = code_only_model_dir(tmp_path / "model", ECHO_INFERENCE)
    env = {"SHADOWLAB_WORKER_MAX_QUEUE": "abc"}  # not a count: the default applies
    with running_worker(model_dir, tmp_path, env) as (proc, ready):
        port = int(ready["port"])  # type: ignore[call-overload]
        counters = _assert_settled(port, received=0, ran=0, late=0)
        assert counters["pid"] == proc.pid
        # Fast predictions run inline; pings and errors of routing are not invocations.
        for body in (b"a", b"b", b"c"):
            assert _invoke(port, body)[0] == 200
        assert request(port, "GET", "/ping")[0] == 200
        assert request(port, "GET", "/invocations")[0] == 405
        _assert_settled(port, received=3, ran=3, rejected=0, expired=0, abandoned=0, late=0)
    assert "ignoring SHADOWLAB_WORKER_MAX_QUEUE='abc'" in (tmp_path / "worker.log").read_text()


def test_full_queue_is_refused_at_once_with_503(tmp_path: Path) -> None:
    with (
        ThreadPoolExecutor(6) as pool,
        _recording_worker(tmp_path, {"SHADOWLAB_WORKER_MAX_QUEUE": "2"}) as (_, port, record),
    ):
        # Six at once, on six connections. Each blocks its prediction until the gate file
        # exists, so the first to arrive holds the thread, the second waits behind it, and the
        # queue (2) is full for the other four, whatever order they arrive in.
        bodies = [b"wait gate %d" % i for i in range(6)]
        sent = {pool.submit(_invoke, port, body): body for body in bodies}
        _wait_for(lambda: sum(future.done() for future in sent) == 4, "four refusals")
        # All four were answered while the model was still held: refused at once, not queued.
        assert len(ran_bodies(record)) == 2  # the warm-up and the one holding the thread
        counters = worker_counters(port)
        assert (counters["received"], counters["rejected"]) == (7, 4)
        accepted = [body for future, body in sent.items() if not future.done()]
        for future in [future for future in sent if future.done()]:
            status, headers, answer = future.result()
            assert status == 503 and headers["X-Shadowlab-Shed"] == "queue-full"
            assert headers["Content-Type"] == "application/json"
            error = json.loads(answer)
            assert error["code"] == 503 and "queue is full" in error["message"], error
        (record / "gate").touch()
        answers = {sent_body: future.result(10) for future, sent_body in sent.items()}
        for body in accepted:
            assert answers[body][::2] == (200, b"ran " + body)
        ran = ran_bodies(record)
        assert ran[0] == b"sleep 0.02" and sorted(ran[1:]) == sorted(accepted)
        _assert_settled(port, received=7, ran=3, rejected=4, expired=0, abandoned=0, late=0)


def test_requests_whose_deadline_passed_in_the_queue_are_not_run(tmp_path: Path) -> None:
    with ThreadPoolExecutor(4) as pool, _recording_worker(tmp_path) as (_, port, record):
        holder = pool.submit(_invoke, port, b"wait gate1")
        _wait_for(lambda: b"wait gate1" in ran_bodies(record), "the model holds the thread")
        expiring = pool.submit(_invoke, port, b"expiring", {"X-Shadowlab-Timeout-Ms": "100"})
        generous = pool.submit(_invoke, port, b"generous", {"X-Shadowlab-Timeout-Ms": "60000"})
        no_deadline = pool.submit(_invoke, port, b"no deadline")
        _wait_for(lambda: worker_counters(port)["received"] == 5, "three requests queued")
        # Their deadlines were set when the worker read them, before it counted them received:
        # 0.2 s later the 100 ms one has passed, while the model still holds the thread.
        time.sleep(0.2)
        assert not any(future.done() for future in (holder, expiring, generous, no_deadline))
        (record / "gate1").touch()

        status, headers, answer = expiring.result(10)
        assert status == 503 and headers["X-Shadowlab-Shed"] == "expired"
        assert "deadline passed" in json.loads(answer)["message"]
        assert generous.result(10)[::2] == (200, b"ran generous")
        assert no_deadline.result(10)[::2] == (200, b"ran no deadline")
        assert holder.result(10)[0] == 200
        ran = ran_bodies(record)
        assert b"expiring" not in ran and ran[:2] == [b"sleep 0.02", b"wait gate1"]
        assert sorted(ran[2:]) == [b"generous", b"no deadline"]
        _assert_settled(port, received=5, ran=4, expired=1, rejected=0, abandoned=0, late=0)


def test_a_run_that_ends_after_its_deadline_counts_as_late(tmp_path: Path) -> None:
    with ThreadPoolExecutor(1) as pool, _recording_worker(tmp_path) as (_, port, record):
        # It starts within its deadline (else it would not be in the model's log) ...
        running = pool.submit(_invoke, port, b"wait gate", {"X-Shadowlab-Timeout-Ms": "150"})
        _wait_for(lambda: b"wait gate" in ran_bodies(record), "the prediction started")
        time.sleep(0.25)  # ... and is still running when it passes.
        (record / "gate").touch()
        assert running.result(10)[::2] == (200, b"ran wait gate")
        _assert_settled(port, received=2, ran=2, late=1, expired=0)


def test_requests_of_clients_that_left_are_not_run(tmp_path: Path) -> None:
    body = b"client gone"
    raw = (
        b"POST /invocations HTTP/1.1\r\nHost: w\r\nContent-Type: text/plain\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    with ThreadPoolExecutor(1) as pool, _recording_worker(tmp_path) as (_, port, record):
        holder = pool.submit(_invoke, port, b"wait gate")
        _wait_for(lambda: b"wait gate" in ran_bodies(record), "the model holds the thread")
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(raw)
            _wait_for(lambda: worker_counters(port)["received"] == 3, "the request queued")
        # Hung up. Two more round trips let the worker's loop see the hang-up before the model
        # is released.
        for _ in range(2):
            assert worker_counters(port)["abandoned"] == 0
        (record / "gate").touch()
        assert holder.result(10)[0] == 200
        _wait_for(lambda: worker_counters(port)["queued"] == 0, "the queue drained")
        assert body not in ran_bodies(record)
        _assert_settled(port, received=3, ran=2, abandoned=1, expired=0, rejected=0)
        # The worker is unharmed: the next client is served.
        assert _invoke(port, b"next")[::2] == (200, b"ran next")
        assert ran_bodies(record) == [b"sleep 0.02", b"wait gate", b"next"]
