"""Bodies as boto3 sends them (aws-chunked with a checksum trailer, built by botocore's own
AwsChunkedWrapper), byte ranges and the on-disk store's atomicity and sidecars."""

from __future__ import annotations

import base64
import hashlib
import io
import os
from pathlib import Path

import pytest
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum, Sha256Checksum

from shadowlab.capture.stores import LocalObjectStore
from shadowlab.s3api import chunked, reads
from shadowlab.s3api.errors import S3Error
from shadowlab.s3api.handler import Call, S3Handler

DATA = os.urandom(300_000)


def aws_chunked(
    data: bytes, checksum: type = Crc32Checksum, name: str = "x-amz-checksum-crc32"
) -> bytes:
    wrapper = AwsChunkedWrapper(
        io.BytesIO(data), checksum_cls=checksum, checksum_name=name, chunk_size=65536
    )
    return wrapper.read()


def headers(data: bytes, trailer: str = "x-amz-checksum-crc32") -> dict[str, str]:
    return {
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(data)),
        "x-amz-trailer": trailer,
    }


def test_aws_chunked_bodies_decode_and_their_trailer_is_verified() -> None:
    body = chunked.decode(headers(DATA), aws_chunked(DATA))
    assert body.data == DATA
    crc = Crc32Checksum()
    crc.update(DATA)
    assert body.checksums == {"ChecksumCRC32": crc.b64digest()}
    sha = chunked.decode(
        headers(DATA, "x-amz-checksum-sha256"),
        aws_chunked(DATA, Sha256Checksum, "x-amz-checksum-sha256"),
    )
    assert (
        sha.checksums["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(DATA).digest()).decode()
    )


def test_a_corrupted_chunked_body_is_refused() -> None:
    raw = bytearray(aws_chunked(DATA))
    raw[100] ^= 1
    with pytest.raises(S3Error) as caught:
        chunked.decode(headers(DATA), bytes(raw))
    assert caught.value.code == "BadDigest"
    with pytest.raises(S3Error) as short:
        chunked.decode(headers(DATA + b"x"), aws_chunked(DATA))
    assert short.value.code == "IncompleteBody"
    with pytest.raises(S3Error) as cut:
        chunked.decode(headers(DATA), aws_chunked(DATA)[:1000])
    assert cut.value.code == "IncompleteBody"


def test_content_md5_is_checked() -> None:
    good = base64.b64encode(hashlib.md5(b"abc").digest()).decode()
    assert chunked.decode({"content-md5": good}, b"abc").data == b"abc"
    with pytest.raises(S3Error) as bad:
        chunked.decode({"content-md5": good}, b"abd")
    assert bad.value.code == "BadDigest"
    with pytest.raises(S3Error) as invalid:
        chunked.decode({"content-md5": "nope"}, b"abc")
    assert invalid.value.code == "InvalidDigest"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-9", (0, 9)),
        ("bytes=5-", (5, 99)),
        ("bytes=-10", (90, 99)),
        ("bytes=-1000", (0, 99)),
        ("bytes=90-1000", (90, 99)),
        ("bytes=9-3", None),  # invalid: ignored
        ("items=0-1", None),
        ("bytes=0-1,5-6", None),  # several ranges: the whole object, as S3 answers
        (None, None),
    ],
)
def test_ranges(header: str | None, expected: tuple[int, int] | None) -> None:
    assert reads.parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=100-200", "bytes=-0"])
def test_unsatisfiable_ranges_are_invalid_range(header: str) -> None:
    with pytest.raises(S3Error) as caught:
        reads.parse_range(header, 100)
    assert (caught.value.code, caught.value.status) == ("InvalidRange", 416)
    assert caught.value.headers == {"Content-Range": "bytes */100"}


def call() -> Call:
    return Call({}, b"", "us-east-1")


def test_objects_written_by_the_local_store_get_an_md5_etag(tmp_path: Path) -> None:
    handler = S3Handler(tmp_path, "123456789012")
    handler.prepare()
    LocalObjectStore(tmp_path).put_bytes("captures", "ep/v/file.jsonl", b"{}\n")
    output, _ = handler.call("HeadObject", {"Bucket": "captures", "Key": "ep/v/file.jsonl"}, call())
    assert output["ETag"] == '"' + hashlib.md5(b"{}\n").hexdigest() + '"'
    assert output["ContentLength"] == 3
    # Replaced behind the API's back: the sidecar no longer matches and is not believed.
    LocalObjectStore(tmp_path).put_bytes("captures", "ep/v/file.jsonl", b"[]\n\n")
    again, _ = handler.call("HeadObject", {"Bucket": "captures", "Key": "ep/v/file.jsonl"}, call())
    assert again["ETag"] == '"' + hashlib.md5(b"[]\n\n").hexdigest() + '"'


def test_the_system_directory_is_no_bucket_and_writes_leave_no_temporary_files(
    tmp_path: Path,
) -> None:
    handler = S3Handler(tmp_path, "123456789012")
    handler.prepare()
    handler.call("CreateBucket", {"Bucket": "bkt1"}, call())
    params = {"Bucket": "bkt1", "Key": "a/b", "Body": b"x", "Metadata": {"k": "v"}}
    handler.call("PutObject", params, Call({}, b"x", "us-east-1"))
    listed, _ = handler.call("ListBuckets", {}, call())
    assert [b["Name"] for b in listed["Buckets"]] == ["bkt1"]
    assert list((tmp_path / ".shadowlab" / "tmp").iterdir()) == []
    assert [p.name for p in (tmp_path / "bkt1").rglob("*")] == ["a", "b"]
    handler.call("DeleteObject", {"Bucket": "bkt1", "Key": "a/b"}, call())
    assert list((tmp_path / "bkt1").iterdir()) == []  # S3 has no directories: none are left
    with pytest.raises(S3Error) as caught:
        handler.call("CreateBucket", {"Bucket": ".shadowlab"}, call())
    assert caught.value.code == "InvalidBucketName"
