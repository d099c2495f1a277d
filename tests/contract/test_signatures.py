"""SigV4 on the wire: real boto3 and AWS CLI clients against `shadowlab serve` that verifies
signatures (the default of every contract test's server), and the start-up refusals."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.serverproc import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    ServerProcess,
    free_port,
    signed_urlopen,
)

_NO_RETRIES = Config(retries={"max_attempts": 1})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(data_dir=tmp_path_factory.mktemp("sigv4") / "data").start()
    yield proc
    proc.stop()


def client(
    server: ServerProcess,
    service: str,
    *,
    key: str = ACCESS_KEY,
    secret: str = SECRET_KEY,
    config: Config = _NO_RETRIES,
) -> Any:
    return boto3.client(
        service,
        endpoint_url=server.url,
        region_name=REGION,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=config,
    )


def list_models(sm: Any) -> Any:
    return sm.list_models()


def invoke(runtime: Any) -> Any:
    return runtime.invoke_endpoint(
        EndpointName="no-such-endpoint", Body=b"1", ContentType="text/csv"
    )


# Both planes, each through the client a SageMaker user would hold.
PLANES: list[tuple[str, Callable[[Any], Any]]] = [
    ("sagemaker", list_models),
    ("sagemaker-runtime", invoke),
]


def refused(call: Callable[[Any], Any], sm: Any) -> tuple[int, str, str]:
    with pytest.raises(ClientError) as caught:
        call(sm)
    error = caught.value.response
    return (
        error["ResponseMetadata"]["HTTPStatusCode"],
        error["Error"]["Code"],
        error["Error"]["Message"],
    )


@pytest.mark.parametrize(("service", "call"), PLANES, ids=[p[0] for p in PLANES])
def test_the_right_credentials_pass(
    server: ServerProcess, service: str, call: Callable[[Any], Any]
) -> None:
    if service == "sagemaker":
        assert call(client(server, service))["Models"] == []
    else:
        # Signed and let through: the runtime's own answer for an unknown endpoint.
        status, code, message = refused(call, client(server, service))
        assert (status, code) == (400, "ValidationError")
        assert "no-such-endpoint" in message


@pytest.mark.parametrize(("service", "call"), PLANES, ids=[p[0] for p in PLANES])
def test_a_wrong_secret_is_an_invalid_signature(
    server: ServerProcess, service: str, call: Callable[[Any], Any]
) -> None:
    status, code, message = refused(call, client(server, service, secret="wrong"))
    assert (status, code) == (403, "InvalidSignatureException")
    assert message.startswith("The request signature we calculated does not match")


@pytest.mark.parametrize(("service", "call"), PLANES, ids=[p[0] for p in PLANES])
def test_an_unknown_key_is_unrecognized(
    server: ServerProcess, service: str, call: Callable[[Any], Any]
) -> None:
    assert refused(call, client(server, service, key="AKIDNOBODY")) == (
        403,
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    )


@pytest.mark.parametrize(("service", "call"), PLANES, ids=[p[0] for p in PLANES])
def test_an_expired_date_is_refused(
    server: ServerProcess,
    service: str,
    call: Callable[[Any], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The client's clock an hour behind: botocore signs with the time it reads here.
    an_hour_ago = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=1)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: an_hour_ago)
    status, code, message = refused(call, client(server, service))
    assert (status, code) == (403, "InvalidSignatureException")
    assert message.startswith("Signature expired: ") and message.endswith(" - 15 min.)")


@pytest.mark.parametrize(("service", "call"), PLANES, ids=[p[0] for p in PLANES])
def test_a_body_changed_after_signing_is_refused(
    server: ServerProcess, service: str, call: Callable[[Any], Any]
) -> None:
    tampered = client(server, service)

    def change_body(request: Any, **_: Any) -> None:
        request.body = (request.body or b"") + b" "  # same length changes would do as well
        request.headers["Content-Length"] = str(len(request.body))

    tampered.meta.events.register("before-send", change_body)
    status, code, _ = refused(call, tampered)
    assert (status, code) == (403, "InvalidSignatureException")


@pytest.mark.parametrize(("service", "call"), PLANES, ids=[p[0] for p in PLANES])
def test_no_authorization_header_is_a_missing_token(
    server: ServerProcess, service: str, call: Callable[[Any], Any]
) -> None:
    unsigned = client(
        server,
        service,
        config=Config(signature_version=botocore.UNSIGNED, retries={"max_attempts": 1}),
    )
    assert refused(call, unsigned) == (
        403,
        "MissingAuthenticationTokenException",
        "Missing Authentication Token",
    )


def test_a_malformed_authorization_header_is_an_incomplete_signature(server: ServerProcess) -> None:
    request = urllib.request.Request(
        server.url + "/",
        data=b"{}",
        method="POST",
        headers={
            "Authorization": "Bearer abc",
            "X-Amz-Date": "20261202T000000Z",
            "X-Amz-Target": "SageMaker.ListModels",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 400
    assert caught.value.headers["x-amzn-ErrorType"].startswith("IncompleteSignatureException:")
    body = json.loads(caught.value.read())
    assert body["__type"] == "IncompleteSignatureException"
    assert body["message"].startswith("Authorization header requires 'Credential' parameter.")


def test_shadowlab_routes_need_a_signature_but_health_and_metrics_do_not(
    server: ServerProcess,
) -> None:
    for path in ("/shadowlab/stats", "/shadowlab/metrics/query?endpoint=e"):
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(server.url + path, timeout=10)
        assert caught.value.code == 403
        assert json.loads(caught.value.read())["__type"] == "MissingAuthenticationTokenException"
    with signed_urlopen(server.url + "/shadowlab/stats", timeout=10) as reply:
        assert "shadows" in json.loads(reply.read())
    for path in ("/healthz", "/metrics"):
        with urllib.request.urlopen(server.url + path, timeout=10) as reply:
            assert reply.status == 200


def test_the_aws_cli_signs_and_is_verified(server: ServerProcess) -> None:
    ok = server.aws_cli("sagemaker", "list-models")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["Models"] == []
    aws = Path(sys.executable).with_name("aws")
    for key, secret, code in (
        (ACCESS_KEY, "wrong", "InvalidSignatureException"),
        ("AKIDNOBODY", SECRET_KEY, "UnrecognizedClientException"),
    ):
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": key,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_MAX_ATTEMPTS": "1",
        }
        env.pop("AWS_PROFILE", None)
        for command in (
            ["sagemaker", "list-models"],
            [
                "sagemaker-runtime",
                "invoke-endpoint",
                "--endpoint-name",
                "e",
                "--body",
                "1",
                os.devnull,
            ],
        ):
            run = subprocess.run(
                [str(aws), *command, "--endpoint-url", server.url],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
                check=False,
            )
            assert run.returncode != 0
            assert f"({code})" in run.stderr, run.stderr


def serve(*flags: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`shadowlab serve` expected to refuse before it binds anything."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWLAB_")}
    return subprocess.run(
        [sys.executable, "-m", "shadowlab", "serve", "--port", str(free_port()), *flags],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        timeout=60,
        check=False,
    )


def test_serve_refuses_to_start_without_credentials_or_unsigned_off_loopback(
    tmp_path: Path,
) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    nothing = serve(*data)
    assert nothing.returncode == 2
    assert nothing.stderr.strip().startswith(
        "shadowlab serve: no credentials: give --credentials-file"
    )
    wide = serve(*data, "--host", "0.0.0.0", "--allow-unsigned")
    assert wide.returncode == 2
    assert "refusing unsigned access on 0.0.0.0" in wide.stderr
    also_by_env = serve(*data, "--host", "0.0.0.0", env={"SHADOWLAB_ALLOW_UNSIGNED": "true"})
    assert also_by_env.returncode == 2 and "refusing unsigned access" in also_by_env.stderr
    missing = serve(*data, "--credentials-file", str(tmp_path / "absent"))
    assert missing.returncode == 2
    assert "cannot read credentials file" in missing.stderr
    assert "Traceback" not in nothing.stderr + wide.stderr + missing.stderr


def test_unsigned_access_when_asked_for_on_loopback(tmp_path: Path) -> None:
    proc = ServerProcess(data_dir=tmp_path / "data", verify_signatures=False).start()
    try:
        with urllib.request.urlopen(proc.url + "/shadowlab/stats", timeout=10) as reply:
            assert reply.status == 200
        request = urllib.request.Request(
            proc.url + "/",
            data=b"{}",
            method="POST",
            headers={
                "X-Amz-Target": "SageMaker.ListModels",
                "Content-Type": "application/x-amz-json-1.1",
            },
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            assert json.loads(reply.read())["Models"] == []
    finally:
        proc.stop()
    assert "unsigned requests accepted" in proc.log_path.read_text()


def test_with_credentials_and_unsigned_access_a_signature_given_must_hold(tmp_path: Path) -> None:
    proc = ServerProcess(
        data_dir=tmp_path / "data", extra_env={"SHADOWLAB_ALLOW_UNSIGNED": "true"}
    ).start()
    try:
        with urllib.request.urlopen(proc.url + "/shadowlab/stats", timeout=10) as reply:
            assert reply.status == 200  # unsigned: let through
        assert client(proc, "sagemaker").list_models()["Models"] == []  # signed right
        status, code, _ = refused(list_models, client(proc, "sagemaker", secret="wrong"))
        assert (status, code) == (403, "InvalidSignatureException")
    finally:
        proc.stop()


def test_the_skew_allowance_is_a_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proc = ServerProcess(
        data_dir=tmp_path / "data", extra_env={"SHADOWLAB_AUTH_MAX_SKEW": "60"}
    ).start()
    try:
        assert client(proc, "sagemaker").list_models()["Models"] == []
        five_minutes_ago = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=5)
        monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: five_minutes_ago)
        status, code, message = refused(list_models, client(proc, "sagemaker"))
    finally:
        proc.stop()
    assert (status, code) == (403, "InvalidSignatureException")
    assert message.startswith("Signature expired: ") and message.endswith(" - 1 min.)")
