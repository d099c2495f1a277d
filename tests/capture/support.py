"""Real parts for capture tests: records, a moto S3 server process, a TCP proxy to cut it off."""

from __future__ import annotations

import base64
import contextlib
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from shadowlab.capture.config import CaptureConfig
from shadowlab.dataplane.observer import (
    InvocationEvent,
    InvocationRecord,
    Outcome,
    invocation_event,
    invocation_record,
)

REGION = "us-east-1"
# CSV and JSON captured as text, anything else BASE64: what `reference` is compared under.
BOTH_CONFIG = CaptureConfig(
    destination="s3://b/p",
    csv_content_types=("text/csv",),
    json_content_types=("application/json",),
)
KMS_KEY = "arn:aws:kms:us-east-1:000000000000:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def event(
    *,
    endpoint: str = "ep",
    body: bytes = b"5.1,3.5,1.4,0.2",
    content_type: str | None = "text/csv",
    event_id: str | None = None,
    inference_id: str | None = None,
    at: float | None = None,
    capture: tuple[object, ...] = (),
) -> InvocationEvent:
    """Header values as text here; the event carries them as the bytes sent (latin-1)."""
    return invocation_event(
        endpoint=endpoint,
        event_id=event_id or uuid.uuid4().hex,
        inference_id=None if inference_id is None else inference_id.encode("latin-1"),
        inference_time=time.time() if at is None else at,
        request_body=body,
        request_content_type=None if content_type is None else content_type.encode("latin-1"),
        accept=None,
        capture=capture,
    )


def record(
    ev: InvocationEvent,
    *,
    role: str = "production",
    variant: str = "prod",
    status: int = 200,
    body: bytes = b"0.97",
    content_type: str | None = "text/csv; charset=utf-8",
    outcome: Outcome = "answered",
    error: str | None = None,
) -> InvocationRecord:
    if outcome in ("failed", "timeout", "shed"):
        status, body, content_type = 0, b"", None
    return invocation_record(
        event=ev,
        role="production" if role == "production" else "shadow",
        variant=variant,
        status=status,
        response_body=body,
        response_content_type=None if content_type is None else content_type.encode("latin-1"),
        error=error,
        latency_s=0.001,
        outcome=outcome,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def s3_client(url: str) -> Any:
    """Short timeouts, no botocore retries: the writer's own backoff is under test."""
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(
            connect_timeout=0.5,
            read_timeout=0.5,
            retries={"total_max_attempts": 1},
        ),
    )


class MotoServer:
    """moto's S3 in server mode, as a separate process on a loopback port."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.log_path = log_dir / f"moto-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto exited: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/moto-api/", timeout=1):
                    return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("moto did not start")

    def pause(self) -> None:
        """SIGSTOP: the port still accepts connections, nothing answers (a hung store)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGCONT)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


class TcpProxy:
    """Forwards a loopback port to another; stop() makes the port refuse connections and cuts
    open ones (a store that went away), start() again serves on the same port.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._running = False
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TcpProxy:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.05)
        self._running = True
        self._spawn(self._accept, self._listener)
        return self

    def stop(self) -> None:
        self._running = False
        for thread in self._threads[:1]:
            thread.join()  # the accept loop, which owns the listener
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join()
        for sock in self._sockets:
            sock.close()
        self._threads, self._sockets = [], []

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        with listener:
            while self._running:
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                client.settimeout(None)
                try:
                    upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
                except OSError:
                    client.close()
                    continue
                with self._lock:
                    self._sockets += [client, upstream]
                self._spawn(self._pump, client, upstream)
                self._spawn(self._pump, upstream, client)

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(1 << 16):
                target.sendall(data)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)


def expected_encoding(config: CaptureConfig, media_type: str) -> str:
    """The tests' oracle for SageMaker's rule: CSV or JSON when the config lists the media type
    (CaptureContentTypeHeader), BASE64 for anything else."""
    if media_type in config.csv_content_types:
        return "CSV"
    if media_type in config.json_content_types:
        return "JSON"
    return "BASE64"


def reference(rec: InvocationRecord, config: CaptureConfig) -> dict[str, Any]:
    """The same record built the obvious way (dicts + json), to check the fast path against
    (and the baseline of benchmarks/capture_micro.py)."""

    def payload(mode: str, body: bytes, content_type: bytes | None) -> dict[str, str]:
        observed = content_type.decode("latin-1") if content_type else "application/octet-stream"
        kind = observed.split(";")[0].strip().lower()
        encoding = expected_encoding(config, kind)
        try:
            data = body.decode() if encoding != "BASE64" else None
        except UnicodeDecodeError:
            data = None
        if data is None:
            encoding, data = "BASE64", base64.b64encode(body).decode()
        return {"observedContentType": observed, "mode": mode, "data": data, "encoding": encoding}

    ev, _, _, status, body, content_type, error, _, outcome = rec
    _, event_id, inference_id, inference_time, request_body, request_type, *_ = ev
    capture = {}
    if config.capture_input:
        capture["endpointInput"] = payload("INPUT", request_body, request_type)
    if config.capture_output and outcome == "answered":
        capture["endpointOutput"] = payload("OUTPUT", body, content_type)
    metadata = {"eventId": event_id}
    if inference_id:
        metadata["inferenceId"] = inference_id.decode("latin-1")
    metadata["inferenceTime"] = time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(inference_time))
    )
    out: dict[str, Any] = {"captureData": capture, "eventMetadata": metadata, "eventVersion": "0"}
    if outcome != "answered" or not 200 <= status < 300:
        out["shadowlab"] = {"outcome": outcome, "status": status, "error": error}
    return out
