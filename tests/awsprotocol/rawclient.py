"""Hand-made JSON 1.1 requests to a running server, signed by botocore itself (SigV4 with the
test credentials), for bodies no SDK would send: deep nesting, unpaired surrogates, megabytes.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any

import botocore.auth
import botocore.awsrequest
import botocore.credentials

from tests.serverproc import REGION

CONTENT_TYPE = "application/x-amz-json-1.1"
_CREDENTIALS = botocore.credentials.Credentials("testing", "testing")


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def signed_headers(port: int, target: str | None, body: bytes) -> dict[str, str]:
    """The headers botocore sends for `body`: content type, target, X-Amz-Date, Authorization."""
    url = f"http://127.0.0.1:{port}/"
    headers = {"Content-Type": CONTENT_TYPE}
    if target is not None:
        headers["X-Amz-Target"] = target
    request = botocore.awsrequest.AWSRequest(method="POST", url=url, data=body, headers=headers)
    botocore.auth.SigV4Auth(_CREDENTIALS, "sagemaker", REGION).add_auth(request)
    # The signature covers Host as the URL spells it; send exactly that.
    return {"Host": f"127.0.0.1:{port}", **dict(request.headers.items())}


def post(port: int, target: str | None, body: bytes, timeout: float = 60) -> Answer:
    """POST a signed `body` to the control plane on loopback `port`."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/", body=body, headers=signed_headers(port, target, body))
        response = conn.getresponse()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return Answer(response.status, headers, response.read())
    finally:
        conn.close()


def assert_aws_error(answer: Answer, status: int = 400) -> tuple[str, str]:
    """(code, message) of an error answered in AWS's wire form, after checking that form."""
    assert answer.status == status, answer.body[:2000]
    document = answer.json()
    code = document["__type"]
    assert answer.headers["x-amzn-errortype"].split(":", 1)[0] == code
    assert answer.headers["content-type"] == CONTENT_TYPE
    assert answer.headers["x-amzn-requestid"]
    assert isinstance(document.get("message"), str), document
    return code, document["message"]
