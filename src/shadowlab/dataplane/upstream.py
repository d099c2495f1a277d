"""One HTTP/1.1 exchange with a model server, and the keep-alive connection that carries it.

Callback style on purpose: an `Exchange` is a plain object whose `on_done` runs exactly once,
with either a response or a `Failure`. No Task or Future is created per request; that is what
let the measured prototype keep up with nginx. Responses are parsed with httptools.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import httptools

if TYPE_CHECKING:
    from shadowlab.dataplane.pool import UpstreamPool

log = logging.getLogger(__name__)


class Failure(enum.Enum):
    CONNECT = "connect"  # no connection could be had: refused, connect timeout, pool closed
    TIMEOUT = "timeout"  # no complete answer in time (see Exchange.sent for where it stalled)
    DISCONNECTED = "disconnected"  # connection lost after the request was written
    BAD_RESPONSE = "bad_response"  # not parseable HTTP, or larger than allowed


# The time the data plane will still wait for this answer, so that a worker drops work nobody
# waits for any more instead of running it (as Envoy's x-envoy-expected-rq-timeout-ms).
TIMEOUT_HEADER = b"X-Shadowlab-Timeout-Ms: %d\r\n"
# A worker's 503 carrying this header did not run the request (queue full, deadline passed).
SHED_HEADER = b"x-shadowlab-shed"


class Exchange:
    """A request to send and, once `done`, its outcome.

    `head` holds the request's headers after Host, through the blank line; the connection puts
    the request line, Host and the remaining-time header in front of it when it writes. `body`
    is sent after it unchanged, so one body object can be shared by production and copies.
    `refused`: the model server answered that it did not run the request (see SHED_HEADER).
    """

    __slots__ = (
        "body",
        "chunks",
        "connection",
        "content_type",
        "context",
        "custom_attributes",
        "deadline_key",
        "detail",
        "done",
        "expires_at",
        "failure",
        "fresh_only",
        "head",
        "keep_body",
        "on_done",
        "pool",
        "received",
        "refused",
        "retried",
        "sent",
        "status",
        "timeout_s",
    )

    def __init__(
        self,
        head: bytes,
        body: bytes,
        on_done: Callable[[Exchange], None],
        context: Any = None,
        *,
        keep_body: bool = True,
    ) -> None:
        self.head = head
        self.body = body
        self.on_done = on_done
        self.context = context  # whatever the caller needs back in on_done
        self.keep_body = keep_body  # shadows without an observer need only the status
        self.pool: UpstreamPool | None = None  # set by UpstreamPool.send
        self.deadline_key = 0
        self.timeout_s = 0.0
        self.expires_at = 0.0  # loop time; set by UpstreamPool.send
        self.connection: UpstreamConnection | None = None  # the one it was last written to
        self.done = False
        self.sent = False  # written to a connection at least once
        self.retried = False
        self.fresh_only = False  # a retry must not land on another possibly-stale connection
        self.status = 0
        self.content_type: bytes | None = None
        self.custom_attributes: bytes | None = None
        self.chunks: list[bytes] = []
        self.received = 0
        self.refused = False
        self.failure: Failure | None = None
        self.detail = ""

    @property
    def response_body(self) -> bytes:
        chunks = self.chunks
        if len(chunks) == 1:
            return chunks[0]
        return b"".join(chunks)


class UpstreamConnection(asyncio.Protocol):
    """A keep-alive connection to one model server; carries one exchange at a time."""

    def __init__(self, pool: UpstreamPool, max_response_bytes: int) -> None:
        self.pool = pool
        self.max_response_bytes = max_response_bytes
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.exchange: Exchange | None = None
        self.completed = 0  # exchanges finished on this connection: >0 means "reused"
        self.reused_for_current = False
        self.got_bytes = False
        self.framed = False  # Content-Length or chunked: the body does not end at EOF
        self.in_body = False
        self.too_large = False
        self.lost = False

    # -- driving ---------------------------------------------------------------------------
    def usable(self) -> bool:
        transport = self.transport
        return not self.lost and transport is not None and not transport.is_closing()

    def send(self, exchange: Exchange) -> None:
        assert self.transport is not None
        self.exchange = exchange
        self.reused_for_current = self.completed > 0
        self.got_bytes = False
        self.framed = False
        self.in_body = False
        exchange.sent = True
        exchange.connection = self
        pool = self.pool
        remaining_ms = int((exchange.expires_at - pool.loop.time()) * 1000.0)
        head = pool.request_prefix + TIMEOUT_HEADER % max(remaining_ms, 1) + exchange.head
        body = exchange.body
        if len(body) < 65536:
            # One buffer, written at once: cheaper than writelines for small bodies.
            self.transport.write(head + body)
        else:
            self.transport.writelines((head, body))  # no copy of a large body

    def detach_and_abort(self) -> None:
        """Drop the connection without reporting its exchange (the caller already settled it)."""
        self.exchange = None
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.exchange is None:
            # Bytes nobody asked for: the stream is out of step, so it cannot be reused.
            self.detach_and_abort()
            return
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            # httptools wraps exceptions raised in callbacks, so on_body's refusal arrives here.
            if self.too_large:
                detail = f"the model's response exceeded {self.max_response_bytes} bytes"
            else:
                detail = f"invalid HTTP response from the model: {exc}"
            self._fail(Failure.BAD_RESPONSE, detail)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        exchange, self.exchange = self.exchange, None
        if exchange is not None and self.in_body and not self.framed:
            # HTTP/1.0 style: no length and not chunked, so end of stream ends the body.
            exchange.status = self.parser.get_status_code()
            self.completed += 1
            self.pool.connection_lost(self, None)
            self.pool.exchange_finished(exchange)
            return
        self.pool.connection_lost(self, exchange)

    # -- httptools callbacks ---------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        exchange = self.exchange
        assert exchange is not None
        lower = name.lower()
        if lower == b"content-type":
            exchange.content_type = value
        elif lower == b"x-amzn-sagemaker-custom-attributes":
            exchange.custom_attributes = value
        elif lower == b"content-length" or lower == b"transfer-encoding":
            self.framed = True
        elif lower == SHED_HEADER:
            exchange.refused = True

    # No on_headers_complete: the status is read at on_message_complete, one Python callback
    # fewer per response.
    def on_body(self, body: bytes) -> None:
        exchange = self.exchange
        assert exchange is not None
        self.in_body = True
        exchange.received += len(body)
        if exchange.received > self.max_response_bytes:
            self.too_large = True
            raise _TooLarge
        if exchange.keep_body:
            exchange.chunks.append(body)

    def on_message_complete(self) -> None:
        exchange = self.exchange
        assert exchange is not None
        exchange.status = status = self.parser.get_status_code()
        if status < 200:
            # An interim 1xx answer; the real one follows on the same exchange.
            exchange.chunks.clear()
            exchange.received = 0
            exchange.refused = False
            self.in_body = False
            return
        self.exchange = None
        self.completed += 1
        keep_alive = self.parser.should_keep_alive()
        self.pool.exchange_finished(exchange)
        self.pool.release(self, keep_alive)

    # -- internals -------------------------------------------------------------------------
    def _fail(self, failure: Failure, detail: str) -> None:
        exchange, self.exchange = self.exchange, None
        if self.transport is not None:
            self.transport.abort()
        if exchange is not None:
            self.pool.exchange_failed(exchange, failure, detail)


class _TooLarge(Exception):
    """Raised inside the parser callback to stop reading an oversized response."""
