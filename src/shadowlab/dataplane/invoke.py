"""InvokeEndpoint: pick the variant and instance, forward to the model, answer as SageMaker does.

Error choices (see wire.py for the bytes):
- unknown endpoint, unknown TargetVariant, body over 6 MB: ValidationError (400).
- the model answered non-2xx: ModelError (424) with OriginalStatusCode / OriginalMessage.
- the request never reached a model (no live instance, connection refused, no connection in
  time), or the model server refused it unrun (queue full, deadline passed while queued):
  ServiceUnavailable (503). Safe to retry, and botocore does retry 503 by itself.
- the request reached the model but no complete answer came back (timeout, connection dropped
  before or during the answer, garbage): ModelError with OriginalStatusCode 0, as SageMaker
  reports its own invocation timeouts. The model may have acted on the request, so it must not
  look retryable: botocore would silently re-send a 503, never a 424.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import cast
from urllib.parse import unquote

from shadowlab.awsprotocol.scope import region_of
from shadowlab.dataplane import wire
from shadowlab.dataplane.http1 import FrontConnection
from shadowlab.dataplane.mirror import Mirror
from shadowlab.dataplane.observer import (
    InvocationEvent,
    InvocationObserver,
    InvocationRecord,
    new_event_id,
)
from shadowlab.dataplane.pool import UpstreamClient
from shadowlab.dataplane.request import Request
from shadowlab.dataplane.routing import DEFAULT_REGION, CompiledRoute, RoutingTable, VariantRoute
from shadowlab.dataplane.stats import VariantStats, by_endpoint_variant
from shadowlab.dataplane.upstream import Exchange, Failure
from shadowlab.errors import ModelError, RuntimeValidationError, ServiceError, ServiceUnavailable

MAX_BODY = 6 * 1024 * 1024  # SageMaker real-time InvokeEndpoint payload limit
_QUOTED_LIMIT = 1024  # how much of the model's error text goes into Message
_ORIGINAL_LIMIT = 64 * 1024  # ... and into OriginalMessage


class _Call(Exchange):
    """The production exchange, carrying what answering the client needs (one object, not two:
    this path runs per request).

    `arrived`: when the data plane began on the request; `started`: when it was handed to the
    model server's connection pool. ModelLatency runs from `started` to the answer, and
    OverheadLatency is the rest, up to the response being written.
    """

    __slots__ = (
        "arrived",
        "conn",
        "endpoint",
        "event",
        "req",
        "request_id",
        "started",
        "stats",
        "variant",
    )

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
        super().__init__(head, body, on_done)
        self.arrived = arrived
        self.conn = conn
        self.req = req
        self.endpoint = endpoint
        self.variant = variant
        self.stats = stats
        self.request_id = request_id
        self.event = event
        self.started = time.perf_counter()


class Invoker:
    def __init__(
        self,
        routing: RoutingTable,
        client: UpstreamClient,
        mirror: Mirror,
        *,
        account_id: str,
        default_region: str = DEFAULT_REGION,
        timeout_s: float,
        observer: InvocationObserver | None,
    ) -> None:
        self.routing = routing
        self.client = client
        self.mirror = mirror
        self.account_id = account_id
        self.default_region = default_region
        self.timeout_s = timeout_s
        self.observer = observer
        self.stats: dict[tuple[str, str, str], VariantStats] = {}  # (region, endpoint, variant)
        # Requests in flight at each serverless variant (only those count: see _admit).
        self.in_flight: dict[VariantStats, int] = {}
        self._routing_version = -1
        self._request_ids = wire.RequestIds()
        wire.runtime_errors()  # loads the runtime model now, not on the event loop's first error

    def invoke(self, conn: FrontConnection, req: Request) -> None:
        arrived = time.perf_counter()
        request_id = self._request_ids.next()
        resolved = self.resolve(req, req.endpoint or b"")
        if isinstance(resolved, ServiceError):
            self._fail(conn, req, request_id, resolved)
            return
        region, name, route, variant, stats = resolved

        on_done = self._answered
        if variant.max_concurrency:
            if not self._admit(stats, variant.max_concurrency):
                self._fail(conn, req, request_id, _throttled(stats, variant.max_concurrency))
                return
            on_done = self._answered_limited

        body = req.body
        content_type = req.content_type
        accept = req.accept
        inference_id = req.inference_id
        # Only what the SageMaker container contract passes on; never hop-by-hop headers.
        header_block = b"Content-Length: %d\r\n" % len(body)
        if content_type is not None:
            header_block += b"Content-Type: " + content_type + b"\r\n"
        if accept is not None:
            header_block += b"Accept: " + accept + b"\r\n"
        if req.custom_attributes is not None:
            header_block += (
                b"X-Amzn-SageMaker-Custom-Attributes: " + req.custom_attributes + b"\r\n"
            )
        if inference_id is not None:
            header_block += b"X-Amzn-SageMaker-Inference-Id: " + inference_id + b"\r\n"
        header_block += b"\r\n"

        event: InvocationEvent | None = None
        if route.capture and self.observer is not None:
            # Every field, in order (see observer.py: this runs for every captured request).
            event = (
                name,
                new_event_id(),
                inference_id,
                time.time(),
                body,
                content_type,
                accept,
                route.capture,
            )
        pool = self.client.pick(variant.instances)
        call = _Call(
            header_block,
            body,
            on_done,
            conn,
            req,
            name,
            variant.name,
            stats,
            request_id,
            event,
            arrived,
        )
        pool.send(call, self.timeout_s)
        # Copies go after the production request is on its way, and never hold it up.
        if route.shadows:
            self.mirror.copy(region, name, route.shadows, header_block, body, event)

    def resolve(
        self, req: Request, raw_name: bytes
    ) -> tuple[str, str, CompiledRoute, VariantRoute, VariantStats] | ServiceError:
        """Where an invocation of endpoint `raw_name` (as in the path) goes: its region, name,
        route, production variant and that variant's counters (the invocation counted), or the
        runtime error that answers it instead. Shared by InvokeEndpoint and its streaming twin.
        """
        routing = self.routing
        if routing.version != self._routing_version:
            # Routes changed since we last looked: let pools of vanished instances drain away.
            self._routing_version = routing.version
            self.client.retain_only(routing.addresses())
        name = raw_name.decode("latin-1")
        if b"%" in raw_name:
            name = unquote(name)
        if req.too_large:
            return _body_too_large()
        region = region_of(req.authorization, self.default_region)
        route = routing.lookup(name, region)
        if route is None:
            return RuntimeValidationError(
                f"Endpoint {name} of account {self.account_id} not found."
            )
        target = req.target_variant
        if target is not None:
            variant = route.by_name.get(target.decode("latin-1"))
            if variant is None:
                return RuntimeValidationError(
                    f"Variant {target.decode('latin-1')} not found "
                    f"for Endpoint {name} of account {self.account_id}."
                )
        else:
            variant = route.choose()
            if variant is None:
                return ServiceUnavailable(f"Endpoint {name} has no production variant to route to.")
        key = (region, name, variant.name)
        stats = self.stats.get(key)
        if stats is None:
            stats = self.stats[key] = VariantStats(region, name, variant.name)
        stats.invocations += 1
        if not variant.instances:
            stats.unavailable += 1
            return ServiceUnavailable(
                f"Variant {variant.name} of endpoint {name} has no instance in service. "
                "Try again later."
            )
        return region, name, route, variant, stats

    def _admit(self, stats: VariantStats, limit: int) -> bool:
        """Count a request in at a serverless variant unless `limit` are in flight there (the
        count lives here, by variant, so a route update does not reset it)."""
        in_flight = self.in_flight.get(stats, 0)
        if in_flight >= limit:
            stats.invocation_4xx += 1
            return False
        self.in_flight[stats] = in_flight + 1
        return True

    def _answered_limited(self, exchange: Exchange) -> None:
        """`_answered` for a request `_admit` counted in: it is out of flight now."""
        stats = cast(_Call, exchange).stats
        self.in_flight[stats] -= 1
        self._answered(exchange)

    def _answered(self, exchange: Exchange) -> None:
        answered = time.perf_counter()
        call = cast(_Call, exchange)
        stats = call.stats
        req = call.req
        failure = exchange.failure
        status = exchange.status
        if failure is None and 200 <= status < 300:
            call.conn.respond(
                req,
                wire.invocation_ok(
                    exchange.response_body,
                    exchange.content_type,
                    stats.variant_header,
                    exchange.custom_attributes,
                    call.request_id,
                    req.connection_header,
                ),
            )
        else:
            error = self._failure_error(exchange, call)
            call.conn.respond(req, wire.aws_error(error, call.request_id, req.connection_header))
        model_s = answered - call.started
        if failure is None and not exchange.refused:
            # Only answers the model produced have a ModelLatency; the overhead is measured now
            # that the response is written (or queued behind an earlier pipelined one).
            stats.model_latencies.append(model_s)
            stats.overhead_latencies.append(time.perf_counter() - call.arrived - model_s)
        if call.event is not None and self.observer is not None:
            # Every field, in order (see observer.py: this runs for every captured request).
            record: InvocationRecord
            if failure is None:
                record = (
                    call.event,
                    "production",
                    call.variant,
                    status,
                    exchange.response_body,
                    exchange.content_type,
                    None,
                    model_s,
                    "answered",
                )
            else:
                record = (
                    call.event,
                    "production",
                    call.variant,
                    0,
                    b"",
                    exchange.content_type,
                    exchange.detail,
                    model_s,
                    "timeout" if failure is Failure.TIMEOUT else "failed",
                )
            self.observer.observe(record)

    def _failure_error(self, exchange: Exchange, call: _Call) -> ServiceError:
        stats = call.stats
        failure = exchange.failure
        where = f"variant {call.variant} of endpoint {call.endpoint}"
        if failure is None and exchange.refused:
            # The model server said it did not run the request (its queue was full, or the
            # deadline passed while queued): safe to retry, so ServiceUnavailable, not ModelError.
            stats.unavailable += 1
            text = exchange.response_body.decode("utf-8", "replace")[:_QUOTED_LIMIT]
            return ServiceUnavailable(
                f"The model server of {where} is at capacity and did not run the request "
                f"({text}). Try again later."
            )
        if failure is None:  # the model answered, with a non-2xx status
            status = exchange.status
            if 400 <= status < 500:
                stats.invocation_4xx += 1
            elif status >= 500:
                stats.invocation_5xx += 1
            stats.model_errors += 1
            text = exchange.response_body.decode("utf-8", "replace")
            return _model_error(status, text, where)
        if failure is Failure.CONNECT or (failure is Failure.TIMEOUT and not exchange.sent):
            stats.unavailable += 1
            return ServiceUnavailable(
                f"No instance of {where} could take the request ({exchange.detail}). "
                "Try again later."
            )
        stats.model_errors += 1
        if failure is Failure.TIMEOUT:
            detail = (
                "Your invocation timed out while waiting for a response from container "
                f"primary ({exchange.detail})."
            )
        else:
            detail = exchange.detail[:1].upper() + exchange.detail[1:] + "."
        return _model_error(0, detail, where)

    def _fail(
        self, conn: FrontConnection, req: Request, request_id: bytes, err: ServiceError
    ) -> None:
        conn.respond(req, wire.aws_error(err, request_id, req.connection_header))

    def snapshot(self) -> dict[tuple[str, str], dict[str, int]]:
        return by_endpoint_variant(list(self.stats.values()))


def _model_error(status: int, text: str, where: str) -> ModelError:
    kind = "client" if 0 < status < 500 else "server"
    quoted = text if len(text) <= _QUOTED_LIMIT else text[:_QUOTED_LIMIT] + "..."
    return ModelError(
        f'Received {kind} error ({status}) from primary with message "{quoted}". '
        f"See the model server log of {where} for more information.",
        OriginalStatusCode=status,
        OriginalMessage=text[:_ORIGINAL_LIMIT],
    )


def _throttled(stats: VariantStats, limit: int) -> ServiceError:
    """What SageMaker answers a serverless endpoint's invocation beyond its MaxConcurrency:
    ThrottlingException, HTTP 400 (botocore retries it with backoff, as for SageMaker)."""
    return ServiceError(
        f"Rate exceeded: variant {stats.variant} of endpoint {stats.endpoint} is serverless "
        f"with MaxConcurrency {limit}, and {limit} invocations are in flight. Retry with backoff.",
        code="ThrottlingException",
    )


def _body_too_large() -> RuntimeValidationError:
    return RuntimeValidationError(
        "1 validation error detected: Value at 'body' failed to satisfy constraint: "
        f"Member must have length less than or equal to {MAX_BODY}"
    )
