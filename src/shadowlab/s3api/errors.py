"""S3's errors: its own codes, HTTP statuses and XML error body (not the JSON of SageMaker).

The codes and statuses are S3's documented ones ("Error responses" in the S3 API reference);
the few that botocore's `s3` model declares as error shapes (NoSuchKey, NoSuchBucket,
NoSuchUpload, BucketAlreadyOwnedByYou ...) carry their status there, and a unit test checks that
this table agrees with the model wherever both name a code.
"""

from __future__ import annotations

from xml.etree import ElementTree

from shadowlab.auth import AuthFailure

STATUS: dict[str, int] = {
    "AccessDenied": 403,
    "AuthorizationHeaderMalformed": 400,
    "BadDigest": 400,
    "BucketAlreadyExists": 409,
    "BucketAlreadyOwnedByYou": 409,
    "BucketNotEmpty": 409,
    "EntityTooLarge": 400,
    "EntityTooSmall": 400,
    "IncompleteBody": 400,
    "InternalError": 500,
    "InvalidAccessKeyId": 403,
    "InvalidArgument": 400,
    "InvalidBucketName": 400,
    "InvalidDigest": 400,
    "InvalidPart": 400,
    "InvalidPartOrder": 400,
    "InvalidRange": 416,
    "InvalidRequest": 400,
    "MalformedXML": 400,
    "MethodNotAllowed": 405,
    "MissingContentLength": 411,
    "NoSuchBucket": 404,
    "NoSuchKey": 404,
    "NoSuchUpload": 404,
    "NotImplemented": 501,
    "PreconditionFailed": 412,
    "RequestTimeTooSkewed": 403,
    "ServiceUnavailable": 503,
    "SignatureDoesNotMatch": 403,
    "XAmzContentSHA256Mismatch": 400,
}


class S3Error(Exception):
    """An S3 error answer. `fields` become extra elements of <Error> (BucketName, Key ...), as
    S3 adds them; `headers` go on the response (Content-Range of an InvalidRange ...)."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        **fields: str,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status if status is not None else STATUS.get(code, 400)
        self.headers = headers or {}
        self.fields = fields


def no_such_bucket(bucket: str) -> S3Error:
    return S3Error("NoSuchBucket", "The specified bucket does not exist", BucketName=bucket)


def no_such_key(key: str) -> S3Error:
    return S3Error("NoSuchKey", "The specified key does not exist.", Key=key)


def no_such_upload(upload_id: str) -> S3Error:
    return S3Error(
        "NoSuchUpload",
        "The specified upload does not exist. The upload ID may be invalid, or the upload may "
        "have been aborted or completed.",
        UploadId=upload_id,
    )


def from_auth(failure: AuthFailure) -> S3Error:
    """A signature failure in S3's words (S3 says SignatureDoesNotMatch where SageMaker says
    InvalidSignatureException, and so on); the message is the verifier's, which says why."""
    code = {
        "missing": "AccessDenied",
        "incomplete": "AuthorizationHeaderMalformed",
        "unknown-key": "InvalidAccessKeyId",
        "scope": "AuthorizationHeaderMalformed",
        "time": "RequestTimeTooSkewed",
        "signature": "SignatureDoesNotMatch",
        "payload-hash": "XAmzContentSHA256Mismatch",
        "payload-hash-missing": "InvalidRequest",
        "payload-mode": "NotImplemented",
    }.get(failure.reason, "AccessDenied")
    if code == "InvalidAccessKeyId":
        message = "The AWS Access Key Id you provided does not exist in our records."
    elif code == "SignatureDoesNotMatch":
        message = (
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method."
        )
    else:
        message = failure.message
    return S3Error(code, message)


def error_body(error: S3Error, resource: str, request_id: str) -> bytes:
    """<Error><Code/><Message/>...<Resource/><RequestId/></Error>, as S3 sends it; botocore's
    rest-xml parser reads Code and Message into ClientError.response["Error"]."""
    root = ElementTree.Element("Error")
    ElementTree.SubElement(root, "Code").text = error.code
    ElementTree.SubElement(root, "Message").text = error.message
    for name, value in error.fields.items():
        ElementTree.SubElement(root, name).text = value
    ElementTree.SubElement(root, "Resource").text = resource
    ElementTree.SubElement(root, "RequestId").text = request_id
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root)
