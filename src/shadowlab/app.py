"""Composition root: builds the store, services, reconciler and transports from settings.

Nothing else constructs these, so this file is the map of what talks to what.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from starlette.applications import Starlette

from shadowlab.controlplane.asgi import (
    ComparisonSources,
    DataPlaneStats,
    MetricsSources,
    create_control_plane_app,
)
from shadowlab.controlplane.handler import ControlPlaneHandler
from shadowlab.controlplane.operations import operation_table
from shadowlab.domain.environment import UpstreamHosts
from shadowlab.inventory.route import inventory_route
from shadowlab.metrics.query import metrics_json
from shadowlab.services.context import Clock
from shadowlab.services.deployments import Hosting, ImmediateHosting
from shadowlab.services.endpoint_configs import EndpointConfigService
from shadowlab.services.endpoint_progress import EndpointProgress
from shadowlab.services.endpoints import EndpointService
from shadowlab.services.experiment_progress import ExperimentProgress
from shadowlab.services.experiments import ExperimentService
from shadowlab.services.models import ModelService
from shadowlab.services.reconciler import Reconciler
from shadowlab.services.tags import TagService
from shadowlab.settings import Settings
from shadowlab.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Services:
    tags: TagService
    models: ModelService
    configs: EndpointConfigService
    endpoints: EndpointService
    experiments: ExperimentService


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


class Application:
    """Everything one `shadowlab serve` process runs, with explicit start and stop."""

    def __init__(self, settings: Settings, hosting: Hosting | None = None) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.clock = Clock()
        self.store = Store.open(settings.sqlalchemy_url)
        self.hosting: Hosting = hosting if hosting is not None else ImmediateHosting()
        self.services = build_services(self.store, settings, self.clock)
        self.reconciler = Reconciler(
            EndpointProgress(self.store, self.clock, self.hosting),
            ExperimentProgress(
                self.store,
                self.clock,
                self.services.endpoints,
                self.services.configs,
                self.services.experiments,
                settings.account_id,
            ),
            settings.reconcile_interval,
        )
        self.handler = ControlPlaneHandler(
            operation_table(self.services),
            account=settings.account_id,
            default_region=settings.default_region,
            on_change=self.reconciler.wake,
        )
        self._ready = False
        self.stats = DataPlaneStats()
        # The query reads only the store; the Prometheus exposition is set by whoever runs
        # the data plane (server.py), since it reads the data plane's live counters.
        self.metrics = MetricsSources()
        self.metrics.query = lambda region, endpoint, start, end: metrics_json(
            self.store, region, endpoint, start, end
        )
        # Comparisons read captures too, which the server (server.py) writes.
        self.comparisons = ComparisonSources()
        self.asgi_app: Starlette = create_control_plane_app(
            self.handler,
            ready=lambda: self._ready,
            stats=self.stats,
            metrics=self.metrics,
            comparisons=self.comparisons,
            default_region=settings.default_region,
            routes=[inventory_route(self.store)],
        )

    def start(self) -> None:
        self.reconciler.start()
        self._ready = True

    def stop(self) -> None:
        """Stop the reconciler; the store stays open for what shuts down after (metrics)."""
        self._ready = False
        self.reconciler.stop()

    def close(self) -> None:
        self.stop()
        self.store.close()
