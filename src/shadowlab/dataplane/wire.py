"""Bytes on the wire for the front server: InvokeEndpoint answers, AWS errors, others.

AWS errors are `awsprotocol.errors`' to encode (status from the model, headers, JSON body); this
module only frames them as HTTP/1.1, with the framing of each code built once: InvokeEndpoint's
errors are on the hot path.
"""

from __future__ import annotations

import functools
import http
import itertools
import uuid

from shadowlab.awsprotocol.errors import ErrorEncoder, ErrorForm, encoder_for
from shadowlab.awsprotocol.service_models import runtime_model
from shadowlab.errors import ServiceError

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


class ErrorResponses:
    """The AWS errors of one service model as complete HTTP/1.1 responses."""

    def __init__(self, encoder: ErrorEncoder) -> None:
        self._encoder = encoder
        # (code, status override) -> the bytes before the request id, those after it up to
        # the Content-Length value, and the code's form (what the body needs).
        self._framing: dict[tuple[str, int | None], tuple[bytes, bytes, ErrorForm]] = {}

    def response(
        self,
        error: ServiceError,
        request_id: bytes,
        connection: bytes,
        status: int | None = None,
    ) -> bytes:
        """`error` as the service answers it; `status` overrides the model's (auth failures)."""
        framing = self._framing.get((error.code, status))
        if framing is None:
            framing = self._frame(error.code, status)
        head, middle, form = framing
        body = self._encoder.body(error, form)
        return b"".join(
            (head, request_id, middle, b"%d\r\n" % len(body), connection, b"\r\n", body)
        )

    def _frame(self, code: str, status: int | None) -> tuple[bytes, bytes, ErrorForm]:
        form = self._encoder.form(code)
        head = b"%sContent-Type: %s\r\nx-amzn-RequestId: " % (
            status_line(form.status if status is None else status),
            self._encoder.content_type.encode("ascii"),
        )
        middle = b"\r\nx-amzn-ErrorType: %s\r\nContent-Length: " % form.error_type.encode("ascii")
        framing = self._framing[(code, status)] = (head, middle, form)
        return framing


@functools.cache
def runtime_errors() -> ErrorResponses:
    """sagemaker-runtime's errors (REST-JSON), as InvokeEndpoint answers them. The first call
    loads the model: the invoker makes it at construction, not on its first error."""
    return ErrorResponses(encoder_for(runtime_model()))


def aws_error(error: ServiceError, request_id: bytes, connection: bytes) -> bytes:
    """A sagemaker-runtime error in REST-JSON form, as botocore expects to parse it."""
    return runtime_errors().response(error, request_id, connection)


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
