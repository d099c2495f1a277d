"""The application without its transports: store, services, reconciler and the API handler.

Built by the composition root (`shadowlab.composition`), which is the only place that
constructs parts; this class only holds them and starts and stops what runs. In-process
tests drive it directly (`build_control_plane`): call the services, tick the reconciler.
"""

from __future__ import annotations

from shadowlab.controlplane.handler import ControlPlaneHandler
from shadowlab.services.context import Clock
from shadowlab.services.reconciler import Reconciler
from shadowlab.services.registry import Services
from shadowlab.settings import Settings
from shadowlab.store import Store

__all__ = ["Application", "Services"]


class Application:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock,
        store: Store,
        services: Services,
        reconciler: Reconciler,
        handler: ControlPlaneHandler,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.store = store
        self.services = services
        self.reconciler = reconciler
        self.handler = handler
        self._ready = False

    def ready(self) -> bool:
        """For /healthz: true from `start()` until `stop()`."""
        return self._ready

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
