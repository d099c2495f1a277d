"""The REST-XML pieces against botocore itself: requests botocore serialises are matched and
parsed back, and responses serialised here are read back by botocore's own rest-xml parser."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import botocore.parsers
import pytest
from botocore.awsrequest import prepare_request_dict
from botocore.serialize import create_serializer

from shadowlab.s3api import protocol, routes
from shadowlab.s3api.errors import STATUS, S3Error, error_body

MODEL = routes.s3_model()


def wire_request(operation: str, **params: Any) -> tuple[str, str, dict[str, str], bytes]:
    """(method, target, lower-case headers, body) as botocore sends `operation` path-style."""
    op = MODEL.operation_model(operation)
    request = create_serializer("rest-xml").serialize_to_request(params, op)
    prepare_request_dict(request, "http://127.0.0.1:7070")
    # botocore's S3 client inserts the bucket into the path (path-style addressing).
    url = request["url"].removeprefix("http://127.0.0.1:7070")
    body = request["body"] if isinstance(request["body"], bytes) else b""
    headers = {name.lower(): str(value) for name, value in request["headers"].items()}
    return request["method"], url, headers, body


def parsed(operation: str, **params: Any) -> tuple[str, dict[str, Any]]:
    method, url, headers, body = wire_request(operation, **params)
    target = routes.split_target(url)
    route = routes.match(method, target, headers)
    return route.operation.name, protocol.parse_input(route.operation, target, headers, body)


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("ListBuckets", {}),
        ("CreateBucket", {"Bucket": "b1"}),
        ("HeadBucket", {"Bucket": "b1"}),
        ("DeleteBucket", {"Bucket": "b1"}),
        ("PutObject", {"Bucket": "b1", "Key": "k"}),
        ("CopyObject", {"Bucket": "b1", "Key": "k", "CopySource": "b2/src"}),
        ("UploadPart", {"Bucket": "b1", "Key": "k", "UploadId": "u" * 30, "PartNumber": 2}),
        ("CreateMultipartUpload", {"Bucket": "b1", "Key": "k"}),
        ("CompleteMultipartUpload", {"Bucket": "b1", "Key": "k", "UploadId": "u" * 30}),
        ("AbortMultipartUpload", {"Bucket": "b1", "Key": "k", "UploadId": "u" * 30}),
        ("ListParts", {"Bucket": "b1", "Key": "k", "UploadId": "u" * 30}),
        ("GetObject", {"Bucket": "b1", "Key": "k"}),
        ("HeadObject", {"Bucket": "b1", "Key": "k"}),
        ("DeleteObject", {"Bucket": "b1", "Key": "k"}),
        ("ListObjectsV2", {"Bucket": "b1", "Prefix": "p/"}),
        ("DeleteObjects", {"Bucket": "b1", "Delete": {"Objects": [{"Key": "a"}]}}),
        ("GetObjectAcl", {"Bucket": "b1", "Key": "k"}),
    ],
)
def test_every_request_botocore_sends_is_matched_to_its_operation(
    operation: str, params: dict[str, Any]
) -> None:
    assert parsed(operation, **params)[0] == operation


def test_input_members_come_from_path_query_headers_and_payload() -> None:
    _, params = parsed(
        "PutObject",
        Bucket="b1",
        Key="dir/a b+c%.txt",
        Body=b"data",
        ContentType="text/csv",
        Metadata={"Owner": "me"},
    )
    assert params["Key"] == "dir/a b+c%.txt"
    assert params["ContentType"] == "text/csv"
    assert params["Metadata"] == {"owner": "me"}  # header names arrive lower-case
    assert params["Body"] == b"data"
    _, part = parsed("UploadPart", Bucket="b1", Key="k", UploadId="u" * 30, PartNumber=7)
    assert part["PartNumber"] == 7
    _, done = parsed(
        "CompleteMultipartUpload",
        Bucket="b1",
        Key="k",
        UploadId="u" * 30,
        MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": '"a"'}, {"PartNumber": 2, "ETag": "b"}]
        },
    )
    assert done["MultipartUpload"] == {
        "Parts": [{"PartNumber": 1, "ETag": '"a"'}, {"PartNumber": 2, "ETag": "b"}]
    }
    _, delete = parsed(
        "DeleteObjects",
        Bucket="b1",
        Delete={"Objects": [{"Key": "x"}, {"Key": "y"}], "Quiet": True},
    )
    assert delete["Delete"] == {"Objects": [{"Key": "x"}, {"Key": "y"}], "Quiet": True}


def test_a_bad_value_is_invalid_argument_and_bad_xml_malformed() -> None:
    op = MODEL.operation_model("UploadPart")
    target = routes.split_target("/b1/k?partNumber=two&uploadId=x")
    with pytest.raises(S3Error) as caught:
        protocol.parse_input(op, target, {}, b"")
    assert caught.value.code == "InvalidArgument"
    complete = MODEL.operation_model("CompleteMultipartUpload")
    with pytest.raises(S3Error) as bad:
        protocol.parse_input(complete, routes.split_target("/b1/k?uploadId=x"), {}, b"<nope")
    assert bad.value.code == "MalformedXML"


def test_an_unknown_method_and_form_is_method_not_allowed() -> None:
    with pytest.raises(S3Error) as caught:
        routes.match("PATCH", routes.split_target("/b1/k"), {})
    assert (caught.value.code, caught.value.status) == ("MethodNotAllowed", 405)


def read_back(operation: str, output: dict[str, Any]) -> dict[str, Any]:
    """Serialise `output` here, parse it with botocore's rest-xml response parser."""
    op = MODEL.operation_model(operation)
    status, headers, body = protocol.serialize_output(op, output)
    response = {"status_code": status, "headers": dict(headers), "body": body}
    parser = botocore.parsers.create_parser("rest-xml")
    result: dict[str, Any] = parser.parse(response, op.output_shape)
    result.pop("ResponseMetadata", None)
    return result


def test_outputs_read_back_by_botocore() -> None:
    when = datetime(2026, 12, 2, 8, 30, 15, tzinfo=UTC)
    listing = {
        "Name": "b1",
        "Prefix": "",
        "KeyCount": 2,
        "MaxKeys": 1000,
        "IsTruncated": True,
        "NextContinuationToken": "abc",
        "Contents": [{"Key": "a", "LastModified": when, "ETag": '"e"', "Size": 3}],
        "CommonPrefixes": [{"Prefix": "d/"}],
    }
    assert read_back("ListObjectsV2", listing) == {
        **listing,
        "Contents": [{"Key": "a", "LastModified": when, "ETag": '"e"', "Size": 3}],
    }
    buckets = {"Buckets": [{"Name": "b1", "CreationDate": when}], "Owner": {"ID": "x"}}
    assert read_back("ListBuckets", buckets) == buckets
    deleted = {"Deleted": [{"Key": "a"}, {"Key": "b"}], "Errors": [{"Key": "c", "Code": "X"}]}
    assert read_back("DeleteObjects", deleted) == deleted
    copy = {"CopyObjectResult": {"ETag": '"e"', "LastModified": when}}
    assert read_back("CopyObject", copy) == copy
    head = {"ContentLength": 5, "LastModified": when, "Metadata": {"a": "1"}, "ETag": '"e"'}
    assert read_back("HeadObject", head) == head


def test_document_roots_and_statuses_are_s3s() -> None:
    op = MODEL.operation_model("ListObjectsV2")
    _, _, body = protocol.serialize_output(op, {"Name": "b1"})
    assert b'<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' in body
    op = MODEL.operation_model("CompleteMultipartUpload")
    assert b"<CompleteMultipartUploadResult" in protocol.serialize_output(op, {"Key": "k"})[2]
    delete = MODEL.operation_model("DeleteObject")
    assert protocol.serialize_output(delete, {})[0] == 204


def test_error_statuses_agree_with_the_model_where_it_has_them() -> None:
    checked = 0
    for shape in MODEL.error_shapes:
        status = shape.metadata.get("error", {}).get("httpStatusCode")
        if shape.name in STATUS and status is not None:
            assert STATUS[shape.name] == status, shape.name
            checked += 1
    assert checked >= 4


def test_the_error_body_is_read_by_botocore() -> None:
    body = error_body(
        S3Error("NoSuchKey", "The specified key does not exist.", Key="k"), "/b/k", "R1"
    )
    parser = botocore.parsers.create_parser("rest-xml")
    op = MODEL.operation_model("GetObject")
    parsed_error = parser.parse({"status_code": 404, "headers": {}, "body": body}, op.output_shape)
    assert parsed_error["Error"]["Code"] == "NoSuchKey"
    assert parsed_error["Error"]["Message"] == "The specified key does not exist."
