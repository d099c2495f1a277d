"""SigV4 verification against requests signed by botocore itself, one rule per test."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from shadowlab.auth import (
    AuthFailure,
    Caller,
    CredentialsError,
    SigV4Verifier,
    known_regions,
    load_credentials_file,
)

URL = "http://127.0.0.1:7070/endpoints/iris/invocations?x=1&a=2"
TARGET = "/endpoints/iris/invocations?x=1&a=2"
BODY = b"5.1,3.5,1.4,0.2"
SECRETS = {"AKIDONE": "secret-one", "AKIDTWO": "secret-two"}


def signed(
    *,
    key: str = "AKIDONE",
    secret: str = "secret-one",
    region: str = "us-east-1",
    service: str = "sagemaker",
    body: bytes = BODY,
    extra: dict[str, str] | None = None,
) -> list[tuple[str, str]]:
    """Headers as the server receives them: botocore's, plus Host and Content-Length."""
    request = AWSRequest(
        method="POST",
        url=URL,
        data=body,
        headers={"Content-Type": "text/csv", "Accept": "application/json", **(extra or {})},
    )
    SigV4Auth(Credentials(key, secret), service, region).add_auth(request)
    headers = [(name.lower(), value) for name, value in request.headers.items()]
    return [*headers, ("host", "127.0.0.1:7070"), ("content-length", str(len(body)))]


def verifier(clock: float | None = None, skew: float = 900.0) -> SigV4Verifier:
    now = (lambda: clock) if clock is not None else time.time
    return SigV4Verifier(SECRETS, regions=known_regions(), max_skew_s=skew, clock=now)


def failure(headers: list[tuple[str, str]], body: bytes = BODY, **kwargs: float) -> AuthFailure:
    with pytest.raises(AuthFailure) as caught:
        verifier(**kwargs).verify("POST", TARGET, headers, body)
    return caught.value


def replace(headers: list[tuple[str, str]], name: str, value: str) -> list[tuple[str, str]]:
    return [(n, value if n == name else v) for n, v in headers]


def test_a_request_signed_by_botocore_is_accepted() -> None:
    assert verifier().verify("POST", TARGET, signed(), BODY) == Caller("AKIDONE", "us-east-1")
    headers = signed(key="AKIDTWO", secret="secret-two", region="eu-west-1")
    assert verifier().verify("POST", TARGET, headers, BODY) == Caller("AKIDTWO", "eu-west-1")


def test_headers_added_after_signing_are_ignored() -> None:
    headers = [*signed(), ("user-agent", "curl"), ("accept-encoding", "identity")]
    assert verifier().verify("POST", TARGET, headers, BODY).access_key == "AKIDONE"


def test_the_wrong_secret_is_an_invalid_signature() -> None:
    error = failure(signed(secret="not-the-secret"))
    assert (error.code, error.status) == ("InvalidSignatureException", 403)
    assert error.message.startswith("The request signature we calculated does not match")


def test_an_unknown_access_key_is_unrecognized() -> None:
    error = failure(signed(key="AKIDNOBODY"))
    assert error.code == "UnrecognizedClientException"
    assert error.message == "The security token included in the request is invalid."


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h: (h, BODY + b"0"),  # the body
        lambda h: (replace(h, "content-type", "application/json"), BODY),  # a signed header
        lambda h: (replace(h, "host", "127.0.0.1:7071"), BODY),
    ],
    ids=["body", "signed-header", "host"],
)
def test_anything_signed_that_changes_breaks_the_signature(tamper) -> None:  # type: ignore[no-untyped-def]
    headers, body = tamper(signed())
    assert failure(headers, body).code == "InvalidSignatureException"


def test_a_path_other_than_the_signed_one_fails() -> None:
    with pytest.raises(AuthFailure) as caught:
        verifier().verify("POST", "/endpoints/other/invocations?x=1&a=2", signed(), BODY)
    assert caught.value.code == "InvalidSignatureException"


def test_expired_and_future_dates_are_refused_beyond_the_skew() -> None:
    headers = signed()
    now = time.time()
    old = failure(headers, clock=now + 901)
    assert old.code == "InvalidSignatureException"
    assert old.message.startswith("Signature expired: ") and "- 15 min." in old.message
    future = failure(headers, clock=now - 901)
    assert future.message.startswith("Signature not yet current: ")
    assert "+ 15 min." in future.message
    # Within the allowance both ways:
    verifier(clock=now + 880).verify("POST", TARGET, headers, BODY)
    verifier(clock=now - 880).verify("POST", TARGET, headers, BODY)


def test_a_missing_header_is_a_missing_token() -> None:
    headers = [(n, v) for n, v in signed() if n != "authorization"]
    error = failure(headers)
    assert (error.code, error.message) == (
        "MissingAuthenticationTokenException",
        "Missing Authentication Token",
    )


def test_a_garbage_header_is_an_incomplete_signature() -> None:
    error = failure(replace(signed(), "authorization", "garbage"))
    assert (error.code, error.status) == ("IncompleteSignatureException", 400)
    assert error.message == (
        "Authorization header requires 'Credential' parameter. Authorization header requires "
        "'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. "
        "Authorization=garbage"
    )
    no_date = [(n, v) for n, v in signed() if n != "x-amz-date"]
    assert "either a 'X-Amz-Date' or a 'Date' header" in failure(no_date).message
    bad_date = replace(signed(), "x-amz-date", "yesterday")
    assert failure(bad_date).message.startswith("Date must be in ISO-8601 'basic format'.")
    long_value = "AWS4-HMAC-SHA256 Credential=" + "x" * 100_000
    assert len(failure(replace(signed(), "authorization", long_value)).message) < 500


def test_the_scope_must_name_the_service_a_known_region_and_the_date() -> None:
    wrong_service = failure(signed(service="s3"))
    assert wrong_service.message == "Credential should be scoped to correct service: 'sagemaker'. "
    assert failure(signed(region="mars-north-1")).message == (
        "Credential should be scoped to a valid region. "
    )
    headers = signed()
    auth = dict(headers)["authorization"]
    date = dict(headers)["x-amz-date"][:8]
    other_day = replace(headers, "authorization", auth.replace(f"/{date}/", "/20200101/"))
    assert failure(other_day).message.startswith("Date in Credential scope does not match")
    short = replace(headers, "authorization", auth.replace("/aws4_request", ""))
    assert failure(short).message.startswith("Credential must have exactly 5 slash-delimited")


def test_host_must_be_signed() -> None:
    headers = signed()
    auth = dict(headers)["authorization"]
    unsigned_host = replace(headers, "authorization", auth.replace(";host;", ";"))
    assert "'Host' or ':authority' must be a 'SignedHeader'" in failure(unsigned_host).message


def test_a_payload_hash_header_must_match_the_body() -> None:
    from hashlib import sha256

    good = signed(extra={"X-Amz-Content-SHA256": sha256(BODY).hexdigest()})
    verifier().verify("POST", TARGET, good, BODY)
    lying = signed(extra={"X-Amz-Content-SHA256": sha256(b"other").hexdigest()}, body=b"other")
    error = failure(lying, BODY)
    assert "x-amz-content-sha256" in error.message


def test_the_signing_key_is_derived_once_per_day_and_scope() -> None:
    checker = verifier()
    for _ in range(3):
        checker.verify("POST", TARGET, signed(), BODY)
        checker.verify("POST", TARGET, signed(region="eu-west-1"), BODY)
    assert len(checker._keys) == 2


def test_known_regions_come_from_botocore() -> None:
    regions = known_regions()
    assert {"us-east-1", "eu-west-1", "cn-north-1", "us-gov-west-1"} <= regions
    assert "mars-north-1" not in regions


def test_credentials_file_every_profile_is_a_pair(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_text(
        "[default]\naws_access_key_id = AKIDONE\naws_secret_access_key = secret-one\n"
        "[ci]\naws_access_key_id=AKIDTWO\naws_secret_access_key=secret-two\nregion=x\n"
    )
    assert load_credentials_file(path) == SECRETS


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "has no profiles"),
        ("[a]\naws_access_key_id = K\n", "needs both aws_access_key_id and aws_secret_access_key"),
        ("not ini", "is not valid"),
        (
            "[a]\naws_access_key_id=K\naws_secret_access_key=1\n"
            "[b]\naws_access_key_id=K\naws_secret_access_key=2\n",
            "appears twice with different secrets",
        ),
    ],
)
def test_credentials_file_errors_say_what_is_wrong(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "credentials"
    path.write_text(text)
    with pytest.raises(CredentialsError, match=reason):
        load_credentials_file(path)
    with pytest.raises(CredentialsError, match="cannot read credentials file"):
        load_credentials_file(tmp_path / "missing")
