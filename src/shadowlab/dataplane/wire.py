"""Bytes on the wire for the front server: InvokeEndpoint answers, AWS rest-json errors, others.

Errors follow what botocore's rest-json parser reads: the code from `x-amzn-ErrorType` (the part
before ':'), the message from the JSON body's `message`, modelled members (ModelError's
OriginalStatusCode, OriginalMessage) from body keys named after the shape's members. The HTTP
status of each code is the `httpStatusCode` of its error shape in botocore's sagemaker-runtime
model; tests/dataplane/test_wire.py checks this table against that model.
"""

from __future__ import annotations

import http
import itertools
import json
import uuid

from shadowlab.errors import ServiceError

RUNTIME_ERROR_STATUS: dict[str, int] = {
    "ValidationError": 400,
    "ModelNotReadyException": 429,
    "ModelError": 424,
    "InternalFailure": 500,
    "ServiceUnavailable": 503,
    "InternalDependencyException": 530,
}

# AWS's common errors that sagemaker-runtime's model does not declare, by HTTP status:
# a serverless endpoint throttles invocations beyond its MaxConcurrency with this one.
COMMON_ERROR_STATUS: dict[str, int] = {"ThrottlingException": 400}

_ERROR_TYPE_SUFFIX = ":http://internal.amazon.com/coral/com.amazon.coral.service/"
_REASONS: dict[int, bytes] = {s.value: s.phrase.encode("latin-1") for s in http.HTTPStatus}

CONNECTION_CLOSE = b"Connection: close\r\n"
CONNECTION_KEEP_ALIVE = b"Connection: keep-alive\r\n"  # only HTTP/1.0 clients need to be told


class RequestIds:
    """x-amzn-RequestId values: UUID-shaped, unique, and cheap.

    uuid4() per request costs ~2.7 us here (an os.urandom syscall each time), a noticeable
    share of the hot path's budget. A random per-process prefix plus a counter gives ids with
    the same shape that are unique per process and, by the prefix, across processes.
    """

    def __init__(self) -> None:
        h = uuid.uuid4().hex
        variant = "89ab"[int(h[16], 16) & 3]
        self._prefix = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-".encode("ascii")
        self._counter = itertools.count(int(h[20:], 16))

    def next(self) -> bytes:
        return self._prefix + b"%012x" % (next(self._counter) & 0xFFFFFFFFFFFF)


def status_line(status: int) -> bytes:
    return b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Unknown"))


_OK_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nx-Amzn-Invoked-Production-Variant: %s\r\n"
    b"x-amzn-RequestId: %s\r\nContent-Length: %d\r\n%s%s\r\n"
)


def invocation_ok(
    body: bytes,
    content_type: bytes | None,
    variant: bytes,
    custom_attributes: bytes | None,
    request_id: bytes,
    connection: bytes,
) -> bytes | list[bytes]:
    """InvokeEndpoint's success: the model's body, with SageMaker's output headers."""
    head = _OK_HEAD % (
        content_type if content_type is not None else b"application/octet-stream",
        variant,
        request_id,
        len(body),
        b""
        if custom_attributes is None
        else b"X-Amzn-SageMaker-Custom-Attributes: " + custom_attributes + b"\r\n",
        connection,
    )
    # Small answers go out as one buffer; big ones are not copied just to prepend a head.
    return head + body if len(body) < 65536 else [head, body]


def aws_error(error: ServiceError, request_id: bytes, connection: bytes) -> bytes:
    """A sagemaker-runtime error in rest-json form, as botocore expects to parse it."""
    status = RUNTIME_ERROR_STATUS.get(error.code) or COMMON_ERROR_STATUS.get(error.code, 500)
    payload = {"message": error.message, **error.fields}
    body = json.dumps(payload, ensure_ascii=True).encode("ascii")
    return b"".join(
        (
            status_line(status),
            b"x-amzn-RequestId: ",
            request_id,
            b"\r\nx-amzn-ErrorType: ",
            (error.code + _ERROR_TYPE_SUFFIX).encode("ascii"),
            b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % len(body),
            connection,
            b"\r\n",
            body,
        )
    )


def plain_response(
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    connection: bytes,
    *,
    head_only: bool = False,
    set_length: bool = True,
) -> bytes:
    """Any other answer (ASGI apps, protocol errors). `headers` must not carry framing."""
    parts = [status_line(status)]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    if set_length:
        parts.append(b"Content-Length: %d\r\n" % len(body))
    parts += (connection, b"\r\n")
    if not head_only:
        parts.append(body)
    return b"".join(parts)


def text_response(status: int, text: str, connection: bytes) -> bytes:
    return plain_response(
        status,
        [(b"Content-Type", b"text/plain; charset=utf-8")],
        text.encode("utf-8"),
        connection,
    )
