"""A minimal, fast HTTP/1.1 server connection: asyncio.Protocol + httptools, callback style.

Measured on this project's machine, frameworks cost 4x against a raw Protocol (ARCHITECTURE.md,
"Measured facts"), and the model worker is the "direct to the model server" baseline, so it is
built like the data plane: no Task per request, keep-alive, pipelining with responses kept in
request order, bounded bodies, and backpressure both on slow readers and on queued work.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable
from http import HTTPStatus
from typing import cast

import httptools

from shadowlab.hosting.streaming import StreamedResponse

__all__ = ["Answer", "HttpConnection", "Request", "Responder", "render", "render_stream_head"]

log = logging.getLogger("shadowlab.hosting.http")

# Stop reading a connection that has this many responses waiting for work, until they go out.
MAX_PENDING_PER_CONNECTION = 32
_PHRASES = {status.value: status.phrase.encode() for status in HTTPStatus}


class Request:
    """`abandoned` turns true when the client goes away before its answer was written, so work
    still queued for it can be skipped."""

    __slots__ = ("abandoned", "body", "headers", "http10", "keep_alive", "method", "path")

    def __init__(self) -> None:
        self.abandoned = False
        self.method = b""
        self.path = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""
        self.keep_alive = True
        self.http10 = False

    def header(self, name: bytes) -> bytes | None:
        """First value of a header; `name` must be lower-case."""
        for key, value in self.headers:
            if len(key) == len(name) and key.lower() == name:
                return value
        return None


# A responder answers a complete request with the full response bytes, or a response streamed
# over time, or a future of either when the work runs elsewhere; the connection keeps the order
# whichever it is.
Answer = bytes | StreamedResponse
Responder = Callable[[Request], "Answer | asyncio.Future[Answer]"]
_Slot = list[bytes | StreamedResponse | bool | Request | None]


def render(
    status: int,
    body: bytes = b"",
    content_type: bytes | None = None,
    extra_headers: bytes = b"",
    *,
    keep_alive: bool = True,
    http10: bool = False,
) -> bytes:
    """One complete HTTP/1.1 response. `extra_headers` is pre-framed `Name: value\\r\\n` lines."""
    head = b"HTTP/1.1 %d %s\r\nContent-Length: %d\r\n" % (
        status,
        _PHRASES.get(status, b"Unknown"),
        len(body),
    )
    if content_type is not None:
        head += b"Content-Type: " + content_type + b"\r\n"
    if not keep_alive:
        head += b"Connection: close\r\n"
    elif http10:
        head += b"Connection: keep-alive\r\n"
    return head + extra_headers + b"\r\n" + body


def render_stream_head(
    status: int,
    content_type: bytes | None,
    extra_headers: bytes = b"",
    *,
    keep_alive: bool = True,
    http10: bool = False,
) -> bytes:
    """The head of a streamed response: chunked for HTTP/1.1; for HTTP/1.0, which has no
    chunks, no framing at all and the connection closes at the end."""
    head = b"HTTP/1.1 %d %s\r\n" % (status, _PHRASES.get(status, b"Unknown"))
    if content_type is not None:
        head += b"Content-Type: " + content_type + b"\r\n"
    if http10:
        head += b"Connection: close\r\n"
    else:
        head += b"Transfer-Encoding: chunked\r\n"
        if not keep_alive:
            head += b"Connection: close\r\n"
    return head + extra_headers + b"\r\n"


def render_error(
    status: int, message: str, *, keep_alive: bool, http10: bool = False, extra: bytes = b""
) -> bytes:
    """An error response; the JSON shape of the SageMaker model server's error bodies."""
    phrase = _PHRASES.get(status, b"Error").decode().replace(" ", "")
    body = json.dumps({"code": status, "type": phrase, "message": message}).encode()
    return render(status, body, b"application/json", extra, keep_alive=keep_alive, http10=http10)


class HttpConnection(asyncio.Protocol):
    """One client connection. Requests are answered strictly in arrival order."""

    def __init__(self, responder: Responder, max_body: int, connections: set[HttpConnection]):
        self._respond = responder
        self._max_body = max_body
        self._connections = connections
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._request = Request()
        self._body: list[bytes] = []
        self._body_size = 0
        # Each slot is [response (bytes, or a StreamedResponse) or None while its work runs,
        # close after it, request].
        self._slots: deque[_Slot] = deque()
        self._closing = False  # no further requests are read or answered
        self._in_request = False
        self._write_paused = False
        self._reading_paused = False

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but implement it.
        self._transport = cast(asyncio.Transport, transport)
        self._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        self._closing = True
        for slot in self._slots:
            request = slot[2]
            if isinstance(request, Request):
                request.abandoned = True  # nobody will read its answer: do not run it
        self._slots.clear()
        self._transport = None

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if not self._closing:
                message = "protocol upgrades are not supported"
                self._answer(render_error(400, message, keep_alive=False))
        except httptools.HttpParserError as exc:
            if not self._closing:
                message = f"malformed HTTP request: {exc}"
                self._answer(render_error(400, message, keep_alive=False))

    def pause_writing(self) -> None:
        # A client that does not read its responses must not make us buffer without end.
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._update_reading()

    # -- httptools callbacks -----------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._request = Request()
        self._body = []
        self._body_size = 0
        self._in_request = True

    def on_url(self, url: bytes) -> None:
        self._request.path += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._request.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self._closing:
            return
        request = self._request
        length = request.header(b"content-length")
        if length is not None and length.strip().isdigit() and int(length) > self._max_body:
            # Answer before the body arrives and hang up: reading megabytes only to drop them
            # would cost more than the client's reconnect.
            self._too_large()
            return
        expect = request.header(b"expect")
        if expect is not None and expect.lower() == b"100-continue" and not self._slots:
            assert self._transport is not None
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if self._closing:
            return
        self._body_size += len(body)
        if self._body_size > self._max_body:
            self._too_large()
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._closing:
            return
        parser = self._parser
        request = self._request
        request.method = parser.get_method()
        request.path = request.path.split(b"?", 1)[0]
        request.keep_alive = parser.should_keep_alive()
        request.http10 = parser.get_http_version() == "1.0"
        request.body = b"".join(self._body) if len(self._body) != 1 else self._body[0]
        self._body = []
        self._body_size = 0
        self._in_request = False
        try:
            response = self._respond(request)
        except Exception:
            log.exception("unhandled error answering %s %s", request.method, request.path)
            response = render_error(500, "internal error", keep_alive=False)
            request.keep_alive = False
        if isinstance(response, bytes):
            self._answer(response, close=not request.keep_alive)
            return
        slot: _Slot = [None, not request.keep_alive, request]
        self._slots.append(slot)
        if not request.keep_alive:
            self._closing = True
        if isinstance(response, StreamedResponse):
            self._stream_into(slot, response)
        else:
            response.add_done_callback(lambda future: self._finish(slot, future))
        self._update_reading()

    # -- responses in order ---------------------------------------------------------------------
    def _answer(self, response: bytes, close: bool = True) -> None:
        if close:
            self._closing = True
        if not self._slots and self._transport is not None:
            self._transport.write(response)
            if close:
                self._transport.close()
        else:
            self._slots.append([response, close, None])

    def _stream_into(self, slot: _Slot, response: StreamedResponse) -> None:
        if not response.chunked:
            slot[1] = True  # an HTTP/1.0 body without framing ends when the connection does
        slot[0] = response
        response.on_data = self._flush
        self._flush()

    def _finish(self, slot: _Slot, future: asyncio.Future[Answer]) -> None:
        if future.cancelled():
            slot[0] = render_error(503, "shutting down", keep_alive=False)
            slot[1] = True
        elif future.exception() is not None:
            log.error("response failed", exc_info=future.exception())
            slot[0] = render_error(500, "internal error", keep_alive=False)
            slot[1] = True
        else:
            result = future.result()
            if isinstance(result, StreamedResponse):
                self._stream_into(slot, result)
                return
            slot[0] = result
        self._flush()

    def _flush(self) -> None:
        transport = self._transport
        while self._slots and self._slots[0][0] is not None:
            response, close, _ = self._slots[0]
            if transport is None:
                return
            if isinstance(response, StreamedResponse):
                # At the front: what it has so far goes out now, the rest when it comes.
                data = response.take()
                if data:
                    transport.write(data)
                if not response.ended:
                    break
                if response.broken:  # no last chunk: the client must see the body break off
                    self._closing = True
                    self._slots.clear()
                    transport.close()  # after what is buffered, unlike abort()
                    return
            else:
                assert isinstance(response, bytes)
                transport.write(response)
            self._slots.popleft()
            if close:
                self._slots.clear()
                transport.close()
                return
        self._update_reading()

    def _too_large(self) -> None:
        message = f"request body exceeds {self._max_body} bytes"
        self._answer(render_error(413, message, keep_alive=False))

    def _update_reading(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if self._reading_paused:
            # Resume only well below the limit, so a pipelining client is not paused per request.
            if not self._write_paused and len(self._slots) <= MAX_PENDING_PER_CONNECTION // 2:
                self._reading_paused = False
                transport.resume_reading()
        elif self._write_paused or len(self._slots) >= MAX_PENDING_PER_CONNECTION:
            self._reading_paused = True
            transport.pause_reading()

    # -- shutdown --------------------------------------------------------------------------------
    @property
    def idle(self) -> bool:
        return not self._slots and not self._in_request

    def close_when_done(self) -> None:
        """Answer what was already read, read nothing more, then close."""
        self._closing = True
        if self._transport is None:
            return
        if not self._slots:
            self._transport.close()
        else:
            self._slots[-1][1] = True
