"""Start `shadowlab serve` as a real process on a loopback port, for contract tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

REGION = "us-east-1"
ACCOUNT = "123456789012"
ACCESS_KEY, SECRET_KEY = "testing", "testing"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}


def write_credentials_file(path: Path, pairs: dict[str, str]) -> Path:
    """An AWS-style credentials file, one profile per access key."""
    sections = [
        f"[profile{n}]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n"
        for n, (key, secret) in enumerate(pairs.items())
    ]
    path.write_text("\n".join(sections))
    return path


def sign(
    method: str,
    url: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    region: str = REGION,
    access_key: str = ACCESS_KEY,
    secret_key: str = SECRET_KEY,
) -> dict[str, str]:
    """The headers of `url` signed as boto3 signs (SigV4, service "sagemaker"), to send as-is."""
    request = AWSRequest(method=method, url=url, data=body, headers=headers or {})
    SigV4Auth(Credentials(access_key, secret_key), "sagemaker", region).add_auth(request)
    return dict(request.headers.items())


def signed_urlopen(
    url: str, *, method: str = "GET", body: bytes = b"", timeout: float = 30, region: str = REGION
) -> Any:
    """urllib.request.urlopen of a signed request (the server verifies every signature)."""
    request = urllib.request.Request(
        url, data=body or None, method=method, headers=sign(method, url, body, region=region)
    )
    return urllib.request.urlopen(request, timeout=timeout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    data_dir: Path
    database_url: str | None = None
    hosting: str = "none"
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    # Signed requests, verified against the test key pair; False: --allow-unsigned.
    verify_signatures: bool = True
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"server-{self.port}.log"

    def start(self, timeout: float = 30.0) -> ServerProcess:
        command = [
            sys.executable,
            "-m",
            "shadowlab",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--hosting",
            self.hosting,
            "--account-id",
            ACCOUNT,
            "--log-level",
            "warning",
        ]
        if self.database_url:
            command += ["--database-url", self.database_url]
        if self.verify_signatures:
            path = self.data_dir.parent / f"credentials-{self.port}"
            write_credentials_file(path, {ACCESS_KEY: SECRET_KEY})
            command += ["--credentials-file", str(path)]
        else:
            command += ["--allow-unsigned"]
        env = {**os.environ, "SHADOWLAB_RECONCILE_INTERVAL": "0.1", **self.extra_env}
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not become healthy: {self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
            self.proc = None

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(timeout=10)
        self.proc = None
        return code

    def client(self, service: str = "sagemaker", region: str = REGION) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=region,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(retries={"max_attempts": 1}),
        )

    def aws_cli(self, *args: str, region: str = REGION) -> subprocess.CompletedProcess[str]:
        aws = Path(sys.executable).with_name("aws")
        env = {**os.environ, **CREDENTIALS, "AWS_DEFAULT_REGION": region, "AWS_PAGER": ""}
        env.pop("AWS_PROFILE", None)
        return subprocess.run(
            [str(aws), *args, "--endpoint-url", self.url, "--output", "json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
