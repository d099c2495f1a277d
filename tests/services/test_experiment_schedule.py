"""An inference experiment's schedule on a fake clock: Created until StartTime, Starting until
its shadow is deployed, Running until EndTime, then the endpoint as it was and Completed; Start,
Stop and Update before and after it starts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shadowlab.errors import ConflictException, ValidationException
from tests.services.harness import DAY, MINUTE, World


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def _shadows(world: World) -> list[dict[str, object]]:
    return list(world.endpoint().get("ShadowProductionVariants", []))


def test_created_until_start_time_running_until_end_time_then_completed(world: World) -> None:
    world.in_service_endpoint()
    t0 = world.clock.now()
    start, end = t0 + 10 * MINUTE, t0 + 70 * MINUTE
    world.create_experiment(schedule={"StartTime": start, "EndTime": end})
    assert world.experiment_status() == "Creating"
    world.tick()
    assert world.experiment_status() == "Created"
    assert world.experiment()["Schedule"] == {"StartTime": _at(start), "EndTime": _at(end)}
    assert world.variant_statuses() == {"variant-1": "InService", "shadow-1": "Creating"}

    world.clock.advance(10 * MINUTE - 0.001)
    world.tick(3)
    assert world.experiment_status() == "Created"
    assert _shadows(world) == []
    assert world.hosting.ensured[-1] == ("us-east-1/ep", 1)  # only the endpoint as it was

    world.clock.advance(0.001)  # StartTime
    world.tick()
    assert world.experiment_status() == "Starting"
    world.tick()  # the endpoint is retargeted with the shadow; hosting is asked for it
    assert world.endpoint_status() == "Updating"
    shadow = world.hosting.pending("ep").shadows()[0]
    assert (shadow.name, shadow.model_name, shadow.instance_type) == (
        "shadow-1",
        "candidate",
        "ml.m5.xlarge",
    )
    assert (shadow.sampling_percentage, shadow.weight) == (50, 0.5)
    world.tick(2)  # hosting has not finished: still Starting
    assert world.experiment_status() == "Starting"

    world.hosting.finish("ep")
    world.tick(2)  # the endpoint converges, then the experiment sees it
    described = world.experiment()
    assert described["Status"] == "Running"
    assert described["EndpointMetadata"] == {
        "EndpointName": "ep",
        "EndpointConfigName": "config",
        "EndpointStatus": "InService",
    }
    assert world.variant_statuses() == {"variant-1": "InService", "shadow-1": "InService"}
    [summary] = _shadows(world)
    assert (summary["VariantName"], summary["CurrentWeight"], summary["CurrentInstanceCount"]) == (
        "shadow-1",
        0.5,
        1,
    )

    world.clock.advance(60 * MINUTE - 0.001)
    world.tick(2)
    assert world.experiment_status() == "Running"
    world.clock.advance(0.001)  # EndTime
    world.tick()
    assert world.experiment_status() == "Stopping"
    world.tick()  # the shadow is taken off the endpoint
    assert world.hosting.pending("ep").shadows() == ()
    world.hosting.finish("ep")
    world.tick(2)
    completed = world.experiment()
    assert completed["Status"] == "Completed"
    assert completed["CompletionTime"] == _at(end)
    assert "StatusReason" not in completed
    assert world.variant_statuses() == {"variant-1": "InService", "shadow-1": "Deleted"}
    assert world.endpoint()["EndpointConfigName"] == "config"
    assert _shadows(world) == []
    assert world.holder() is None
    world.tick(3)  # nothing moves any more
    assert world.experiment_status() == "Completed"


def test_no_schedule_starts_now_and_lasts_seven_days(world: World) -> None:
    world.in_service_endpoint()
    now = world.clock.now()
    world.create_experiment()
    world.drive(lambda: world.experiment_status() == "Running")
    assert world.experiment()["Schedule"] == {"StartTime": _at(now), "EndTime": _at(now + 7 * DAY)}
    world.clock.advance(7 * DAY - 1)
    world.tick(2)
    assert world.experiment_status() == "Running"
    world.clock.advance(1)
    world.drive(lambda: world.experiment_status() == "Completed")
    assert world.experiment()["CompletionTime"] == _at(now + 7 * DAY)


def test_start_time_alone_ends_seven_days_after_it(world: World) -> None:
    world.in_service_endpoint()
    start = world.clock.now() + DAY
    world.create_experiment(schedule={"StartTime": start})
    world.tick()
    assert world.experiment()["Schedule"]["EndTime"] == _at(start + 7 * DAY)


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (0, 30 * DAY + 1, "can be at most 30 days"),
        (DAY, DAY, "EndTime must be later than Schedule.StartTime"),
        (-2 * DAY, -DAY, "EndTime must be in the future"),
    ],
)
def test_schedules_that_are_refused(world: World, start: float, end: float, message: str) -> None:
    world.in_service_endpoint()
    now = world.clock.now()
    with pytest.raises(ValidationException, match=message):
        world.create_experiment(schedule={"StartTime": now + start, "EndTime": now + end})
    assert world.holder() is None  # a refused experiment does not hold the endpoint


def test_thirty_days_is_allowed(world: World) -> None:
    world.in_service_endpoint()
    now = world.clock.now()
    world.create_experiment(schedule={"StartTime": now, "EndTime": now + 30 * DAY})
    world.drive(lambda: world.experiment_status() == "Running")


def test_start_before_start_time_begins_now_and_keeps_the_end(world: World) -> None:
    world.in_service_endpoint()
    now = world.clock.now()
    world.create_experiment(schedule={"StartTime": now + DAY, "EndTime": now + 2 * DAY})
    world.tick()
    world.clock.advance(MINUTE)
    world.services.experiments.start_inference_experiment(world.ctx, {"Name": "exp"})
    assert world.experiment_status() == "Starting"
    world.drive(lambda: world.experiment_status() == "Running")
    assert world.experiment()["Schedule"] == {
        "StartTime": _at(now + MINUTE),
        "EndTime": _at(now + 2 * DAY),
    }
    with pytest.raises(ConflictException, match="while it is Running"):
        world.services.experiments.start_inference_experiment(world.ctx, {"Name": "exp"})


def test_start_early_moves_an_end_beyond_thirty_days_in(world: World) -> None:
    world.in_service_endpoint()
    now = world.clock.now()
    world.create_experiment(schedule={"StartTime": now + 20 * DAY, "EndTime": now + 45 * DAY})
    world.tick()
    world.services.experiments.start_inference_experiment(world.ctx, {"Name": "exp"})
    assert world.experiment()["Schedule"] == {"StartTime": _at(now), "EndTime": _at(now + 30 * DAY)}


@pytest.mark.parametrize("desired_state", ["Completed", "Cancelled"])
def test_stop_before_start_never_deploys_the_shadow(world: World, desired_state: str) -> None:
    world.in_service_endpoint()
    now = world.clock.now()
    world.create_experiment(schedule={"StartTime": now + DAY, "EndTime": now + 2 * DAY})
    world.tick()
    with pytest.raises(ValidationException, match="Promote and Retain need a started experiment"):
        world.stop({"variant-1": "Remove", "shadow-1": "Promote"})
    world.stop(
        {"variant-1": "Retain", "shadow-1": "Remove"},
        DesiredState=desired_state,
        Reason="not needed",
    )
    assert world.experiment_status() == "Stopping"
    world.tick()
    stopped = world.experiment()
    assert (stopped["Status"], stopped["StatusReason"]) == (desired_state, "not needed")
    assert stopped["CompletionTime"] == _at(now)
    assert world.variant_statuses() == {"variant-1": "InService", "shadow-1": "Deleted"}
    assert world.holder() is None
    assert world.hosting.ensured[-1] == ("us-east-1/ep", 1)  # the endpoint never changed
    assert world.endpoint_status() == "InService"
    world.clock.advance(DAY)  # the StartTime passes: nothing starts
    world.tick(2)
    assert world.experiment_status() == desired_state


def test_update_before_start_changes_the_schedule_and_stays_created(world: World) -> None:
    world.in_service_endpoint()
    now = world.clock.now()
    world.create_experiment(schedule={"StartTime": now + DAY, "EndTime": now + 2 * DAY})
    world.tick()
    world.services.experiments.update_inference_experiment(
        world.ctx, {"Name": "exp", "Schedule": {"StartTime": now + MINUTE}}
    )
    assert world.experiment_status() == "Updating"
    world.tick()
    assert world.experiment_status() == "Created"
    assert world.experiment()["Schedule"]["StartTime"] == _at(now + MINUTE)
    world.clock.advance(MINUTE)
    world.drive(lambda: world.experiment_status() == "Running")


def test_update_while_running_changes_the_shadow_share(world: World) -> None:
    world.running_experiment()
    request = world.experiment()["ShadowModeConfig"]
    request["ShadowModelVariants"][0]["SamplingPercentage"] = 20
    world.services.experiments.update_inference_experiment(
        world.ctx, {"Name": "exp", "ShadowModeConfig": request, "Description": "now 20 percent"}
    )
    assert world.experiment_status() == "Updating"
    assert world.variant_statuses()["shadow-1"] == "Updating"
    world.tick()
    assert world.hosting.pending("ep").shadows()[0].sampling_percentage == 20
    world.tick(2)
    assert world.experiment_status() == "Updating"  # until hosting has it
    world.hosting.finish("ep")
    world.tick(2)
    described = world.experiment()
    assert (described["Status"], described["Description"]) == ("Running", "now 20 percent")
    assert world.variant_statuses()["shadow-1"] == "InService"
    [shadow] = _shadows(world)
    assert shadow["CurrentWeight"] == 0.2


def test_while_running_neither_models_nor_start_time_change(world: World) -> None:
    world.running_experiment()
    described = world.experiment()
    variants = [
        {k: v for k, v in variant.items() if k != "Status"}
        for variant in described["ModelVariants"]
    ]
    with pytest.raises(ValidationException, match="only change before the experiment starts"):
        world.services.experiments.update_inference_experiment(
            world.ctx, {"Name": "exp", "ModelVariants": variants}
        )
    with pytest.raises(ValidationException, match="StartTime cannot change"):
        world.services.experiments.update_inference_experiment(
            world.ctx,
            {"Name": "exp", "Schedule": {"StartTime": world.clock.now() + DAY}},
        )
    # The end may move: the experiment then ends at the new EndTime.
    world.services.experiments.update_inference_experiment(
        world.ctx, {"Name": "exp", "Schedule": {"EndTime": world.clock.now() + MINUTE}}
    )
    world.drive(lambda: world.experiment_status() == "Running")
    world.clock.advance(MINUTE)
    world.drive(lambda: world.experiment_status() == "Completed")
