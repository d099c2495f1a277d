"""The background service that moves endpoints and experiments through their states.

A small service with start/stop (as Prefect's server loops are): a daemon thread that runs one
tick every `interval` seconds. All state lives in the store, so any replica can run it and a
restart picks up where the last tick left off; every write is a compare-and-set.
"""

from __future__ import annotations

import logging
import threading

from shadowlab.services.endpoint_progress import EndpointProgress
from shadowlab.services.experiment_progress import ExperimentProgress

log = logging.getLogger(__name__)


class Reconciler:
    def __init__(
        self, endpoints: EndpointProgress, experiments: ExperimentProgress, interval: float
    ) -> None:
        self.endpoints = endpoints
        self.experiments = experiments
        self.interval = interval
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> None:
        # Experiments first: a step that retargets an endpoint is then converged in the same tick.
        self.experiments.tick()
        self.endpoints.tick()

    def wake(self) -> None:
        """Run the next tick now (after a call changed something) instead of at the interval."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("reconciler tick failed")
            self._wake.wait(self.interval)
            self._wake.clear()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="shadowlab-reconciler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
