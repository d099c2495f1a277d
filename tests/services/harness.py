"""The services and the reconciler in-process, without processes or real time.

`World` is one real `Application` (real services, a real SQLite store in a temporary directory)
whose clock is a `FakeClock` moved by hand and whose hosting is a `ScriptedHosting` that the test
tells when a deployment is ready or failed. The reconciler runs one tick at a time (`tick()`,
what its loop runs each interval), never its thread, so each step is observable and a test takes
milliseconds. `restart()` builds a new Application on the same store, as a server restart would.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shadowlab.app import Application
from shadowlab.composition import build_control_plane
from shadowlab.domain.deployments import EndpointDeployment
from shadowlab.domain.endpoint_state import EndpointState
from shadowlab.services.context import Clock, RequestContext
from shadowlab.services.hosting import Hosting, HostingState, HostingStatus
from shadowlab.services.judging import Judge
from shadowlab.settings import Settings
from shadowlab.store import ENDPOINTS, Record

REGION = "us-east-1"
ROLE = "arn:aws:iam::000000000000:role/SageMakerRole"
CONTAINER = {"Image": "sklearn:latest", "ModelDataUrl": "s3://models/demo/model.tar.gz"}
MINUTE = 60.0
DAY = 24 * 3600.0
# A fixed epoch (2027-01-15T08:00:00Z): schedules and CompletionTime compare exactly.
EPOCH = 1_800_000_000.0


def build_app(
    data_dir: Path,
    hosting: Hosting,
    database_url: str | None = None,
    *,
    clock: Clock | None = None,
    judge: Judge | None = None,
) -> Application:
    """The one place the tests construct the application (as `shadowlab serve` does)."""
    settings = Settings(data_dir=data_dir, database_url=database_url)
    return build_control_plane(settings, hosting, clock=clock, judge=judge)


class FakeClock:
    """Epoch seconds that move only when the test says so (millisecond precision, as stored)."""

    def __init__(self, start: float = EPOCH) -> None:
        self.time = start

    def now(self) -> float:
        return self.time

    def advance(self, seconds: float) -> float:
        self.time = round(self.time + seconds, 3)
        return self.time


class ScriptedHosting:
    """A `Hosting` whose deployments become ready or fail only when the test says so.

    A deployment is one (endpoint key, generation). `ensure` records what was asked and answers
    pending until the test calls `finish` (ready) or `fail` (failed, with a reason) for the
    endpoint's latest deployment asked for. A generation once ready stays ready (a rollback to it
    is ready at once) unless failed later (its instances no longer start). With `auto=True`
    every deployment is ready at once, as `ImmediateHosting`. `remove` answers True unless
    `hold_removal` was called for that endpoint.
    """

    def __init__(self, *, auto: bool = False) -> None:
        self.auto = auto
        self.latest: dict[str, EndpointDeployment] = {}
        self.outcomes: dict[tuple[str, int], HostingStatus] = {}
        self.ensured: list[tuple[str, int]] = []
        self.removed: list[str] = []
        self.held: set[str] = set()

    @staticmethod
    def key(endpoint: str) -> str:
        return f"{REGION}/{endpoint.lower()}"

    # -- the Hosting protocol -------------------------------------------------------------------

    def ensure(self, deployment: EndpointDeployment) -> HostingStatus:
        key = deployment.key
        self.latest[key] = deployment
        self.ensured.append((key, deployment.generation))
        if self.auto and (key, deployment.generation) not in self.outcomes:
            self._ready(deployment)
        return self.outcomes.get((key, deployment.generation), HostingStatus(HostingState.PENDING))

    def remove(self, key: str) -> bool:
        self.removed.append(key)
        if key in self.held:
            return False
        self.latest.pop(key, None)
        for done in [k for k in self.outcomes if k[0] == key]:
            del self.outcomes[done]
        return True

    # -- the script -----------------------------------------------------------------------------

    def _ready(self, deployment: EndpointDeployment) -> None:
        counts = {v.name: v.instance_count for v in deployment.variants}
        key = (deployment.key, deployment.generation)
        self.outcomes[key] = HostingStatus(HostingState.READY, instances=counts)

    def pending(self, endpoint: str) -> EndpointDeployment:
        """The endpoint's latest deployment asked for (the reconciler must have ensured it)."""
        deployment = self.latest.get(self.key(endpoint))
        assert deployment is not None, f"nothing was deployed for {endpoint}"
        return deployment

    def finish(self, endpoint: str) -> EndpointDeployment:
        deployment = self.pending(endpoint)
        self._ready(deployment)
        return deployment

    def fail(self, endpoint: str, reason: str, generation: int | None = None) -> None:
        """The latest deployment (or `generation`, even one that ran before) fails."""
        number = self.pending(endpoint).generation if generation is None else generation
        key = (self.key(endpoint), number)
        self.outcomes[key] = HostingStatus(HostingState.FAILED, reason=reason)

    def hold_removal(self, endpoint: str, held: bool = True) -> None:
        (self.held.add if held else self.held.discard)(self.key(endpoint))

    def running(self, endpoint: str) -> EndpointDeployment | None:
        """What runs for the endpoint now: its latest deployment, if that is ready."""
        deployment = self.latest.get(self.key(endpoint))
        if deployment is None:
            return None
        outcome = self.outcomes.get((deployment.key, deployment.generation))
        return deployment if outcome and outcome.state is HostingState.READY else None


class World:
    """An application on a store in `data_dir`, driven by hand."""

    def __init__(
        self,
        data_dir: Path,
        clock: FakeClock | None = None,
        hosting: ScriptedHosting | None = None,
        opened: list[Application] | None = None,
        *,
        judge: Judge | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.clock = clock or FakeClock()
        self.hosting = hosting if hosting is not None else ScriptedHosting()
        self.judge = judge
        # The services and the reconciler read the time from the application's one Clock.
        self.app = build_app(data_dir, self.hosting, clock=Clock(self.clock.now), judge=judge)
        # Every application this world and its restarts opened, for the fixture to close.
        self.opened = opened if opened is not None else []
        self.opened.append(self.app)
        self.ctx = RequestContext(REGION, self.app.settings.account_id)
        self.services = self.app.services

    # -- driving --------------------------------------------------------------------------------

    def tick(self, times: int = 1) -> None:
        """What the reconciler's loop runs at each interval."""
        for _ in range(times):
            self.app.reconciler.tick()

    def settle(self, done: Callable[[], bool], ticks: int = 12) -> int:
        """Tick until `done`; returns how many ticks that took."""
        for n in range(ticks):
            if done():
                return n
            self.tick()
        assert done(), "the reconciler did not get there"
        return ticks

    def restart(self, hosting: ScriptedHosting | None = None, judge: Judge | None = None) -> World:
        """Close this application (as a killed server leaves its store) and start a new one on
        the same store and clock, with new hosting (no process survived) and maybe a judge."""
        self.app.close()
        self.opened.remove(self.app)
        return World(self.data_dir, self.clock, hosting, self.opened, judge=judge or self.judge)

    def close(self) -> None:
        while self.opened:
            self.opened.pop().close()

    # -- reading --------------------------------------------------------------------------------

    def endpoint_record(self, name: str) -> Record[EndpointState] | None:
        return self.app.store.get(REGION, ENDPOINTS, name)

    def endpoint(self, name: str = "ep") -> dict[str, Any]:
        return self.services.endpoints.describe_endpoint(self.ctx, {"EndpointName": name})

    def endpoint_status(self, name: str = "ep") -> str | None:
        record = self.endpoint_record(name)
        return None if record is None else record.status

    def experiment(self, name: str = "exp") -> dict[str, Any]:
        return self.services.experiments.describe_inference_experiment(self.ctx, {"Name": name})

    def experiment_status(self, name: str = "exp") -> str:
        return str(self.experiment(name)["Status"])

    def variant_statuses(self, name: str = "exp") -> dict[str, str]:
        return {v["VariantName"]: v["Status"] for v in self.experiment(name)["ModelVariants"]}

    def holder(self, endpoint: str = "ep") -> str | None:
        """The experiment holding the endpoint, if any (the one place that reads the claim)."""
        record = self.endpoint_record(endpoint)
        assert record is not None
        held = record.state.experiment
        return None if held is None else held.name

    # -- building -------------------------------------------------------------------------------

    def create_model(self, name: str) -> None:
        self.services.models.create_model(
            self.ctx, {"ModelName": name, "ExecutionRoleArn": ROLE, "PrimaryContainer": CONTAINER}
        )

    def create_config(
        self, name: str, *variants: tuple[str, str, int], shadow: tuple[str, str] | None = None
    ) -> None:
        """A configuration with production `variants` (name, model, count) and maybe one
        config-level shadow (name, model) at weight 0.5."""
        params: dict[str, Any] = {
            "EndpointConfigName": name,
            "ProductionVariants": [
                {
                    "VariantName": variant,
                    "ModelName": model,
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": count,
                    "InitialVariantWeight": 1.0,
                }
                for variant, model, count in variants
            ],
        }
        if shadow is not None:
            params["ShadowProductionVariants"] = [
                {
                    "VariantName": shadow[0],
                    "ModelName": shadow[1],
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": 1,
                    "InitialVariantWeight": 0.5,
                }
            ]
        self.services.configs.create_endpoint_config(self.ctx, params)

    def in_service_endpoint(self, name: str = "ep") -> None:
        """Models `prod` and `candidate`, the config `config` and the InService endpoint."""
        self.create_model("prod")
        self.create_model("candidate")
        self.create_config("config", ("variant-1", "prod", 1))
        self.services.endpoints.create_endpoint(
            self.ctx, {"EndpointName": name, "EndpointConfigName": "config"}
        )
        self.converge(name)

    def converge(self, endpoint: str = "ep") -> None:
        """Tick, finishing each deployment hosting is asked for, until the endpoint is InService."""
        self.drive(lambda: self.endpoint_status(endpoint) == "InService", endpoint)

    def drive(self, done: Callable[[], bool], endpoint: str = "ep", ticks: int = 12) -> int:
        """Tick until `done`, hosting finishing each of the endpoint's deployments as soon as it
        is asked for; returns how many ticks that took."""
        hosting = self.hosting
        for n in range(ticks):
            if done():
                return n
            self.tick()
            if hosting.latest.get(hosting.key(endpoint)) and hosting.running(endpoint) is None:
                hosting.finish(endpoint)
        assert done(), "the reconciler did not get there"
        return ticks

    def running_experiment(self, name: str = "exp", **kwargs: Any) -> None:
        """The InService endpoint `ep` and the experiment `name` Running on it."""
        self.in_service_endpoint()
        self.create_experiment(name, **kwargs)
        self.drive(lambda: self.experiment_status(name) == "Running")

    def create_experiment(self, name: str = "exp", **kwargs: Any) -> dict[str, Any]:
        return self.services.experiments.create_inference_experiment(
            self.ctx, experiment_request(name, **kwargs)
        )

    def stop(self, actions: dict[str, str], name: str = "exp", **params: Any) -> None:
        self.services.experiments.stop_inference_experiment(
            self.ctx, {"Name": name, "ModelVariantActions": actions, **params}
        )


# -- requests ------------------------------------------------------------------------------------


def experiment_request(
    name: str,
    *,
    start_in: float | None = None,
    schedule: dict[str, float] | None = None,
    sampling: int = 50,
    shadow_count: int = 1,
    endpoint: str = "ep",
) -> dict[str, Any]:
    """Source `variant-1` (model `prod`) and shadow `shadow-1` (model `candidate`). `start_in`:
    a StartTime that many seconds from real time (for tests on the real clock); `schedule`:
    epoch seconds as given."""

    def variant(model: str, name: str, count: int, instance_type: str) -> dict[str, Any]:
        config = {"InstanceType": instance_type, "InstanceCount": count}
        return {
            "ModelName": model,
            "VariantName": name,
            "InfrastructureConfig": {
                "InfrastructureType": "RealTimeInference",
                "RealTimeInferenceConfig": config,
            },
        }

    request: dict[str, Any] = {
        "Name": name,
        "Type": "ShadowMode",
        "RoleArn": ROLE,
        "EndpointName": endpoint,
        "ModelVariants": [
            variant("prod", "variant-1", 1, "ml.m5.large"),
            variant("candidate", "shadow-1", shadow_count, "ml.m5.xlarge"),
        ],
        "ShadowModeConfig": {
            "SourceModelVariantName": "variant-1",
            "ShadowModelVariants": [
                {"ShadowModelVariantName": "shadow-1", "SamplingPercentage": sampling}
            ],
        },
        "Tags": [{"Key": "team", "Value": "ml"}],
    }
    if start_in is not None:
        request["Schedule"] = {"StartTime": time.time() + start_in}
    if schedule is not None:
        request["Schedule"] = schedule
    return request
