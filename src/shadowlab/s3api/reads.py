"""GetObject and HeadObject: conditional requests, byte ranges, and the headers S3 returns.

Ranges follow RFC 9110 as S3 applies it: one `bytes=first-last`, `first-` or `-suffix` range;
a syntactically invalid or multi-range header is ignored (the whole object is sent), a range
that starts beyond the object is InvalidRange (416, `Content-Range: bytes */size`). Conditions
follow S3's precedence: If-Match before If-Unmodified-Since (412 PreconditionFailed), and
If-None-Match before If-Modified-Since (304 Not Modified).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shadowlab.s3api.errors import S3Error
from shadowlab.s3api.objects import ObjectFiles, ObjectMeta


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) inclusive of a satisfiable range, None for the whole object."""
    if header is None:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    if (
        not dash
        or not (first_text.isdigit() or first_text == "")
        or not (last_text.isdigit() or last_text == "")
    ):
        return None
    if first_text == "":
        if last_text == "":
            return None
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            raise _unsatisfiable(header, size)
        return max(0, size - suffix), size - 1
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None  # invalid syntax: ignored, as RFC 9110 says
    if first >= size:
        raise _unsatisfiable(header, size)
    last = int(last_text) if last_text else size - 1
    return first, min(last, size - 1)


def _unsatisfiable(header: str, size: int) -> S3Error:
    return S3Error(
        "InvalidRange",
        "The requested range is not satisfiable",
        headers={"Content-Range": f"bytes */{size}"},
        RangeRequested=header[:128],
        ActualObjectSize=str(size),
    )


def _etag_listed(header: str, etag: str) -> bool:
    wanted = {item.strip().removeprefix("W/").strip('"') for item in header.split(",")}
    return "*" in wanted or etag.strip('"') in wanted


def check_conditions(params: dict[str, Any], meta: ObjectMeta) -> None:
    modified = meta.last_modified
    if_match = params.get("IfMatch")
    if if_match is not None:
        if not _etag_listed(if_match, meta.etag):
            raise _failed("If-Match")
    else:
        since = params.get("IfUnmodifiedSince")
        if isinstance(since, datetime) and modified > since:
            raise _failed("If-Unmodified-Since")
    if_none_match = params.get("IfNoneMatch")
    if if_none_match is not None:
        if _etag_listed(if_none_match, meta.etag):
            raise _not_modified(meta)
    else:
        since = params.get("IfModifiedSince")
        if isinstance(since, datetime) and modified <= since:
            raise _not_modified(meta)


def _failed(condition: str) -> S3Error:
    return S3Error(
        "PreconditionFailed",
        "At least one of the pre-conditions you specified did not hold",
        Condition=condition,
    )


def _not_modified(meta: ObjectMeta) -> S3Error:
    # Sent without a body (see front), with the validators the client compares.
    return S3Error("NotModified", "Not Modified", status=304, headers={"ETag": meta.etag})


def describe(meta: ObjectMeta, params: dict[str, Any]) -> dict[str, Any]:
    """The output members HeadObject and GetObject share."""
    output: dict[str, Any] = {
        "AcceptRanges": "bytes",
        "LastModified": meta.last_modified,
        "ContentLength": meta.size,
        "ETag": meta.etag,
        "ContentType": "binary/octet-stream",
        **meta.headers,
        "StorageClass": None,  # S3 omits the header for STANDARD
    }
    if meta.metadata:
        output["Metadata"] = meta.metadata
    if meta.parts:
        output["PartsCount"] = meta.parts
    if params.get("ChecksumMode") == "ENABLED" and meta.checksums:
        output.update(meta.checksums)
        output["ChecksumType"] = "FULL_OBJECT"
    return output


def head_object(files: ObjectFiles, params: dict[str, Any]) -> dict[str, Any]:
    meta = files.head(params["Bucket"], params["Key"])
    check_conditions(params, meta)
    return describe(meta, params)


def get_object(
    files: ObjectFiles, params: dict[str, Any], range_header: str | None
) -> tuple[dict[str, Any], int | None]:
    """(output, status): 206 for a range, else None (the operation's own 200)."""
    bucket, key = params["Bucket"], params["Key"]
    meta = files.head(bucket, key)
    check_conditions(params, meta)
    output = describe(meta, params)
    span = parse_range(range_header, meta.size)
    if span is None:
        output["Body"] = files.read(bucket, key, 0, meta.size)
        output["ContentLength"] = len(output["Body"])
        return output, None
    first, last = span
    output["Body"] = files.read(bucket, key, first, last - first + 1)
    output["ContentLength"] = len(output["Body"])
    output["ContentRange"] = f"bytes {first}-{last}/{meta.size}"
    for name in list(output):
        if name.startswith("Checksum"):
            del output[name]  # a checksum is of the whole object, not of this range
    return output, 206
