"""SigV4 for the embedded S3 API: requests signed by botocore's S3SigV4Auth, S3's payload rules."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from shadowlab.auth import AuthFailure, Caller, SigV4Verifier, known_regions

SECRETS = {"AKIDONE": "secret-one"}
KEY = "dir/a b+c%~é.txt"  # encoded once by botocore, and S3 does not encode it again
TARGET = "/bkt/" + quote(KEY, safe="/~") + "?x-id=PutObject"
BODY = b"object bytes"


def signed(
    *,
    body: bytes = BODY,
    payload: str | None = None,
    service: str = "s3",
    target: str = TARGET,
) -> list[tuple[str, str]]:
    headers = {"Content-Type": "text/plain"}
    if payload is not None:
        headers["X-Amz-Content-SHA256"] = payload
    request = AWSRequest(
        method="PUT", url="http://127.0.0.1:7070" + target, data=body, headers=headers
    )
    if payload is not None:  # as botocore does for unsigned and streaming payloads
        request.context["payload_signing_enabled"] = False
    signer = (S3SigV4Auth if service == "s3" else SigV4Auth)(
        Credentials("AKIDONE", "secret-one"), service, "eu-west-1"
    )
    if payload is not None:
        signer.payload = lambda request: payload  # type: ignore[method-assign]
    signer.add_auth(request)
    names = [(name.lower(), value) for name, value in request.headers.items()]
    return [*names, ("host", "127.0.0.1:7070")]


def verifier(services: tuple[str, ...] = ("sagemaker", "s3")) -> SigV4Verifier:
    return SigV4Verifier(SECRETS, services={name: known_regions(name) for name in services})


def test_an_s3_request_signed_by_botocore_is_accepted() -> None:
    caller = verifier().verify("PUT", TARGET, signed(), BODY)
    assert caller == Caller("AKIDONE", "eu-west-1", "s3")


@pytest.mark.parametrize("payload", ["UNSIGNED-PAYLOAD", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"])
def test_unsigned_payloads_pass_whatever_the_body(payload: str) -> None:
    headers = signed(payload=payload)
    assert verifier().verify("PUT", TARGET, headers, b"anything").service == "s3"


def test_a_signed_payload_must_match_the_body() -> None:
    with pytest.raises(AuthFailure) as caught:
        verifier().verify("PUT", TARGET, signed(), BODY + b"!")
    assert caught.value.reason == "payload-hash"


def test_s3_requires_the_payload_hash_header() -> None:
    headers = [(n, v) for n, v in signed() if n != "x-amz-content-sha256"]
    with pytest.raises(AuthFailure) as caught:
        verifier().verify("PUT", TARGET, headers, BODY)
    assert (caught.value.code, caught.value.status) == ("InvalidRequest", 400)


def test_signed_chunked_payloads_are_not_implemented() -> None:
    headers = signed(payload="STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
    with pytest.raises(AuthFailure) as caught:
        verifier().verify("PUT", TARGET, headers, BODY)
    assert (caught.value.code, caught.value.status) == ("NotImplemented", 501)


def test_the_path_is_compared_as_sent_not_encoded_again() -> None:
    with pytest.raises(AuthFailure) as caught:
        verifier().verify("PUT", TARGET.replace("%20", "+"), signed(), BODY)
    assert caught.value.reason == "signature"


def test_a_verifier_for_sagemaker_alone_refuses_s3_scopes_and_both_coexist() -> None:
    with pytest.raises(AuthFailure) as caught:
        verifier(("sagemaker",)).verify("PUT", TARGET, signed(), BODY)
    assert caught.value.message == "Credential should be scoped to correct service: 'sagemaker'. "
    both = verifier()
    sagemaker = signed(service="sagemaker", target="/endpoints/e/invocations")
    assert both.verify("PUT", "/endpoints/e/invocations", sagemaker, BODY).service == "sagemaker"
    assert both.verify("PUT", TARGET, signed(), BODY).service == "s3"
    assert len(both._keys) == 2  # one signing key per service
