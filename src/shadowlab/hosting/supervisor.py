"""Keep a variant's instances running: start, scale, restart on crash, stop.

Each instance is a `WorkerProcess` in a slot watched by its own task. Whoever routes traffic
learns the live addresses through `on_change`, and always before a change could hurt: a worker
being removed leaves the list first and is stopped only after a drain grace, a crashed one
leaves it as soon as its exit is seen, and a new one joins only once it answers.

An instance is `SAGEMAKER_MODEL_SERVER_WORKERS` worker processes (the inference toolkit's
setting; default 1), each loading the model and serving on its own port, so routers see every
process as an address and spread requests by outstanding work; each is supervised alone.

A container whose Environment names `SHADOWLAB_UPSTREAM_URL` runs nothing: its one instance is
that server, checked with `GET /ping` at start, and only if its host is on `upstream_hosts`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable

from shadowlab.domain.environment import DEFAULT_UPSTREAM_HOSTS
from shadowlab.hosting.process import WorkerProcess, WorkerSpec, WorkerStartError
from shadowlab.hosting.upstream import (
    UPSTREAM_URL_VARIABLE,
    UpstreamError,
    UpstreamHosts,
    parse_upstream_url,
)
from shadowlab.hosting.upstream import ping as ping_upstream

__all__ = ["Address", "VariantInstances", "WorkerProcess", "WorkerSpec", "WorkerStartError"]

log = logging.getLogger("shadowlab.hosting.supervisor")

Address = tuple[str, int]

WORKERS_VARIABLE = "SAGEMAKER_MODEL_SERVER_WORKERS"
MAX_WORKERS_PER_INSTANCE = 32


def workers_per_instance(environment: dict[str, str]) -> int:
    """Model-server processes per instance, from the container's Environment."""
    raw = environment.get(WORKERS_VARIABLE)
    if raw is None or raw.strip() == "":
        return 1
    value = raw.strip()
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_WORKERS_PER_INSTANCE:
        raise WorkerStartError(
            f"{WORKERS_VARIABLE}={raw!r} is not valid: it must be an integer from 1 to "
            f"{MAX_WORKERS_PER_INSTANCE}"
        )
    return int(value)


class _Slot:
    """One instance position; its worker is replaced when it dies."""

    def __init__(self, worker: WorkerProcess) -> None:
        self.worker = worker
        self.ready = False  # in the address list
        self.retired = False  # being removed on purpose: its exit is not a crash
        self.task: asyncio.Task[None] | None = None
        self.attempts: deque[float] = deque()  # restart times within the last window


class VariantInstances:
    def __init__(
        self,
        spec: WorkerSpec,
        count: int,
        on_change: Callable[[list[Address]], None],
        *,
        drain_grace: float = 2.0,
        stop_grace: float = 5.0,
        max_restarts_per_minute: int = 5,
        max_backoff: float = 10.0,
        restart_window: float = 60.0,
        upstream_hosts: UpstreamHosts | None = None,
    ) -> None:
        self.spec = spec
        self.on_change = on_change
        self.drain_grace = drain_grace
        self.stop_grace = stop_grace
        self.max_restarts_per_minute = max_restarts_per_minute
        self.max_backoff = max_backoff
        self.restart_window = restart_window  # the "minute" of max_restarts_per_minute
        self.upstream_hosts = upstream_hosts or UpstreamHosts.parse(DEFAULT_UPSTREAM_HOSTS)
        self.restarts = 0
        self.last_error: str | None = None  # the latest failed (re)start, until one succeeds
        self._count = count
        self._per_instance = 1  # processes per instance, read from the Environment at start
        self._slots: list[_Slot] = []
        self._upstream: Address | None = None
        self._published: list[Address] | None = None
        self._lock = asyncio.Lock()
        self._stopping = False
        self._started = False

    @property
    def count(self) -> int:
        """Instances wanted (for an upstream, the one server stands for all of them)."""
        return self._count

    @property
    def is_upstream(self) -> bool:
        return UPSTREAM_URL_VARIABLE in self.spec.environment

    @property
    def addresses(self) -> list[Address]:
        if self._upstream is not None:
            return [self._upstream]
        return [slot.worker.address for slot in self._slots if slot.ready]

    @property
    def instances_in_service(self) -> int:
        """Instances with at least one process answering (an upstream counts as all of them)."""
        if self._upstream is not None:
            return self._count
        ready = sum(1 for slot in self._slots if slot.ready)
        return -(-ready // self._per_instance)  # an instance serves while any process does

    @property
    def workers(self) -> list[WorkerProcess]:
        return [slot.worker for slot in self._slots]

    async def start(self) -> None:
        """Bring up `count` instances; all must come up, else WorkerStartError (none are left)."""
        async with self._lock:
            if self._started:
                return
            self._stopping = False
            if self.is_upstream:
                await self._check_upstream()
            else:
                per_instance = self._workers_per_instance()
                self._add(await self._launch(self._count * per_instance))
            self._started = True
            self._publish()

    async def scale(self, count: int) -> None:
        """Change the instance count; new instances serve before extra ones are removed."""
        if count < 0:
            raise ValueError("instance count must be >= 0")
        async with self._lock:
            if self.is_upstream or not self._started:
                self._count = count  # an upstream scales itself; a stopped variant starts so
                return
            processes = count * self._workers_per_instance()
            missing = processes - len(self._slots)
            if missing > 0:
                self._add(await self._launch(missing))
                self._count = count
                self._publish()
            elif missing < 0:
                self._count = count
                # Drop processes that are down (restarting) before healthy ones.
                ranked = sorted(self._slots, key=lambda slot: slot.ready, reverse=True)
                keep, extras = ranked[:processes], ranked[processes:]
                self._slots = [slot for slot in self._slots if slot in keep]
                await self._remove(extras, drain=self.drain_grace)

    async def stop(self) -> None:
        """Take every instance out of service and stop it."""
        async with self._lock:
            self._stopping = True
            self._started = False
            self._upstream = None
            extras, self._slots = self._slots, []
            await self._remove(extras, drain=0.0)

    # -- internals ---------------------------------------------------------------------------
    def _workers_per_instance(self) -> int:
        try:
            self._per_instance = workers_per_instance(self.spec.environment)
        except WorkerStartError as exc:
            self.last_error = exc.reason
            raise
        return self._per_instance

    async def _check_upstream(self) -> None:
        url = self.spec.environment[UPSTREAM_URL_VARIABLE]
        try:
            address = parse_upstream_url(url, self.upstream_hosts)
        except UpstreamError as exc:
            self.last_error = str(exc)
            raise WorkerStartError(self.last_error) from exc
        try:
            await ping_upstream(*address)
        except UpstreamError as exc:
            self.last_error = f"upstream {url} did not answer /ping: {exc}"
            raise WorkerStartError(self.last_error) from exc
        self._upstream = address
        self.last_error = None

    async def _launch(self, count: int) -> list[_Slot]:
        slots = [_Slot(WorkerProcess(self.spec)) for _ in range(count)]
        try:
            results = await asyncio.gather(
                *(slot.worker.start() for slot in slots), return_exceptions=True
            )
        except asyncio.CancelledError:
            # Starts still running clean up after themselves; finished ones must be stopped.
            await asyncio.shield(self._stop_workers(slots))
            raise
        failures = [result for result in results if isinstance(result, BaseException)]
        if failures:
            await self._stop_workers(slots)
            failure = failures[0]
            if not isinstance(failure, Exception):
                raise failure  # cancellation and the like
            if not isinstance(failure, WorkerStartError):
                failure = WorkerStartError(f"{type(failure).__name__}: {failure}")
            self.last_error = failure.reason
            raise failure
        self.last_error = None
        return slots

    async def _stop_workers(self, slots: list[_Slot]) -> None:
        await asyncio.gather(*(slot.worker.stop(self.stop_grace) for slot in slots))

    def _add(self, slots: list[_Slot]) -> None:
        for slot in slots:
            slot.ready = True
            slot.task = asyncio.create_task(self._watch(slot), name=f"watch-{slot.worker.pid}")
            self._slots.append(slot)

    async def _remove(self, slots: list[_Slot], drain: float) -> None:
        for slot in slots:
            slot.retired = True
            slot.ready = False
        self._publish()  # routers stop choosing them before they stop answering
        if slots and drain > 0:
            await asyncio.sleep(drain)
        await asyncio.gather(*(self._retire(slot) for slot in slots))

    async def _retire(self, slot: _Slot) -> None:
        if slot.task is not None:
            slot.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await slot.task
        await slot.worker.stop(self.stop_grace)

    async def _watch(self, slot: _Slot) -> None:
        while True:
            code = await slot.worker.wait()
            if slot.retired or self._stopping:
                return
            log.warning(
                "worker %s of %s exited unexpectedly (code %s); restarting",
                slot.worker.pid,
                self.spec.model_dir,
                code,
            )
            slot.ready = False
            self._publish()
            await self._restart(slot)
            slot.ready = True
            self._publish()

    async def _restart(self, slot: _Slot) -> None:
        delay = 0.1
        while True:
            now = time.monotonic()
            while slot.attempts and now - slot.attempts[0] > self.restart_window:
                slot.attempts.popleft()
            if len(slot.attempts) >= self.max_restarts_per_minute:
                # Out of attempts for this minute: a model that keeps dying must not spin.
                await asyncio.sleep(self.restart_window - (now - slot.attempts[0]))
                continue
            slot.attempts.append(now)
            slot.worker = WorkerProcess(self.spec)
            try:
                await slot.worker.start()
            except WorkerStartError as exc:
                self.last_error = exc.reason
                log.error("restarting a worker of %s failed: %s", self.spec.model_dir, exc.reason)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
                continue
            self.restarts += 1
            self.last_error = None
            return

    def _publish(self) -> None:
        addresses = self.addresses
        if addresses == self._published:
            return
        self._published = addresses
        try:
            self.on_change(list(addresses))
        except Exception:  # a broken listener must not take supervision down with it
            log.exception("on_change listener failed")
