"""The fast canonicaliser against botocore's: for every request, either the fast path declines
(None, and botocore canonicalises) or its canonical request and string to sign are exactly
botocore's. And real SDK requests do take the fast path.

The reference is `SigV4Auth.canonical_request` / `string_to_sign` on the `Received` request the
verifier builds (botocore's own methods; the verifier only changes how the signer reads the
signed headers). Inputs: safe and hostile paths (spaces, %-escapes, unicode, dots, double
slashes, '#', tabs), queries, header sets with odd whitespace, repeated and mixed-case names,
bodies with and without X-Amz-Content-SHA256. Derandomized when CI=true.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from hashlib import sha256
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from shadowlab.auth import AuthFailure, SigV4Verifier, canonical, known_regions
from shadowlab.auth.canonical import (
    Received,
    botocore_signer,
    fast_canonical_request,
    fast_string_to_sign,
)

PORT = 7070
REGION = "us-east-1"
TIMESTAMP = "20261202T083000Z"
KEY, SECRET = "AKIDFAST", "fast-secret"

PROPERTY = settings(
    max_examples=800,
    deadline=None,
    derandomize=os.environ.get("CI") == "true",
    database=None,  # no .hypothesis/ directory in the shared checkout
    suppress_health_check=[HealthCheck.too_slow],
)

UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~"
# Characters botocore's path, query and header handling treats specially, and some that look
# harmless but are not ASCII or are whitespace only to str.split().
NASTY = " %/?#&=+;:@!$'()*,[]\t\r\n\x0b\x0c\x1c\x1f\x85\xa0\u2003\u3000é€İß😀"
WHITESPACE = " \t\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u2003\u3000"


def _text(alphabet: str, max_size: int = 8) -> st.SearchStrategy[str]:
    return st.text(st.sampled_from(alphabet), max_size=max_size)


safe_segments = st.text(st.sampled_from(UNRESERVED), min_size=1, max_size=12)
safe_paths = st.builds(
    lambda segments, slash: "/" + "/".join(segments) + ("/" if slash and segments else ""),
    st.lists(safe_segments, max_size=5),
    st.booleans(),
)


def _spoilt(plain: st.SearchStrategy[str], chars: str) -> st.SearchStrategy[str]:
    """A plain string with one character of `chars` inserted: hostile by exactly one thing,
    so that a fast path overlooking that thing cannot hide behind another reason to decline."""
    return st.builds(
        lambda text, char, at: text[:at] + char + text[at:],
        plain,
        st.sampled_from(chars),
        st.integers(0, 12),
    )


nasty_segments = st.one_of(
    st.sampled_from(["", ".", "..", "%20", "%2F", "%7E", "a b", "é", "?", "#"]),
    _spoilt(safe_segments, NASTY),
)


@st.composite
def nasty_paths(draw: st.DrawFn) -> str:
    """A plain path with one nasty segment in it, or one that starts with '' or '//'."""
    segments = draw(st.lists(safe_segments, max_size=4))
    if draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from(["", "//"])) + "/".join(segments)
    segments.insert(draw(st.integers(0, len(segments))), draw(nasty_segments))
    return "/" + "/".join(segments)


# Queries are canonicalised, not refused, unless urlsplit would change them ('#', tab ...).
query_parts = st.one_of(
    # Repeated keys: botocore sorts pairs by key, then by value.
    st.sampled_from(["a=2", "a=1", "a", "a=", "a=1=2", "b=", "=v", "k=%20", "k=é", "x-id=Put"]),
    _text(UNRESERVED + "=%+é ;/?"),
)
nasty_query_parts = st.one_of(
    st.sampled_from(["#", "a=1#f", "#a=1", "a=\tb", "\n=x", "b\r"]),
    _spoilt(query_parts, "#\t\r\n"),
)


@st.composite
def queries(draw: st.DrawFn, hostile: bool) -> str:
    if not hostile and draw(st.booleans()):
        return draw(st.sampled_from(["", "?"]))
    parts = draw(st.lists(query_parts, max_size=4))
    if hostile:
        parts.insert(draw(st.integers(0, len(parts))), draw(nasty_query_parts))
    return "?" + "&".join(parts)


names = st.one_of(
    st.sampled_from(
        ["host", "content-type", "x-amz-date", "x-amz-target", "accept", "x-amz-content-sha256"]
    ),
    _text("abcdefghijklmnopqrstuvwxyz0123456789-_!#'*", max_size=10),  # other lower-case tokens
)
nasty_names = st.one_of(
    st.sampled_from(["Host", "Content-Type", "x-Amz-Meta", " host", "host ", "é", "İ", "ß"]),
    _spoilt(names, "ABZ \t\x0béİ(@,/"),
)
header_values = st.one_of(
    st.sampled_from(["application/json", "127.0.0.1:7070", TIMESTAMP, "SageMaker.ListModels"]),
    st.sampled_from(["", "  a  b  ", "a,b", "\ta\t\tb\n", "x\x0by", "a\xa0\xa0b", "\ud800"]),
    _text("ab" + WHITESPACE + NASTY),
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, dict[str, list[str]], bytes]:
    """(method, target, signed headers as the verifier collects them, body)."""
    method = draw(st.sampled_from(["POST", "GET", "PUT", "DELETE", "HEAD", "post", "Patch"]))
    # At most one hostile part per request, so that it alone decides whether the fast path
    # may decline; two requests in five are plain throughout.
    hostile = draw(st.sampled_from([None, None, "path", "query", "names"]))
    path = draw(nasty_paths() if hostile == "path" else safe_paths)
    query = draw(queries(hostile == "query"))
    body = draw(st.binary(max_size=64))
    headers = draw(st.lists(st.tuples(names, header_values), max_size=6))
    if hostile == "names":
        headers.insert(draw(st.integers(0, len(headers))), (draw(nasty_names), "v"))
    sha = draw(st.sampled_from([None, "body", "other", "UNSIGNED-PAYLOAD"]))
    if sha is not None:
        value = sha256(body).hexdigest() if sha == "body" else sha
        headers.append(("x-amz-content-sha256", value))
        if draw(st.booleans()):  # repeated, as a client may (wrongly) send it
            headers.append(("x-amz-content-sha256", value))
    signed: dict[str, list[str]] = {}
    for name, value in headers:  # as SigV4Verifier.verify collects them
        signed.setdefault(name, []).append(value)
    return method, path + query, signed, body


def _outcome(build: Callable[[], str]) -> tuple[str, str]:
    """A result, or the exception it raised, as something to compare."""
    try:
        return "ok", build()
    except Exception as exc:  # compared, not swallowed: both sides must fail alike
        return type(exc).__name__, str(exc)


def test_the_reference_is_botocores_own_code() -> None:
    signer = botocore_signer("sagemaker", REGION)
    assert isinstance(signer, SigV4Auth)
    for method in ("canonical_request", "string_to_sign", "_header_value", "payload"):
        assert getattr(type(signer), method) is getattr(SigV4Auth, method)


@PROPERTY
@given(requests())
# Each one hostile by one thing botocore would change, whatever the generator draws.
@example(("POST", "/a%20b", {"host": ["h"]}, b""))
@example(("POST", "/a/./b/../c", {"host": ["h"]}, b""))
@example(("POST", "/a//b/", {"host": ["h"]}, b""))
@example(("POST", "/a?x=1#f", {"host": ["h"]}, b""))
@example(("POST", "/a?x=\t1", {"host": ["h"]}, b""))
@example(("POST", "/a", {"Host": ["h"], "host": ["i"]}, b""))
@example(("POST", "/a", {"host ": ["h"]}, b""))
def test_the_fast_path_declines_or_equals_botocore(
    drawn: tuple[str, str, dict[str, list[str]], bytes],
) -> None:
    method, target, signed, body = drawn
    received = Received(method, target, body, TIMESTAMP, signed)
    signer = botocore_signer("sagemaker", REGION)
    expected = _outcome(lambda: signer.canonical_request(received))
    fast = fast_canonical_request(method, target, signed, body)
    if fast is None:
        event("declined")
        return
    event("accepted")
    assert ("ok", fast) == expected
    assert _outcome(lambda: fast_string_to_sign(fast, TIMESTAMP, REGION, "sagemaker")) == (
        _outcome(lambda: signer.string_to_sign(received, fast))
    )


@pytest.mark.parametrize(
    ("target", "headers"),
    [
        ("/", {"host": ["h"]}),
        ("/endpoints/a-b.c_d~e/invocations/", {"host": ["h"]}),
        ("/?b=2&a=3&a=1&c&=z", {"host": ["h"]}),  # sorted, '=' added, nothing encoded
        ("/x?k=%2F%20é+v", {"host": ["h"]}),
        ("/x", {"host": [" h "], "x-amz-meta-a": ["  a \t b ", "c\xa0\xa0d"], "accept": [""]}),
        ("/...", {"host": ["h"], "x-amz-content-sha256": ["abc", "abc"]}),
    ],
)
def test_the_fast_path_takes_these_and_agrees(target: str, headers: dict[str, list[str]]) -> None:
    received = Received("post", target, b"{}", TIMESTAMP, headers)
    signer = botocore_signer("sagemaker", REGION)
    fast = fast_canonical_request("post", target, headers, b"{}")
    assert fast is not None
    assert fast == signer.canonical_request(received)
    assert fast_string_to_sign(fast, TIMESTAMP, REGION, "sagemaker") == signer.string_to_sign(
        received, fast
    )


@pytest.mark.parametrize(
    ("target", "headers"),
    [
        ("/a%20b", {"host": ["h"]}),  # quote() would encode the '%'
        ("/a b", {"host": ["h"]}),
        ("/é", {"host": ["h"]}),
        ("/a//b", {"host": ["h"]}),  # normalize_url_path drops empty segments ...
        ("/a/./b", {"host": ["h"]}),  # ... and dot segments
        ("/a/../b", {"host": ["h"]}),
        ("/a/..", {"host": ["h"]}),
        ("", {"host": ["h"]}),
        ("http://other/a", {"host": ["h"]}),  # absolute form
        ("/a#frag", {"host": ["h"]}),  # urlsplit cuts fragments ...
        ("/a?x=1#frag", {"host": ["h"]}),
        ("/a?x=\t1", {"host": ["h"]}),  # ... and deletes tabs and newlines
        ("/a", {"Host": ["h"]}),  # botocore lower-cases names
        ("/a", {"host ": ["h"]}),  # ... and strips them
        ("/a", {"x-é": ["h"]}),
    ],
)
def test_the_fast_path_declines_what_botocore_would_change(
    target: str, headers: dict[str, list[str]]
) -> None:
    assert fast_canonical_request("POST", target, headers, b"") is None


def _received_headers(request: Any) -> list[tuple[str, str]]:
    """Headers as the server's signature gate hands them over: lower-case names, latin-1
    values, plus the Host line the HTTP client adds."""
    headers = [
        (name.lower(), value.decode("latin-1") if isinstance(value, bytes) else str(value))
        for name, value in request.headers.items()
    ]
    return [*headers, ("host", f"127.0.0.1:{PORT}")]


def _signed_names(headers: list[tuple[str, str]]) -> set[str]:
    authorization = dict(headers)["authorization"]
    return set(authorization.split("SignedHeaders=")[1].split(",")[0].split(";"))


@pytest.fixture
def botocore_forbidden(monkeypatch: pytest.MonkeyPatch) -> None:
    """Verification must not reach botocore's canonicaliser: the fast path has to take it."""

    def refuse(service: str, region: str) -> SigV4Auth:
        raise AssertionError(f"fell back to botocore for {service}")

    monkeypatch.setattr(canonical, "botocore_signer", refuse)


class _Recording(SigV4Auth):  # type: ignore[misc]
    """SigV4Auth keeping the canonical request it signed."""

    signed = ""

    def canonical_request(self, request: AWSRequest) -> str:
        self.signed = super().canonical_request(request)
        return self.signed


def _verifier() -> SigV4Verifier:
    return SigV4Verifier({KEY: SECRET}, regions=known_regions())


@pytest.mark.parametrize(
    ("path", "headers", "body"),
    [
        (
            "/endpoints/iris-prod/invocations",
            {"Content-Type": "application/json", "Accept": "application/json"},
            b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}',
        ),
        (
            "/",
            {
                "X-Amz-Target": "SageMaker.DescribeEndpoint",
                "Content-Type": "application/x-amz-json-1.1",
            },
            b'{"EndpointName": "iris-prod"}',
        ),
    ],
    ids=["invoke-endpoint", "control-plane"],
)
def test_requests_signed_by_botocore_take_the_fast_path(
    botocore_forbidden: None, path: str, headers: dict[str, str], body: bytes
) -> None:
    request = AWSRequest(
        method="POST", url=f"http://127.0.0.1:{PORT}{path}", data=body, headers=headers
    )
    signer = _Recording(Credentials(KEY, SECRET), "sagemaker", REGION)
    signer.add_auth(request)
    received = _received_headers(request)
    names = _signed_names(received)
    signed = {name: [value] for name, value in received if name in names}
    assert fast_canonical_request("POST", path, signed, body) == signer.signed
    assert _verifier().verify("POST", path, received, body).access_key == KEY


class _Caught(Exception):
    pass


def _boto3_requests() -> Iterator[tuple[str, Any]]:
    """What boto3 itself sends for InvokeEndpoint and a control-plane call, caught before it
    goes out (`before-send`), so no server and no network are involved."""
    caught: list[Any] = []

    def catch(request: Any, **_: Any) -> None:
        caught.append(request)
        raise _Caught  # not sent; botocore lets a handler's exception through

    calls: dict[str, Callable[[Any], Any]] = {
        "sagemaker-runtime": lambda client: client.invoke_endpoint(
            EndpointName="iris-prod", Body=b'{"x": [1, 2]}', ContentType="application/json"
        ),
        "sagemaker": lambda client: client.describe_endpoint(EndpointName="iris-prod"),
    }
    for service, call in calls.items():
        client = boto3.client(
            service,
            endpoint_url=f"http://127.0.0.1:{PORT}",
            region_name=REGION,
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
        )
        client.meta.events.register("before-send", catch)
        with pytest.raises(_Caught):
            call(client)
        yield service, caught.pop()


@pytest.mark.parametrize("service", ["sagemaker-runtime", "sagemaker"])
def test_requests_sent_by_boto3_take_the_fast_path(botocore_forbidden: None, service: str) -> None:
    request = dict(_boto3_requests())[service]
    target = request.url.removeprefix(f"http://127.0.0.1:{PORT}")
    caller = _verifier().verify(request.method, target, _received_headers(request), request.body)
    assert (caller.access_key, caller.region) == (KEY, REGION)


def test_a_request_outside_the_fast_path_is_still_verified_by_botocore() -> None:
    path = "/endpoints/a%20b/invocations"  # '%' in a path: botocore encodes it once more
    request = AWSRequest(method="POST", url=f"http://127.0.0.1:{PORT}{path}", data=b"{}")
    SigV4Auth(Credentials(KEY, SECRET), "sagemaker", REGION).add_auth(request)
    received = _received_headers(request)
    assert fast_canonical_request("POST", path, {"host": ["x"]}, b"{}") is None
    assert _verifier().verify("POST", path, received, b"{}").access_key == KEY
    tampered = path.replace("a%20b", "a%20c")
    with pytest.raises(AuthFailure, match="signature we calculated"):
        _verifier().verify("POST", tampered, received, b"{}")


def test_the_scope_signed_is_the_requests(botocore_forbidden: None) -> None:
    # Another region than the tests' default: the fast string to sign must carry it.
    request = AWSRequest(method="POST", url=f"http://127.0.0.1:{PORT}/", data=b"{}")
    SigV4Auth(Credentials(KEY, SECRET), "sagemaker", "eu-west-1").add_auth(request)
    assert _verifier().verify("POST", "/", _received_headers(request), b"{}").region == "eu-west-1"
