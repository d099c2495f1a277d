"""The metrics service: samples the workers' CPU and memory and stores the metric minutes.

A small service with start/stop like the reconciler, but a task on the data plane's event loop,
because the aggregator it reads is only ever touched there (no locks). Whatever blocks (psutil's
/proc reads, the database) runs in a worker thread. Every `interval_s` it samples, then writes
every minute that changed (the current one included) as upserts; at stop it writes what is left,
so a clean shutdown loses nothing and a SIGKILL at most the last interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from shadowlab.metrics.aggregate import MetricsAggregator
from shadowlab.metrics.resources import UtilizationSampler, WorkerSource
from shadowlab.store import Store
from shadowlab.store.metric_minutes import delete_metric_minutes_before, upsert_metric_minutes

log = logging.getLogger(__name__)

# CloudWatch keeps one-minute data points for 15 days; so do we.
RETENTION_MINUTES = 15 * 24 * 60
_PURGE_EVERY_S = 3600.0


class MetricsService:
    def __init__(
        self,
        aggregator: MetricsAggregator,
        store: Store,
        *,
        workers: WorkerSource | None = None,
        interval_s: float = 5.0,
        retention_minutes: int = RETENTION_MINUTES,
    ) -> None:
        self.aggregator = aggregator
        self.store = store
        self.workers = workers
        self.interval_s = interval_s
        self.retention_minutes = retention_minutes
        self._sampler = UtilizationSampler()
        self._task: asyncio.Task[None] | None = None
        self._last_purge = 0.0
        self._flush_lock = asyncio.Lock()

    def start(self) -> None:
        """Start on the running loop (the data plane's)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="metrics")

    async def stop(self) -> None:
        """Stop the loop, then write every minute not yet written."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            await self.flush()
        except Exception:
            log.exception("writing the last metrics at shutdown failed")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.sample()
            except Exception:
                log.exception("sampling worker CPU and memory failed")
            try:
                await self.flush()
                await self._purge()
            except Exception as exc:  # the store is down: the cells wait, and are written later
                log.warning("writing metrics failed (%s); retrying in %gs", exc, self.interval_s)

    async def sample(self) -> None:
        if self.workers is None:
            return
        workers = self.workers()
        samples = await asyncio.to_thread(self._sampler.sample, workers)
        self.aggregator.record_utilization(time.time(), samples)

    async def flush(self) -> int:
        """Write every changed minute; how many rows were written."""
        async with self._flush_lock:  # a stop during a periodic flush waits for it
            now = time.time()
            pending = self.aggregator.pending(now)
            if pending:
                rows = [row for _, _, row in pending]
                await asyncio.to_thread(upsert_metric_minutes, self.store, rows)
            self.aggregator.flushed([(cell, version) for cell, version, _ in pending], now)
            return len(pending)

    async def _purge(self) -> None:
        now = time.time()
        if now - self._last_purge < _PURGE_EVERY_S:
            return
        self._last_purge = now
        oldest = int(now // 60) - self.retention_minutes
        await asyncio.to_thread(delete_metric_minutes_before, self.store, oldest)
