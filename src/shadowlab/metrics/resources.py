"""CPUUtilization and MemoryUtilization of each variant's worker processes, sampled with psutil.

SageMaker reports them per instance: CPU as the sum over the instance's cores (so 0-400% on
four cores) and memory as the percentage of the instance's memory its containers use; a
variant's value is the average over its instances. An instance here is a group of worker
processes on this machine, so a variant's value is the sum over its processes divided by its
instance count. A variant served by an upstream URL has no process of ours and no value.

`psutil.Process.cpu_percent` measures since its previous call on the same object, so the
objects are kept between samples, and a process's first reading (which has no baseline) is
not used.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TypeAlias

import psutil

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # region, endpoint, variant
# (role, instance count, worker pids) per variant, as hosting knows them.
Workers: TypeAlias = tuple[str, int, tuple[int, ...]]
WorkerSource = Callable[[], Mapping[Key, Workers]]


class UtilizationSampler:
    """Not thread-safe: one sample at a time (the metrics service runs them one after another)."""

    def __init__(self) -> None:
        self._processes: dict[int, psutil.Process] = {}

    def sample(self, workers: Mapping[Key, Workers]) -> dict[tuple[str, Key], tuple[float, float]]:
        """(role, key) -> (CPU %, memory %) per instance, for variants with measured processes."""
        seen: set[int] = set()
        found: dict[tuple[str, Key], tuple[float, float]] = {}
        for key, (role, instances, pids) in workers.items():
            cpu = memory = 0.0
            measured = 0
            for pid in pids:
                seen.add(pid)
                reading = self._read(pid)
                if reading is not None:
                    cpu += reading[0]
                    memory += reading[1]
                    measured += 1
            if measured:
                found[role, key] = (cpu / max(instances, 1), memory / max(instances, 1))
        for pid in set(self._processes) - seen:  # workers that stopped or were replaced
            del self._processes[pid]
        return found

    def _read(self, pid: int) -> tuple[float, float] | None:
        process = self._processes.get(pid)
        try:
            if process is None:
                process = self._processes[pid] = psutil.Process(pid)
                process.cpu_percent(None)  # the baseline; the first value means nothing
                return None
            with process.oneshot():
                return float(process.cpu_percent(None)), float(process.memory_percent())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            self._processes.pop(pid, None)
            return None
