"""Endpoints through their states with scripted hosting: Creating -> InService | Failed,
Updating -> InService | RollingBack -> InService (with the reason) | Failed, Deleting -> gone."""

from __future__ import annotations

import pytest

from shadowlab.errors import ValidationException
from tests.services.harness import World


def _create(world: World) -> None:
    world.create_model("prod")
    world.create_config("config", ("variant-1", "prod", 1))
    world.services.endpoints.create_endpoint(
        world.ctx, {"EndpointName": "ep", "EndpointConfigName": "config"}
    )


def _variant(world: World) -> dict[str, object]:
    [variant] = world.endpoint()["ProductionVariants"]
    return dict(variant)


def _update_to(world: World, config: str, count: int) -> None:
    world.create_config(config, ("variant-1", "prod", count))
    world.services.endpoints.update_endpoint(
        world.ctx, {"EndpointName": "ep", "EndpointConfigName": config}
    )


def test_creating_until_hosting_is_ready_then_in_service(world: World) -> None:
    _create(world)
    assert world.endpoint_status() == "Creating"
    world.tick(3)  # hosting keeps answering pending
    assert world.endpoint_status() == "Creating"
    assert world.hosting.ensured == [("us-east-1/ep", 1)] * 3
    variant = _variant(world)
    assert (variant["CurrentInstanceCount"], variant["DesiredInstanceCount"]) == (0, 1)
    assert [s["Status"] for s in variant["VariantStatus"]] == ["Creating"]  # type: ignore[attr-defined]

    world.hosting.finish("ep")
    world.tick()
    described = world.endpoint()
    assert described["EndpointStatus"] == "InService"
    assert "FailureReason" not in described
    variant = _variant(world)
    assert (variant["CurrentInstanceCount"], variant["VariantStatus"]) == (1, [])


def test_a_failed_creation_is_failed_with_the_reason(world: World) -> None:
    _create(world)
    world.tick()
    world.hosting.fail("ep", "the model did not load: bad pickle")
    world.tick()
    described = world.endpoint()
    assert described["EndpointStatus"] == "Failed"
    assert described["FailureReason"] == "the model did not load: bad pickle"
    assert world.hosting.removed == ["us-east-1/ep"]  # nothing half-started is left running
    ensured = len(world.hosting.ensured)
    world.tick(2)
    assert len(world.hosting.ensured) == ensured  # a Failed endpoint is left alone
    # A failed endpoint can be deleted.
    world.services.endpoints.delete_endpoint(world.ctx, {"EndpointName": "ep"})
    world.tick()
    assert world.endpoint_status() is None


def test_update_runs_the_old_deployment_until_the_new_one_is_ready(world: World) -> None:
    world.in_service_endpoint()
    _update_to(world, "config-2", 2)
    assert world.endpoint_status() == "Updating"
    world.tick(2)
    variant = _variant(world)
    assert (variant["CurrentInstanceCount"], variant["DesiredInstanceCount"]) == (1, 2)
    assert [s["Status"] for s in variant["VariantStatus"]] == ["Updating"]  # type: ignore[attr-defined]
    with pytest.raises(ValidationException, match="Wait until it is InService"):
        _update_to(world, "config-3", 3)

    world.hosting.finish("ep")
    world.tick()
    described = world.endpoint()
    assert (described["EndpointStatus"], described["EndpointConfigName"]) == (
        "InService",
        "config-2",
    )
    assert _variant(world)["CurrentInstanceCount"] == 2


def test_a_failed_update_rolls_back_to_what_ran_and_says_why(world: World) -> None:
    world.in_service_endpoint()
    _update_to(world, "config-2", 2)
    world.tick()
    world.hosting.fail("ep", "out of memory")
    world.tick()
    assert world.endpoint_status() == "RollingBack"
    world.tick()
    described = world.endpoint()
    assert described["EndpointStatus"] == "InService"
    assert described["FailureReason"] == "Update failed and was rolled back: out of memory"
    variant = _variant(world)
    assert (variant["CurrentInstanceCount"], variant["DesiredInstanceCount"]) == (1, 1)
    running = world.hosting.running("ep")
    assert running is not None and running.generation == 1
    # The next successful update clears the reason.
    _update_to(world, "config-3", 3)
    world.converge()
    assert "FailureReason" not in world.endpoint()


def test_after_a_rollback_the_endpoint_names_the_configuration_it_runs(world: World) -> None:
    world.in_service_endpoint()
    _update_to(world, "config-2", 2)
    world.tick()
    world.hosting.fail("ep", "out of memory")
    world.tick(2)
    assert world.endpoint_status() == "InService"
    assert world.endpoint()["EndpointConfigName"] == "config"
    # A weight change afterwards must keep running config's one instance, not config-2's two.
    world.services.endpoints.update_endpoint_weights_and_capacities(
        world.ctx,
        {
            "EndpointName": "ep",
            "DesiredWeightsAndCapacities": [{"VariantName": "variant-1", "DesiredWeight": 2.0}],
        },
    )
    world.tick()
    assert world.hosting.pending("ep").variants[0].instance_count == 1
    assert world.endpoint()["EndpointConfigName"] == "config"


def test_a_rollback_restores_the_weights_and_capacities_that_run(world: World) -> None:
    world.in_service_endpoint()
    world.services.endpoints.update_endpoint_weights_and_capacities(
        world.ctx,
        {
            "EndpointName": "ep",
            "DesiredWeightsAndCapacities": [
                {"VariantName": "variant-1", "DesiredInstanceCount": 3}
            ],
        },
    )
    world.converge()
    # An UpdateEndpoint without RetainAllVariantProperties drops the override; it fails.
    _update_to(world, "config-2", 2)
    world.tick()
    world.hosting.fail("ep", "out of memory")
    world.tick(2)
    described = world.endpoint()
    assert (described["EndpointStatus"], described["EndpointConfigName"]) == (
        "InService",
        "config",
    )
    assert _variant(world)["DesiredInstanceCount"] == 3
    world.services.endpoints.update_endpoint_weights_and_capacities(
        world.ctx,
        {
            "EndpointName": "ep",
            "DesiredWeightsAndCapacities": [{"VariantName": "variant-1", "DesiredWeight": 2.0}],
        },
    )
    world.tick()
    [variant] = world.hosting.pending("ep").variants
    assert (variant.instance_count, variant.weight) == (3, 2.0)


def test_a_rollback_that_fails_too_leaves_the_endpoint_failed(world: World) -> None:
    world.in_service_endpoint()
    _update_to(world, "config-2", 2)
    world.tick()
    world.hosting.fail("ep", "out of memory")
    world.tick()
    assert world.endpoint_status() == "RollingBack"
    world.hosting.fail("ep", "the old model no longer loads", generation=1)
    world.tick()
    described = world.endpoint()
    assert described["EndpointStatus"] == "Failed"
    assert described["FailureReason"] == "the old model no longer loads"


def test_weights_and_capacities_change_through_an_update(world: World) -> None:
    world.create_model("prod")
    world.create_model("other")
    world.create_config("config", ("variant-1", "prod", 1), ("variant-2", "other", 1))
    world.services.endpoints.create_endpoint(
        world.ctx, {"EndpointName": "ep", "EndpointConfigName": "config"}
    )
    world.converge()
    world.services.endpoints.update_endpoint_weights_and_capacities(
        world.ctx,
        {
            "EndpointName": "ep",
            "DesiredWeightsAndCapacities": [
                {"VariantName": "variant-1", "DesiredWeight": 3.0, "DesiredInstanceCount": 2}
            ],
        },
    )
    assert world.endpoint_status() == "Updating"
    world.converge()
    current = {
        v["VariantName"]: (v["CurrentWeight"], v["CurrentInstanceCount"])
        for v in world.endpoint()["ProductionVariants"]
    }
    assert current == {"variant-1": (3.0, 2), "variant-2": (1.0, 1)}


def test_deleting_until_hosting_has_removed_everything(world: World) -> None:
    world.in_service_endpoint()
    world.hosting.hold_removal("ep")
    world.services.endpoints.delete_endpoint(world.ctx, {"EndpointName": "ep"})
    world.tick(2)
    assert world.endpoint_status() == "Deleting"
    world.hosting.hold_removal("ep", held=False)
    world.tick()
    assert world.endpoint_status() is None
    assert world.hosting.running("ep") is None
    assert world.hosting.removed == ["us-east-1/ep"] * 3


def test_an_in_service_endpoint_whose_instances_stop_starting_fails(world: World) -> None:
    """InService endpoints are ensured every tick; one that can no longer start says why."""
    world.in_service_endpoint()
    world.hosting.fail("ep", "model.tar.gz is gone", generation=1)
    world.tick()
    described = world.endpoint()
    assert (described["EndpointStatus"], described["FailureReason"]) == (
        "Failed",
        "model.tar.gz is gone",
    )
    assert world.hosting.removed == ["us-east-1/ep"]
