"""What an experiment does when hosting cannot deploy what it asks for: while Starting (the
endpoint rolls back and the experiment is Cancelled with the reason), while Updating (it keeps
Running on what ran) and while Stopping (it ends, saying the stop did not apply cleanly)."""

from __future__ import annotations

from tests.services.harness import World


def test_a_shadow_that_cannot_deploy_cancels_the_experiment_and_restores_the_endpoint(
    world: World,
) -> None:
    world.in_service_endpoint()
    world.create_experiment()
    world.tick(3)
    assert (world.experiment_status(), world.endpoint_status()) == ("Starting", "Updating")
    world.hosting.fail("ep", "the candidate's model did not load")
    world.tick()
    assert world.endpoint_status() == "RollingBack"
    assert world.experiment_status() == "Starting"
    world.tick()  # the previous deployment is ready again
    assert world.endpoint_status() == "InService"
    world.tick()
    described = world.experiment()
    assert described["Status"] == "Cancelled"
    assert described["StatusReason"] == (
        "The shadow variant could not be deployed: "
        "Update failed and was rolled back: the candidate's model did not load"
    )
    assert described["CompletionTime"].timestamp() == world.clock.now()
    assert world.variant_statuses() == {"variant-1": "InService", "shadow-1": "Deleted"}
    # The endpoint runs what it ran before, is free, and says why the update did not apply.
    endpoint = world.endpoint()
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == "config"
    assert "ShadowProductionVariants" not in endpoint
    assert endpoint["FailureReason"].startswith("Update failed and was rolled back")
    running = world.hosting.running("ep")
    assert running is not None and (running.generation, running.shadows()) == (1, ())
    assert world.holder() is None
    world.create_experiment("again")  # another experiment may use it now
    world.drive(lambda: world.experiment_status("again") == "Running")


def test_a_failed_rollback_cancels_the_experiment_with_the_endpoint_failed(world: World) -> None:
    world.in_service_endpoint()
    world.create_experiment()
    world.tick(3)
    world.hosting.fail("ep", "the candidate's model did not load")
    world.tick()
    world.hosting.fail("ep", "no memory left", generation=1)
    world.tick(2)
    described = world.experiment()
    assert described["Status"] == "Cancelled"
    assert described["StatusReason"] == "The shadow variant could not be deployed: no memory left"
    assert described["EndpointMetadata"]["EndpointStatus"] == "Failed"
    assert described["EndpointMetadata"]["FailureReason"] == "no memory left"
    assert world.holder() is None


def test_an_update_that_cannot_deploy_keeps_running_what_ran(world: World) -> None:
    world.running_experiment(sampling=50)
    shadow_mode = world.experiment()["ShadowModeConfig"]
    shadow_mode["ShadowModelVariants"][0]["SamplingPercentage"] = 20
    world.services.experiments.update_inference_experiment(
        world.ctx, {"Name": "exp", "ShadowModeConfig": shadow_mode}
    )
    world.tick()
    world.hosting.fail("ep", "out of memory")
    world.tick(3)
    described = world.experiment()
    assert described["Status"] == "Running"
    assert described["StatusReason"] == (
        "The update could not be applied: Update failed and was rolled back: out of memory"
    )
    assert world.variant_statuses() == {"variant-1": "InService", "shadow-1": "InService"}
    # What runs is still the 50% shadow of the start; the document says 20%.
    [shadow] = world.endpoint()["ShadowProductionVariants"]
    assert shadow["CurrentWeight"] == 0.5
    running = world.hosting.running("ep")
    assert running is not None and running.shadows()[0].sampling_percentage == 50
    # It still stops normally.
    world.stop({"variant-1": "Retain", "shadow-1": "Remove"})
    world.drive(lambda: world.experiment_status() == "Completed")
    assert "ShadowProductionVariants" not in world.endpoint()


def test_a_stop_that_cannot_deploy_still_ends_the_experiment(world: World) -> None:
    world.running_experiment()
    world.stop({"variant-1": "Remove", "shadow-1": "Promote"})
    world.tick()
    world.hosting.fail("ep", "the promoted model did not load")
    world.tick(3)
    described = world.experiment()
    assert described["Status"] == "Completed"
    assert described["StatusReason"] == (
        "Stopping did not apply cleanly: "
        "Update failed and was rolled back: the promoted model did not load"
    )
    assert world.holder() is None
    # Today the endpoint is left running what ran during the experiment, its shadow included
    # (the rollback target), though no experiment holds the endpoint any more.
    running = world.hosting.running("ep")
    assert running is not None
    assert [v.name for v in running.variants] == ["variant-1", "shadow-1"]
