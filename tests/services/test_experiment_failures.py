"""What an experiment does when hosting cannot deploy what it asks for: while Starting (the
endpoint rolls back and the experiment is Cancelled with the reason), while Updating (it keeps
Running on what ran) and while Stopping (the shadow is removed in a follow-up deployment, then
it ends, saying the stop did not apply cleanly)."""

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
    # The endpoint plans from what runs: a weight change keeps the 50% shadow.
    world.services.endpoints.update_endpoint_weights_and_capacities(
        world.ctx,
        {
            "EndpointName": "ep",
            "DesiredWeightsAndCapacities": [{"VariantName": "variant-1", "DesiredWeight": 1.0}],
        },
    )
    world.tick()
    assert world.hosting.pending("ep").shadows()[0].sampling_percentage == 50
    world.converge()
    # It still stops normally.
    world.stop({"variant-1": "Retain", "shadow-1": "Remove"})
    world.drive(lambda: world.experiment_status() == "Completed")
    assert "ShadowProductionVariants" not in world.endpoint()


def _stop_with_a_promotion_that_fails(world: World) -> None:
    """Running, then a stop promoting the shadow, whose deployment fails and is rolled back."""
    world.running_experiment()
    world.stop({"variant-1": "Remove", "shadow-1": "Promote"})
    world.tick()
    world.hosting.fail("ep", "the promoted model did not load")
    world.tick(2)
    # The endpoint runs what ran during the experiment again, under its own configuration.
    assert (world.endpoint_status(), world.endpoint()["EndpointConfigName"]) == (
        "InService",
        "config",
    )
    running = world.hosting.running("ep")
    assert running is not None and [v.name for v in running.variants] == ["variant-1", "shadow-1"]
    assert world.experiment_status() == "Stopping"
    assert world.holder() == "exp"


def test_a_stop_that_cannot_deploy_removes_the_shadow_then_ends_the_experiment(
    world: World,
) -> None:
    _stop_with_a_promotion_that_fails(world)
    # The experiment takes its shadow off the endpoint before letting go of it.
    world.tick()
    assert (world.experiment_status(), world.endpoint_status()) == ("Stopping", "Updating")
    assert [v.name for v in world.hosting.pending("ep").variants] == ["variant-1"]
    world.drive(lambda: world.experiment_status() == "Completed")
    described = world.experiment()
    assert described["StatusReason"] == (
        "Stopping did not apply cleanly: "
        "Update failed and was rolled back: the promoted model did not load. "
        "The shadow variants were removed in a follow-up deployment."
    )
    # What happened, not what the stop asked for (variant-1 Deleted, shadow-1 InService).
    assert world.variant_statuses() == {"variant-1": "InService", "shadow-1": "Deleted"}
    assert world.holder() is None
    endpoint = world.endpoint()
    assert (endpoint["EndpointStatus"], endpoint["EndpointConfigName"]) == ("InService", "config")
    assert "ShadowProductionVariants" not in endpoint
    running = world.hosting.running("ep")
    assert running is not None and [v.name for v in running.variants] == ["variant-1"]
    assert running.experiment_name is None  # nor is anything captured for the experiment
    # The endpoint is the user's again: it updates and deletes.
    world.create_config("config-2", ("variant-1", "prod", 2))
    world.services.endpoints.update_endpoint(
        world.ctx, {"EndpointName": "ep", "EndpointConfigName": "config-2"}
    )
    world.converge()
    assert world.endpoint()["EndpointConfigName"] == "config-2"
    world.services.endpoints.delete_endpoint(world.ctx, {"EndpointName": "ep"})
    world.tick()
    assert world.endpoint_status() is None


def test_a_stop_whose_shadow_cannot_be_removed_either_says_so(world: World) -> None:
    _stop_with_a_promotion_that_fails(world)
    world.tick()
    world.hosting.fail("ep", "out of memory")
    world.tick(3)
    described = world.experiment()
    assert described["Status"] == "Completed"
    assert described["StatusReason"] == (
        "Stopping did not apply cleanly: "
        "Update failed and was rolled back: the promoted model did not load. "
        "Removing the shadow variants failed too: Update failed and was rolled back: "
        "out of memory"
    )
    # One follow-up only: the shadow still runs, and the experiment says so.
    assert world.variant_statuses() == {"variant-1": "InService", "shadow-1": "InService"}
    assert world.holder() is None
    running = world.hosting.running("ep")
    assert running is not None and [v.name for v in running.variants] == ["variant-1", "shadow-1"]
    # An UpdateEndpoint (planned from the configuration, without the shadow) takes it off.
    world.services.endpoints.update_endpoint(
        world.ctx, {"EndpointName": "ep", "EndpointConfigName": "config"}
    )
    world.converge()
    running = world.hosting.running("ep")
    assert running is not None and [v.name for v in running.variants] == ["variant-1"]
    world.services.endpoints.delete_endpoint(world.ctx, {"EndpointName": "ep"})
    world.tick()
    assert world.endpoint_status() is None
