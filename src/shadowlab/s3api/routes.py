"""Which S3 operation a path-style request is, read from botocore's `s3` model.

Every operation's `http` trait gives a method and a request URI: `/`, `/{Bucket}` or
`/{Bucket}/{Key+}`, sometimes with a literal query (`?uploads`, `?list-type=2`). Several
operations share one (PUT /{Bucket}/{Key+} is PutObject, CopyObject, UploadPart and
UploadPartCopy); they differ in their required query-string and header members (UploadPart
requires partNumber and uploadId, CopyObject x-amz-copy-source). A request matches an operation
when the method, the URI's form, the literal query and every required member located in the
query or the headers match; the most specific match wins.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote

import botocore.model

from shadowlab.awsprotocol.service_models import service_model
from shadowlab.s3api.errors import S3Error

ROOT, BUCKET, OBJECT = "root", "bucket", "object"
_FORMS = {"/": ROOT, "/{Bucket}": BUCKET, "/{Bucket}/{Key+}": OBJECT}


@dataclass(frozen=True, slots=True)
class Route:
    operation: botocore.model.OperationModel
    method: str
    form: str
    literal_query: tuple[tuple[str, str | None], ...]
    required_query: tuple[str, ...]
    required_headers: tuple[str, ...]  # lower-case

    @property
    def specificity(self) -> int:
        return len(self.literal_query) + len(self.required_query) + len(self.required_headers)

    def matches(self, query: Mapping[str, str], headers: Mapping[str, str]) -> bool:
        for name, value in self.literal_query:
            if name not in query or (value is not None and query[name] != value):
                return False
        return all(name in query for name in self.required_query) and all(
            name in headers for name in self.required_headers
        )


@dataclass(frozen=True, slots=True)
class Target:
    """A request's addressing: the bucket and key from the path, the decoded query."""

    form: str
    bucket: str
    key: str
    query: dict[str, str]


@functools.cache
def s3_model() -> botocore.model.ServiceModel:
    return service_model("s3")


@functools.cache
def _routes() -> dict[tuple[str, str], tuple[Route, ...]]:
    model = s3_model()
    table: dict[tuple[str, str], list[Route]] = {}
    for name in model.operation_names:
        operation = model.operation_model(name)
        path, _, literal = operation.http["requestUri"].partition("?")
        form = _FORMS.get(path)
        if form is None:
            continue  # not path-style (WriteGetObjectResponse)
        literals = tuple(
            (key, value if sep else None)
            for key, sep, value in (part.partition("=") for part in literal.split("&") if part)
        )
        required_query: list[str] = []
        required_headers: list[str] = []
        shape = operation.input_shape
        if shape is not None:
            for member in shape.required_members:
                serialization = shape.members[member].serialization
                location = serialization.get("location")
                if location == "querystring":
                    required_query.append(serialization.get("name", member))
                elif location == "header":
                    required_headers.append(serialization.get("name", member).lower())
        route = Route(
            operation,
            operation.http["method"],
            form,
            literals,
            tuple(required_query),
            tuple(required_headers),
        )
        table.setdefault((route.method, form), []).append(route)
    # Most specific first, so that the first match is the one meant.
    return {key: tuple(sorted(found, key=lambda r: -r.specificity)) for key, found in table.items()}


def split_target(raw: str) -> Target:
    """The form, bucket, key and query of a path-style request target (`/bucket/key?x=1`).
    The path is percent-decoded here: botocore encodes keys, S3 stores them decoded."""
    path, _, query_text = raw.partition("?")
    query: dict[str, str] = {}
    for name, value in parse_qsl(query_text, keep_blank_values=True):
        query.setdefault(name, value)  # the first of a repeated name, as S3 reads it
    bucket, _, key = path.lstrip("/").partition("/")
    bucket, key = unquote(bucket), unquote(key)
    if not bucket:
        return Target(ROOT, "", "", query)
    return Target(OBJECT if key else BUCKET, bucket, key, query)


def match(method: str, target: Target, headers: Mapping[str, str]) -> Route:
    """The operation a request is; MethodNotAllowed when none has its method and form."""
    for route in _routes().get((method, target.form), ()):
        if route.matches(target.query, headers):
            return route
    raise S3Error(
        "MethodNotAllowed",
        "The specified method is not allowed against this resource.",
        Method=method,
        ResourceType={ROOT: "SERVICE", BUCKET: "BUCKET", OBJECT: "OBJECT"}[target.form],
    )
