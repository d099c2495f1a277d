"""The ASGI app for everything that is not an invocation: the AWS JSON API and /healthz.

Thin: it reads the request and hands it to `ControlPlaneHandler`, whose work (database calls)
runs in a worker thread so the event loop that also carries invocations never blocks on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shadowlab.controlplane.handler import ControlPlaneHandler

StatsSource = Callable[[], Mapping[tuple[str, str], Mapping[str, object]]]


class DataPlaneStats:
    """Where the data plane's counters are read from; filled in once the server exists."""

    def __init__(self) -> None:
        self.variants: StatsSource = dict
        self.shadows: StatsSource = dict
        self.instances: StatsSource = dict
        self.capture: Callable[[], Mapping[str, int]] = dict

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
        }


def create_control_plane_app(
    handler: ControlPlaneHandler,
    *,
    ready: Callable[[], bool] = lambda: True,
    stats: DataPlaneStats | None = None,
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
        return JSONResponse((stats or DataPlaneStats()).snapshot())

    return Starlette(
        routes=[
            Route("/", aws_json, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/shadowlab/stats", data_plane_stats, methods=["GET"]),
        ]
    )
