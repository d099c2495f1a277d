"""The S3 operations: one function per operation, over `ObjectFiles` and `Uploads`.

`S3Handler.call` takes a request already matched to its operation (routes) and parsed
(protocol), runs it, and returns the output members with the status when it differs from the
operation's own. Operations botocore's model names but this server does not keep (ACLs,
versioning, tagging, policies, lifecycle ...) answer NotImplemented (501), as S3 does for
functionality it lacks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote

from shadowlab.s3api import chunked, listing, reads
from shadowlab.s3api.errors import S3Error, no_such_key
from shadowlab.s3api.multipart import Uploads
from shadowlab.s3api.objects import ObjectFiles, ObjectMeta

# Content headers an object keeps from its PutObject / CreateMultipartUpload (member names,
# the same in the input and in GetObject's and HeadObject's output).
_KEPT_HEADERS = (
    "CacheControl",
    "ContentDisposition",
    "ContentEncoding",
    "ContentLanguage",
    "ContentType",
)
_COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class Call:
    """One request's parts besides its parsed members."""

    headers: Mapping[str, str]  # lower-case names
    raw_body: bytes
    region: str


Result = tuple[dict[str, Any], int | None]


class S3Handler:
    def __init__(self, root: Path, account_id: str) -> None:
        self.files = ObjectFiles(root)
        self.uploads = Uploads(self.files)
        self.account_id = account_id
        self._operations: dict[str, Callable[[dict[str, Any], Call], Result]] = {
            "CreateBucket": self.create_bucket,
            "HeadBucket": self.head_bucket,
            "ListBuckets": self.list_buckets,
            "DeleteBucket": self.delete_bucket,
            "PutObject": self.put_object,
            "GetObject": self.get_object,
            "HeadObject": self.head_object,
            "DeleteObject": self.delete_object,
            "DeleteObjects": self.delete_objects,
            "ListObjectsV2": self.list_objects_v2,
            "CopyObject": self.copy_object,
            "CreateMultipartUpload": self.create_multipart_upload,
            "UploadPart": self.upload_part,
            "CompleteMultipartUpload": self.complete_multipart_upload,
            "AbortMultipartUpload": self.abort_multipart_upload,
            "ListParts": self.list_parts,
        }

    def prepare(self) -> None:
        """Create the system directories and sweep a crash's temporary files (blocking)."""
        self.files.root.mkdir(parents=True, exist_ok=True)
        self.files.prepare()
        self.uploads.prepare()

    def call(self, operation: str, params: dict[str, Any], call: Call) -> Result:
        handler = self._operations.get(operation)
        if handler is None:
            raise S3Error(
                "NotImplemented",
                f"{operation} is not implemented by shadowlab's embedded S3 API",
            )
        return handler(params, call)

    # -- buckets ---------------------------------------------------------------------------
    def create_bucket(self, params: dict[str, Any], call: Call) -> Result:
        self.files.create_bucket(params["Bucket"])
        return {"Location": "/" + params["Bucket"]}, None

    def head_bucket(self, params: dict[str, Any], call: Call) -> Result:
        self.files.bucket_dir(params["Bucket"])
        return {"BucketRegion": call.region}, None

    def list_buckets(self, params: dict[str, Any], call: Call) -> Result:
        return listing.list_buckets(self.files, self.account_id, call.region), None

    def delete_bucket(self, params: dict[str, Any], call: Call) -> Result:
        self.files.delete_bucket(params["Bucket"])
        return {}, None

    # -- objects ---------------------------------------------------------------------------
    def put_object(self, params: dict[str, Any], call: Call) -> Result:
        body = chunked.decode(call.headers, call.raw_body)
        meta = ObjectMeta("", 0, 0.0, _kept(params), params.get("Metadata", {}), body.checksums)
        stored = self.files.write(params["Bucket"], params["Key"], _writer(body.data), meta)
        return {"ETag": stored.etag, **body.checksums}, None

    def get_object(self, params: dict[str, Any], call: Call) -> Result:
        return reads.get_object(self.files, params, call.headers.get("range"))

    def head_object(self, params: dict[str, Any], call: Call) -> Result:
        return reads.head_object(self.files, params), None

    def delete_object(self, params: dict[str, Any], call: Call) -> Result:
        self.files.delete(params["Bucket"], params["Key"])
        return {}, None

    def delete_objects(self, params: dict[str, Any], call: Call) -> Result:
        chunked.decode(call.headers, call.raw_body)  # Content-MD5 / checksum, as S3 requires
        bucket = params["Bucket"]
        self.files.bucket_dir(bucket)
        request = params.get("Delete") or {}
        deleted: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for item in request.get("Objects", []):
            key = item.get("Key", "")
            try:
                self.files.delete(bucket, key)
                deleted.append({"Key": key})
            except S3Error as error:
                errors.append({"Key": key, "Code": error.code, "Message": error.message})
        output: dict[str, Any] = {"Errors": errors or None}
        if not request.get("Quiet"):
            output["Deleted"] = deleted or None
        return output, None

    def list_objects_v2(self, params: dict[str, Any], call: Call) -> Result:
        return listing.list_objects_v2(self.files, params), None

    def copy_object(self, params: dict[str, Any], call: Call) -> Result:
        source_bucket, source_key = _copy_source(params["CopySource"])
        bucket, key = params["Bucket"], params["Key"]
        source = self.files.head(source_bucket, source_key)
        replace = params.get("MetadataDirective") == "REPLACE"
        if (source_bucket, source_key) == (bucket, key) and not replace:
            raise S3Error(
                "InvalidRequest",
                "This copy request is illegal because it is trying to copy an object to itself "
                "without changing the object's metadata, storage class, website redirect "
                "location or encryption attributes.",
            )
        headers, metadata = (
            (_kept(params), params.get("Metadata", {}))
            if replace
            else (dict(source.headers), dict(source.metadata))
        )
        source_path = self.files.path(source_bucket, source_key)

        def fill(out: BinaryIO) -> str:
            md5 = hashlib.md5()
            try:
                with open(source_path, "rb") as src:
                    while chunk := src.read(_COPY_CHUNK):
                        md5.update(chunk)
                        out.write(chunk)
            except FileNotFoundError:
                raise no_such_key(source_key) from None
            return f'"{md5.hexdigest()}"'

        meta = ObjectMeta("", 0, 0.0, headers, metadata, dict(source.checksums))
        stored = self.files.write(bucket, key, fill, meta)
        return {
            "CopyObjectResult": {"ETag": stored.etag, "LastModified": stored.last_modified}
        }, None

    # -- multipart -------------------------------------------------------------------------
    def create_multipart_upload(self, params: dict[str, Any], call: Call) -> Result:
        algorithm = params.get("ChecksumAlgorithm")
        upload = self.uploads.create(
            params["Bucket"], params["Key"], _kept(params), params.get("Metadata", {}), algorithm
        )
        output = {"Bucket": upload.bucket, "Key": upload.key, "UploadId": upload.upload_id}
        if algorithm:
            output |= {"ChecksumAlgorithm": algorithm, "ChecksumType": "COMPOSITE"}
        return output, None

    def upload_part(self, params: dict[str, Any], call: Call) -> Result:
        upload = self.uploads.get(params["UploadId"], params["Bucket"], params["Key"])
        body = chunked.decode(call.headers, call.raw_body)
        etag = self.uploads.put_part(upload, params["PartNumber"], body.data)
        return {"ETag": etag, **body.checksums}, None

    def complete_multipart_upload(self, params: dict[str, Any], call: Call) -> Result:
        bucket, key = params["Bucket"], params["Key"]
        upload = self.uploads.get(params["UploadId"], bucket, key)
        parts = (params.get("MultipartUpload") or {}).get("Parts", [])
        listed = [(int(p.get("PartNumber", 0)), str(p.get("ETag", ""))) for p in parts]
        stored = self.uploads.complete(upload, listed, {})
        output = {"Location": f"/{bucket}/{key}", "Bucket": bucket, "Key": key, "ETag": stored.etag}
        return output, None

    def abort_multipart_upload(self, params: dict[str, Any], call: Call) -> Result:
        upload = self.uploads.get(params["UploadId"], params["Bucket"], params["Key"])
        self.uploads.abort(upload)
        return {}, None

    def list_parts(self, params: dict[str, Any], call: Call) -> Result:
        upload = self.uploads.get(params["UploadId"], params["Bucket"], params["Key"])
        return listing.list_parts(self.uploads, upload, params, self.account_id), None


def _kept(params: dict[str, Any]) -> dict[str, str]:
    kept = {name: str(params[name]) for name in _KEPT_HEADERS if params.get(name)}
    # aws-chunked describes how this request's body was framed, not the object.
    encodings = [e.strip() for e in kept.get("ContentEncoding", "").split(",")]
    remaining = ",".join(e for e in encodings if e and e != "aws-chunked")
    if remaining:
        kept["ContentEncoding"] = remaining
    else:
        kept.pop("ContentEncoding", None)
    return kept


def _writer(data: bytes) -> Callable[[BinaryIO], str]:
    def fill(out: BinaryIO) -> str:
        out.write(data)
        return f'"{hashlib.md5(data).hexdigest()}"'

    return fill


def _copy_source(header: str) -> tuple[str, str]:
    """x-amz-copy-source: `bucket/key` or `/bucket/key`, URL-encoded, maybe `?versionId=`."""
    path = unquote(header.split("?", 1)[0]).lstrip("/")
    bucket, _, key = path.partition("/")
    if not bucket or not key:
        raise S3Error(
            "InvalidArgument",
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
            ArgumentName="x-amz-copy-source",
        )
    return bucket, key
