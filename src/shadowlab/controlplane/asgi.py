"""The ASGI app for everything that is not an invocation: the AWS JSON API, /healthz, stats
and metrics.

Thin: it reads the request and hands it to `ControlPlaneHandler`, whose work (database calls)
runs in a worker thread so the event loop that also carries invocations never blocks on it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from shadowlab.controlplane.handler import ControlPlaneHandler
from shadowlab.errors import ServiceError

StatsSource = Callable[[], Mapping[tuple[str, str], Mapping[str, object]]]
CountersSource = Callable[[], Mapping[str, int]]


@dataclass(frozen=True)
class DataPlaneStats:
    """Where `/shadowlab/stats` reads the data plane's counters: each field is called per request
    (on the event loop), so the app sees live values; a source not given reads empty."""

    variants: StatsSource = dict
    shadows: StatsSource = dict
    instances: StatsSource = dict
    capture: CountersSource = dict
    connections: CountersSource = dict  # the front server's limits

    def snapshot(self) -> dict[str, object]:
        def rows(source: StatsSource, kind: str) -> list[dict[str, object]]:
            return [
                {"endpoint": endpoint, kind: variant, **counters}
                for (endpoint, variant), counters in sorted(source().items())
            ]

        return {
            "variants": rows(self.variants, "variant"),
            "shadows": rows(self.shadows, "shadow"),
            "instances": rows(self.instances, "variant"),
            "capture": dict(self.capture()),
            "connections": dict(self.connections()),
        }


MetricsQuery = Callable[[str, str, datetime, datetime], dict[str, Any]]


@dataclass(frozen=True)
class MetricsSources:
    """Where `/metrics` and `/shadowlab/metrics/query` read from; a route whose source is None
    answers 404 (this process does not collect, or does not store, metrics).

    `exposition` renders Prometheus's text format and runs on the event loop (it reads state
    only the loop touches); `query(region, endpoint, start, end)` reads the store and runs in
    a worker thread.
    """

    exposition: Callable[[], bytes] | None = None
    content_type: str = "text/plain; version=0.0.4; charset=utf-8"
    query: MetricsQuery | None = None
    # Awaited before a query: stores what the last seconds counted (see MetricsService).
    refresh: Callable[[], Awaitable[object]] | None = None


@dataclass(frozen=True)
class ComparisonSources:
    """Where `/shadowlab/experiments/{name}/comparison` and `/shadowlab/capture/sync` work;
    both block (store reads, uploads) and run in a worker thread. None: the route answers 404."""

    compare: Callable[[str, str], dict[str, Any]] | None = None
    sync_capture: Callable[[], bool] | None = None


def create_control_plane_app(
    handler: ControlPlaneHandler,
    *,
    ready: Callable[[], bool] = lambda: True,
    stats: DataPlaneStats = DataPlaneStats(),
    metrics: MetricsSources = MetricsSources(),
    comparisons: ComparisonSources = ComparisonSources(),
    default_region: str = "us-east-1",
    routes: Sequence[BaseRoute] = (),  # more read-only routes (the inventory), as they are
) -> Starlette:
    async def aws_json(request: Request) -> Response:
        body = await request.body()
        reply = await run_in_threadpool(
            handler.handle,
            request.headers.get("x-amz-target"),
            body,
            request.headers.get("authorization"),
        )
        return Response(reply.body, status_code=reply.status, headers=dict(reply.headers))

    async def healthz(request: Request) -> Response:
        if not ready():
            return JSONResponse({"status": "starting"}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def data_plane_stats(request: Request) -> Response:
        # Counters since the server started: invocations and errors per production variant,
        # what became of the copies per shadow variant, and where each variant is served.
        return JSONResponse(stats.snapshot())

    async def prometheus(request: Request) -> Response:
        if metrics.exposition is None:
            return JSONResponse({"error": "metrics are not collected here"}, status_code=404)
        return Response(metrics.exposition(), media_type=metrics.content_type)

    async def metrics_query(request: Request) -> Response:
        # ?endpoint=E&start=ISO&end=ISO[&region=R]: per-variant metrics of the minutes that
        # [start, end) overlaps, merged over every replica (see metrics.query.metrics_json).
        if metrics.query is None:
            return JSONResponse({"error": "metrics are not stored here"}, status_code=404)
        params = request.query_params
        endpoint = params.get("endpoint")
        if not endpoint:
            return _bad_request("endpoint is required")
        try:
            start = _timestamp(params.get("start"), "start")
            end = _timestamp(params.get("end"), "end")
        except ValueError as exc:
            return _bad_request(str(exc))
        if end <= start:
            return _bad_request("end must be after start")
        region = params.get("region") or default_region
        if metrics.refresh is not None:
            await metrics.refresh()
        answer = await run_in_threadpool(metrics.query, region, endpoint, start, end)
        return JSONResponse(answer)

    async def comparison(request: Request) -> Response:
        # The same data as `shadowlab report --json`: figures, agreement and the verdict.
        if comparisons.compare is None:
            return JSONResponse({"error": "comparisons are not made here"}, status_code=404)
        name = request.path_params["name"]
        region = request.query_params.get("region") or default_region
        try:
            answer = await run_in_threadpool(comparisons.compare, region, name)
        except ServiceError as exc:
            status = 404 if exc.code == "ResourceNotFound" else 400
            return JSONResponse({"error": exc.message, "code": exc.code}, status_code=status)
        except ValueError as exc:  # a tag that sets an option wrongly, a bad selector
            return _bad_request(str(exc))
        return JSONResponse(answer)

    async def capture_sync(request: Request) -> Response:
        # Seal open capture files and wait until they are stored: readers see everything.
        if comparisons.sync_capture is None:
            return JSONResponse({"error": "nothing is captured here"}, status_code=404)
        complete = await run_in_threadpool(comparisons.sync_capture)
        return JSONResponse({"complete": complete}, status_code=200 if complete else 503)

    return Starlette(
        routes=[
            Route("/", aws_json, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/shadowlab/stats", data_plane_stats, methods=["GET"]),
            Route("/metrics", prometheus, methods=["GET"]),
            Route("/shadowlab/metrics/query", metrics_query, methods=["GET"]),
            Route("/shadowlab/experiments/{name}/comparison", comparison, methods=["GET"]),
            Route("/shadowlab/capture/sync", capture_sync, methods=["POST"]),
            *routes,
        ]
    )


def _timestamp(raw: str | None, name: str) -> datetime:
    if not raw:
        raise ValueError(f"{name} is required (ISO 8601, e.g. 2026-12-01T10:00:00Z)")
    date, t, time_part = raw.strip().partition("T")
    # An unescaped "+01:00" in a query string arrives as " 01:00".
    text = date + t + time_part.replace(" ", "+")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # a time without a zone is UTC, as in AWS APIs
    return moment


def _bad_request(message: str) -> Response:
    return JSONResponse({"error": message}, status_code=400)
