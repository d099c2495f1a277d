"""Run one shadowlab process: the application and the HTTP server on one port.

The port belongs to the data plane's `asyncio.Protocol` server on uvloop (the only stack that
matched nginx here, see ARCHITECTURE "Measured facts"); it answers invocations itself and hands
every other request to the control plane's ASGI app in-process.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from typing import Any

import uvloop

from shadowlab.app import Application
from shadowlab.auth import SigV4Verifier
from shadowlab.auth.policy import verifier_for
from shadowlab.capture import (
    CaptureObserver,
    CaptureWriter,
    LocalObjectStore,
    ObjectStore,
    S3ObjectStore,
    WriterOptions,
)
from shadowlab.comparisons import Comparer
from shadowlab.dataplane import DataPlaneServer, MirrorSettings, RoutingTable
from shadowlab.dataplane.limits import ConnectionLimits
from shadowlab.dataplane.signatures import SignatureGate
from shadowlab.domain.environment import UpstreamHosts
from shadowlab.hosting.artifacts import ArtifactLimits
from shadowlab.hosting.isolation import WorkerIsolation
from shadowlab.metrics import Exposition, MetricsAggregator, MetricsService, new_replica_id
from shadowlab.process_hosting import ProcessHosting
from shadowlab.s3api import S3Front, S3Handler
from shadowlab.services.deployments import Hosting, ImmediateHosting
from shadowlab.settings import Settings

log = logging.getLogger(__name__)


def _s3_client_factory(settings: Settings) -> Any:
    if settings.s3_endpoint_url is None:
        return None

    def make() -> Any:
        import boto3
        from botocore.config import Config

        # Short timeouts and one attempt: the capture writer has its own backoff, and a store
        # that accepts connections but never answers must not hold an upload for minutes.
        config = Config(connect_timeout=2, read_timeout=10, retries={"total_max_attempts": 2})
        return boto3.client("s3", endpoint_url=settings.s3_endpoint_url, config=config)

    return make


def _capture_store(settings: Settings) -> ObjectStore:
    factory = _s3_client_factory(settings)
    if factory is None:
        return LocalObjectStore(settings.object_store_root)
    return S3ObjectStore(factory())


def _s3_front(settings: Settings, gate: SignatureGate | None) -> S3Front:
    """The embedded S3 API over the object store's tree; off (answering 501) when objects live
    in an external S3 service, so that nothing is written where nothing reads it."""
    handler: S3Handler | None = None
    if settings.s3_endpoint_url is None:
        handler = S3Handler(settings.object_store_root, settings.account_id)
        handler.prepare()
    return S3Front(
        handler,
        gate,
        body_limit=min(settings.s3_max_body_bytes, settings.max_buffered_body_bytes),
        default_region=settings.default_region,
    )


async def run(settings: Settings, stop: asyncio.Event, verifier: SigV4Verifier | None) -> None:
    loop = asyncio.get_running_loop()
    routing = RoutingTable()
    process_hosting: ProcessHosting | None = None
    hosting: Hosting
    if settings.hosting == "process":
        process_hosting = ProcessHosting(
            loop,
            routing,
            work_dir=settings.data_dir / "instances",
            object_store_root=settings.object_store_root,
            s3_client_factory=_s3_client_factory(settings),
            isolation=WorkerIsolation(
                settings.worker_user,
                settings.worker_max_open_files,
                settings.worker_max_address_space_mb,
            ),
            artifact_limits=ArtifactLimits(
                settings.artifact_max_bytes, settings.artifact_max_members
            ),
            upstream_hosts=UpstreamHosts.parse(settings.upstream_hosts),
        )
        hosting = process_hosting
    else:
        hosting = ImmediateHosting()
    app = await asyncio.to_thread(Application, settings, hosting)
    # Capture starts before traffic: it first recovers what a killed predecessor left spooled.
    capture_store = _capture_store(settings)
    capture = CaptureWriter(
        capture_store,
        settings.data_dir / "capture-spool",
        WriterOptions(max_file_age=settings.capture_file_seconds),
    )
    await asyncio.to_thread(capture.start)
    aggregator = MetricsAggregator(new_replica_id())
    gate = (
        SignatureGate(verifier, allow_unsigned=settings.allow_unsigned)
        if verifier is not None
        else None
    )
    s3_front = await asyncio.to_thread(_s3_front, settings, gate)
    server = DataPlaneServer(
        routing,
        app.asgi_app,
        mirror=MirrorSettings(settings.mirror_max_in_flight, settings.mirror_timeout),
        account_id=settings.account_id,
        default_region=settings.default_region,
        observer=CaptureObserver(capture),
        metrics=aggregator,
        limits=ConnectionLimits(
            head_timeout_s=settings.head_timeout,
            body_timeout_s=settings.body_timeout,
            body_min_rate=settings.body_min_rate,
            keepalive_timeout_s=settings.keepalive_timeout,
            max_connections=settings.max_connections,
            max_buffered_body_bytes=settings.max_buffered_body_bytes,
        ),
        signatures=gate,
        side_api=s3_front,
    )
    metrics = MetricsService(
        aggregator,
        app.store,
        workers=process_hosting.workers if process_hosting is not None else None,
        interval_s=settings.metrics_interval,
    )
    exposition = Exposition(aggregator)
    app.metrics.exposition, app.metrics.content_type = exposition.render, exposition.content_type
    app.metrics.refresh = metrics.flush

    def make_current() -> None:  # from a worker thread: the metrics live on the loop
        asyncio.run_coroutine_threadsafe(metrics.flush(), loop).result(timeout=30)
        capture.sync()

    comparer = Comparer(
        app.store,
        app.services.experiments,
        app.services.endpoints,
        capture_store,
        settings.account_id,
        make_current,
    )
    app.comparisons.compare, app.comparisons.sync_capture = comparer.as_json, capture.sync
    app.reconciler.experiments.judge = comparer.judge  # automatic promotion at an end
    app.stats.capture = capture.stats
    app.stats.variants, app.stats.shadows = server.variant_stats, server.mirror_stats
    app.stats.instances = server.instance_stats
    app.stats.connections = server.connection_stats
    # The ~100k long-lived objects of start-up (botocore's model, SQLAlchemy, Starlette) made
    # every full collection stop the event loop for 25-75 ms under load (measured, see
    # docs/benchmarks.md); frozen, they are never scanned again and a collection takes < 0.1 ms.
    gc.collect()
    gc.freeze()
    port = await server.start(settings.host, settings.port)
    metrics.start()
    app.start()
    log.info(
        "shadowlab listening on http://%s:%d (data dir %s)", settings.host, port, settings.data_dir
    )
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        await asyncio.to_thread(app.stop)  # the reconciler first: nothing new gets deployed
        await server.stop()  # answer what is in flight
        await asyncio.to_thread(s3_front.close)
        await metrics.stop()  # store every minute's metrics, the last second's included
        await asyncio.to_thread(capture.stop)  # then write every captured record out
        if process_hosting is not None:
            await process_hosting.close()
        await asyncio.to_thread(app.close)


def serve(settings: Settings) -> int:
    """Run until SIGTERM or SIGINT. Raises CredentialsError, before anything starts, when the
    settings name no credentials and do not allow unsigned access on loopback."""
    verifier = verifier_for(settings)
    if settings.allow_unsigned:
        log.warning("unsigned requests accepted (--allow-unsigned): anyone on this host may call")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await run(settings, stop, verifier)

    uvloop.run(main())
    return 0
