"""The ASGI app for everything that is not an invocation: the AWS JSON API and /healthz.

Thin: it reads the request and hands it to `ControlPlaneHandler`, whose work (database calls)
runs in a worker thread so the event loop that also carries invocations never blocks on it.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shadowlab.controlplane.handler import ControlPlaneHandler


def create_control_plane_app(
    handler: ControlPlaneHandler, *, ready: Callable[[], bool] = lambda: True
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

    return Starlette(
        routes=[
            Route("/", aws_json, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )
