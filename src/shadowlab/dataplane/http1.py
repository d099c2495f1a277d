"""The front HTTP/1.1 server connection: parse with httptools, answer in order, bound everything.

Pipelining: every parsed request joins `pending` in arrival order and a response is written only
once every earlier one has been, whatever order the upstreams answer in. Bounds: request bodies
beyond the limit of their route are counted and discarded, not buffered (the request is still
answered, with the route's "too large" error, so the connection stays in step); header blocks
are capped; a client that pipelines deeply or reads slowly is paused rather than buffered for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Protocol, cast

import httptools

from shadowlab.dataplane import wire

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024  # request line + headers
MAX_PIPELINE = 64  # parsed, unanswered requests per connection before we stop reading
_INVOKE_PREFIX = b"/endpoints/"
_INVOKE_SUFFIX = b"/invocations"
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class Request:
    """One parsed request and, once known, its response bytes."""

    __slots__ = (
        "chunks",
        "close_after",
        "connection_header",
        "content_length",
        "endpoint",
        "expect_continue",
        "header_bytes",
        "headers",
        "http_version",
        "keep_alive",
        "limit",
        "method",
        "on_disconnect",
        "response",
        "size",
        "too_large",
        "url",
    )

    def __init__(self) -> None:
        self.url = b""
        self.method = b""
        self.headers: list[tuple[bytes, bytes]] = []  # names lower-cased
        self.header_bytes = 0
        self.content_length = -1
        self.expect_continue = False
        self.endpoint: bytes | None = None  # set for POST /endpoints/{name}/invocations
        self.limit = 0
        self.chunks: list[bytes] = []
        self.size = 0
        self.too_large = False
        self.keep_alive = True
        self.http_version = "1.1"
        self.connection_header = b""
        self.response: bytes | list[bytes] | None = None
        self.close_after = False
        self.on_disconnect: Callable[[], None] | None = None

    @property
    def body(self) -> bytes:
        chunks = self.chunks
        if len(chunks) == 1:
            return chunks[0]
        return b"".join(chunks)


class Dispatcher(Protocol):
    """What the connection hands complete requests to (the server)."""

    invocation_body_limit: int
    other_body_limit: int
    loop: asyncio.AbstractEventLoop

    def invoke(self, conn: FrontConnection, req: Request) -> None: ...

    def other(self, conn: FrontConnection, req: Request) -> None: ...


class _HeaderTooLarge(Exception):
    pass


class FrontConnection(asyncio.Protocol):
    def __init__(self, dispatcher: Dispatcher, registry: set[FrontConnection]) -> None:
        self.dispatcher = dispatcher
        self.registry = registry
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.pending: deque[Request] = deque()
        self.req: Request | None = None  # being parsed
        self.lost = False
        self.closing = False  # no more requests will be read or answered after the last
        self.draining = False  # server stopping: close once pending is empty
        self.last_active = dispatcher.loop.time()
        self._paused_for_pipeline = False
        self._paused_for_writes = False
        self._reading_paused = False

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.registry.add(self)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.last_active = self.dispatcher.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # We speak no other protocol; answer what was parsed, then hang up.
            self._stop_reading_then_close()
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, _HeaderTooLarge):
                self._reject(431, "Request header fields too large")
            elif cause is not None:
                log.error("data plane request callback failed", exc_info=cause)
                self._reject(500, "Internal error")
            else:
                self._reject(400, f"Malformed HTTP request: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.closing = True
        self.registry.discard(self)
        pending, self.pending = self.pending, deque()
        for req in pending:
            if req.on_disconnect is not None:
                req.on_disconnect()

    def pause_writing(self) -> None:
        self._paused_for_writes = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._paused_for_writes = False
        self._update_reading()

    # -- httptools callbacks ---------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.req = Request()

    def on_url(self, url: bytes) -> None:
        req = self.req
        assert req is not None
        req.url += url
        req.header_bytes += len(url)
        if req.header_bytes > MAX_HEADER_BYTES:
            raise _HeaderTooLarge

    def on_header(self, name: bytes, value: bytes) -> None:
        req = self.req
        assert req is not None
        req.header_bytes += len(name) + len(value) + 4
        if req.header_bytes > MAX_HEADER_BYTES:
            raise _HeaderTooLarge
        lower = name.lower()
        req.headers.append((lower, value))
        if lower == b"content-length":
            # Only for the early size check; llhttp itself validates and enforces framing.
            with contextlib.suppress(ValueError):
                req.content_length = int(value)
        elif lower == b"expect" and value.lower() == b"100-continue":
            req.expect_continue = True

    def on_headers_complete(self) -> None:
        req = self.req
        assert req is not None
        req.method = self.parser.get_method()
        path = req.url
        if b"?" in path:
            path = path.split(b"?", 1)[0]
        if (
            req.method == b"POST"
            and path.startswith(_INVOKE_PREFIX)
            and path.endswith(_INVOKE_SUFFIX)
            and len(path) > len(_INVOKE_PREFIX) + len(_INVOKE_SUFFIX)
        ):
            name = path[len(_INVOKE_PREFIX) : -len(_INVOKE_SUFFIX)]
            if b"/" not in name:
                req.endpoint = name
        dispatcher = self.dispatcher
        req.limit = (
            dispatcher.invocation_body_limit
            if req.endpoint is not None
            else dispatcher.other_body_limit
        )
        if req.content_length > req.limit:
            req.too_large = True
        if req.expect_continue and not self.pending and self.transport is not None:
            if req.too_large:
                # The client is waiting for permission: refuse now instead of reading the body.
                self.req = None
                req.keep_alive = False
                req.connection_header = wire.CONNECTION_CLOSE
                self.pending.append(req)
                self._stop_reading_then_close()
                self._dispatch(req)
            else:
                self.transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        req = self.req
        if req is None or req.too_large:
            return  # refused already, or beyond the limit: discard without keeping a byte
        req.size += len(body)
        if req.size > req.limit:
            req.too_large = True
            req.chunks = []
        else:
            req.chunks.append(body)

    def on_message_complete(self) -> None:
        req = self.req
        self.req = None
        if req is None or self.closing:
            return  # refused early, or pipelined behind a request that ends the connection
        parser = self.parser
        keep_alive = parser.should_keep_alive()
        req.keep_alive = keep_alive
        req.http_version = version = parser.get_http_version()
        if not keep_alive:
            req.connection_header = wire.CONNECTION_CLOSE
        elif version == "1.0":
            req.connection_header = wire.CONNECTION_KEEP_ALIVE
        self.pending.append(req)
        if len(self.pending) >= MAX_PIPELINE:
            self._paused_for_pipeline = True
            self._update_reading()
        self._dispatch(req)

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
            if isinstance(data, bytes):
                transport.write(data)
            else:
                transport.writelines(data)
            if req.close_after:
                self._close()
                return
        if not pending:
            self.last_active = self.dispatcher.loop.time()  # idle from now, not since the ask
        if self._paused_for_pipeline and len(pending) < MAX_PIPELINE // 2:
            self._paused_for_pipeline = False
            self._update_reading()
        if (self.draining or self.closing) and not pending and self.req is None:
            self._close()

    def _dispatch(self, req: Request) -> None:
        try:
            if req.endpoint is not None:
                self.dispatcher.invoke(self, req)
            else:
                self.dispatcher.other(self, req)
        except Exception:
            # A bug must cost this request only, not wedge every answer pipelined behind it.
            log.exception("data plane failed to handle a request")
            if req.response is None:
                self.respond(req, wire.text_response(500, "Internal error", wire.CONNECTION_CLOSE))

    def _reject(self, status: int, text: str) -> None:
        """A protocol-level error: answer it after what is pending, then close."""
        self.req = None
        req = Request()
        req.keep_alive = False
        self.pending.append(req)
        self._stop_reading_then_close()
        self.respond(req, wire.text_response(status, text, wire.CONNECTION_CLOSE), close=True)

    def _stop_reading_then_close(self) -> None:
        self.closing = True
        self._reading_paused = True
        if self.transport is not None and not self.lost:
            self.transport.pause_reading()
        if not self.pending:
            self._close()

    def _close(self) -> None:
        self.closing = True
        self.pending.clear()
        if self.transport is not None:
            self.transport.close()

    def _update_reading(self) -> None:
        if self.transport is None or self.closing:
            return
        want_paused = self._paused_for_pipeline or self._paused_for_writes
        if want_paused and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()
        elif not want_paused and self._reading_paused:
            self._reading_paused = False
            self.transport.resume_reading()

    # -- server housekeeping ---------------------------------------------------------------
    def idle_since(self) -> float | None:
        """When this connection went idle (nothing pending or half-read), or None if busy."""
        if self.pending or self.req is not None:
            return None
        return self.last_active

    def close_when_idle(self) -> None:
        """For shutdown: finish what is pending, then close."""
        self.draining = True
        if not self.pending and self.req is None:
            self._close()

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
