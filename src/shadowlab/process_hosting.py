"""`Hosting` with real worker processes: the bridge from the services to hosting and routing.

The reconciler (a thread) calls `ensure`/`remove`; the work happens on the data plane's event
loop, where `VariantInstances` supervise the workers and the `RoutingTable` is updated. A new
deployment is applied beside the running one: variants whose model and container are unchanged
keep their workers (and are scaled if their count changed); changed variants get new workers,
and the routes switch only once every new instance answers. If any new instance fails to start,
the new workers are stopped, the old routes stay, and the failure (the worker's own error) is
reported, which the reconciler turns into Failed or a rollback.

Workers are confined by `WorkerIsolation` (user, resource limits; see hosting.isolation), model
artifacts are bounded by `ArtifactLimits`, and upstream URLs by `UpstreamHosts`, all from
settings.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from shadowlab.capture.config import CaptureConfig, CaptureConfigError
from shadowlab.dataplane.routing import EndpointRoute, RoutingTable, ShadowRoute, VariantRoute
from shadowlab.domain.deployments import EndpointDeployment, Role, VariantDeployment
from shadowlab.hosting.artifacts import ArtifactError, ArtifactLimits, prepare_model_dir
from shadowlab.hosting.isolation import ResolvedUser, WorkerIsolation, check_worker_user
from shadowlab.hosting.process import worker_python_path
from shadowlab.hosting.supervisor import VariantInstances, WorkerSpec, WorkerStartError
from shadowlab.hosting.upstream import UPSTREAM_URL_VARIABLE, UpstreamHosts
from shadowlab.services.hosting import HostingState, HostingStatus

log = logging.getLogger(__name__)


def _identity(variant: VariantDeployment) -> str:
    """What forces new workers when it changes (weight, sampling, count and a serverless
    variant's concurrency do not; its memory limit does)."""
    return json.dumps(
        [variant.model_name.lower(), variant.instance_type, variant.container, variant.memory_mb],
        sort_keys=True,
    )


@dataclass
class _Variant:
    identity: str
    deployment: VariantDeployment
    instances: VariantInstances


@dataclass
class _Endpoint:
    region: str
    name: str
    variants: dict[str, _Variant] = field(default_factory=dict)
    applied: int = 0  # generation now routed
    wanted: EndpointDeployment | None = None
    failed: dict[int, str] = field(default_factory=dict)  # generation -> reason
    task: Future[None] | None = None
    # Once removal begins, workers stopping must not put a route back (their on_change fires).
    removed: bool = False
    capture: tuple[CaptureConfig, ...] = ()  # of the generation now routed


class ProcessHosting:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        routing: RoutingTable,
        work_dir: Path,
        object_store_root: Path,
        s3_client_factory: Callable[[], Any] | None = None,
        *,
        isolation: WorkerIsolation | None = None,
        artifact_limits: ArtifactLimits | None = None,
        upstream_hosts: UpstreamHosts | None = None,
    ) -> None:
        self.loop = loop
        self.routing = routing
        self.work_dir = work_dir
        self.object_store_root = object_store_root
        self.s3_client_factory = s3_client_factory
        self.isolation = isolation or WorkerIsolation()
        # Checked now: a server that cannot run workers as asked must not start at all.
        self.worker_user = check_worker_user(self.isolation.user, worker_python_path())
        self.artifact_limits = artifact_limits or ArtifactLimits()
        self.upstream_hosts = upstream_hosts
        self._endpoints: dict[str, _Endpoint] = {}
        self._removals: dict[str, Future[None]] = {}

    # -- called from the reconciler thread ------------------------------------------------------

    def ensure(self, deployment: EndpointDeployment) -> HostingStatus:
        endpoint = self._endpoints.setdefault(
            deployment.key, _Endpoint(deployment.region, deployment.endpoint_name)
        )
        if deployment.generation in endpoint.failed:
            return HostingStatus(HostingState.FAILED, endpoint.failed[deployment.generation])
        if endpoint.applied == deployment.generation and (
            endpoint.task is None or endpoint.task.done()
        ):
            return HostingStatus(HostingState.READY, instances=self._counts(endpoint))
        endpoint.wanted = deployment
        if endpoint.task is None or endpoint.task.done():
            endpoint.task = asyncio.run_coroutine_threadsafe(self._converge(endpoint), self.loop)
        return HostingStatus(HostingState.PENDING, instances=self._counts(endpoint))

    def remove(self, key: str) -> bool:
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            return True
        removal = self._removals.get(key)
        if removal is None:
            removal = asyncio.run_coroutine_threadsafe(self._remove(key, endpoint), self.loop)
            self._removals[key] = removal
        if not removal.done():
            return False
        del self._removals[key]
        self._endpoints.pop(key, None)
        return True

    def workers(self) -> dict[tuple[str, str, str], tuple[str, int, tuple[int, ...]]]:
        """(region, endpoint, variant) -> (role, instance count, pids of its live worker
        processes), for the CPU and memory metrics. Called on the event loop."""
        found: dict[tuple[str, str, str], tuple[str, int, tuple[int, ...]]] = {}
        for endpoint in list(self._endpoints.values()):
            if endpoint.removed:
                continue
            for name, variant in list(endpoint.variants.items()):
                instances = variant.instances
                pids = tuple(w.pid for w in instances.workers if w.pid is not None and w.alive)
                role = variant.deployment.role.value
                found[endpoint.region, endpoint.name, name] = (role, instances.count, pids)
        return found

    async def close(self) -> None:
        """Stop every worker (server shutdown); runs on the loop."""
        for key, endpoint in list(self._endpoints.items()):
            try:
                await self._remove(key, endpoint)
            except Exception:
                log.exception("stopping the workers of %s failed", key)
        self._endpoints.clear()

    # -- on the event loop -----------------------------------------------------------------------

    @staticmethod
    def _counts(endpoint: _Endpoint) -> dict[str, int]:
        return {name: v.instances.instances_in_service for name, v in endpoint.variants.items()}

    async def _converge(self, endpoint: _Endpoint) -> None:
        # Keep going while newer generations arrive during an apply.
        while endpoint.wanted is not None and endpoint.wanted.generation != endpoint.applied:
            deployment = endpoint.wanted
            try:
                await self._apply(endpoint, deployment)
            except Exception as exc:
                reason = exc.reason if isinstance(exc, WorkerStartError) else str(exc)
                if not isinstance(exc, WorkerStartError | ArtifactError):
                    log.exception("deploying %s failed", deployment.key)
                endpoint.failed[deployment.generation] = reason
                if endpoint.wanted is deployment:
                    return

    async def _apply(self, endpoint: _Endpoint, deployment: EndpointDeployment) -> None:
        started: list[VariantInstances] = []
        kept: dict[str, _Variant] = {}
        try:
            for variant in deployment.variants:
                current = endpoint.variants.get(variant.name)
                if current is not None and current.identity == _identity(variant):
                    if current.instances.count != variant.instance_count:
                        await current.instances.scale(variant.instance_count)
                    kept[variant.name] = _Variant(current.identity, variant, current.instances)
                    continue
                instances = await self._start_variant(endpoint, deployment, variant)
                started.append(instances)
                kept[variant.name] = _Variant(_identity(variant), variant, instances)
        except BaseException:
            for instances in started:
                await instances.stop()
            raise
        retired = [
            v.instances
            for name, v in endpoint.variants.items()
            if name not in kept or kept[name].instances is not v.instances
        ]
        endpoint.variants = kept
        endpoint.applied = deployment.generation
        endpoint.capture = capture_configs(deployment)
        self._publish(endpoint)
        for instances in retired:
            await instances.stop()  # after the switch: no new request reaches them

    async def _start_variant(
        self, endpoint: _Endpoint, deployment: EndpointDeployment, variant: VariantDeployment
    ) -> VariantInstances:
        environment = {k: str(v) for k, v in (variant.container.get("Environment") or {}).items()}
        base = (
            self.work_dir
            / deployment.key.replace("/", "_")
            / f"{variant.name}-g{deployment.generation}"
        )
        model_dir = base / "model"
        if UPSTREAM_URL_VARIABLE not in environment:
            url = model_data_url(variant.container)
            s3 = self.s3_client_factory() if self.s3_client_factory and url else None
            await asyncio.to_thread(
                prepare_model_dir, url, model_dir, self.object_store_root, s3, self.artifact_limits
            )
        else:
            model_dir.mkdir(parents=True, exist_ok=True)
        if self.worker_user is not None:
            await asyncio.to_thread(_hand_over, self.work_dir, model_dir, self.worker_user)
        isolation = self.isolation
        if variant.memory_mb:
            isolation = replace(isolation, max_data_mb=variant.memory_mb)
        spec = WorkerSpec(
            model_dir=model_dir,
            environment=environment,
            log_path=base / "worker.log",
            isolation=isolation,
        )
        instances = VariantInstances(
            spec,
            variant.instance_count,
            lambda _addresses: self._publish(endpoint),
            upstream_hosts=self.upstream_hosts,
        )
        try:
            await instances.start()
        except BaseException:
            await instances.stop()
            raise
        return instances

    def _publish(self, endpoint: _Endpoint) -> None:
        if endpoint.removed:
            return
        production, shadows = [], []
        for variant in endpoint.variants.values():
            addresses = tuple(variant.instances.addresses)
            spec = variant.deployment
            if spec.role is Role.SHADOW:
                shadows.append(ShadowRoute(spec.name, spec.sampling_percentage, addresses))
            else:
                production.append(
                    VariantRoute(spec.name, spec.weight, addresses, spec.max_concurrency)
                )
        route = EndpointRoute(tuple(production), tuple(shadows), endpoint.capture)
        self.routing.set(endpoint.name, route, endpoint.region)

    async def _remove(self, key: str, endpoint: _Endpoint) -> None:
        endpoint.removed = True
        self.routing.remove(endpoint.name, endpoint.region)
        if endpoint.task is not None and not endpoint.task.done():
            endpoint.wanted = None
            await asyncio.wrap_future(endpoint.task)
        for variant in endpoint.variants.values():
            await variant.instances.stop()
        endpoint.variants = {}
        await asyncio.to_thread(shutil.rmtree, self.work_dir / key.replace("/", "_"), True)


def model_data_url(container: dict[str, Any]) -> str | None:
    """Where the container's model comes from: ModelDataUrl, or ModelDataSource's S3Uri (an
    object or a prefix, both of which `prepare_model_dir` tells apart by looking)."""
    url = container.get("ModelDataUrl")
    if url:
        return str(url)
    source = (container.get("ModelDataSource") or {}).get("S3DataSource") or {}
    return str(source["S3Uri"]) if source.get("S3Uri") else None


def _hand_over(work_dir: Path, model_dir: Path, user: ResolvedUser) -> None:
    """Let the worker user reach its model directory and own it (model code may write there, as
    it may today); the directories above it, up to the work dir, only become traversable, not
    readable. Whatever holds the work dir (the data dir) must be traversable by that user."""
    for path in [model_dir.parent, *model_dir.parent.parents]:
        os.chmod(path, os.stat(path).st_mode | 0o111)
        if path == work_dir:
            break
    for root, dirs, files in os.walk(model_dir):
        for name in [*dirs, *files]:
            os.chown(os.path.join(root, name), user.uid, user.gid, follow_symlinks=False)
    os.chown(model_dir, user.uid, user.gid)


def capture_configs(deployment: EndpointDeployment) -> tuple[CaptureConfig, ...]:
    """What the endpoint's traffic is captured for: its configuration's DataCaptureConfig (when
    EnableCapture) and a running experiment's DataStorageConfig, each to its own destination."""
    found: list[CaptureConfig] = []
    try:
        if deployment.data_capture:
            config = CaptureConfig.from_data_capture_config(deployment.data_capture)
            if config.enabled and config.sampling_percentage > 0:
                found.append(config)
        if deployment.data_storage and deployment.data_storage.get("Destination"):
            found.append(CaptureConfig.from_data_storage_config(deployment.data_storage))
    except CaptureConfigError as exc:  # validated at create time; never fail a deployment
        log.warning("data capture of %s is off: %s", deployment.key, exc)
    return tuple(found)
