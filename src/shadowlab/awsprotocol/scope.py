"""The SigV4 credential scope: `Credential=AKID/20261124/us-west-2/sagemaker/aws4_request`.

One parser and one rule for every reader: the control plane, InvokeEndpoint and the S3 API take
the region from it (whose resources a call is about), the front server the service (which API
answers), the verifier all five parts. A scope is exactly five slash-separated parts; a request
without one (unsigned, or signed some other way) names no region, and its callers use the
server's `default_region` setting, which they are given: nothing here picks a region of its own.

Reading a region verifies nothing: where signatures are required the gate has verified the scope
before any handler reads it; on loopback without credentials the caller is trusted.
"""

from __future__ import annotations

_CREDENTIAL = b"Credential="
_PARTS = 5  # key id / date / region / service / terminator


def split_scope(credential: str) -> list[str] | None:
    """The parts of a credential scope (key id, date, region, service, terminator), or None
    unless it has exactly five."""
    parts = credential.split("/")
    return parts if len(parts) == _PARTS else None


def scope_of(authorization: bytes) -> list[bytes] | None:
    """The scope parts of a SigV4 Authorization header's Credential, by `split_scope`'s rule.

    A few bytes operations on the header as received, no regex and no decoding: InvokeEndpoint
    reads this per request, so the rule is written out here for bytes rather than decoding the
    header for `split_scope`."""
    start = authorization.find(_CREDENTIAL)
    if start < 0:
        return None
    end = authorization.find(b",", start)
    # Not stripped: blanks before the comma could only end the terminator, which no reader
    # here uses, and stripping costs as much as the second find.
    parts = authorization[start + 11 : end if end >= 0 else None].split(b"/")
    return parts if len(parts) == _PARTS else None


def region_of(authorization: bytes | None, default: str) -> str:
    """The region a request is signed for, or `default` (the server's default region) when its
    Authorization header names none. Text headers (an ASGI app's) go in as latin-1 bytes, the
    bytes the server received."""
    parts = scope_of(authorization) if authorization else None
    return parts[2].decode("ascii", "replace") if parts and parts[2] else default


def service_of(authorization: bytes) -> bytes | None:
    """The signing service of an Authorization header's scope (b"s3", b"sagemaker"), or None."""
    parts = scope_of(authorization)
    return None if parts is None else parts[3]
