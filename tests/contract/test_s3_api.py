"""The embedded S3 API through boto3, the AWS CLI and raw HTTP against a real server: every
response checked against botocore's output shapes, S3's error codes on every failure path."""

from __future__ import annotations

import hashlib
import os
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.contract import hosting_helpers as h
from tests.contract.helpers import checked, unique, wait_for
from tests.contract.test_capture import capture_endpoint
from tests.serverproc import ACCESS_KEY, REGION, SECRET_KEY, ServerProcess
from tests.shapecheck import assert_output_shape

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("s3api")
    # S3 bodies up to 20 MB here (default 64 MiB): multipart's 8 MB parts fit, 25 MB does not.
    env = {"SHADOWLAB_CAPTURE_FILE_SECONDS": "0.3", "SHADOWLAB_S3_MAX_BODY_BYTES": "20000000"}
    proc = ServerProcess(data_dir=root / "data", hosting="process", extra_env=env)
    yield proc.start()
    proc.stop()


@pytest.fixture(scope="module")
def s3(server: ServerProcess) -> Any:
    return server.client("s3")


def ok(client: Any, operation: str, **params: Any) -> dict[str, Any]:
    """Call an S3 operation and check the response against botocore's output shape."""
    method = getattr(client, "".join("_" + c.lower() if c.isupper() else c for c in operation)[1:])
    response: dict[str, Any] = method(**params)
    assert_output_shape("s3", operation, response)
    return response


def fails(
    call: Any, code: str, message: str | None = None, status: int | None = None
) -> ClientError:
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response["Error"]
    assert error["Code"] == code, caught.value.response
    if message is not None:
        assert error["Message"] == message
    if status is not None:
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    return caught.value


def bucket(s3: Any) -> str:
    name = unique("bkt")
    ok(s3, "CreateBucket", Bucket=name)
    return name


def md5_etag(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def test_buckets(s3: Any) -> None:
    name = unique("bkt")
    assert ok(s3, "CreateBucket", Bucket=name)["Location"] == f"/{name}"
    assert ok(s3, "HeadBucket", Bucket=name)["BucketRegion"] == REGION
    assert name in [b["Name"] for b in ok(s3, "ListBuckets")["Buckets"]]
    fails(lambda: s3.create_bucket(Bucket=name), "BucketAlreadyOwnedByYou", status=409)
    fails(lambda: s3.create_bucket(Bucket="Bad_Name"), "InvalidBucketName", status=400)
    s3.put_object(Bucket=name, Key="x", Body=b"1")
    fails(
        lambda: s3.delete_bucket(Bucket=name),
        "BucketNotEmpty",
        "The bucket you tried to delete is not empty",
        409,
    )
    s3.delete_object(Bucket=name, Key="x")
    ok(s3, "DeleteBucket", Bucket=name)
    fails(
        lambda: s3.delete_bucket(Bucket=name),
        "NoSuchBucket",
        "The specified bucket does not exist",
        404,
    )
    fails(lambda: s3.head_bucket(Bucket=name), "404")  # HEAD answers carry no body, as in S3
    fails(lambda: s3.put_object(Bucket=name, Key="k", Body=b""), "NoSuchBucket")


def test_objects_keep_bytes_etag_type_and_metadata(s3: Any) -> None:
    name = bucket(s3)
    data = os.urandom(100_000)
    put = ok(
        s3,
        "PutObject",
        Bucket=name,
        Key="dir/a b+c.bin",
        Body=data,
        ContentType="application/x-test",
        Metadata={"Team": "ml"},
    )
    assert put["ETag"] == md5_etag(data)
    got = ok(s3, "GetObject", Bucket=name, Key="dir/a b+c.bin")
    assert got["Body"].read() == data
    assert (got["ETag"], got["ContentType"], got["Metadata"]) == (
        md5_etag(data),
        "application/x-test",
        {"team": "ml"},
    )
    head = ok(s3, "HeadObject", Bucket=name, Key="dir/a b+c.bin")
    assert (head["ContentLength"], head["ETag"]) == (len(data), md5_etag(data))
    assert head["LastModified"] == got["LastModified"]
    fails(
        lambda: s3.get_object(Bucket=name, Key="nope"),
        "NoSuchKey",
        "The specified key does not exist.",
        404,
    )
    fails(lambda: s3.head_object(Bucket=name, Key="nope"), "404")
    fails(
        lambda: s3.get_object(Bucket=name, Key="dir/a b+c.bin", IfMatch='"0"'),
        "PreconditionFailed",
        status=412,
    )
    ok(s3, "DeleteObject", Bucket=name, Key="dir/a b+c.bin")
    ok(s3, "DeleteObject", Bucket=name, Key="dir/a b+c.bin")  # already gone: still 204
    fails(lambda: s3.get_object(Bucket=name, Key="dir/a b+c.bin"), "NoSuchKey")


def test_range_gets(s3: Any) -> None:
    name = bucket(s3)
    data = bytes(range(256)) * 4
    s3.put_object(Bucket=name, Key="r", Body=data)
    for header, first, last in [
        ("bytes=0-9", 0, 9),
        ("bytes=1000-", 1000, 1023),
        ("bytes=-24", 1000, 1023),
        ("bytes=10-5000", 10, 1023),
    ]:
        got = ok(s3, "GetObject", Bucket=name, Key="r", Range=header)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert got["ContentRange"] == f"bytes {first}-{last}/1024"
        assert got["Body"].read() == data[first : last + 1]
    fails(
        lambda: s3.get_object(Bucket=name, Key="r", Range="bytes=1024-"),
        "InvalidRange",
        "The requested range is not satisfiable",
        416,
    )


def test_list_objects_v2_with_delimiter_and_continuation(s3: Any) -> None:
    name = bucket(s3)
    keys = ["a.txt", "b/1", "b/2", "c/x/1", "c/y", "d", "e f/g"]
    for key in keys:
        s3.put_object(Bucket=name, Key=key, Body=key.encode())
    everything = ok(s3, "ListObjectsV2", Bucket=name)
    assert [item["Key"] for item in everything["Contents"]] == keys
    assert everything["KeyCount"] == len(keys) and not everything["IsTruncated"]
    entries: list[str] = []
    token: dict[str, str] = {}
    while True:
        page = ok(s3, "ListObjectsV2", Bucket=name, Delimiter="/", MaxKeys=2, **token)
        entries += [i["Key"] for i in page.get("Contents", [])]
        entries += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        assert page["KeyCount"] <= 2
        if not page["IsTruncated"]:
            break
        token = {"ContinuationToken": page["NextContinuationToken"]}
    assert sorted(entries) == ["a.txt", "b/", "c/", "d", "e f/"]
    under_c = ok(s3, "ListObjectsV2", Bucket=name, Prefix="c/", Delimiter="/")
    assert [i["Key"] for i in under_c["Contents"]] == ["c/y"]
    assert under_c["CommonPrefixes"] == [{"Prefix": "c/x/"}]
    after = ok(s3, "ListObjectsV2", Bucket=name, StartAfter="c/y")
    assert [i["Key"] for i in after["Contents"]] == ["d", "e f/g"]
    paged = s3.get_paginator("list_objects_v2").paginate(
        Bucket=name, PaginationConfig={"PageSize": 3}
    )
    assert [i["Key"] for page in paged for i in page["Contents"]] == keys
    fails(lambda: s3.list_objects_v2(Bucket=unique("missing")), "NoSuchBucket")


def test_copy_and_delete_objects(s3: Any) -> None:
    name, other = bucket(s3), bucket(s3)
    s3.put_object(
        Bucket=name, Key="src", Body=b"payload", ContentType="text/plain", Metadata={"a": "1"}
    )
    copied = ok(s3, "CopyObject", Bucket=other, Key="dst/copy", CopySource=f"{name}/src")
    assert copied["CopyObjectResult"]["ETag"] == md5_etag(b"payload")
    got = s3.get_object(Bucket=other, Key="dst/copy")
    assert (got["Body"].read(), got["ContentType"], got["Metadata"]) == (
        b"payload",
        "text/plain",
        {"a": "1"},
    )
    ok(
        s3,
        "CopyObject",
        Bucket=name,
        Key="src",
        CopySource={"Bucket": name, "Key": "src"},
        MetadataDirective="REPLACE",
        Metadata={"b": "2"},
    )
    assert s3.head_object(Bucket=name, Key="src")["Metadata"] == {"b": "2"}
    fails(
        lambda: s3.copy_object(Bucket=name, Key="src", CopySource=f"{name}/src"), "InvalidRequest"
    )
    fails(lambda: s3.copy_object(Bucket=name, Key="x", CopySource=f"{name}/missing"), "NoSuchKey")
    deleted = ok(
        s3,
        "DeleteObjects",
        Bucket=other,
        Delete={"Objects": [{"Key": "dst/copy"}, {"Key": "never-was"}]},
    )
    assert sorted(d["Key"] for d in deleted["Deleted"]) == ["dst/copy", "never-was"]
    assert "Contents" not in s3.list_objects_v2(Bucket=other)


def test_multipart_upload_file_and_download_file(s3: Any, tmp_path: Path) -> None:
    name = bucket(s3)
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(9 * MiB + 123))  # boto3 goes multipart above 8 MiB
    s3.upload_file(str(source), name, "models/big.bin")
    head = ok(s3, "HeadObject", Bucket=name, Key="models/big.bin")
    assert head["ETag"].endswith('-2"') and head["ContentLength"] == source.stat().st_size
    back = tmp_path / "back.bin"
    s3.download_file(name, "models/big.bin", str(back))
    assert back.read_bytes() == source.read_bytes()


def test_multipart_operations_and_their_errors(s3: Any) -> None:
    name = bucket(s3)
    upload = ok(s3, "CreateMultipartUpload", Bucket=name, Key="mp", ContentType="text/x")[
        "UploadId"
    ]
    first, second = os.urandom(5 * MiB), b"tail"
    e1 = ok(s3, "UploadPart", Bucket=name, Key="mp", UploadId=upload, PartNumber=1, Body=first)
    e2 = ok(s3, "UploadPart", Bucket=name, Key="mp", UploadId=upload, PartNumber=2, Body=second)
    parts = ok(s3, "ListParts", Bucket=name, Key="mp", UploadId=upload)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in parts] == [
        (1, e1["ETag"], len(first)),
        (2, e2["ETag"], len(second)),
    ]
    assert "Contents" not in s3.list_objects_v2(Bucket=name)  # parts live outside the bucket
    wrong = {"Parts": [{"PartNumber": 1, "ETag": e1["ETag"]}, {"PartNumber": 2, "ETag": '"0"'}]}
    fails(
        lambda: s3.complete_multipart_upload(
            Bucket=name, Key="mp", UploadId=upload, MultipartUpload=wrong
        ),
        "InvalidPart",
    )
    reversed_parts = {
        "Parts": [{"PartNumber": 2, "ETag": e2["ETag"]}, {"PartNumber": 1, "ETag": e1["ETag"]}]
    }
    fails(
        lambda: s3.complete_multipart_upload(
            Bucket=name, Key="mp", UploadId=upload, MultipartUpload=reversed_parts
        ),
        "InvalidPartOrder",
    )
    listed = {
        "Parts": [{"PartNumber": 1, "ETag": e1["ETag"]}, {"PartNumber": 2, "ETag": e2["ETag"]}]
    }
    done = ok(
        s3,
        "CompleteMultipartUpload",
        Bucket=name,
        Key="mp",
        UploadId=upload,
        MultipartUpload=listed,
    )
    digests = hashlib.md5(hashlib.md5(first).digest() + hashlib.md5(second).digest())
    assert done["ETag"] == f'"{digests.hexdigest()}-2"'
    got = s3.get_object(Bucket=name, Key="mp")
    assert got["Body"].read() == first + second and got["ContentType"] == "text/x"
    fails(lambda: s3.list_parts(Bucket=name, Key="mp", UploadId=upload), "NoSuchUpload", status=404)
    small = s3.create_multipart_upload(Bucket=name, Key="small")["UploadId"]
    tiny = [
        s3.upload_part(Bucket=name, Key="small", UploadId=small, PartNumber=n, Body=b"x")
        for n in (1, 2)
    ]
    too_small = {"Parts": [{"PartNumber": n + 1, "ETag": t["ETag"]} for n, t in enumerate(tiny)]}
    fails(
        lambda: s3.complete_multipart_upload(
            Bucket=name, Key="small", UploadId=small, MultipartUpload=too_small
        ),
        "EntityTooSmall",
    )
    ok(s3, "AbortMultipartUpload", Bucket=name, Key="small", UploadId=small)
    fails(
        lambda: s3.abort_multipart_upload(Bucket=name, Key="small", UploadId=small), "NoSuchUpload"
    )


def test_unimplemented_operations_say_so(s3: Any) -> None:
    name = bucket(s3)
    fails(lambda: s3.get_bucket_versioning(Bucket=name), "NotImplemented", status=501)


# -- raw HTTP ------------------------------------------------------------------------------
def raw(
    server: ServerProcess,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    secret: str = SECRET_KEY,
    key: str = ACCESS_KEY,
    sign: bool = True,
) -> tuple[int, dict[str, str], bytes]:
    url = server.url + path
    request = AWSRequest(method=method, url=url, data=body)
    if sign:
        S3SigV4Auth(Credentials(key, secret), "s3", REGION).add_auth(request)
    prepared = urllib.request.Request(
        url, data=body or None, method=method, headers=dict(request.headers.items())
    )
    try:
        with urllib.request.urlopen(prepared, timeout=10) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers.items()), error.read()


def xml_error(body: bytes) -> tuple[str, str]:
    root = ElementTree.fromstring(body)
    assert root.tag == "Error"
    return root.findtext("Code") or "", root.findtext("Message") or ""


def test_raw_http_errors_are_s3_xml(s3: Any, server: ServerProcess) -> None:
    name = bucket(s3)
    status, headers, body = raw(server, "GET", f"/{name}/missing")
    assert status == 404 and headers["Content-Type"] == "application/xml"
    assert xml_error(body) == ("NoSuchKey", "The specified key does not exist.")
    assert ElementTree.fromstring(body).findtext("Key") == "missing"
    status, _, body = raw(server, "PUT", f"/{name}/k", b"x", secret="wrong")
    assert status == 403 and xml_error(body)[0] == "SignatureDoesNotMatch"
    status, _, body = raw(server, "PUT", f"/{name}/k", b"x", key="AKIDNOBODY")
    assert (status, xml_error(body)) == (
        403,
        ("InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records."),
    )
    status, _, body = raw(server, "GET", f"/{name}", sign=False)
    assert status == 403 and xml_error(body) == ("AccessDenied", "Missing Authentication Token")
    status, _, body = raw(server, "GET", f"/{unique('missing')}?list-type=2")
    assert status == 404 and xml_error(body)[0] == "NoSuchBucket"
    status, _, body = raw(server, "HEAD", f"/{name}/missing")
    assert (status, body) == (404, b"")
    status, _, body = raw(server, "PATCH", f"/{name}/k")
    assert status == 405 and xml_error(body)[0] == "MethodNotAllowed"
    raw(server, "PUT", f"/{name}/r", b"0123456789")
    status, headers, body = raw(server, "GET", f"/{name}/r?x=1")
    assert (status, body, headers["ETag"]) == (200, b"0123456789", md5_etag(b"0123456789"))


def test_a_put_cut_off_mid_body_leaves_nothing(s3: Any, server: ServerProcess) -> None:
    name = bucket(s3)
    path = f"/{name}/cut"
    body = os.urandom(2 * MiB)
    request = AWSRequest(method="PUT", url=server.url + path, data=body)
    S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION).add_auth(request)
    head = f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in request.headers.items())
    head += f"Content-Length: {len(body)}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(head.encode() + body[: MiB // 2])
    fails(lambda: s3.head_object(Bucket=name, Key="cut"), "404")
    assert "Contents" not in s3.list_objects_v2(Bucket=name)
    root = server.data_dir / "s3"
    assert list((root / name).rglob("*")) == []
    assert list((root / ".shadowlab" / "tmp").iterdir()) == []


@pytest.mark.parametrize("size", [1_000_000_000, 25_000_000])
def test_a_body_over_the_limit_is_entity_too_large(
    s3: Any, server: ServerProcess, size: int
) -> None:
    name = bucket(s3)
    head = (
        f"PUT /{name}/huge HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Expect: 100-continue\r\nContent-Length: {size}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head.encode())  # refused before a byte of the body is sent
        answer = b""
        while b"</Error>" not in answer:
            chunk = sock.recv(65536)
            assert chunk, answer
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 400 Bad Request"
    assert xml_error(rest.split(b"\r\n\r\n", 1)[1])[0] == "EntityTooLarge"


def test_aws_cli_ls_and_cp(s3: Any, server: ServerProcess, tmp_path: Path) -> None:
    name = bucket(s3)
    source = tmp_path / "report.csv"
    source.write_text("a,b\n1,2\n")
    copy = server.aws_cli("s3", "cp", str(source), f"s3://{name}/reports/report.csv")
    assert copy.returncode == 0, copy.stderr
    listed = server.aws_cli("s3", "ls", f"s3://{name}/reports/")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split()[-2:] == ["8", "report.csv"]
    assert name in server.aws_cli("s3", "ls").stdout
    back = tmp_path / "back.csv"
    down = server.aws_cli("s3", "cp", f"s3://{name}/reports/report.csv", str(back))
    assert down.returncode == 0, down.stderr
    assert back.read_text() == source.read_text()
    missing = server.aws_cli("s3", "cp", f"s3://{name}/nope", str(back))
    assert missing.returncode != 0 and "404" in missing.stderr


def test_captures_written_by_the_server_are_listed(
    s3: Any, server: ServerProcess, tmp_path: Path
) -> None:
    sm, runtime = server.client(), server.client("sagemaker-runtime")
    model_dir = h.code_only_model_dir(tmp_path / "echo", h.ECHO_INFERENCE)
    archive = h.make_tar(model_dir, tmp_path / "model.tar.gz")
    models = bucket(s3)
    s3.upload_file(str(archive), models, "echo/model.tar.gz")  # the model arrives through S3
    model = h.register(sm, f"s3://{models}/echo/model.tar.gz")
    captures = bucket(s3)
    capture = {
        "EnableCapture": True,
        "InitialSamplingPercentage": 100,
        "DestinationS3Uri": f"s3://{captures}/datacapture",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
    }
    endpoint = capture_endpoint(sm, model, model, capture)
    for i in range(3):
        runtime.invoke_endpoint(
            EndpointName=endpoint, ContentType="application/octet-stream", Body=f"{i}"
        )
    checked(sm, "DescribeEndpoint", EndpointName=endpoint)
    prefix = f"datacapture/{endpoint}/"
    listed = wait_for(
        lambda: ok(s3, "ListObjectsV2", Bucket=captures, Prefix=prefix),
        lambda page: (
            {i["Key"].split("/")[2] for i in page.get("Contents", [])} == {"prod", "shadow"}
        ),
        timeout=30,
    )
    first = listed["Contents"][0]
    assert first["Key"].endswith(".jsonl") and first["Size"] > 0
    assert b'"eventMetadata"' in s3.get_object(Bucket=captures, Key=first["Key"])["Body"].read()


def test_with_an_external_store_the_embedded_api_is_off(tmp_path: Path) -> None:
    env = {"SHADOWLAB_S3_ENDPOINT_URL": "http://127.0.0.1:9"}
    proc = ServerProcess(data_dir=tmp_path / "data", extra_env=env).start()
    try:
        error = fails(lambda: proc.client("s3").list_buckets(), "NotImplemented", status=501)
        assert "--s3-endpoint-url" in error.response["Error"]["Message"]
    finally:
        proc.stop()


def test_unsigned_requests_reach_s3_by_exclusion(tmp_path: Path) -> None:
    proc = ServerProcess(data_dir=tmp_path / "data", verify_signatures=False).start()
    try:
        put = urllib.request.Request(proc.url + "/open-bucket", method="PUT")
        with urllib.request.urlopen(put, timeout=10) as response:
            assert response.status == 200
        with urllib.request.urlopen(proc.url + "/", timeout=10) as response:
            assert b"<Name>open-bucket</Name>" in response.read()  # ListBuckets
        with urllib.request.urlopen(proc.url + "/healthz", timeout=10) as response:
            assert response.status == 200  # still the server's own
        sm = proc.client()
        assert "Models" in sm.list_models()  # signed for sagemaker: the control plane
    finally:
        proc.stop()
