"""Real model artifacts and a real worker process for the hosting tests."""

from __future__ import annotations

import http.client
import io
import json
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

# A SageMaker-style inference.py: all four handlers, a sibling import, and the optional context
# argument (used to answer with custom attributes).
IRIS_INFERENCE = textwrap.dedent(
    """
    import json
    import os

    import joblib
    import numpy as np

    from labels import LABELS  # a sibling module in code/


    def model_fn(model_dir):
        return joblib.load(os.path.join(model_dir, "model.joblib"))


    def input_fn(input_data, content_type):
        if content_type != "application/json":
            raise ValueError(f"unsupported content type {content_type}")
        return np.asarray(json.loads(input_data)["features"], dtype=float)


    def predict_fn(data, model):
        return model.predict(data), model.predict_proba(data)


    def output_fn(prediction, accept, context):
        labels, probabilities = prediction
        seen = context.custom_attributes
        if seen:
            context.set_custom_attributes("seen=" + seen)
        body = {
            "predictions": [LABELS[int(i)] for i in labels],
            "probabilities": np.round(probabilities, 4).tolist(),
        }
        return json.dumps(body), "application/json"
    """
)

# A model that needs no scikit-learn: it starts fast, for supervision tests. The body says how
# long to "predict" (seconds) or asks the process to die.
ECHO_INFERENCE = textwrap.dedent(
    """
    import os
    import time


    def model_fn(model_dir):
        return {"pid": os.getpid()}


    def transform_fn(model, data, content_type, accept):
        if data == b"die":
            os._exit(7)
        if data.startswith(b"sleep "):
            time.sleep(float(data.split()[1]))
        return b"pid=%d body=" % model["pid"] + data, "text/plain"
    """
)

FAILING_INFERENCE = textwrap.dedent(
    """
    def model_fn(model_dir):
        raise RuntimeError("weights are corrupt: checksum mismatch")
    """
)


@cache
def iris_model_bytes() -> bytes:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(features, labels)
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue()


def iris_model_dir(root: Path, with_code: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "model.joblib").write_bytes(iris_model_bytes())
    if with_code:
        code = root / "code"
        code.mkdir()
        (code / "inference.py").write_text(IRIS_INFERENCE)
        (code / "labels.py").write_text('LABELS = ["setosa", "versicolor", "virginica"]\n')
    return root


def code_only_model_dir(root: Path, inference: str) -> Path:
    (root / "code").mkdir(parents=True)
    (root / "code" / "inference.py").write_text(inference)
    return root


def make_tar(source: Path, archive: Path) -> Path:
    """`model.tar.gz` with the directory's content at the archive root, as SageMaker expects."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(source.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(source)), recursive=False)
    return archive


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@contextmanager
def running_worker(
    model_dir: Path, tmp: Path, env: dict[str, str] | None = None, *extra: str
) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, object]]]:
    """A worker process started the way a supervisor would; yields it and its ready message."""
    import os

    ready = tmp / f"ready-{time.monotonic_ns()}.json"
    log = tmp / "worker.log"
    command = [
        sys.executable,
        "-m",
        "shadowlab.hosting.worker",
        "--model-dir",
        str(model_dir),
        "--port",
        "0",
        "--ready-file",
        str(ready),
        *extra,
    ]
    with log.open("ab") as log_file:
        proc = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            if proc.poll() is not None and not ready.exists():
                raise AssertionError(f"worker exited early: {log.read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"worker not ready: {log.read_text()}")
            time.sleep(0.02)
        yield proc, json.loads(ready.read_text())
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# A model that records what it runs, for tests of what a worker skips: every prediction appends
# its body as one line to `ran.log` in $RECORD_DIR before doing anything else. A body
# `sleep S` then sleeps S seconds; `wait NAME` blocks until the file NAME exists in $RECORD_DIR
# (or `release-all` does; at most 30 s), so a test holds the prediction thread for exactly as
# long as it needs.
RECORDING_INFERENCE = textwrap.dedent(
    """
    import os
    import time


    def model_fn(model_dir):
        return os.environ["RECORD_DIR"]


    def transform_fn(record_dir, data, content_type, accept):
        with open(os.path.join(record_dir, "ran.log"), "ab") as log:
            log.write(data + b"\\n")
        words = data.split()
        if words[:1] == [b"sleep"]:
            time.sleep(float(words[1]))
        elif words[:1] == [b"wait"]:
            gate = os.path.join(record_dir, words[1].decode())
            deadline = time.monotonic() + 30
            release_all = os.path.join(record_dir, "release-all")
            while time.monotonic() < deadline:
                if os.path.exists(gate) or os.path.exists(release_all):
                    break
                time.sleep(0.002)
        return b"ran " + data, "text/plain"
    """
)


def ran_bodies(record_dir: Path) -> list[bytes]:
    """The bodies a RECORDING_INFERENCE model ran, in the order they started."""
    log = record_dir / "ran.log"
    return log.read_bytes().splitlines() if log.exists() else []


def worker_counters(port: int) -> dict[str, int]:
    """A worker's `GET /shadowlab/worker` counters."""
    status, headers, body = request(port, "GET", "/shadowlab/worker")
    assert status == 200 and headers["Content-Type"] == "application/json", body
    counters = json.loads(body)
    assert isinstance(counters, dict)
    return counters
