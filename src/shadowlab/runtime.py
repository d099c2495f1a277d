"""`Runtime`: everything one `shadowlab serve` process runs, as `build_application` built it,
with one start order and its reverse for stopping.

Start: capture -> metrics -> data-plane server (listens) -> application (reconciler, ready).
Stop, the reverse: application -> server -> S3 front -> metrics -> capture -> worker processes
-> store. The S3 front, the workers' host and the store have nothing to start (they are ready
once constructed), so they close where their construction puts them in the reverse order.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from starlette.applications import Starlette

from shadowlab.app import Application
from shadowlab.capture import CaptureWriter
from shadowlab.comparisons import Comparer
from shadowlab.dataplane import DataPlaneServer, RoutingTable
from shadowlab.metrics import MetricsService
from shadowlab.process_hosting import ProcessHosting
from shadowlab.s3api import S3Front
from shadowlab.services.hosting import Hosting
from shadowlab.settings import Settings


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    routing: RoutingTable
    hosting: Hosting
    process_hosting: ProcessHosting | None  # `hosting` when it runs worker processes
    capture: CaptureWriter
    metrics: MetricsService
    comparer: Comparer
    application: Application
    s3_front: S3Front
    asgi_app: Starlette
    server: DataPlaneServer

    async def start(self) -> int:
        """Start everything, on the loop that is to carry the data plane; the bound port.

        If a step fails, what started before it keeps running: the caller's `stop()` (in a
        `finally`) stops it, and stopping a part that never started does nothing.
        """
        # Capture starts before traffic: it first recovers what a killed predecessor left spooled.
        await asyncio.to_thread(self.capture.start)
        # Metrics before the server so that the reverse order holds at stop: the server's last
        # drain goes into the aggregator, and only then does the metrics service store it.
        self.metrics.start()
        port = await self.server.start(self.settings.host, self.settings.port)
        self.application.start()  # the reconciler; /healthz answers 200 from here on
        return port

    async def stop(self) -> None:
        await asyncio.to_thread(self.application.stop)  # the reconciler first: nothing new deploys
        await self.server.stop()  # answer what is in flight
        await asyncio.to_thread(self.s3_front.close)
        await self.metrics.stop()  # store every minute's metrics, the last second's included
        await asyncio.to_thread(self.capture.stop)  # then write every captured record out
        if self.process_hosting is not None:
            await self.process_hosting.close()
        await asyncio.to_thread(self.application.close)  # the store, last: metrics wrote to it
