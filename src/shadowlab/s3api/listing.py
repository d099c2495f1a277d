"""ListBuckets, ListObjectsV2 and ListParts over the files.

ListObjectsV2 walks the keys under the prefix in S3's order (UTF-8 bytes), rolls keys up to
their common prefix at the delimiter, and stops after max-keys entries (keys and common
prefixes count alike, as in S3). The continuation token is the last entry returned, base64
encoded (S3's tokens are opaque too); a token or StartAfter resumes strictly after it, and
after every key under it when it was a common prefix. `EncodingType=url` percent-encodes the
keys and prefixes in the answer, which botocore decodes again (the AWS CLI always asks for it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

from shadowlab.s3api.errors import S3Error
from shadowlab.s3api.multipart import Upload, Uploads
from shadowlab.s3api.objects import ObjectFiles

MAX_KEYS = 1000


def owner(account_id: str) -> dict[str, str]:
    # S3's canonical user id is 64 hex digits; derived from the account so it is stable.
    return {
        "ID": hashlib.sha256(account_id.encode()).hexdigest(),
        "DisplayName": "shadowlab",
    }


def list_buckets(files: ObjectFiles, account_id: str, region: str) -> dict[str, Any]:
    buckets = [
        {"Name": name, "CreationDate": created, "BucketRegion": region}
        for name, created in files.list_buckets()
    ]
    return {"Buckets": buckets, "Owner": owner(account_id)}


def _token(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode("utf-8")).decode("ascii")


def _untoken(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode("ascii")).decode("utf-8")
    except (binascii.Error, ValueError):
        raise S3Error(
            "InvalidArgument",
            "The continuation token provided is incorrect",
            ArgumentName="continuation-token",
        ) from None


def list_objects_v2(files: ObjectFiles, params: dict[str, Any]) -> dict[str, Any]:
    bucket = params["Bucket"]
    prefix: str = params.get("Prefix") or ""
    delimiter: str | None = params.get("Delimiter") or None
    max_keys = params.get("MaxKeys", MAX_KEYS)
    if max_keys < 0:
        raise S3Error(
            "InvalidArgument",
            "Argument maxKeys must be an integer between 0 and 2147483647",
            ArgumentName="maxKeys",
        )
    max_keys = min(max_keys, MAX_KEYS)
    token = params.get("ContinuationToken")
    after = _untoken(token) if token is not None else params.get("StartAfter") or ""
    after_bytes = after.encode("utf-8")
    # A token that is a common prefix resumes after every key under it (S3's StartAfter is a
    # plain key order position, so it does not).
    skip_under = after if token is not None and delimiter and after.endswith(delimiter) else None
    contents: list[dict[str, Any]] = []
    prefixes: list[str] = []
    last = ""
    truncated = False
    for key in files.keys(bucket, prefix):
        if after and (
            key.encode("utf-8") <= after_bytes
            or (skip_under is not None and key.startswith(skip_under))
        ):
            continue
        entry = key
        if delimiter:
            cut = key.find(delimiter, len(prefix))
            if cut >= 0:
                entry = key[: cut + len(delimiter)]
                if prefixes and prefixes[-1] == entry:
                    continue
        if len(contents) + len(prefixes) >= max_keys:
            truncated = True
            break
        if entry != key:
            prefixes.append(entry)
        else:
            try:
                meta = files.head(bucket, key)
            except S3Error:
                continue  # deleted since it was listed
            contents.append(
                {
                    "Key": key,
                    "LastModified": meta.last_modified,
                    "ETag": meta.etag,
                    "Size": meta.size,
                    "StorageClass": "STANDARD",
                }
            )
        last = entry
    encode = params.get("EncodingType") == "url"

    def wire(text: str) -> str:
        return quote_plus(text, safe="/") if encode else text

    output: dict[str, Any] = {
        "Name": bucket,
        "Prefix": wire(prefix),
        "MaxKeys": max_keys,
        "KeyCount": len(contents) + len(prefixes),
        "IsTruncated": truncated,
        "Contents": [{**item, "Key": wire(item["Key"])} for item in contents] or None,
        "CommonPrefixes": [{"Prefix": wire(p)} for p in prefixes] or None,
    }
    if delimiter:
        output["Delimiter"] = wire(delimiter)
    if token is not None:
        output["ContinuationToken"] = token
    if params.get("StartAfter"):
        output["StartAfter"] = wire(params["StartAfter"])
    if truncated:
        output["NextContinuationToken"] = _token(last)
    if encode:
        output["EncodingType"] = "url"
    return output


def list_parts(
    uploads: Uploads, upload: Upload, params: dict[str, Any], account_id: str
) -> dict[str, Any]:
    max_parts = max(0, min(params.get("MaxParts", MAX_KEYS), MAX_KEYS))
    marker = params.get("PartNumberMarker", 0)
    parts = [part for part in uploads.parts(upload) if part.number > marker]
    shown, truncated = parts[:max_parts], len(parts) > max_parts
    output: dict[str, Any] = {
        "Bucket": upload.bucket,
        "Key": upload.key,
        "UploadId": upload.upload_id,
        "PartNumberMarker": marker,
        "MaxParts": max_parts,
        "IsTruncated": truncated,
        "Parts": [
            {
                "PartNumber": part.number,
                "LastModified": datetime.fromtimestamp(int(part.modified), UTC),
                "ETag": part.etag,
                "Size": part.size,
            }
            for part in shown
        ],
        "Initiator": owner(account_id),
        "Owner": owner(account_id),
        "StorageClass": "STANDARD",
    }
    if shown:
        output["NextPartNumberMarker"] = shown[-1].number
    if upload.checksum_algorithm:
        output["ChecksumAlgorithm"] = upload.checksum_algorithm
    return output
