"""Turn the data plane's live counters and latency lists into per-minute metric cells.

`MetricsAggregator.collect` is the data plane's `MetricsSink`: once a second, on the event loop,
it reads every variant's cumulative counters, keeps the difference since the last read, and
takes the latency lists away (swapping in empty ones; no lock is needed on the loop). That is
all the hot path pays for metrics: the increments it already did and one append per latency.

A second's batch goes to the minute it began in, so with drains just after whole seconds a
minute boundary is off by the loop's lag, not by a second. The cells are what the flush writes
(`pending` / `flushed`); each keeps a version so that a cell changed during a write is written
again, and a cell is forgotten once written and two minutes old.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from shadowlab.dataplane.stats import ShadowStats, VariantStats
from shadowlab.metrics.sketch import Batch, LatencySketch
from shadowlab.store.metric_minutes import MetricMinute
from shadowlab.store.schema import METRIC_COUNTERS

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # region, endpoint, variant
CellKey = tuple[str, str, str, str, int]  # region, endpoint, variant, role, minute

_ZERO = (0,) * len(METRIC_COUNTERS)
_KEEP_FLUSHED_MINUTES = 2  # a written cell stays this long, for batches that arrive late
_KEEP_UNFLUSHED_MINUTES = 60  # ... and an unwritten one (the store is down) this long


def production_counts(s: VariantStats) -> tuple[int, ...]:
    """A production variant's counters in METRIC_COUNTERS order."""
    counts = (s.invocations, s.invocation_4xx, s.invocation_5xx, s.model_errors, s.unavailable)
    return (*counts, 0, 0, 0, 0, 0, 0)


def shadow_counts(s: ShadowStats) -> tuple[int, ...]:
    """A shadow's counters in METRIC_COUNTERS order. Its Invocations are the copies sent; as
    SageMaker's InvocationModelErrors, its model errors include timeouts."""
    errors = s.errors + s.timeouts
    counts = (s.sent, s.invocation_4xx, s.invocation_5xx, errors, 0, s.eligible, s.sampled)
    return (*counts, s.completed, s.timeouts, s.shed, s.dropped)


@dataclass
class LiveVariant:
    """What is known of one variant now: its live counters and, since start, its latencies."""

    key: Key
    role: str
    stats: VariantStats | ShadowStats
    last_counts: tuple[int, ...] = _ZERO
    model_latency: LatencySketch = field(default_factory=LatencySketch)
    overhead_latency: LatencySketch = field(default_factory=LatencySketch)
    cpu_utilization: float | None = None  # the latest sample
    memory_utilization: float | None = None

    def counts(self) -> tuple[int, ...]:
        s = self.stats
        return production_counts(s) if isinstance(s, VariantStats) else shadow_counts(s)


@dataclass
class _Cell:
    counts: list[int] = field(default_factory=lambda: list(_ZERO))
    model_latency: LatencySketch = field(default_factory=LatencySketch)
    overhead_latency: LatencySketch = field(default_factory=LatencySketch)
    cpu_sum: float = 0.0
    memory_sum: float = 0.0
    samples: int = 0
    version: int = 0
    flushed: int = 0


class MetricsAggregator:
    def __init__(self, replica: str) -> None:
        self.replica = replica
        self._live: dict[tuple[str, Key], LiveVariant] = {}  # by (role, key)
        self._cells: dict[CellKey, _Cell] = {}
        self._last_collect: float | None = None
        self._floor = 0  # cells below this minute were forgotten; late batches go here

    # -- fed on the event loop -------------------------------------------------------------------
    def collect(
        self, now: float, variants: Sequence[VariantStats], shadows: Sequence[ShadowStats]
    ) -> None:
        began = now if self._last_collect is None else self._last_collect
        self._last_collect = now
        minute = max(int(began // 60), self._floor)
        for stats in variants:
            model, overhead = stats.model_latencies, stats.overhead_latencies
            if model:
                stats.model_latencies = []
            if overhead:
                stats.overhead_latencies = []
            self._take("production", stats, minute, model, overhead)
        for shadow in shadows:
            model = shadow.model_latencies
            if model:
                shadow.model_latencies = []
            self._take("shadow", shadow, minute, model, [])

    def _take(
        self,
        role: str,
        stats: VariantStats | ShadowStats,
        minute: int,
        model: list[float],
        overhead: list[float],
    ) -> None:
        key = (stats.region, stats.endpoint, stats.variant)
        live = self._live.get((role, key))
        if live is None or live.stats is not stats:
            live = self._live[role, key] = LiveVariant(key, role, stats)
        counts = live.counts()
        delta = [now - before for now, before in zip(counts, live.last_counts, strict=True)]
        live.last_counts = counts
        if not (model or overhead or any(delta)):
            return
        cell = self._cell(key, role, minute)
        for i, d in enumerate(delta):
            cell.counts[i] += d
        if model:
            batch = Batch(np.asarray(model, dtype=np.float64) * 1e6)  # SageMaker's microseconds
            cell.model_latency.add_batch(batch)
            live.model_latency.add_batch(batch)
        if overhead:
            batch = Batch(np.asarray(overhead, dtype=np.float64) * 1e6)
            cell.overhead_latency.add_batch(batch)
            live.overhead_latency.add_batch(batch)
        cell.version += 1

    def record_utilization(
        self, now: float, samples: Mapping[tuple[str, Key], tuple[float, float]]
    ) -> None:
        """(role, key) -> (CPUUtilization, MemoryUtilization) per instance, in percent."""
        minute = max(int(now // 60), self._floor)
        for (role, key), (cpu, memory) in samples.items():
            cell = self._cell(key, role, minute)
            cell.cpu_sum += cpu
            cell.memory_sum += memory
            cell.samples += 1
            cell.version += 1
            live = self._live.get((role, key))
            if live is not None:
                live.cpu_utilization, live.memory_utilization = cpu, memory

    def _cell(self, key: Key, role: str, minute: int) -> _Cell:
        cell_key = (*key, role, minute)
        cell = self._cells.get(cell_key)
        if cell is None:
            cell = self._cells[cell_key] = _Cell()
        return cell

    # -- read on the event loop ------------------------------------------------------------------
    def live(self) -> list[LiveVariant]:
        return list(self._live.values())

    def pending(self, now: float) -> list[tuple[CellKey, int, MetricMinute]]:
        """Cells changed since they were last written: (cell, its version, the row to write)."""
        found = []
        for cell_key, cell in self._cells.items():
            if cell.version == cell.flushed:
                continue
            region, endpoint, variant, role, minute = cell_key
            row = MetricMinute(
                replica=self.replica,
                region=region,
                endpoint=endpoint,
                variant=variant,
                minute=minute,
                role=role,
                counts=dict(zip(METRIC_COUNTERS, cell.counts, strict=True)),
                cpu_utilization_sum=cell.cpu_sum,
                memory_utilization_sum=cell.memory_sum,
                utilization_samples=cell.samples,
                model_latency=cell.model_latency.encode() if cell.model_latency.count else None,
                overhead_latency=(
                    cell.overhead_latency.encode() if cell.overhead_latency.count else None
                ),
                updated_at=now,
            )
            found.append((cell_key, cell.version, row))
        return found

    def flushed(self, written: Sequence[tuple[CellKey, int]], now: float) -> None:
        """Note what was written; forget old cells (written ones, or after an hour, any)."""
        for cell_key, version in written:
            cell = self._cells.get(cell_key)
            if cell is not None:
                cell.flushed = max(cell.flushed, version)
        self.forget(now)

    def forget(self, now: float) -> None:
        current = int(now // 60)
        for cell_key, cell in list(self._cells.items()):
            minute = cell_key[4]
            written = cell.version == cell.flushed
            if (written and minute < current - _KEEP_FLUSHED_MINUTES) or (
                minute < current - _KEEP_UNFLUSHED_MINUTES
            ):
                if not written:
                    log.warning("metrics of %s were never stored; dropping them", cell_key)
                del self._cells[cell_key]
                self._floor = max(self._floor, minute + 1)
