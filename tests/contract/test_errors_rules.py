"""Rejected requests, rule by rule of the services: unknown resources, wrong state, in use,
experiment rules, tags, paging. Each case goes through boto3 and as raw HTTP."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.contract.helpers import (
    IMAGE,
    ROLE,
    checked,
    create_endpoint,
    create_model,
    experiment_request,
    in_seconds,
    unique,
    wait_endpoint,
    wait_experiment,
)
from tests.contract.rejecting import Reject, arn, invalid, pattern_of, post, variant, violation
from tests.serverproc import ACCOUNT, ServerProcess


def test_unknown_models_configs_and_endpoints(sm: Any, rejected: Reject) -> None:
    name = unique("Missing")  # mixed case: the ARN in the message is lower-cased
    model = ("ValidationException", f'Could not find model "{arn("model", name)}".')
    config = (
        "ValidationException",
        f'Could not find endpoint configuration "{arn("endpoint-config", name)}".',
    )
    endpoint = ("ValidationException", f'Could not find endpoint "{arn("endpoint", name)}".')
    assert rejected("DescribeModel", ModelName=name) == model
    assert rejected("DeleteModel", ModelName=name) == model
    assert rejected("DescribeEndpointConfig", EndpointConfigName=name) == config
    assert rejected("DeleteEndpointConfig", EndpointConfigName=name) == config
    assert rejected("DescribeEndpoint", EndpointName=name) == endpoint
    assert rejected("DeleteEndpoint", EndpointName=name) == endpoint
    assert (
        rejected("CreateEndpoint", EndpointName=unique("endpoint"), EndpointConfigName=name)
        == config
    )
    assert (
        rejected(
            "CreateEndpointConfig",
            EndpointConfigName=unique("config"),
            ProductionVariants=[variant("a", name)],
        )
        == model
    )
    real_config = unique("config")
    checked(
        sm,
        "CreateEndpointConfig",
        EndpointConfigName=real_config,
        ProductionVariants=[variant("a", create_model(sm))],
    )
    assert rejected("UpdateEndpoint", EndpointName=name, EndpointConfigName=real_config) == endpoint
    assert (
        rejected(
            "UpdateEndpointWeightsAndCapacities",
            EndpointName=name,
            DesiredWeightsAndCapacities=[{"VariantName": "a", "DesiredWeight": 1.0}],
        )
        == endpoint
    )


def test_unknown_experiment_is_resource_not_found(rejected: Reject) -> None:
    name = unique("Missing")
    expected = (
        "ResourceNotFound",
        f'Could not find inference experiment "{arn("inference-experiment", name)}".',
    )
    assert rejected("DescribeInferenceExperiment", Name=name) == expected
    assert rejected("StartInferenceExperiment", Name=name) == expected
    assert rejected("DeleteInferenceExperiment", Name=name) == expected
    assert rejected("UpdateInferenceExperiment", Name=name, Description="x") == expected
    assert (
        rejected(
            "StopInferenceExperiment",
            Name=name,
            ModelVariantActions={"variant-1": "Retain", "shadow-1": "Remove"},
        )
        == expected
    )


def test_experiment_on_unknown_endpoint(sm: Any, rejected: Reject) -> None:
    missing = {"endpoint": unique("Gone"), "models": [create_model(sm)]}
    request = experiment_request(unique("exp"), missing, create_model(sm))
    assert rejected("CreateInferenceExperiment", **request) == (
        "ValidationException",
        f'Could not find endpoint "{arn("endpoint", missing["endpoint"])}".',
    )


# -- duplicates --------------------------------------------------------------------------------


def test_duplicates(sm: Any, rejected: Reject) -> None:
    name = unique("Twice")
    create_model(sm, name)
    # Names are unique without regard to case.
    assert rejected(
        "CreateModel",
        ModelName=name.lower(),
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": IMAGE},
    ) == (
        "ValidationException",
        f'Cannot create already existing model "{arn("model", name)}".',
    )
    checked(
        sm, "CreateEndpointConfig", EndpointConfigName=name, ProductionVariants=[variant("a", name)]
    )
    assert rejected(
        "CreateEndpointConfig",
        EndpointConfigName=name.upper(),
        ProductionVariants=[variant("a", name)],
    ) == (
        "ValidationException",
        f'Cannot create already existing endpoint configuration "{arn("endpoint-config", name)}".',
    )
    checked(sm, "CreateEndpoint", EndpointName=name, EndpointConfigName=name)
    assert rejected("CreateEndpoint", EndpointName=name, EndpointConfigName=name) == (
        "ValidationException",
        f'Cannot create already existing endpoint "{arn("endpoint", name)}".',
    )


# -- a running experiment: wrong state and in use ----------------------------------------------


@pytest.fixture(scope="module")
def running(server: ServerProcess) -> dict[str, Any]:
    """An InService endpoint held by a Running inference experiment (shared; never stopped)."""
    sm = server.client()
    endpoint = create_endpoint(sm)
    shadow = create_model(sm)
    name = unique("exp")
    checked(sm, "CreateInferenceExperiment", **experiment_request(name, endpoint, shadow))
    wait_experiment(sm, name, "Running")
    wait_endpoint(sm, endpoint["endpoint"], "InService")
    return {**endpoint, "experiment": name, "shadow": shadow}


def test_wrong_state(sm: Any, running: dict[str, Any], rejected: Reject) -> None:
    name, endpoint = running["experiment"], running["endpoint"]
    assert rejected("StartInferenceExperiment", Name=name) == (
        "ConflictException",
        f"Cannot start inference experiment '{name}' while it is Running; allowed in: Created.",
    )
    assert rejected("DeleteInferenceExperiment", Name=name) == (
        "ConflictException",
        f"Cannot delete inference experiment '{name}' while it is Running; allowed in: Created, "
        "Completed, Cancelled.",
    )
    request = experiment_request(name, running, running["shadow"])
    assert rejected(
        "UpdateInferenceExperiment", Name=name, ModelVariants=request["ModelVariants"]
    ) == ("ValidationException", "ModelVariants can only change before the experiment starts.")
    config = unique("config")
    checked(
        sm,
        "CreateEndpointConfig",
        EndpointConfigName=config,
        ProductionVariants=[variant("variant-1", running["models"][0])],
    )
    assert rejected("UpdateEndpoint", EndpointName=endpoint, EndpointConfigName=config) == (
        "ValidationException",
        f"Cannot update endpoint '{endpoint}' while inference experiment '{name}' is using it. "
        "Stop the experiment first.",
    )
    assert checked(sm, "DescribeInferenceExperiment", Name=name)["Status"] == "Running"
    described = checked(sm, "DescribeEndpoint", EndpointName=endpoint)
    assert described["EndpointConfigName"] == running["config"]


def test_in_use(sm: Any, running: dict[str, Any], rejected: Reject) -> None:
    name, endpoint = running["experiment"], running["endpoint"]
    another = experiment_request(unique("exp"), running, create_model(sm))
    assert rejected("CreateInferenceExperiment", **another) == (
        "ResourceInUse",
        f"Endpoint '{endpoint}' already has an active inference experiment '{name}'. An endpoint "
        "can run one inference experiment at a time.",
    )
    # The name is checked first: a taken name is refused whatever the request names.
    assert rejected("CreateInferenceExperiment", **{**another, "Name": name}) == (
        "ResourceInUse",
        f"Inference experiment '{name}' already exists.",
    )
    assert rejected("DeleteEndpoint", EndpointName=endpoint) == (
        "ResourceInUse",
        f"Cannot delete endpoint '{endpoint}': inference experiment '{name}' is using it. Stop "
        "the experiment first.",
    )
    assert rejected("DeleteEndpointConfig", EndpointConfigName=running["config"]) == (
        "ResourceInUse",
        f"Cannot delete endpoint configuration '{running['config']}': endpoint '{endpoint}' uses "
        "it. Delete the endpoint or update it to another configuration first.",
    )
    for model in (running["models"][0], running["shadow"]):  # production and shadow
        assert rejected("DeleteModel", ModelName=model) == (
            "ResourceInUse",
            f"Cannot delete model '{model}': it is in use by endpoint '{endpoint}'. Delete or "
            "update that first.",
        )


def test_stop_rules(sm: Any, running: dict[str, Any], rejected: Reject) -> None:
    name = running["experiment"]

    def stop(actions: dict[str, str]) -> tuple[str, str]:
        return rejected("StopInferenceExperiment", Name=name, ModelVariantActions=actions)

    assert stop({"variant-1": "Retain"}) == (
        "ValidationException",
        "ModelVariantActions must give an action for every variant; missing: shadow-1.",
    )
    assert stop({"variant-1": "Retain", "shadow-9": "Remove"}) == (
        "ValidationException",
        "ModelVariantActions names shadow-9, which is not a variant of this experiment "
        "(shadow-1, variant-1).",
    )
    assert stop({"variant-1": "Retain", "shadow-1": "Promote"}) == (
        "ValidationException",
        "Promoting 'shadow-1' replaces the production variant 'variant-1': its action must be "
        "Remove.",
    )
    assert stop({"variant-1": "Promote", "shadow-1": "Remove"}) == (
        "ValidationException",
        "Variant 'variant-1' is already the production variant; only a shadow variant can be "
        "promoted.",
    )
    assert stop({"variant-1": "Remove", "shadow-1": "Retain"}) == (
        "ValidationException",
        "Removing the production variant 'variant-1' requires promoting a shadow variant.",
    )
    assert checked(sm, "DescribeInferenceExperiment", Name=name)["Status"] == "Running"


# -- experiment rules on a free endpoint, and what a rejection leaves --------------------------


def test_experiment_rules_leave_the_endpoint_free(sm: Any, rejected: Reject) -> None:
    endpoint = create_endpoint(sm, variants=2)  # variant-1, variant-2
    shadow = create_model(sm)
    names: list[str] = []

    def create(**changes: Any) -> tuple[str, str]:
        names.append(unique("exp"))
        request = {**experiment_request(names[-1], endpoint, shadow), **changes}
        return rejected("CreateInferenceExperiment", **request)

    base = experiment_request("x", endpoint, shadow)
    source, candidate = base["ModelVariants"]
    mode = base["ShadowModeConfig"]
    e = endpoint["endpoint"]

    def shadow_named(variant_name: str) -> dict[str, Any]:
        return {
            "ModelVariants": [source, {**candidate, "VariantName": variant_name}],
            "ShadowModeConfig": {
                **mode,
                "ShadowModelVariants": [
                    {"ShadowModelVariantName": variant_name, "SamplingPercentage": 50}
                ],
            },
        }

    assert create(**shadow_named("variant-2")) == (
        "ValidationException",
        f"Shadow variant name 'variant-2' is already a variant of endpoint '{e}'; choose a new "
        "name.",
    )
    assert create(
        ModelVariants=[{**source, "VariantName": "variant-9"}, candidate],
        ShadowModeConfig={**mode, "SourceModelVariantName": "variant-9"},
    ) == (
        "ValidationException",
        f"Source variant 'variant-9' is not a production variant of endpoint '{e}' (production "
        "variants: variant-1, variant-2).",
    )
    assert create(ModelVariants=[{**source, "ModelName": shadow}, candidate]) == (
        "ValidationException",
        f"Source variant 'variant-1' of endpoint '{e}' serves model '{endpoint['models'][0]}', "
        f"not '{shadow}'.",
    )
    assert create(ShadowModeConfig={**mode, "SourceModelVariantName": "variant-2"}) == (
        "ValidationException",
        "ShadowModeConfig.SourceModelVariantName 'variant-2' is not one of ModelVariants "
        "(variant-1, shadow-1).",
    )
    assert create(ModelVariants=[source, {**candidate, "VariantName": "shadow-2"}]) == (
        "ValidationException",
        "Shadow variant 'shadow-1' is not one of ModelVariants (variant-1, shadow-2).",
    )
    assert create(ModelVariants=[source, {**candidate, "VariantName": "variant-1"}]) == (
        "ValidationException",
        "ModelVariants names variant 'variant-1' more than once.",
    )
    assert create(**shadow_named("variant-1")) == (
        "ValidationException",
        "ModelVariants names variant 'variant-1' more than once.",
    )
    missing = unique("nomodel")
    assert create(ModelVariants=[source, {**candidate, "ModelName": missing}]) == (
        "ValidationException",
        f'Could not find model "{arn("model", missing)}".',
    )
    start = in_seconds(60)
    assert create(Schedule={"StartTime": start, "EndTime": start + timedelta(days=31)}) == (
        "ValidationException",
        "The duration of an inference experiment (EndTime - StartTime) can be at most 30 days.",
    )
    assert create(Schedule={"StartTime": start, "EndTime": start - timedelta(hours=1)}) == (
        "ValidationException",
        "Schedule.EndTime must be later than Schedule.StartTime.",
    )
    assert create(Schedule={"StartTime": in_seconds(-7200), "EndTime": in_seconds(-3600)}) == (
        "ValidationException",
        "Schedule.EndTime must be in the future.",
    )
    assert create(Tags=[{"Key": "aws:owner", "Value": "me"}]) == (
        "ValidationException",
        "Tag keys starting with 'aws:' are reserved: 'aws:owner'.",
    )

    # Nothing of the rejected requests exists, and the endpoint is not held by any of them.
    for name in names:
        assert rejected("DescribeInferenceExperiment", Name=name)[0] == "ResourceNotFound"
    listed = checked(sm, "ListInferenceExperiments", MaxResults=100)["InferenceExperiments"]
    assert not {x["Name"] for x in listed} & set(names)
    name = unique("exp")
    later = {"StartTime": in_seconds(3600), "EndTime": in_seconds(7200)}
    checked(
        sm,
        "CreateInferenceExperiment",
        **experiment_request(name, endpoint, shadow, schedule=later),
    )
    assert wait_experiment(sm, name, "Created")["EndpointMetadata"]["EndpointName"] == e

    # Rules that depend on the experiment not having started yet.
    assert rejected(
        "StopInferenceExperiment",
        Name=name,
        ModelVariantActions={"variant-1": "Remove", "shadow-1": "Promote"},
    ) == (
        "ValidationException",
        "Promote and Retain need a started experiment; this one never ran. Use Remove for the "
        "shadow variant, or start the experiment first.",
    )
    renamed = shadow_named("shadow-2")
    assert rejected("UpdateInferenceExperiment", Name=name, **renamed) == (
        "ValidationException",
        "UpdateInferenceExperiment cannot rename variants: keep source 'variant-1' and "
        "shadow(s) shadow-1.",
    )
    assert checked(sm, "DescribeInferenceExperiment", Name=name)["Status"] == "Created"


def test_rejected_config_and_model_leave_nothing(sm: Any, rejected: Reject) -> None:
    model = create_model(sm)
    config = unique("config")
    missing = unique("nomodel")
    good = variant("blue", model)
    assert rejected(
        "CreateEndpointConfig",
        EndpointConfigName=config,
        ProductionVariants=[good, variant("green", missing)],
    ) == ("ValidationException", f'Could not find model "{arn("model", missing)}".')
    assert rejected(
        "CreateEndpointConfig",
        EndpointConfigName=config,
        ProductionVariants=[good, variant("Blue", model)],
    ) == (
        "ValidationException",
        "Variant names must be unique within an endpoint configuration: Blue, blue appears more "
        "than once.",
    )
    assert rejected("DescribeEndpointConfig", EndpointConfigName=config) == (
        "ValidationException",
        f'Could not find endpoint configuration "{arn("endpoint-config", config)}".',
    )
    assert checked(sm, "ListEndpointConfigs", NameContains=config)["EndpointConfigs"] == []
    # The name was never taken, and the model is not held by the rejected configuration.
    checked(sm, "CreateEndpointConfig", EndpointConfigName=config, ProductionVariants=[good])
    checked(sm, "DeleteEndpointConfig", EndpointConfigName=config)
    checked(sm, "DeleteModel", ModelName=model)

    name = unique("model")
    assert rejected(
        "CreateModel",
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": IMAGE},
        Tags=[{"Key": "AWS:team", "Value": "x"}],
    ) == ("ValidationException", "Tag keys starting with 'aws:' are reserved: 'AWS:team'.")
    assert rejected("DescribeModel", ModelName=name)[0] == "ValidationException"
    assert checked(sm, "ListModels", NameContains=name)["Models"] == []


# -- tags, paging, operations shadowlab does not serve ----------------------------------------


def test_tags(sm: Any, rejected: Reject) -> None:
    model = create_model(sm)
    model_arn = arn("model", model)
    assert rejected("AddTags", ResourceArn=model_arn, Tags=[{"Key": "aws:cost", "Value": "1"}]) == (
        "ValidationException",
        "Tag keys starting with 'aws:' are reserved: 'aws:cost'.",
    )
    assert rejected(
        "AddTags",
        ResourceArn=model_arn,
        Tags=[{"Key": "team", "Value": "a"}, {"Key": "team", "Value": "b"}],
    ) == ("ValidationException", "Duplicate tag keys in the request: team.")
    assert checked(sm, "ListTags", ResourceArn=model_arn)["Tags"] == []
    gone = arn("model", unique("nomodel"))
    other_account = model_arn.replace(ACCOUNT, "210987654321")
    for resource in (gone, other_account):
        expected = ("ValidationException", f"Resource {resource} does not exist.")
        assert rejected("ListTags", ResourceArn=resource) == expected
        assert rejected("DeleteTags", ResourceArn=resource, TagKeys=["team"]) == expected
        assert (
            rejected("AddTags", ResourceArn=resource, Tags=[{"Key": "team", "Value": "a"}])
            == expected
        )
    assert rejected("ListTags", ResourceArn="not-an-arn") == invalid(
        violation("not-an-arn", "resourceArn", pattern_of("ResourceArn"))
    )


def test_bad_next_token(sm: Any, rejected: Reject) -> None:
    prefix = unique("paged")
    for i in range(2):
        create_model(sm, f"{prefix}-{i}")
    bad = (
        "ValidationException",
        "The pagination token is not valid for this request. Use the NextToken from the "
        "previous response of the same call with the same filters.",
    )
    assert rejected("ListModels", NextToken="garbage") == bad
    assert rejected("ListEndpoints", NextToken="garbage") == bad
    assert rejected("ListInferenceExperiments", NextToken="garbage") == bad
    token = checked(sm, "ListModels", NameContains=prefix, MaxResults=1)["NextToken"]
    assert rejected("ListModels", NameContains="other", NextToken=token) == bad
    assert rejected("ListEndpointConfigs", NextToken=token) == bad
    assert rejected("ListTags", ResourceArn=arn("model", f"{prefix}-0"), NextToken="x") == (
        "ValidationException",
        "The pagination token is not valid for this request.",
    )


def test_operation_not_served(rejected: Reject) -> None:
    assert rejected("ListTrainingJobs") == (
        "UnknownOperationException",
        "Operation ListTrainingJobs is part of the SageMaker API but not served by shadowlab. "
        "Supported: models, endpoint configs, endpoints, inference experiments and tags.",
    )


def test_negative_sampling_percentage(sm: Any, rejected: Reject) -> None:
    # botocore's Percentage shape has a maximum only; the lower bound is shadowlab's rule.
    endpoint = create_endpoint(sm)
    name = unique("exp")
    request = experiment_request(name, endpoint, create_model(sm), sampling=-5)
    assert rejected("CreateInferenceExperiment", **request) == (
        "ValidationException",
        "SamplingPercentage of shadow variant 'shadow-1' must be between 0 and 100; got -5.",
    )
    assert checked(sm, "ListInferenceExperiments", NameContains=name)["InferenceExperiments"] == []


def test_next_token_is_bound_to_its_operation(sm: Any, rejected: Reject) -> None:
    create_model(sm)
    create_model(sm)
    token = checked(sm, "ListModels", MaxResults=1)["NextToken"]
    assert rejected("ListEndpointConfigs", NextToken=token) == (
        "ValidationException",
        "The pagination token is not valid for this request. Use the NextToken from the "
        "previous response of the same call with the same filters.",
    )


def test_unserved_operation_is_refused_before_its_input_is_validated(
    server: ServerProcess,
) -> None:
    status, _headers, body = post(server, "CreateTrainingJob", b"{}")
    assert status == 400
    assert body == {
        "__type": "UnknownOperationException",
        "message": "Operation CreateTrainingJob is part of the SageMaker API but not served by "
        "shadowlab. Supported: models, endpoint configs, endpoints, inference experiments and "
        "tags.",
    }
