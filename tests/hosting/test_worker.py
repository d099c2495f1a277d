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
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from shadowlab.hosting.artifacts import prepare_model_dir
from tests.hosting.modelfiles import (
    ECHO_INFERENCE,
    FAILING_INFERENCE,
    code_only_model_dir,
    iris_model_dir,
    make_tar,
    request,
    running_worker,
)

SETOSA = [5.1, 3.5, 1.4, 0.2]
VIRGINICA = [7.7, 3.0, 6.1, 2.3]


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
