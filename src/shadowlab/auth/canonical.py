"""SigV4's string to sign for a received request: botocore's, or the same string built faster.

`botocore.auth.SigV4Auth` (`S3SigV4Auth` for "s3") is the reference: `botocore_signer` and
`Received` present a received request to its `canonical_request` and `string_to_sign`. Most of a
verification's time went there (urlsplit, quote, dot-segment removal, a method call per header),
for generality SDK requests to SageMaker never use, so `fast_canonical_request` builds exactly
what `SigV4Auth.canonical_request` returns for the requests it accepts and returns None for the
rest, which botocore then canonicalises. What it accepts is what boto3 and the AWS CLI send to
SageMaker's API and runtime:

- a path botocore leaves as it is: unreserved characters and '/' only (what
  `quote(..., safe='/~')` does not touch), no empty, '.' or '..' segment (what
  `normalize_url_path` would remove); SDKs have encoded every path parameter already;
- any query without '#', tab, CR or LF (urlsplit would cut or drop those), canonicalised by
  botocore's own rule: split on '&' and '=', sorted, never re-encoded (botocore trusts the
  client's encoding of a URL's query);
- signed header names that are lower-case HTTP tokens (so botocore's `lower().strip()` changes
  none), values trimmed and their whitespace runs collapsed as `_header_value` does, repeated
  names joined with ',' in the order received;
- the payload hash: the signed X-Amz-Content-SHA256 value(s) as sent, else the body's SHA-256
  (botocore signs the body of a plain-HTTP request, and `Received`'s URL is plain HTTP).

S3 requests always go to botocore: `S3SigV4Auth` does not URI-encode the path a second time.
Equality with botocore is a property test over safe and hostile inputs alike
(tests/auth/test_canonical.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from hashlib import sha256

from botocore.auth import S3SigV4Auth, SigV4Auth

__all__ = [
    "Received",
    "botocore_signer",
    "fast_canonical_request",
    "fast_string_to_sign",
    "string_to_sign",
]

# A path normalize_url_path and quote(safe='/~') return unchanged: "/" alone, or segments of
# unreserved characters, none of them '.' or '..', with at most a trailing '/' (an empty
# segment anywhere else would be dropped). ASCII ranges spelled out: \w would admit Unicode.
_PLAIN_PATH = re.compile(r"/|(?:/(?!\.\.?(?:/|\Z))[A-Za-z0-9_.~-]+)+/?")
# urlsplit cuts a fragment at '#' and deletes tab, CR and LF anywhere in a URL.
_URLSPLIT_CHANGES = re.compile(r"[#\t\r\n]")
# Signed header names joined by ';': lower-case tokens (RFC 9110), which botocore's
# `n.lower().strip()` leaves as they are, so the sorted names are also the SignedHeaders line.
_PLAIN_NAMES = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z;]*")
_CONTENT_SHA256 = "x-amz-content-sha256"


def string_to_sign(
    method: str,
    target: str,
    signed: Mapping[str, list[str]],
    body: bytes,
    *,
    timestamp: str,
    region: str,
    service: str,
) -> str:
    """The string to sign of a received request (`target`: path and query as sent; `signed`:
    the signed headers received, lower-case name -> values in order; `timestamp`: basic
    ISO-8601), by the fast path when it accepts the request, else by botocore."""
    if service != "s3":
        canonical = fast_canonical_request(method, target, signed, body)
        if canonical is not None:
            return fast_string_to_sign(canonical, timestamp, region, service)
    request = Received(method, target, body, timestamp, signed)
    signer = botocore_signer(service, region)
    text: str = signer.string_to_sign(request, signer.canonical_request(request))
    return text


def fast_canonical_request(
    method: str, target: str, signed: Mapping[str, list[str]], body: bytes
) -> str | None:
    """`SigV4Auth.canonical_request` of a received request, or None to leave it to botocore."""
    path, _, query = target.partition("?")
    if _PLAIN_PATH.fullmatch(path) is None:
        return None
    if query:
        if _URLSPLIT_CHANGES.search(query) is not None:
            return None
        # botocore's _canonical_query_string_url, step for step: pairs sorted as tuples (by
        # key, then value), a pair without '=' gaining one, nothing decoded or encoded.
        pairs = []
        for pair in query.split("&"):
            key, _, value = pair.partition("=")
            pairs.append((key, value))
        query = "&".join([f"{key}={value}" for key, value in sorted(pairs)])
    names = sorted(signed)
    signed_names = ";".join(names)
    if _PLAIN_NAMES.fullmatch(signed_names) is None:
        return None
    lines = []
    for name in names:
        values = signed[name]
        if len(values) == 1:  # the usual case, without a generator
            lines.append(f"{name}:{' '.join(values[0].split())}")
        else:
            lines.append(f"{name}:{','.join(' '.join(value.split()) for value in values)}")
    shas = signed.get(_CONTENT_SHA256)
    # Taken as sent when signed, as botocore does (the verifier has compared it with the body).
    payload = ",".join(shas) if shas is not None else sha256(body).hexdigest()
    return "\n".join((method.upper(), path, query, "\n".join(lines) + "\n", signed_names, payload))


def fast_string_to_sign(canonical: str, timestamp: str, region: str, service: str) -> str:
    """`SigV4Auth.string_to_sign`: algorithm, time, credential scope, hash of the canonical
    request (encoded as UTF-8, so a lone surrogate fails here as it does in botocore)."""
    digest = sha256(canonical.encode("utf-8")).hexdigest()
    scope = f"{timestamp[0:8]}/{region}/{service}/aws4_request"
    return f"AWS4-HMAC-SHA256\n{timestamp}\n{scope}\n{digest}"


def botocore_signer(service: str, region: str) -> SigV4Auth:
    """botocore's signer for `service` (S3's differs in the canonical path, not URI-encoded
    twice, and the payload), reading a `Received` request's own signed headers."""
    return (_S3Canonicaliser if service == "s3" else _Canonicaliser)(None, service, region)


class _SignedHeaders(dict[str, list[str]]):
    """The signed headers of a received request (lower-case name -> values), read the way
    botocore reads its HTTPHeaders while canonicalising: names by iteration, `get_all`, and a
    case-blind `in` and `[]`. HTTPHeaders is an email.message.Message, which made up two
    thirds of a verification's cost; this is the same reading at a fraction of it."""

    def get_all(self, name: str) -> list[str]:
        return self.get(name.lower(), [])

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and dict.__contains__(self, name.lower())

    def __getitem__(self, name: str) -> str:  # type: ignore[override]
        return ",".join(super().__getitem__(name.lower()))


class Received:
    """A received request in the form `SigV4Auth.canonical_request` reads (what botocore's
    AWSRequest offers, without preparing a request to send)."""

    __slots__ = ("body", "context", "headers", "method", "params", "url")

    def __init__(
        self, method: str, target: str, body: bytes, timestamp: str, signed: Mapping[str, list[str]]
    ) -> None:
        self.method = method
        # Any scheme but https: botocore signs the payload of plain-HTTP requests, always.
        self.url = "http://signed" + target
        self.body = body
        self.params: dict[str, str] = {}
        self.headers = _SignedHeaders(signed)
        self.context = {"timestamp": timestamp}


class _Canonicaliser(SigV4Auth):  # type: ignore[misc]
    """SigV4Auth whose view of the headers is the request's own signed headers (the verifier
    has already kept exactly those the client names in SignedHeaders)."""

    def headers_to_sign(self, request: Received) -> _SignedHeaders:
        return request.headers


class _S3Canonicaliser(S3SigV4Auth):  # type: ignore[misc]
    """S3SigV4Auth reading the request's own signed headers, as `_Canonicaliser` does."""

    def headers_to_sign(self, request: Received) -> _SignedHeaders:
        return request.headers
