"""The S3 API on the data plane's port: which requests are S3's, and answering them.

A signed request is S3's when its SigV4 credential scope names the service "s3" (botocore signs
S3 requests so, and addresses buckets path-style on an IP endpoint such as
http://127.0.0.1:7070). An unsigned request (only with --allow-unsigned) carries no scope, so it
is S3's by exclusion: everything but `POST /` (the SageMaker JSON API), `/endpoints/...` (the
runtime), `/shadowlab/...`, `/healthz` and `/metrics`. A bucket named `endpoints`, `shadowlab`,
`healthz` or `metrics` is therefore reachable by signed requests only.

Requests run in a small thread pool: they read and write files and hash bodies (MD5 for the
ETag, SHA-256 for a signed payload), which must not stall the event loop that carries
invocations. With `--s3-endpoint-url` the embedded API is off (`handler` is None): S3 requests
are answered 501 NotImplemented, naming the setting.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from shadowlab.awsprotocol.scope import region_of, service_of
from shadowlab.dataplane import wire
from shadowlab.dataplane.request import Request
from shadowlab.dataplane.signatures import SignatureGate
from shadowlab.s3api import errors, protocol, routes
from shadowlab.s3api.errors import S3Error
from shadowlab.s3api.handler import Call, S3Handler

if TYPE_CHECKING:
    from shadowlab.dataplane.http1 import FrontConnection

log = logging.getLogger(__name__)

_NOT_S3_PREFIXES = (b"/endpoints/", b"/shadowlab/")
_NOT_S3_PATHS = frozenset({b"/healthz", b"/metrics"})
_NO_BODY_STATUSES = (204, 304)
_OFF = (
    "The embedded S3 API is off because this server stores objects in an external S3 service "
    "(--s3-endpoint-url); send S3 requests to that service."
)


class S3Front:
    """`claims` and `body_limit` are read by the connection (for the body limit) and the
    server (to dispatch); `handle` answers a claimed request."""

    def __init__(
        self,
        handler: S3Handler | None,
        signatures: SignatureGate | None,
        *,
        body_limit: int = 64 * 1024 * 1024,
        default_region: str = "us-east-1",
        workers: int = 4,
    ) -> None:
        self._handler = handler
        self._signatures = signatures
        self.body_limit = body_limit
        self._default_region = default_region
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3api")

    def claims(self, req: Request) -> bool:
        if req.authorization is not None:
            return service_of(req.authorization) == b"s3"
        path = req.url.split(b"?", 1)[0]
        if path == b"/" and req.method == b"POST":
            return False  # the SageMaker JSON API (or a request for it missing its target)
        return path not in _NOT_S3_PATHS and not path.startswith(_NOT_S3_PREFIXES)

    def handle(self, conn: FrontConnection, req: Request) -> None:
        if req.too_large:
            # Discarded unread, so its signature cannot be checked; the size tells nothing.
            error = S3Error(
                "EntityTooLarge",
                "Your proposed upload exceeds the maximum allowed object size.",
                MaxSizeAllowed=str(self.body_limit),
            )
            conn.respond(req, _error_response(req, error, _request_id()))
            return
        loop = asyncio.get_running_loop()
        future: Future[bytes] = self._pool.submit(self.answer, req)

        def done(finished: Future[bytes]) -> None:
            if not conn.lost:
                conn.respond(req, finished.result())

        future.add_done_callback(lambda f: loop.call_soon_threadsafe(done, f))

    def answer(self, req: Request) -> bytes:
        """The complete response to `req` (runs in the pool; never raises)."""
        request_id = _request_id()
        try:
            return self._answer(req, request_id)
        except S3Error as error:
            return _error_response(req, error, request_id)
        except Exception:
            log.exception("S3 request %s %r failed", req.method, req.url[:200])
            internal = S3Error(
                "InternalError", "We encountered an internal error. Please try again."
            )
            return _error_response(req, internal, request_id)

    def _answer(self, req: Request, request_id: str) -> bytes:
        if self._handler is None:
            raise S3Error("NotImplemented", _OFF)
        body = req.body
        if self._signatures is not None:
            failure = self._signatures.failure(req, body)
            if failure is not None:
                raise errors.from_auth(failure)
        headers: dict[str, str] = {}
        for raw_name, raw_value in req.headers:
            name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        method = req.method.decode("latin-1")
        target = routes.split_target(req.url.decode("latin-1"))
        route = routes.match(method, target, headers)
        params = protocol.parse_input(route.operation, target, headers, body)
        call = Call(headers, body, self._region(req))
        output, status = self._handler.call(route.operation.name, params, call)
        default_status, out_headers, out_body = protocol.serialize_output(route.operation, output)
        return _response(req, status or default_status, out_headers, out_body, request_id)

    def _region(self, req: Request) -> str:
        return region_of(req.authorization, self._default_region)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _request_id() -> str:
    return uuid.uuid4().hex[:16].upper()


def _response(
    req: Request,
    status: int,
    headers: list[tuple[str, str]],
    body: bytes,
    request_id: str,
) -> bytes:
    declared: bytes | None = None
    encoded: list[tuple[bytes, bytes]] = [
        (b"x-amz-request-id", request_id.encode("ascii")),
        (b"x-amz-id-2", request_id.encode("ascii")),
    ]
    for name, value in headers:
        if name.lower() == "content-length":
            declared = value.encode("ascii")  # framing is set below, once
        else:
            encoded.append((name.encode("latin-1"), value.encode("latin-1", "replace")))
    no_body = status in _NO_BODY_STATUSES
    head = req.method == b"HEAD"
    if head and declared is not None and not no_body:
        # A HEAD answer carries the length the GET would have had.
        encoded.append((b"Content-Length", declared))
    return wire.plain_response(
        status,
        encoded,
        body,
        req.connection_header,
        head_only=head or no_body,
        set_length=not no_body and not (head and declared is not None),
    )


def _error_response(req: Request, error: S3Error, request_id: str) -> bytes:
    headers = list(error.headers.items())
    if error.status == 304 or req.method == b"HEAD":
        # No body: botocore then takes the code from the status, as it does with S3.
        return _response(req, error.status, headers, b"", request_id)
    resource = req.url.split(b"?", 1)[0].decode("latin-1", "replace")
    body = errors.error_body(error, resource, request_id)
    headers.append(("Content-Type", "application/xml"))
    return _response(req, error.status, headers, body, request_id)
