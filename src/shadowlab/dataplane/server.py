"""The data-plane server: one listening port, invocations on the hot path, the rest to ASGI.

`POST /endpoints/{name}/invocations` is handled by `Invoker` in callback style over pooled
upstream connections; every other request goes in-process to the ASGI app (the control plane,
/healthz, metrics), which is not hot and may cost a Task per request, unless a side API claims
it first (the embedded S3 API claims requests signed for "s3", see `shadowlab.s3api.front`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from shadowlab.dataplane import wire
from shadowlab.dataplane.asgi import ASGIApp, HttpCall, Lifespan, http_scope
from shadowlab.dataplane.http1 import FrontConnection
from shadowlab.dataplane.invoke import MAX_BODY, Invoker
from shadowlab.dataplane.limits import ConnectionLimits, Guard, sweep
from shadowlab.dataplane.mirror import Mirror, MirrorSettings
from shadowlab.dataplane.observer import InvocationObserver
from shadowlab.dataplane.pool import PoolLimits, UpstreamClient
from shadowlab.dataplane.request import Request, stream_endpoint_of
from shadowlab.dataplane.routing import DEFAULT_REGION, Address, RoutingTable
from shadowlab.dataplane.signatures import SignatureGate
from shadowlab.dataplane.stats import MetricsSink
from shadowlab.dataplane.streaming import StreamInvoker

log = logging.getLogger(__name__)

_DRAIN_INTERVAL_S = 1.0  # latencies are handed to the metrics (or dropped) this often


class SideAPI(Protocol):
    """Another API on this port that claims its own requests (the embedded S3 API, see
    `shadowlab.s3api.front`): with its own body limit, answering them itself."""

    body_limit: int

    def claims(self, req: Request) -> bool: ...

    def handle(self, conn: FrontConnection, req: Request) -> None: ...


class DataPlaneServer:
    """Start with `await start(host, port)` on the loop that should carry it (uvloop, ideally)."""

    loop: asyncio.AbstractEventLoop

    def __init__(
        self,
        routing: RoutingTable,
        asgi_app: ASGIApp | None,
        *,
        mirror: MirrorSettings = MirrorSettings(),  # noqa: B008 (frozen, so sharing is safe)
        account_id: str = "000000000000",
        default_region: str = DEFAULT_REGION,
        invoke_timeout_s: float = 60.0,  # SageMaker's real-time invocation timeout
        pool_limits: PoolLimits | None = None,
        observer: InvocationObserver | None = None,
        metrics: MetricsSink | None = None,
        limits: ConnectionLimits = ConnectionLimits(),  # noqa: B008 (frozen, so sharing is safe)
        max_other_body_bytes: int = 16 * 1024 * 1024,
        shutdown_grace_s: float = 5.0,
        signatures: SignatureGate | None = None,
        side_api: SideAPI | None = None,
    ) -> None:
        self.routing = routing
        self.invocation_body_limit = MAX_BODY
        self.other_body_limit = max_other_body_bytes
        self._app = asgi_app
        self._metrics = metrics
        self._client = UpstreamClient(pool_limits)
        self._mirror = Mirror(self._client, mirror, observer)
        self._invoker = Invoker(
            routing,
            self._client,
            self._mirror,
            account_id=account_id,
            default_region=default_region,
            timeout_s=invoke_timeout_s,
            observer=observer,
        )
        self._streamer = StreamInvoker(self._invoker)
        self._signatures = signatures
        self._side_api = side_api
        # Without a gate (unsigned access on loopback) invocations cost no extra call.
        self.invoke: Callable[[FrontConnection, Request], None] = (
            self._invoker.invoke if signatures is None else self._invoke_signed
        )
        self._guard = Guard(limits)
        self._shutdown_grace_s = shutdown_grace_s
        self._connections: set[FrontConnection] = set()
        self._asgi_tasks: set[asyncio.Task[None]] = set()
        self._lifespan: Lifespan | None = None
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._drainer: asyncio.TimerHandle | None = None

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self, host: str, port: int) -> int:
        """Run the app's lifespan startup, then listen; returns the bound port."""
        self.loop = asyncio.get_running_loop()
        if self._app is not None:
            self._lifespan = Lifespan(self._app)
            await self._lifespan.startup()
        try:
            self._server = await self.loop.create_server(
                lambda: FrontConnection(self, self._connections, self._guard),
                host,
                port,
                backlog=2048,
                reuse_address=True,
            )
        except BaseException:
            if self._lifespan is not None:
                await self._lifespan.shutdown()
            raise
        self._guard.fit_fd_limit()
        self._sweeper = self.loop.call_later(self._guard.limits.sweep_interval_s, self._sweep)
        self._schedule_drain()
        sockets = self._server.sockets
        return int(sockets[0].getsockname()[1]) if sockets else port

    async def stop(self) -> None:
        """Stop listening, let pending answers go out (bounded by the grace), then close all."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._drainer is not None:
            self._drainer.cancel()
        for conn in list(self._connections):
            conn.close_when_idle()
        deadline = self.loop.time() + self._shutdown_grace_s
        while self.loop.time() < deadline and (self._connections or self._copies_in_flight()):
            await asyncio.sleep(0.01)
        for conn in list(self._connections):
            conn.abort()
        self._client.close()
        await self._client.wait_closed()
        self._drain_now()  # the last partial second, now that nothing is in flight
        for task in list(self._asgi_tasks):
            task.cancel()
        await asyncio.gather(*self._asgi_tasks, return_exceptions=True)
        await server.wait_closed()
        if self._lifespan is not None:
            await self._lifespan.shutdown()

    def _copies_in_flight(self) -> int:
        return sum(s.in_flight for s in self._mirror.stats.values())

    def _sweep(self) -> None:
        """Close connections too slow to send a request, or idle too long (limits.sweep)."""
        try:
            sweep(list(self._connections), self._guard, self.loop.time())
        finally:
            interval = self._guard.limits.sweep_interval_s
            self._sweeper = self.loop.call_later(interval, self._sweep)

    def _schedule_drain(self) -> None:
        # Just after each whole wall-clock second, so that a batch (attributed by the metrics
        # to the minute it began in) crosses a minute boundary by no more than the loop's lag.
        delay = _DRAIN_INTERVAL_S - time.time() % _DRAIN_INTERVAL_S + 0.001
        self._drainer = self.loop.call_later(delay, self._drain)

    def _drain(self) -> None:
        try:
            self._drain_now()
        finally:
            self._schedule_drain()

    def _drain_now(self) -> None:
        """Hand the latencies gathered since the last drain to the metrics, or drop them."""
        variants = list(self._invoker.stats.values())
        shadows = list(self._mirror.stats.values())
        if self._metrics is not None:
            try:
                self._metrics.collect(time.time(), variants, shadows)
                return
            except Exception:
                log.exception("collecting metrics failed; this second's latencies are lost")
        # Without metrics the lists must still not grow without bound.
        for stats in variants:
            stats.model_latencies = []
            stats.overhead_latencies = []
        for shadow in shadows:
            shadow.model_latencies = []

    # -- counters --------------------------------------------------------------------------
    def mirror_stats(self) -> dict[tuple[str, str], dict[str, object]]:
        """(endpoint, shadow variant) -> the copies' counters (see `ShadowStats`)."""
        return self._mirror.snapshot()

    def instance_stats(self) -> dict[tuple[str, str], dict[str, object]]:
        """(endpoint, variant) -> region, role and the model-server addresses now routed to."""
        found: dict[tuple[str, str], dict[str, object]] = {}
        for region, name, route in self.routing.routes():
            for variant in route.production:
                found[name, variant.name] = _instances(region, "production", variant.instances)
            for shadow in route.shadows:
                found[name, shadow.name] = _instances(region, "shadow", shadow.instances)
        return found

    def connection_stats(self) -> dict[str, int]:
        """Open and refused connections, slow clients timed out, body-budget rejections."""
        return self._guard.snapshot(len(self._connections))

    def variant_stats(self) -> dict[tuple[str, str], dict[str, int]]:
        """(endpoint, production variant) -> invocations, invocation_4xx, invocation_5xx,
        model_errors, unavailable."""
        return self._invoker.snapshot()

    # -- Dispatcher (called by FrontConnection; `invoke` is the Invoker's, set in __init__) --
    def _invoke_signed(self, conn: FrontConnection, req: Request) -> None:
        assert self._signatures is not None
        # A body beyond the limit was discarded unread, so its hash cannot be checked: the
        # invoker answers with the size error, which tells an unsigned caller nothing.
        refusal = None if req.too_large else self._signatures.refusal(req)
        if refusal is None:
            self._invoker.invoke(conn, req)
        else:
            conn.respond(req, refusal)

    def other_limit(self, req: Request) -> int:
        """The body limit of a request that is not an invocation (read once its head is in)."""
        side = self._side_api
        if side is not None and side.claims(req):
            return side.body_limit
        return self.other_body_limit

    def other(self, conn: FrontConnection, req: Request) -> None:
        side = self._side_api
        if side is not None and side.claims(req):
            side.handle(conn, req)  # it checks signatures itself, and answers in its words
            return
        connection = req.connection_header
        if self._signatures is not None and not req.too_large:
            refusal = self._signatures.refusal(req)
            if refusal is not None:
                conn.respond(req, refusal)
                return
        stream_endpoint = stream_endpoint_of(req)
        if stream_endpoint is not None:  # InvokeEndpointWithResponseStream
            self._streamer.invoke(conn, req, stream_endpoint)
            return
        if self._app is None:
            conn.respond(req, wire.text_response(404, "Not Found", connection))
            return
        if req.too_large:
            conn.respond(req, wire.text_response(413, "Request body too large", connection))
            return
        client, server = conn.addresses()
        assert self._lifespan is not None
        scope = http_scope(
            req.method,
            req.url,
            req.headers,
            req.http_version,
            client,
            server,
            self._lifespan.state,
        )
        call = HttpCall(self._app, scope, req.body)
        req.on_disconnect = call.disconnect
        task = self.loop.create_task(self._run_asgi(conn, req, call))
        self._asgi_tasks.add(task)
        task.add_done_callback(self._asgi_tasks.discard)

    async def _run_asgi(self, conn: FrontConnection, req: Request, call: HttpCall) -> None:
        response = await call.run()
        if conn.lost:
            return
        status = response.status
        headers: list[tuple[bytes, bytes]] = response.headers
        no_body = status < 200 or status in (204, 304)
        head_only = req.method == b"HEAD" or no_body
        set_length = not no_body
        if req.method == b"HEAD" and call.declared_length is not None:
            # HEAD answers carry the length the GET would have had, not 0.
            headers = [*headers, (b"content-length", call.declared_length)]
            set_length = False
        conn.respond(
            req,
            wire.plain_response(
                status,
                headers,
                response.body,
                req.connection_header,
                head_only=head_only,
                set_length=set_length,
            ),
        )

    def __repr__(self) -> str:
        sockets = self._server.sockets if self._server is not None else ()
        return f"DataPlaneServer(listening={[s.getsockname() for s in sockets]})"


def _instances(region: str, role: str, addresses: tuple[Address, ...]) -> dict[str, object]:
    return {
        "region": region,
        "role": role,
        "instances": [f"http://{host}:{port}" for host, port in addresses],
    }
