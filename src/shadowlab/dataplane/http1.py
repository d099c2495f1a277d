"""The front HTTP/1.1 server connection: parse with httptools, answer in order, bound everything.

Pipelining: every parsed request joins `pending` in arrival order and a response is written only
once every earlier one has been, whatever order the upstreams answer in. Bounds: request bodies
beyond the limit of their route are counted and discarded, not buffered (the request is still
answered, with the route's "too large" error, so the connection stays in step); header blocks
are capped; a client that pipelines deeply or reads slowly is paused rather than buffered for.
Kept bodies are charged to one budget for all connections (`limits.Guard`) until answered; one
that does not fit is discarded like one too large, and answered 503. Timeouts: `limits.sweep`.
Refusals that end the connection (malformed or oversized heads, timeouts): `rejections`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Protocol, cast

import httptools

from shadowlab.dataplane import wire
from shadowlab.dataplane.limits import Guard
from shadowlab.dataplane.rejections import (
    HeadTooLarge,
    parse_failed,
    refuse_before_body,
    reject,
)
from shadowlab.dataplane.request import (
    H_ACCEPT,
    H_AUTHORIZATION,
    H_CONNECTION,
    H_CONTENT_LENGTH,
    H_CONTENT_TYPE,
    H_CUSTOM_ATTRIBUTES,
    H_EXPECT,
    H_INFERENCE_ID,
    H_TARGET_VARIANT,
    SPECIAL_HEADERS,
    Request,
    head_size,
    stream_endpoint_of,
)
from shadowlab.dataplane.wire import CONNECTION_CLOSE, CONNECTION_KEEP_ALIVE

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024  # a request head, whether it spans reads or fits in one
MAX_HEADERS = 128
MAX_PIPELINE = 64  # parsed, unanswered requests per connection before we stop reading
_INVOKE_PREFIX = b"/endpoints/"
_INVOKE_SUFFIX = b"/invocations"
_INVOKE_MIN = len(_INVOKE_PREFIX) + len(_INVOKE_SUFFIX)
_INVOKE_NAME_START, _INVOKE_NAME_END = len(_INVOKE_PREFIX), -len(_INVOKE_SUFFIX)
_STREAM_SUFFIX = b"/invocations-response-stream"  # InvokeEndpointWithResponseStream
_STREAM_MIN = len(_INVOKE_PREFIX) + len(_STREAM_SUFFIX)
_STREAM_NAME_END = -len(_STREAM_SUFFIX)
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class Dispatcher(Protocol):
    """What the connection hands complete requests to (the server)."""

    invocation_body_limit: int
    other_body_limit: int
    loop: asyncio.AbstractEventLoop
    # An attribute rather than a method so the server can hand over the Invoker's bound method:
    # one Python call fewer per invocation.
    invoke: Callable[[FrontConnection, Request], None]

    def other(self, conn: FrontConnection, req: Request) -> None: ...

    def other_limit(self, req: Request) -> int:
        """The body limit of a request that is not an invocation (S3 uploads get more)."""
        ...


class FrontConnection(asyncio.Protocol):
    def __init__(
        self, dispatcher: Dispatcher, registry: set[FrontConnection], guard: Guard
    ) -> None:
        self.dispatcher = dispatcher
        self.registry = registry
        self.guard = guard
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.pending: deque[Request] = deque()
        self.req: Request | None = None  # being parsed
        self.lost = False
        self.closing = False  # no more requests will be read or answered after the last
        self.draining = False  # server stopping: close once pending is empty
        self.made_at = dispatcher.loop.time()
        self.idle_at = -1.0  # when the last answer went out; < 0 until the first has
        # The sweep's note of the request it last saw in progress, when, and its size then.
        self.mark_req: Request | None = None
        self.mark_at = 0.0
        self.mark_size = 0
        self._paused_for_pipeline = False
        self._paused_for_writes = False
        self.reading_paused = False
        self._head_bytes = 0  # bytes read while the current request head is incomplete
        self._head_began_here = False
        self._big_read = False

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        if len(self.registry) >= self.guard.max_connections:
            self.closing = True
            self.guard.refuse_connection(self.transport)
            return
        self.registry.add(self)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self._head_began_here = False
        # A read this big may hold a whole oversized head, which the per-read count below
        # misses: on_headers_complete then measures the head itself (only for such reads).
        big = len(data) > MAX_HEADER_BYTES
        if big:
            self._big_read = True
        try:
            self.parser.feed_data(data)
            req = self.req
            if req is not None and not req.method:
                # httptools buffers a header until it is complete, so the bound is kept here,
                # per chunk, for heads spanning chunks: memory stays under one read + the cap.
                if not self._head_began_here:
                    self._head_bytes += len(data)
                elif big:  # began in this read: what httptools has handed over so far
                    self._head_bytes = head_size(req)
                if self._head_bytes > MAX_HEADER_BYTES:
                    raise HeadTooLarge
        except (HeadTooLarge, httptools.HttpParserUpgrade, httptools.HttpParserError) as exc:
            parse_failed(self, exc)  # answers what it can, then closes (see rejections)
        finally:
            if big:
                self._big_read = False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.closing = True
        self.registry.discard(self)
        # Free a half-received body now, not when a cycle collection finds this connection.
        if self.req is not None:
            self.guard.release(self.req)
            self.req = None
        self.mark_req = None
        pending, self.pending = self.pending, deque()
        for req in pending:
            self.guard.release(req)
            if req.on_disconnect is not None:
                req.on_disconnect()

    def pause_writing(self) -> None:
        self._paused_for_writes = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._paused_for_writes = False
        self._update_reading()

    # -- httptools callbacks ---------------------------------------------------------------
    # No on_message_begin: on_url always comes first, and one callback fewer per request counts
    # on this path (each is a C-to-Python call).
    def on_url(self, url: bytes) -> None:
        req = self.req
        if req is None:
            self.req = Request(url)
            self._head_bytes = 0
            self._head_began_here = True
        else:
            req.url += url  # the URL arrived in pieces

    def on_header(self, name: bytes, value: bytes) -> None:
        req = self.req
        assert req is not None
        lower = name.lower()
        req.headers.append((lower, value))
        kind = SPECIAL_HEADERS.get(lower)
        if kind is None:
            return
        if kind == H_CONTENT_TYPE:
            req.content_type = value
        elif kind == H_CONTENT_LENGTH:
            # Only for the early size check; llhttp itself validates and enforces framing.
            if value.isdigit():
                req.content_length = int(value)
        elif kind == H_ACCEPT:
            req.accept = value
        elif kind == H_CUSTOM_ATTRIBUTES:
            req.custom_attributes = value
        elif kind == H_TARGET_VARIANT:
            req.target_variant = value
        elif kind == H_INFERENCE_ID:
            req.inference_id = value
        elif kind == H_AUTHORIZATION:
            req.authorization = value
        elif kind == H_EXPECT:
            req.expect_continue = value.lower() == b"100-continue"
        elif kind == H_CONNECTION:
            req.keep_alive_token = b"keep-alive" in value.lower()

    def on_headers_complete(self) -> None:
        req = self.req
        assert req is not None
        if len(req.headers) > MAX_HEADERS or len(req.url) > MAX_HEADER_BYTES:
            raise HeadTooLarge
        if self._big_read and head_size(req) > MAX_HEADER_BYTES:
            raise HeadTooLarge
        req.method = method = self.parser.get_method()
        dispatcher = self.dispatcher
        path = req.url
        if method == b"POST" and path.startswith(_INVOKE_PREFIX):
            if b"?" in path:
                path = path.split(b"?", 1)[0]
            if path.endswith(_INVOKE_SUFFIX) and len(path) > _INVOKE_MIN:
                name = path[_INVOKE_NAME_START:_INVOKE_NAME_END]
                if b"/" not in name:
                    req.endpoint = name
            elif path.endswith(_STREAM_SUFFIX) and len(path) > _STREAM_MIN:
                # Checked only once the plain suffix failed: InvokeEndpoint pays nothing for it.
                # The request goes to `other`, which hands it to the streaming invoker.
                name = path[_INVOKE_NAME_START:_STREAM_NAME_END]
                if b"/" not in name:
                    req.stream_endpoint = name
        req.limit = limit = (
            dispatcher.invocation_body_limit
            if req.endpoint is not None or stream_endpoint_of(req) is not None
            else dispatcher.other_limit(req)
        )
        length = req.content_length
        if length > limit:
            req.too_large = True
        elif length > 0:
            guard = self.guard
            if length <= guard.body_available:  # reserved whole: the body can then not fail
                guard.body_available -= length
                req.reserved = length
            else:
                guard.refuse_body(req)
        if req.expect_continue and not self.pending and self.transport is not None:
            if req.too_large:
                # The client is waiting for permission: refuse now instead of reading the body.
                refuse_before_body(self, req)
            else:
                self.transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        req = self.req
        if req is None:
            return  # refused already
        req.size += len(body)  # counted even when discarded: the sweep judges the rate by it
        if req.too_large:
            return  # beyond the limit or the budget: discard without keeping a byte
        if req.size > req.reserved:  # no Content-Length (chunked): charge as it comes
            self.guard.grow(req)
            if req.too_large:
                return
        req.chunks.append(body)

    def on_message_complete(self) -> None:
        req = self.req
        self.req = None
        if req is None or self.closing:
            return  # refused early, or pipelined behind a request that ends the connection
        parser = self.parser
        if not parser.should_keep_alive():
            req.keep_alive = False
            req.connection_header = CONNECTION_CLOSE
        elif req.keep_alive_token:
            # An HTTP/1.0 client must hear keep-alive back; 1.1 clients ignore the echo.
            req.connection_header = CONNECTION_KEEP_ALIVE
        if req.endpoint is None:
            req.http_version = parser.get_http_version()  # for the ASGI scope only
        pending = self.pending
        pending.append(req)
        if len(pending) >= MAX_PIPELINE:
            self._paused_for_pipeline = True
            self._update_reading()
        self.dispatch(req)

    # -- answering -------------------------------------------------------------------------
    def respond(self, req: Request, data: bytes | list[bytes], *, close: bool = False) -> None:
        """Set `req`'s response; it is written as soon as every earlier response has been."""
        req.response = data
        req.close_after = close or not req.keep_alive
        pending = self.pending
        if pending and pending[0] is req:
            self._flush()

    def _flush(self) -> None:
        pending = self.pending
        transport = self.transport
        assert transport is not None
        while pending:
            req = pending[0]
            data = req.response
            if data is None:
                break
            pending.popleft()
            if req.reserved:  # the answer is out: its body no longer counts as buffered
                self.guard.body_available += req.reserved
                req.reserved = 0
            if isinstance(data, bytes):
                transport.write(data)  # tried at once; writelines would wait for the loop
            else:
                transport.writelines(data)
            if req.close_after:
                self.close()
                return
        if not pending:
            self.idle_at = self.dispatcher.loop.time()  # idle from now, not since the ask
        if self._paused_for_pipeline and len(pending) < MAX_PIPELINE // 2:
            self._paused_for_pipeline = False
            self._update_reading()
        if (self.draining or self.closing) and not pending and self.req is None:
            self.close()

    def dispatch(self, req: Request) -> None:
        """Hand a complete request over to be answered (also by `rejections`)."""
        if req.over_budget:
            self.respond(req, self.guard.over_budget(req))
            return
        try:
            if req.endpoint is not None:
                self.dispatcher.invoke(self, req)
            else:
                self.dispatcher.other(self, req)
        except Exception:
            # A bug must cost this request only, not wedge every answer pipelined behind it.
            log.exception("data plane failed to handle a request")
            if req.response is None:
                error = wire.text_response(500, "Internal error", CONNECTION_CLOSE)
                self.respond(req, error, close=True)

    def close(self) -> None:
        """Close now, releasing what is still pending (answered first where it must be)."""
        self.closing = True
        for req in self.pending:
            self.guard.release(req)
        self.pending.clear()
        if self.transport is not None:
            self.transport.close()

    def _update_reading(self) -> None:
        if self.transport is None or self.closing:
            return
        want_paused = self._paused_for_pipeline or self._paused_for_writes
        if want_paused and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()
        elif not want_paused and self.reading_paused:
            self.reading_paused = False
            self.transport.resume_reading()

    # -- server housekeeping ---------------------------------------------------------------
    def time_out(self) -> None:
        """Too slow (see limits.sweep): a 408 if a request has begun (nothing of its answer can
        have been written: it is still being read), after what is pending; then close."""
        self.mark_req = None  # so that a half-received body is freed right here
        if self.req is not None:
            reject(self, 408, "Request timeout")
        else:
            self.close()

    def close_when_idle(self) -> None:
        """For shutdown: finish what is pending, then close."""
        self.draining = True
        if not self.pending and self.req is None:
            self.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def addresses(self) -> tuple[tuple[str, int] | None, tuple[str, int] | None]:
        """(client, server) for an ASGI scope."""
        if self.transport is None:
            return None, None
        peer = self.transport.get_extra_info("peername")
        sock = self.transport.get_extra_info("sockname")
        client = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None
        server = (str(sock[0]), int(sock[1])) if isinstance(sock, tuple) else None
        return client, server
