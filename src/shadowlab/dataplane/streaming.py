"""InvokeEndpointWithResponseStream: the model's body relayed as event-stream events as it arrives.

`POST /endpoints/{name}/invocations-response-stream` goes to the container as the same
`POST /invocations` InvokeEndpoint sends (the Accept it asks for comes from the caller's
`X-Amzn-SageMaker-Accept`); a container that streams answers with a chunked body. Each piece of
that body is relayed, the moment the upstream connection reads it, as one `PayloadPart` event in
one HTTP chunk to the client; nothing waits for the whole answer.

The upstream side is the ordinary pool (keep-alive, the retry rule, deadlines, the response size
limit): the exchange's `chunks` list is a `_Relay`, whose `append` (called by the upstream
connection for every body piece) forwards the piece. So InvokeEndpoint's path is untouched.

What the client sees, as SageMaker answers:
- before the first byte of a 2xx answer, every failure is the plain REST-JSON error that
  InvokeEndpoint gives (ValidationError, ModelError with the model's status, ServiceUnavailable);
- then `200` with `Content-Type: application/vnd.amazon.eventstream` and the output shape's
  header members (x-Amzn-Invoked-Production-Variant, X-Amzn-SageMaker-Content-Type,
  X-Amzn-SageMaker-Custom-Attributes), and PayloadPart events;
- a failure after that is an event: `ModelStreamError` with ErrorCode
  `ModelInvocationTimeExceeded` (no complete answer in time) or `StreamBroken` (the model's
  connection dropped or its answer was not valid HTTP), or `InternalStreamFailure` when the data
  plane itself is shutting down or failed.

Shadows get their copy through the ordinary mirror, which reads a streamed answer to its end:
its latency is the time to the last byte, its admission and timeout are the mirror's, and it is
captured once complete. Production's stream never waits for it.

Metrics: ModelLatency is SageMaker's "time taken to send the request and to fetch the response
from the container", so for a stream it runs to the last byte; OverheadLatency is the rest,
until the end of the stream was written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from shadowlab.dataplane import eventstream, wire
from shadowlab.dataplane.http1 import FrontConnection

# The invoker's helpers are shared rather than copied, so both operations answer alike; its
# module stays as it is, since every line there runs per InvokeEndpoint.
from shadowlab.dataplane.invoke import (
    Invoker,
    _Call,
    _throttled,
)
from shadowlab.dataplane.observer import (
    InvocationEvent,
    invocation_event,
    invocation_record,
    new_event_id,
)
from shadowlab.dataplane.request import Request
from shadowlab.dataplane.stats import VariantStats
from shadowlab.dataplane.upstream import Exchange, Failure
from shadowlab.errors import ServiceError

log = logging.getLogger(__name__)

_ACCEPT = b"x-amzn-sagemaker-accept"  # the operation's Accept member travels in this header
_LAST_CHUNK = b"0\r\n\r\n"
_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: " + eventstream.CONTENT_TYPE + b"\r\n"
    b"x-Amzn-Invoked-Production-Variant: %s\r\nx-amzn-RequestId: %s\r\n"
)


class _Relay(list[bytes]):
    """The stream's `Exchange.chunks`: every body piece the upstream connection appends is
    handed to the stream at once (and kept only when it must be: capture, or an error body)."""

    __slots__ = ("stream",)

    def __init__(self, stream: _Stream) -> None:
        super().__init__()
        self.stream = stream

    def append(self, body: bytes, /) -> None:
        self.stream.relay(body)


class _Stream(_Call):
    """One streaming invocation: the production exchange and the front side of its answer."""

    __slots__ = ("backlog", "began", "chunked", "keep", "limited")

    def __init__(
        self,
        head: bytes,
        body: bytes,
        on_done: Callable[[Exchange], None],
        conn: FrontConnection,
        req: Request,
        endpoint: str,
        variant: str,
        stats: VariantStats,
        request_id: bytes,
        event: InvocationEvent | None,
        arrived: float,
    ) -> None:
        super().__init__(
            head, body, on_done, conn, req, endpoint, variant, stats, request_id, event, arrived
        )
        self.chunks = _Relay(self)
        self.began = False  # the 200 head went out (or is queued): errors are events now
        self.keep = self.event is not None  # capture wants the whole answer
        self.backlog: list[bytes] = []  # bytes for the client while earlier answers are due
        self.chunked = self.req.http_version != "1.0"  # HTTP/1.0: no chunks, close at the end
        self.limited = False  # counted in flight at a serverless variant (Invoker._admit)

    # -- called by the upstream connection, per body piece ---------------------------------
    def relay(self, body: bytes) -> None:
        if not self.began:
            upstream = self.connection
            status = upstream.parser.get_status_code() if upstream is not None else 0
            if not 200 <= status < 300 or self.refused:
                list.append(self.chunks, body)  # an error: answered whole, at the end
                return
            self.began = True
            self._send(self._head())
        if self.keep:
            list.append(self.chunks, body)
        if body:
            self._send(self._frame(eventstream.payload_part(body)))

    # -- the client's side -----------------------------------------------------------------
    def _head(self) -> bytes:
        head = _HEAD % (self.stats.variant_header, self.request_id)
        if self.content_type is not None:
            head += b"X-Amzn-SageMaker-Content-Type: " + self.content_type + b"\r\n"
        if self.custom_attributes is not None:
            head += b"X-Amzn-SageMaker-Custom-Attributes: " + self.custom_attributes + b"\r\n"
        if self.chunked:
            return head + b"Transfer-Encoding: chunked\r\n" + self.req.connection_header + b"\r\n"
        return head + wire.CONNECTION_CLOSE + b"\r\n"

    def _frame(self, message: bytes) -> bytes:
        return eventstream.http_chunk(message) if self.chunked else message

    def _send(self, data: bytes) -> None:
        """Write now if every earlier answer on the connection is out, else keep it in order."""
        conn = self.conn
        if conn.lost:
            return
        pending = conn.pending
        transport = conn.transport
        if pending and pending[0] is self.req and transport is not None:
            if self.backlog:
                data = b"".join((*self.backlog, data))
                self.backlog.clear()
            transport.write(data)
        else:
            self.backlog.append(data)

    def finish(self, closing: bytes) -> None:
        """End the stream with `closing` (an error event, or nothing) and the last chunk."""
        tail = [*self.backlog, closing] if closing else list(self.backlog)
        self.backlog = []
        if self.chunked:
            tail.append(_LAST_CHUNK)
        self.conn.respond(self.req, tail, close=not self.chunked)

    def client_gone(self) -> None:
        """The client hung up: stop the model's work too, as nobody will read the rest."""
        if self.done or self.pool is None:
            return
        upstream = self.connection
        if upstream is not None and upstream.exchange is self:
            upstream.detach_and_abort()
        self.pool.exchange_failed(self, Failure.DISCONNECTED, "the client went away")


class StreamInvoker:
    """Routes like `Invoker` (and shares its counters, so a variant's metrics count both
    operations); answers with an event stream."""

    def __init__(self, invoker: Invoker) -> None:
        self.invoker = invoker

    def invoke(self, conn: FrontConnection, req: Request, raw_name: bytes) -> None:
        arrived = time.perf_counter()
        inv = self.invoker
        request_id = inv._request_ids.next()
        resolved = inv.resolve(req, raw_name)
        if isinstance(resolved, ServiceError):
            self._fail(conn, req, request_id, resolved)
            return
        region, name, route, variant, stats = resolved

        limited = False
        if variant.max_concurrency:  # serverless: streams count against MaxConcurrency too
            if not inv._admit(stats, variant.max_concurrency):
                self._fail(conn, req, request_id, _throttled(stats, variant.max_concurrency))
                return
            limited = True

        body = req.body
        accept = _header(req, _ACCEPT) or req.accept
        header_block = _container_head(req, body, accept)
        event: InvocationEvent | None = None
        if route.capture and inv.observer is not None:
            event = invocation_event(
                endpoint=name,
                event_id=new_event_id(),
                inference_id=req.inference_id,
                inference_time=time.time(),
                request_body=body,
                request_content_type=req.content_type,
                accept=accept,
                capture=route.capture,
            )
        stream = _Stream(
            header_block,
            body,
            self._done,
            conn,
            req,
            name,
            variant.name,
            stats,
            request_id,
            event,
            arrived,
        )
        stream.limited = limited
        req.on_disconnect = stream.client_gone
        inv.client.pick(variant.instances).send(stream, inv.timeout_s)
        if route.shadows:
            inv.mirror.copy(region, name, route.shadows, header_block, body, event)

    def _done(self, exchange: Exchange) -> None:
        stream = exchange
        assert isinstance(stream, _Stream)
        if stream.limited:
            self.invoker.in_flight[stream.stats] -= 1
        try:
            self._answer(stream)
        except Exception:
            # A bug must cost this stream only, and still end it in a form the client parses.
            log.exception("ending a response stream failed")
            if not stream.conn.lost and stream.req.response is None:
                if stream.began:
                    failure = {"Message": "The stream failed inside the data plane."}
                    stream.finish(
                        stream._frame(eventstream.exception_event("InternalStreamFailure", failure))
                    )
                else:
                    error = wire.text_response(500, "Internal error", wire.CONNECTION_CLOSE)
                    stream.conn.respond(stream.req, error, close=True)
        self._record(stream)

    def _answer(self, stream: _Stream) -> None:
        failure = stream.failure
        if stream.conn.lost:
            return  # nobody to tell; _record still counts and captures it
        if failure is None and 200 <= stream.status < 300 and not stream.refused:
            if not stream.began:  # a 2xx with an empty body: a stream of no events
                stream.began = True
                stream._send(stream._head())
            stream.finish(b"")
            return
        if not stream.began:
            # Nothing was streamed yet: the same error InvokeEndpoint would answer with.
            error = self.invoker._failure_error(stream, stream)
            stream.conn.respond(
                stream.req, wire.aws_error(error, stream.request_id, stream.req.connection_header)
            )
            return
        stream.stats.model_errors += 1
        stream.finish(stream._frame(_stream_error(stream)))

    def _record(self, stream: _Stream) -> None:
        ended = time.perf_counter()
        failure = stream.failure
        model_s = ended - stream.started
        stats = stream.stats
        if failure is None and not stream.refused:
            stats.model_latencies.append(model_s)
            stats.overhead_latencies.append(ended - stream.arrived - model_s)
        observer = self.invoker.observer
        if observer is None or stream.event is None:
            return
        answered = failure is None
        observer.observe(
            invocation_record(
                event=stream.event,
                role="production",
                variant=stream.variant,
                status=stream.status if answered else 0,
                response_body=b"".join(stream.chunks) if answered else b"",
                response_content_type=stream.content_type,
                error=None if answered else stream.detail,
                latency_s=model_s,
                outcome=(
                    "answered"
                    if answered
                    else "timeout"
                    if failure is Failure.TIMEOUT
                    else "failed"
                ),
            )
        )

    @staticmethod
    def _fail(conn: FrontConnection, req: Request, request_id: bytes, err: ServiceError) -> None:
        conn.respond(req, wire.aws_error(err, request_id, req.connection_header))


def _stream_error(stream: _Stream) -> bytes:
    """The event that ends a stream the model did not finish."""
    failure = stream.failure
    pool = stream.pool
    if pool is not None and pool.closed:
        fields = {"Message": "The data plane is shutting down; try the request again."}
        return eventstream.exception_event("InternalStreamFailure", fields)
    if failure is Failure.TIMEOUT:
        code = "ModelInvocationTimeExceeded"
        message = f"The model failed to finish sending the response within {stream.timeout_s:g} s."
    else:  # dropped, or not valid HTTP (or larger than the response limit)
        code = "StreamBroken"
        message = f"The stream from the model broke: {stream.detail or 'no detail'}."
    return eventstream.exception_event("ModelStreamError", {"Message": message, "ErrorCode": code})


def _header(req: Request, name: bytes) -> bytes | None:
    for key, value in req.headers:
        if key == name:
            return value
    return None


def _container_head(req: Request, body: bytes, accept: bytes | None) -> bytes:
    """The headers after Host that the container gets: what InvokeEndpoint passes on."""
    block = b"Content-Length: %d\r\n" % len(body)
    if req.content_type is not None:
        block += b"Content-Type: " + req.content_type + b"\r\n"
    if accept is not None:
        block += b"Accept: " + accept + b"\r\n"
    if req.custom_attributes is not None:
        block += b"X-Amzn-SageMaker-Custom-Attributes: " + req.custom_attributes + b"\r\n"
    if req.inference_id is not None:
        block += b"X-Amzn-SageMaker-Inference-Id: " + req.inference_id + b"\r\n"
    return block + b"\r\n"
