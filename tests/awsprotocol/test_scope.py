"""The one SigV4 credential-scope parser, against headers botocore's signer writes."""

from __future__ import annotations

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from shadowlab.awsprotocol.scope import region_of, scope_of, service_of, split_scope

DEFAULT = "eu-central-1"  # what a server's default_region setting would say


def _signed(region: str, service: str = "sagemaker") -> bytes:
    request = AWSRequest("POST", "http://127.0.0.1:7070/", data=b"{}")
    SigV4Auth(Credentials("AKIDEXAMPLE", "secret"), service, region).add_auth(request)
    return str(request.headers["Authorization"]).encode("latin-1")


def test_botocore_signed_headers() -> None:
    header = _signed("us-west-2")
    assert region_of(header, DEFAULT) == "us-west-2"
    assert service_of(header) == b"sagemaker"
    assert service_of(_signed("us-east-1", "s3")) == b"s3"
    parts = scope_of(header)
    assert parts is not None and parts[0] == b"AKIDEXAMPLE" and parts[4] == b"aws4_request"


@pytest.mark.parametrize(
    "header",
    [
        None,
        b"",
        b"Bearer abc",
        b"AWS4-HMAC-SHA256 Credential=AKID/20261124/us-west-2/sagemaker, Signature=x",
        b"AWS4-HMAC-SHA256 Credential=AKID/20261124/us-west-2/sagemaker/aws4_request/x",
        b"AWS4-HMAC-SHA256 Credential=AKID/20261124//sagemaker/aws4_request, Signature=x",
    ],
)
def test_no_five_part_scope_means_the_default(header: bytes | None) -> None:
    assert region_of(header, DEFAULT) == DEFAULT


def test_the_credential_ends_at_the_comma_or_the_header() -> None:
    ending = b"AWS4-HMAC-SHA256 Credential=AKID/20261124/ap-south-1/sagemaker/aws4_request"
    assert region_of(ending, DEFAULT) == "ap-south-1"
    spaced = b"AWS4-HMAC-SHA256 Credential=AKID/20261124/ap-south-1/s3/aws4_request , X=y"
    assert service_of(spaced) == b"s3"


def test_text_headers_go_in_as_latin1() -> None:
    header = _signed("us-west-2").decode("latin-1")  # what an ASGI app hands the handler
    assert region_of(header.encode("latin-1"), DEFAULT) == "us-west-2"


def test_split_scope_is_the_same_rule_on_text() -> None:
    assert split_scope("AKID/20261124/us-west-2/sagemaker/aws4_request") == [
        "AKID",
        "20261124",
        "us-west-2",
        "sagemaker",
        "aws4_request",
    ]
    assert split_scope("AKID/20261124/us-west-2/sagemaker") is None
    assert split_scope("a/b/c/d/e/f") is None
