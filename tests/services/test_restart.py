"""A new application on the same store carries on where the last one stopped: all state is in
the store, no process survives (the new hosting runs nothing until it is asked)."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.services.harness import DAY, MINUTE, ScriptedHosting, World


def test_a_running_experiment_resumes_and_completes_at_end_time(world: World) -> None:
    world.in_service_endpoint()
    now = world.clock.now()
    end = now + 10 * MINUTE
    world.create_experiment(schedule={"StartTime": now, "EndTime": end})
    world.drive(lambda: world.experiment_status() == "Running")

    world.clock.advance(MINUTE)
    world = world.restart()
    assert world.experiment_status() == "Running"
    assert world.hosting.running("ep") is None  # nothing runs yet after the restart
    world.tick()  # InService endpoints are ensured: hosting is asked for what ran
    deployment = world.hosting.pending("ep")
    assert [v.name for v in deployment.variants] == ["variant-1", "shadow-1"]
    [shadow] = world.endpoint()["ShadowProductionVariants"]
    assert shadow["CurrentInstanceCount"] == 0  # instances not back yet
    world.hosting.finish("ep")
    world.tick()
    [shadow] = world.endpoint()["ShadowProductionVariants"]
    assert shadow["CurrentInstanceCount"] == 1
    assert world.experiment_status() == "Running"

    world.clock.advance(9 * MINUTE - 0.001)
    world.tick(2)
    assert world.experiment_status() == "Running"  # not before its EndTime
    world.clock.advance(0.001)
    world.drive(lambda: world.experiment_status() == "Completed")
    completed = world.experiment()
    assert completed["CompletionTime"] == datetime.fromtimestamp(end, tz=UTC)
    assert "ShadowProductionVariants" not in world.endpoint()


def test_a_created_experiment_still_starts_at_its_start_time(world: World) -> None:
    world.in_service_endpoint()
    start = world.clock.now() + DAY
    world.create_experiment(schedule={"StartTime": start, "EndTime": start + DAY})
    world.tick()
    world = world.restart(ScriptedHosting(auto=True))
    world.tick(2)
    assert world.experiment_status() == "Created"
    world.clock.advance(DAY)
    world.settle(lambda: world.experiment_status() == "Running")


def test_a_restart_while_starting_resumes_the_deployment(world: World) -> None:
    world.in_service_endpoint()
    world.create_experiment()
    world.tick(3)  # the endpoint is Updating to the shadow deployment, hosting has not finished
    asked = world.hosting.pending("ep").generation
    world = world.restart()
    assert (world.experiment_status(), world.endpoint_status()) == ("Starting", "Updating")
    world.tick()
    assert world.hosting.pending("ep").generation == asked  # the same deployment, asked again
    world.hosting.finish("ep")
    world.tick(2)
    assert world.experiment_status() == "Running"
    assert world.hosting.ensured.count(("us-east-1/ep", asked + 1)) == 0  # no second retarget


def test_a_restart_while_stopping_finishes_the_stop(world: World) -> None:
    world.running_experiment()
    world.stop({"variant-1": "Remove", "shadow-1": "Promote"})
    world.tick()  # the promotion's configuration made, the endpoint Updating to it
    world = world.restart()
    assert world.experiment_status() == "Stopping"
    world.drive(lambda: world.experiment_status() == "Completed")
    [variant] = world.endpoint()["ProductionVariants"]
    assert variant["VariantName"] == "shadow-1"
    configs = world.services.configs.list_endpoint_configs(world.ctx, {})["EndpointConfigs"]
    assert len(configs) == 2  # the original and the promotion's, made once


def test_an_endpoint_being_created_resumes_after_a_restart(world: World) -> None:
    world.create_model("prod")
    world.create_config("config", ("variant-1", "prod", 1))
    world.services.endpoints.create_endpoint(
        world.ctx, {"EndpointName": "ep", "EndpointConfigName": "config"}
    )
    world.tick()
    world = world.restart()
    assert world.endpoint_status() == "Creating"
    world.converge()
    assert world.endpoint()["ProductionVariants"][0]["CurrentInstanceCount"] == 1


def test_an_endpoint_whose_model_no_longer_starts_after_a_restart_fails(world: World) -> None:
    world.in_service_endpoint()
    world = world.restart()
    world.tick()
    world.hosting.fail("ep", "model.tar.gz is gone")
    world.tick()
    described = world.endpoint()
    assert (described["EndpointStatus"], described["FailureReason"]) == (
        "Failed",
        "model.tar.gz is gone",
    )
