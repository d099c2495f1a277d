"""The composition root: the one place that constructs the parts of a shadowlab process.

Each part is constructed once, in dependency order, with the parts it uses passed in; nothing
is patched into an object after it is built. So this file is the map of what talks to what.
`build_application` builds a whole server (see docs/architecture.md "Construction");
`build_control_plane` builds only the application without transports, for in-process tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from shadowlab.app import Application
from shadowlab.auth import SigV4Verifier
from shadowlab.capture import (
    CaptureWriter,
    LocalObjectStore,
    ObjectStore,
    S3ObjectStore,
    WriterOptions,
)
from shadowlab.comparisons import Comparer
from shadowlab.controlplane.asgi import (
    ComparisonSources,
    DataPlaneStats,
    MetricsSources,
    create_control_plane_app,
)
from shadowlab.controlplane.handler import ControlPlaneHandler
from shadowlab.controlplane.operations import operation_table
from shadowlab.dataplane import DataPlaneServer, MirrorSettings, RoutingTable
from shadowlab.dataplane.limits import ConnectionLimits
from shadowlab.dataplane.signatures import SignatureGate
from shadowlab.domain.environment import UpstreamHosts
from shadowlab.hosting.artifacts import ArtifactLimits
from shadowlab.hosting.isolation import WorkerIsolation
from shadowlab.inventory.route import inventory_route
from shadowlab.metrics import Exposition, MetricsAggregator, MetricsService, new_replica_id
from shadowlab.metrics.query import metrics_json
from shadowlab.process_hosting import ProcessHosting
from shadowlab.runtime import Runtime
from shadowlab.s3api import S3Front, S3Handler
from shadowlab.services.context import Clock
from shadowlab.services.endpoint_configs import EndpointConfigService
from shadowlab.services.endpoint_progress import EndpointProgress
from shadowlab.services.endpoints import EndpointService
from shadowlab.services.experiment_progress import ExperimentProgress
from shadowlab.services.experiments import ExperimentService
from shadowlab.services.hosting import Hosting, ImmediateHosting
from shadowlab.services.judging import Judge
from shadowlab.services.models import ModelService
from shadowlab.services.reconciler import Reconciler
from shadowlab.services.registry import Services
from shadowlab.services.tags import TagService
from shadowlab.settings import Settings
from shadowlab.store import Store


def build_application(
    settings: Settings, loop: asyncio.AbstractEventLoop, verifier: SigV4Verifier | None
) -> Runtime:
    """Construct every part of one server process; nothing starts (see `Runtime.start`).

    Blocking (migrations, directories): call it in a worker thread. `loop` is the loop that
    will carry the data plane, where worker supervision and metrics flushes run.
    """
    routing = RoutingTable()
    # Hosting before the store: a server that cannot run workers as asked fails before it
    # touches the database.
    process_hosting = _process_hosting(settings, loop, routing)
    hosting: Hosting = process_hosting if process_hosting is not None else ImmediateHosting()
    clock = Clock()
    store = open_store(settings)
    try:
        services = build_services(store, settings, clock)
        capture_store = _capture_store(settings)
        capture = CaptureWriter(
            capture_store,
            settings.data_dir / "capture-spool",
            WriterOptions(max_file_age=settings.capture_file_seconds),
        )
        aggregator = MetricsAggregator(new_replica_id())
        metrics = MetricsService(
            aggregator,
            store,
            workers=process_hosting.workers if process_hosting is not None else None,
            interval_s=settings.metrics_interval,
        )
        exposition = Exposition(aggregator)
        comparer = Comparer(
            store,
            services.experiments,
            services.endpoints,
            capture_store,
            settings.account_id,
            _make_current(loop, metrics, capture),
        )
        # The comparer is the reconciler's judge (automatic promotion at an experiment's end).
        application = assemble_application(
            settings,
            clock=clock,
            store=store,
            services=services,
            hosting=hosting,
            judge=comparer.judge,
        )
        gate = (
            SignatureGate(verifier, allow_unsigned=settings.allow_unsigned)
            if verifier is not None
            else None
        )
        s3_front = _s3_front(settings, gate)
        # The one cycle: the server hands the control-plane app every request that is not an
        # invocation, and that app's /shadowlab/stats reads the server's counters. The app is
        # built first, reading through `counters`, which is bound to the server once, right
        # below, before anything starts; so no request can find it unbound.
        counters = ServerCounters()
        asgi_app = create_control_plane_app(
            application.handler,
            ready=application.ready,
            stats=DataPlaneStats(
                variants=counters.variants,
                shadows=counters.shadows,
                instances=counters.instances,
                capture=capture.stats,
                connections=counters.connections,
            ),
            metrics=MetricsSources(
                exposition=exposition.render,
                content_type=exposition.content_type,
                query=lambda region, endpoint, start, end: metrics_json(
                    store, region, endpoint, start, end
                ),
                refresh=metrics.flush,
            ),
            comparisons=ComparisonSources(compare=comparer.as_json, sync_capture=capture.sync),
            default_region=settings.default_region,
            routes=[inventory_route(store)],
        )
        server = DataPlaneServer(
            routing,
            asgi_app,
            mirror=MirrorSettings(settings.mirror_max_in_flight, settings.mirror_timeout),
            account_id=settings.account_id,
            default_region=settings.default_region,
            observer=capture,
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
        counters.bind(server)
    except BaseException:
        store.close()
        raise
    return Runtime(
        settings=settings,
        routing=routing,
        hosting=hosting,
        process_hosting=process_hosting,
        capture=capture,
        metrics=metrics,
        comparer=comparer,
        application=application,
        s3_front=s3_front,
        asgi_app=asgi_app,
        server=server,
    )


def build_control_plane(
    settings: Settings,
    hosting: Hosting | None = None,
    *,
    clock: Clock | None = None,
    judge: Judge | None = None,
) -> Application:
    """The application without transports: store, services, reconciler, API handler. For
    in-process tests and tools: no event loop, no port, no capture or metrics (so no judge
    unless one is given); hosting is ready at once unless another is given."""
    clock = clock if clock is not None else Clock()
    store = open_store(settings)
    services = build_services(store, settings, clock)
    return assemble_application(
        settings,
        clock=clock,
        store=store,
        services=services,
        hosting=hosting if hosting is not None else ImmediateHosting(),
        judge=judge,
    )


def open_store(settings: Settings) -> Store:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Store.open(settings.sqlalchemy_url)


def build_services(store: Store, settings: Settings, clock: Clock) -> Services:
    tags = TagService(store)
    # The instance quota protects this machine from too many worker processes; with
    # `--hosting none` there are none, so it does not apply.
    quota = settings.max_instances if settings.hosting == "process" else None
    endpoints = EndpointService(store, tags, clock, quota)
    return Services(
        tags=tags,
        models=ModelService(store, tags, clock, UpstreamHosts.parse(settings.upstream_hosts)),
        configs=EndpointConfigService(store, tags, clock),
        endpoints=endpoints,
        experiments=ExperimentService(store, tags, clock, endpoints),
    )


def assemble_application(
    settings: Settings,
    *,
    clock: Clock,
    store: Store,
    services: Services,
    hosting: Hosting,
    judge: Judge | None,
) -> Application:
    """The reconciler and the API handler over `services`: what both builders share."""
    reconciler = Reconciler(
        EndpointProgress(store, clock, hosting),
        ExperimentProgress(
            store,
            clock,
            services.endpoints,
            services.configs,
            services.experiments,
            settings.account_id,
            judge=judge,
        ),
        settings.reconcile_interval,
    )
    handler = ControlPlaneHandler(
        operation_table(services),
        account=settings.account_id,
        default_region=settings.default_region,
        on_change=reconciler.wake,  # after a change, tick now rather than at the interval
    )
    return Application(
        settings,
        clock=clock,
        store=store,
        services=services,
        reconciler=reconciler,
        handler=handler,
    )


class ServerCounters:
    """The data-plane server's live counters for /shadowlab/stats, read through the server
    once `bind` names it (see the cycle in `build_application`)."""

    def __init__(self) -> None:
        self._server: DataPlaneServer | None = None

    def bind(self, server: DataPlaneServer) -> None:
        if self._server is not None:
            raise RuntimeError("the counters are already bound to a server")
        self._server = server

    def _bound(self) -> DataPlaneServer:
        if self._server is None:
            raise RuntimeError("the counters are read before the server exists")
        return self._server

    def variants(self) -> Mapping[tuple[str, str], Mapping[str, object]]:
        return self._bound().variant_stats()

    def shadows(self) -> Mapping[tuple[str, str], Mapping[str, object]]:
        return self._bound().mirror_stats()

    def instances(self) -> Mapping[tuple[str, str], Mapping[str, object]]:
        return self._bound().instance_stats()

    def connections(self) -> Mapping[str, int]:
        return self._bound().connection_stats()


def _make_current(
    loop: asyncio.AbstractEventLoop, metrics: MetricsService, capture: CaptureWriter
) -> Callable[[], None]:
    """What a comparison calls first (from a worker thread): store the metrics of the last
    seconds (they live on the loop) and seal and store open capture files."""

    def make_current() -> None:
        asyncio.run_coroutine_threadsafe(metrics.flush(), loop).result(timeout=30)
        capture.sync()

    return make_current


def _process_hosting(
    settings: Settings, loop: asyncio.AbstractEventLoop, routing: RoutingTable
) -> ProcessHosting | None:
    if settings.hosting != "process":
        return None
    return ProcessHosting(
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
        artifact_limits=ArtifactLimits(settings.artifact_max_bytes, settings.artifact_max_members),
        upstream_hosts=UpstreamHosts.parse(settings.upstream_hosts),
    )


def _s3_client_factory(settings: Settings) -> Callable[[], Any] | None:
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
