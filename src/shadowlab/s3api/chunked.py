"""Request bodies as S3 receives them: aws-chunked decoding and checksum verification.

boto3 >= 1.36 sends PutObject and UploadPart bodies with `Content-Encoding: aws-chunked` and
`x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER`: the bytes are framed as
`<hex size>\\r\\n<data>\\r\\n`..., ended by `0\\r\\n`, trailing headers (the checksum, named in
`x-amz-trailer`) and an empty line. The decoded length must equal
`x-amz-decoded-content-length`. Checksums, in a header or a trailer, and Content-MD5 are checked
against the decoded bytes with botocore's own checksum classes, as S3 does, before anything is
stored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from botocore import httpchecksum

from shadowlab.s3api.errors import S3Error

CHECKSUM_PREFIX = "x-amz-checksum-"
# Headers with the prefix that name no checksum value.
_NOT_CHECKSUMS = frozenset(
    {"x-amz-checksum-type", "x-amz-checksum-algorithm", "x-amz-checksum-mode"}
)
# botocore's table of the algorithms it can compute (crc32, sha1, sha256, sha512; crc32c and
# others too when awscrt is installed): exactly what a botocore client can send.
_ALGORITHMS: Mapping[str, type[httpchecksum.BaseChecksum]] = {
    **httpchecksum._CHECKSUM_CLS,
    **getattr(httpchecksum, "_CRT_CHECKSUM_CLS", {}),
}


@dataclass
class Body:
    """A request body decoded, with the checksums it was verified against."""

    data: bytes
    # "ChecksumCRC32" -> base64 value, for the output members of the same name.
    checksums: dict[str, str] = field(default_factory=dict)


def member_name(algorithm: str) -> str:
    """ "crc32" -> "ChecksumCRC32", the model's member for that checksum."""
    return "Checksum" + algorithm.upper()


def decode(headers: Mapping[str, str], raw: bytes) -> Body:
    """The body as the object's bytes, verified. `headers` have lower-case names."""
    trailers: dict[str, str] = {}
    data = raw
    encodings = [e.strip() for e in headers.get("content-encoding", "").split(",")]
    if "aws-chunked" in encodings:
        data, trailers = _unchunk(raw)
        declared = headers.get("x-amz-decoded-content-length")
        if declared is not None and (not declared.isdigit() or int(declared) != len(data)):
            raise S3Error(
                "IncompleteBody",
                "You did not provide the number of bytes specified by the "
                "x-amz-decoded-content-length HTTP header",
            )
    body = Body(data)
    md5 = headers.get("content-md5")
    if md5 is not None:
        _check_md5(md5, data)
    for name, value in [*headers.items(), *trailers.items()]:
        if name.startswith(CHECKSUM_PREFIX) and name not in _NOT_CHECKSUMS:
            algorithm = name[len(CHECKSUM_PREFIX) :]
            body.checksums[member_name(algorithm)] = _check(algorithm, value.strip(), data)
    return body


def _unchunk(raw: bytes) -> tuple[bytes, dict[str, str]]:
    out: list[bytes] = []
    position = 0
    view = memoryview(raw)
    while True:
        end = raw.find(b"\r\n", position)
        if end < 0:
            raise _incomplete()
        size_text = raw[position:end].split(b";", 1)[0].strip()  # ";chunk-signature=..."
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _incomplete() from None
        position = end + 2
        if size == 0:
            break
        if position + size + 2 > len(raw) or raw[position + size : position + size + 2] != b"\r\n":
            raise _incomplete()
        out.append(bytes(view[position : position + size]))
        position += size + 2
    trailers: dict[str, str] = {}
    for line in raw[position:].split(b"\r\n"):
        if not line.strip():
            continue
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise _incomplete()
        trailers[name.strip().lower()] = value.strip()
    return b"".join(out), trailers


def _incomplete() -> S3Error:
    return S3Error("IncompleteBody", "The request body is not valid aws-chunked encoding.")


def _check_md5(given: str, data: bytes) -> None:
    try:
        expected = base64.b64decode(given, validate=True)
    except (binascii.Error, ValueError):
        expected = b""
    if len(expected) != 16:
        raise S3Error("InvalidDigest", "The Content-MD5 you specified was invalid.")
    if hashlib.md5(data).digest() != expected:
        raise S3Error("BadDigest", "The Content-MD5 you specified did not match what we received.")


def _check(algorithm: str, given: str, data: bytes) -> str:
    cls = _ALGORITHMS.get(algorithm)
    if cls is None:
        raise S3Error(
            "InvalidRequest",
            f"Checksum algorithm {algorithm.upper()} is not supported by this server "
            f"(supported: {', '.join(sorted(a.upper() for a in _ALGORITHMS))}).",
        )
    checksum = cls()
    checksum.update(data)
    actual = str(checksum.b64digest())
    if actual != given:
        raise S3Error(
            "BadDigest",
            f"The {algorithm.upper()} you specified did not match the calculated checksum.",
        )
    return actual


def compute(algorithm: str, data: bytes) -> str | None:
    """The base64 checksum of `data` by `algorithm`, or None when botocore cannot compute it."""
    cls = _ALGORITHMS.get(algorithm.lower())
    if cls is None:
        return None
    checksum = cls()
    checksum.update(data)
    return str(checksum.b64digest())
