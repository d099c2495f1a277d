"""Endpoint configs and endpoints: create, describe, update, scale, delete, and their rules."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.contract.helpers import (
    checked,
    create_endpoint,
    create_model,
    experiment_request,
    stop_and_wait,
    unique,
    wait_endpoint,
    wait_experiment,
)


def _error(caught: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    error = caught.value.response["Error"]
    return error["Code"], error["Message"]


def test_endpoint_config_describes_what_was_created(sm: Any) -> None:
    model = create_model(sm)
    config = unique("config")
    capture = {
        "EnableCapture": True,
        "InitialSamplingPercentage": 100,
        "DestinationS3Uri": "s3://captures/prefix",
        "KmsKeyId": "alias/capture",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
    }
    checked(
        sm,
        "CreateEndpointConfig",
        EndpointConfigName=config,
        DataCaptureConfig=capture,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": model,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 2,
            }
        ],
    )
    described = checked(sm, "DescribeEndpointConfig", EndpointConfigName=config)
    [variant] = described["ProductionVariants"]
    assert variant["InitialVariantWeight"] == 1.0 and variant["InitialInstanceCount"] == 2
    assert described["DataCaptureConfig"] == capture
    assert described["EndpointConfigArn"].endswith(f":endpoint-config/{config.lower()}")

    endpoint = unique("endpoint")
    checked(sm, "CreateEndpoint", EndpointName=endpoint, EndpointConfigName=config)
    live = wait_endpoint(sm, endpoint, "InService")
    assert live["DataCaptureConfig"]["CaptureStatus"] == "Started"
    assert live["DataCaptureConfig"]["CurrentSamplingPercentage"] == 100
    assert live["ProductionVariants"][0]["CurrentInstanceCount"] == 2


def test_update_weights_and_capacities(sm: Any) -> None:
    endpoint = create_endpoint(sm, variants=2)
    checked(
        sm,
        "UpdateEndpointWeightsAndCapacities",
        EndpointName=endpoint["endpoint"],
        DesiredWeightsAndCapacities=[
            {"VariantName": "variant-1", "DesiredWeight": 3.0, "DesiredInstanceCount": 2}
        ],
    )
    described = wait_endpoint(sm, endpoint["endpoint"], "InService")
    variants = {v["VariantName"]: v for v in described["ProductionVariants"]}
    assert variants["variant-1"]["CurrentWeight"] == 3.0
    assert variants["variant-1"]["CurrentInstanceCount"] == 2
    assert variants["variant-2"]["CurrentWeight"] == 1.0
    with pytest.raises(ClientError) as caught:
        sm.update_endpoint_weights_and_capacities(
            EndpointName=endpoint["endpoint"],
            DesiredWeightsAndCapacities=[{"VariantName": "nope", "DesiredWeight": 1.0}],
        )
    assert _error(caught) == (
        "ValidationException",
        f"The variant name(s) [nope] is/are not present in the endpoint '{endpoint['endpoint']}'. "
        "Variants: variant-1, variant-2.",
    )


def test_update_endpoint_to_a_new_config(sm: Any) -> None:
    endpoint = create_endpoint(sm)
    model = create_model(sm)
    config = unique("config")
    checked(
        sm,
        "CreateEndpointConfig",
        EndpointConfigName=config,
        ProductionVariants=[
            {
                "VariantName": "blue",
                "ModelName": model,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    checked(sm, "UpdateEndpoint", EndpointName=endpoint["endpoint"], EndpointConfigName=config)
    described = wait_endpoint(sm, endpoint["endpoint"], "InService")
    assert described["EndpointConfigName"] == config
    assert [v["VariantName"] for v in described["ProductionVariants"]] == ["blue"]
    # The old configuration is free now and can be deleted; the new one cannot.
    checked(sm, "DeleteEndpointConfig", EndpointConfigName=endpoint["config"])
    with pytest.raises(ClientError) as caught:
        sm.delete_endpoint_config(EndpointConfigName=config)
    assert _error(caught) == (
        "ResourceInUse",
        f"Cannot delete endpoint configuration '{config}': endpoint '{endpoint['endpoint']}' "
        "uses it. Delete the endpoint or update it to another configuration first.",
    )


def test_in_use_rules_and_delete(sm: Any) -> None:
    endpoint = create_endpoint(sm)
    model = endpoint["models"][0]
    with pytest.raises(ClientError) as caught:
        sm.delete_model(ModelName=model)
    assert _error(caught) == (
        "ResourceInUse",
        f"Cannot delete model '{model}': it is in use by endpoint '{endpoint['endpoint']}'. "
        "Delete or update that first.",
    )
    name = unique("exp")
    checked(sm, "CreateInferenceExperiment", **experiment_request(name, endpoint, create_model(sm)))
    wait_experiment(sm, name, "Running")
    with pytest.raises(ClientError) as caught:
        sm.delete_endpoint(EndpointName=endpoint["endpoint"])
    assert _error(caught) == (
        "ResourceInUse",
        f"Cannot delete endpoint '{endpoint['endpoint']}': inference experiment '{name}' is "
        "using it. Stop the experiment first.",
    )
    with pytest.raises(ClientError) as caught:
        sm.create_inference_experiment(
            **experiment_request(unique("exp"), endpoint, create_model(sm))
        )
    assert _error(caught) == (
        "ResourceInUse",
        f"Endpoint '{endpoint['endpoint']}' already has an active inference experiment "
        f"'{name}'. An endpoint can run one inference experiment at a time.",
    )
    stop_and_wait(sm, name)
    checked(sm, "DeleteEndpoint", EndpointName=endpoint["endpoint"])
    with pytest.raises(ClientError) as caught:
        for _ in range(200):
            sm.describe_endpoint(EndpointName=endpoint["endpoint"])
    code, message = _error(caught)
    assert code == "ValidationException"
    assert message == (
        f'Could not find endpoint "arn:aws:sagemaker:us-east-1:123456789012:endpoint/'
        f'{endpoint["endpoint"]}".'
    )
    checked(sm, "DeleteEndpointConfig", EndpointConfigName=endpoint["config"])
    checked(sm, "DeleteModel", ModelName=model)
    # A finished experiment still describes its endpoint by name after the endpoint is gone.
    assert checked(sm, "DescribeInferenceExperiment", Name=name)["EndpointMetadata"] == {
        "EndpointName": endpoint["endpoint"]
    }


def test_regions_are_separate(server: Any) -> None:
    east, west = server.client(region="us-east-1"), server.client(region="us-west-2")
    name = unique("regional")
    create_model(east, name)
    with pytest.raises(ClientError) as caught:
        west.describe_model(ModelName=name)
    assert _error(caught)[1] == (
        f'Could not find model "arn:aws:sagemaker:us-west-2:123456789012:model/{name}".'
    )
    create_model(west, name)
    assert checked(west, "DescribeModel", ModelName=name)["ModelArn"].startswith(
        "arn:aws:sagemaker:us-west-2:"
    )
