"""Every API operation and reconciler step commits all of its writes or none.

The real application pieces run in-process on a real store (a SQLite file, or a PostgreSQL
schema of their own) with hosting that is ready at once; the reconciler is driven tick by tick.
A fault is injected at the store's edge, at the n-th write of an operation, as a database
failure would arrive; afterwards nothing the operation wrote before the fault may remain.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import psycopg
import pytest
from sqlalchemy.exc import OperationalError

from shadowlab.app import Application
from shadowlab.composition import build_control_plane
from shadowlab.errors import ResourceInUse, ServiceError
from shadowlab.services.context import RequestContext
from shadowlab.services.hosting import ImmediateHosting
from shadowlab.settings import Settings
from shadowlab.store import ENDPOINTS, EXPERIMENTS, MODELS, Record, RecordKind, Store
from shadowlab.store.records import S
from tests.conftest import DATABASES, PG_URL, fresh_database_url
from tests.services.harness import ROLE, experiment_request

REGION = "us-east-1"
CONTAINER = {"Image": "sklearn:latest", "ModelDataUrl": "s3://models/demo/model.tar.gz"}
WRITES = ("insert", "update", "delete", "put_tags", "delete_tags")


@pytest.fixture(params=DATABASES)
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Application]:
    url = fresh_database_url(request.param, str(tmp_path))
    application = build_control_plane(
        Settings(data_dir=tmp_path / "data", database_url=url), ImmediateHosting()
    )
    yield application
    application.close()
    if url is not None:  # the PostgreSQL schema this test had to itself
        schema = unquote(url).rsplit("search_path=", 1)[1]
        with psycopg.connect(PG_URL.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def ctx(app: Application) -> RequestContext:
    return RequestContext(REGION, app.settings.account_id)


class FailingWrite:
    """Makes the store's `at`-th write from now on fail as the database would."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch, at: int) -> None:
        self.writes = 0
        self.at = at
        for name in WRITES:
            monkeypatch.setattr(store, name, self._counted(getattr(store, name)))

    def _counted(self, write: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.writes += 1
            if self.writes == self.at:
                raise OperationalError("(injected)", {}, Exception("disk I/O error"))
            return write(*args, **kwargs)

        return counted


def settle(app: Application, done: Callable[[], bool], ticks: int = 12) -> None:
    """Run reconciler ticks until `done` (each tick converges ImmediateHosting at once)."""
    for _ in range(ticks):
        if done():
            return
        app.reconciler.tick()
    assert done(), "the reconciler did not get there"


def get(app: Application, kind: RecordKind[S], name: str) -> Record[S] | None:
    return app.store.get(REGION, kind, name)


def status_of(app: Application, kind: RecordKind[S], name: str) -> str | None:
    record = get(app, kind, name)
    return None if record is None else record.status


def create_model(app: Application, ctx: RequestContext, name: str) -> None:
    app.services.models.create_model(
        ctx, {"ModelName": name, "ExecutionRoleArn": ROLE, "PrimaryContainer": CONTAINER}
    )


def in_service_endpoint(app: Application, ctx: RequestContext) -> str:
    """Models `prod` and `candidate`, a config and the InService endpoint `ep`."""
    create_model(app, ctx, "prod")
    create_model(app, ctx, "candidate")
    variant = {
        "VariantName": "variant-1",
        "ModelName": "prod",
        "InstanceType": "ml.m5.large",
        "InitialInstanceCount": 1,
    }
    app.services.configs.create_endpoint_config(
        ctx, {"EndpointConfigName": "config", "ProductionVariants": [variant]}
    )
    app.services.endpoints.create_endpoint(
        ctx, {"EndpointName": "ep", "EndpointConfigName": "config"}
    )
    settle(app, lambda: status_of(app, ENDPOINTS, "ep") == "InService")
    return "ep"


def experiment_arn(app: Application, name: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{app.settings.account_id}:inference-experiment/{name}"


def holder(app: Application) -> str | None:
    """The experiment holding the endpoint, if any."""
    endpoint = get(app, ENDPOINTS, "ep")
    assert endpoint is not None
    held = endpoint.state.experiment
    return None if held is None else held.name


def assert_endpoint_deletable(app: Application, ctx: RequestContext) -> None:
    app.services.endpoints.delete_endpoint(ctx, {"EndpointName": "ep"})
    settle(app, lambda: get(app, ENDPOINTS, "ep") is None)


# -- API operations -----------------------------------------------------------------------------


@pytest.mark.parametrize("at", [2, 3], ids=["at-insert", "at-tags"])
def test_create_inference_experiment_fails_whole(
    app: Application, ctx: RequestContext, monkeypatch: pytest.MonkeyPatch, at: int
) -> None:
    """Claim the endpoint (write 1), insert the experiment (2), write its tags (3)."""
    in_service_endpoint(app, ctx)
    fault = FailingWrite(app.store, monkeypatch, at)
    with pytest.raises(OperationalError) as raised:
        app.services.experiments.create_inference_experiment(ctx, experiment_request("exp"))
    # Not a ServiceError: the control plane answers it with InternalFailure.
    assert not isinstance(raised.value, ServiceError)
    assert fault.writes == at
    monkeypatch.undo()
    assert get(app, EXPERIMENTS, "exp") is None
    assert app.store.list_tags(experiment_arn(app, "exp")) == []
    assert holder(app) is None
    assert_endpoint_deletable(app, ctx)


def test_create_inference_experiment_after_a_failure_succeeds(
    app: Application, ctx: RequestContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_service_endpoint(app, ctx)
    FailingWrite(app.store, monkeypatch, 3)
    with pytest.raises(OperationalError):
        app.services.experiments.create_inference_experiment(ctx, experiment_request("exp"))
    monkeypatch.undo()
    app.services.experiments.create_inference_experiment(ctx, experiment_request("exp"))
    assert holder(app) == "exp"
    assert app.store.list_tags(experiment_arn(app, "exp")) == [("team", "ml")]


def test_create_model_with_tags_fails_whole(
    app: Application, ctx: RequestContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    arn = f"arn:aws:sagemaker:{REGION}:{app.settings.account_id}:model/m"
    params = {
        "ModelName": "m",
        "ExecutionRoleArn": ROLE,
        "PrimaryContainer": CONTAINER,
        "Tags": [{"Key": "team", "Value": "ml"}],
    }
    fault = FailingWrite(app.store, monkeypatch, 2)  # the tags, after the model's insert
    with pytest.raises(OperationalError):
        app.services.models.create_model(ctx, params)
    assert fault.writes == 2
    monkeypatch.undo()
    assert get(app, MODELS, "m") is None
    assert app.store.list_tags(arn) == []
    # The name is free: nothing of the failed call holds it.
    app.services.models.create_model(ctx, params)
    assert app.store.list_tags(arn) == [("team", "ml")]


def test_delete_inference_experiment_fails_whole(
    app: Application, ctx: RequestContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Created experiment holds its endpoint: release it (write 1), delete it (2)."""
    in_service_endpoint(app, ctx)
    app.services.experiments.create_inference_experiment(
        ctx, experiment_request("exp", start_in=3600)
    )
    settle(app, lambda: status_of(app, EXPERIMENTS, "exp") == "Created")
    FailingWrite(app.store, monkeypatch, 2)
    with pytest.raises(OperationalError):
        app.services.experiments.delete_inference_experiment(ctx, {"Name": "exp"})
    monkeypatch.undo()
    assert status_of(app, EXPERIMENTS, "exp") == "Created"
    assert holder(app) == "exp"
    with pytest.raises(ResourceInUse):
        app.services.endpoints.delete_endpoint(ctx, {"EndpointName": "ep"})
    app.services.experiments.delete_inference_experiment(ctx, {"Name": "exp"})
    assert get(app, EXPERIMENTS, "exp") is None
    assert app.store.list_tags(experiment_arn(app, "exp")) == []
    assert_endpoint_deletable(app, ctx)


# -- reconciler steps ---------------------------------------------------------------------------


def running_experiment(app: Application, ctx: RequestContext) -> None:
    in_service_endpoint(app, ctx)
    app.services.experiments.create_inference_experiment(ctx, experiment_request("exp"))
    settle(app, lambda: status_of(app, EXPERIMENTS, "exp") == "Running")


def test_stopping_step_fails_whole(
    app: Application, ctx: RequestContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """StopInferenceExperiment records the plan; the reconciler's step then retargets the
    endpoint without the shadow (write 1) and records that on the experiment (write 2)."""
    running_experiment(app, ctx)
    app.services.experiments.stop_inference_experiment(
        ctx,
        {"Name": "exp", "ModelVariantActions": {"variant-1": "Retain", "shadow-1": "Remove"}},
    )
    before = get(app, ENDPOINTS, "ep")
    assert before is not None
    fault = FailingWrite(app.store, monkeypatch, 2)
    app.reconciler.experiments.tick()  # logs the failed step, as the loop would
    assert fault.writes == 2
    monkeypatch.undo()
    after = get(app, ENDPOINTS, "ep")
    assert after is not None
    assert (after.version, after.status, after.state) == (
        before.version,
        before.status,
        before.state,
    )
    experiment = get(app, EXPERIMENTS, "exp")
    assert experiment is not None and experiment.status == "Stopping"
    assert experiment.state.stop is not None and experiment.state.stop.generation is None
    # The next ticks carry the stop through from where the store says it is.
    settle(app, lambda: status_of(app, EXPERIMENTS, "exp") == "Completed")
    assert holder(app) is None
    assert_endpoint_deletable(app, ctx)


def test_finishing_step_fails_whole(
    app: Application, ctx: RequestContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last step releases the endpoint (write 1) and completes the experiment (write 2)."""
    running_experiment(app, ctx)
    app.services.experiments.stop_inference_experiment(
        ctx,
        {"Name": "exp", "ModelVariantActions": {"variant-1": "Retain", "shadow-1": "Remove"}},
    )

    def stop_generation() -> bool:
        experiment = get(app, EXPERIMENTS, "exp")
        stop = experiment.state.stop if experiment is not None else None
        return stop is not None and stop.generation is not None

    settle(app, stop_generation)
    app.reconciler.endpoints.tick()  # the endpoint converges; the experiment may finish next
    fault = FailingWrite(app.store, monkeypatch, 2)
    app.reconciler.experiments.tick()
    assert fault.writes == 2
    monkeypatch.undo()
    assert status_of(app, EXPERIMENTS, "exp") == "Stopping"
    assert holder(app) == "exp"
    settle(app, lambda: status_of(app, EXPERIMENTS, "exp") == "Completed")
    assert holder(app) is None


# -- concurrency --------------------------------------------------------------------------------


def test_concurrent_experiments_on_one_endpoint_one_wins(
    app: Application, ctx: RequestContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both read the endpoint free; the claims race. On PostgreSQL the loser's compare-and-set
    goes stale and its whole operation runs again; on SQLite the units run one after the other.
    Either way the loser hears what it hears today."""
    in_service_endpoint(app, ctx)
    update = app.store.update

    def slow_update(record: Record) -> Record:
        time.sleep(0.05)  # widen the window between reading the endpoint and claiming it
        return update(record)

    monkeypatch.setattr(app.store, "update", slow_update)
    start = threading.Barrier(2)
    outcomes: dict[str, BaseException | dict[str, Any]] = {}

    def create(name: str) -> None:
        start.wait(5)
        try:
            outcomes[name] = app.services.experiments.create_inference_experiment(
                ctx, experiment_request(name)
            )
        except BaseException as exc:
            outcomes[name] = exc

    threads = [threading.Thread(target=create, args=(name,)) for name in ("exp-a", "exp-b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    monkeypatch.undo()
    winners = [name for name, outcome in outcomes.items() if isinstance(outcome, dict)]
    losers = [name for name, outcome in outcomes.items() if isinstance(outcome, BaseException)]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    lost = outcomes[losers[0]]
    assert isinstance(lost, ResourceInUse)
    assert "already has an active inference experiment" in lost.message
    assert holder(app) == winners[0]
    assert get(app, EXPERIMENTS, losers[0]) is None
    assert app.store.list_tags(experiment_arn(app, losers[0])) == []
    assert len(app.store.find(EXPERIMENTS)) == 1
