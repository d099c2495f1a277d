"""Rejected requests, rule by rule of the wire model: required, type, length, count, range,
enum, pattern. Each case goes through boto3 and as raw HTTP (see `rejecting.both_ways`)."""

from __future__ import annotations

from tests.contract.helpers import (
    IMAGE,
    experiment_request,
    unique,
)
from tests.contract.rejecting import (
    Reject,
    enum_of,
    invalid,
    java,
    pattern_of,
    variant,
    violation,
)


def test_required_member_missing(unchecked: Reject) -> None:
    assert unchecked("CreateEndpoint", EndpointName=unique("endpoint")) == invalid(
        violation(None, "endpointConfigName", "Member must not be null")
    )
    nested = {"ModelName": "m", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}
    assert unchecked(
        "CreateEndpointConfig",
        EndpointConfigName=unique("config"),
        ProductionVariants=[nested],
    ) == invalid(
        violation(None, "productionVariants.1.member.variantName", "Member must not be null")
    )


def test_wrong_type_is_a_serialization_error(unchecked: Reject) -> None:
    expected = (
        "SerializationException",
        "Value 'two' at 'productionVariants.1.member.initialInstanceCount' cannot be converted "
        "to Integer",
    )
    assert (
        unchecked(
            "CreateEndpointConfig",
            EndpointConfigName=unique("config"),
            ProductionVariants=[variant("a", "m", "two")],
        )
        == expected
    )
    # A value that cannot be read wins over constraint violations elsewhere in the request.
    assert (
        unchecked("CreateEndpointConfig", ProductionVariants=[variant("a", "m", "two")]) == expected
    )


def test_length(rejected: Reject) -> None:
    name = "m" * 64
    assert rejected("DescribeModel", ModelName=name) == invalid(
        violation(name, "modelName", "Member must have length less than or equal to 63")
    )


def test_list_count(rejected: Reject, unchecked: Reject) -> None:
    endpoint = {"endpoint": unique("endpoint"), "models": ["model-a"]}
    request = experiment_request(unique("exp"), endpoint, "model-b")
    three = [*request["ModelVariants"], {**request["ModelVariants"][1], "VariantName": "shadow-2"}]
    assert rejected("CreateInferenceExperiment", **{**request, "ModelVariants": three}) == invalid(
        violation(java(three), "modelVariants", "Member must have length less than or equal to 2")
    )
    none = {**request["ShadowModeConfig"], "ShadowModelVariants": []}
    assert unchecked(
        "CreateInferenceExperiment", **{**request, "ShadowModeConfig": none}
    ) == invalid(
        violation(
            "[]",
            "shadowModeConfig.shadowModelVariants",
            "Member must have length greater than or equal to 1",
        )
    )


def test_numeric_range(rejected: Reject, unchecked: Reject) -> None:
    endpoint = {"endpoint": unique("endpoint"), "models": ["model-a"]}
    request = experiment_request(unique("exp"), endpoint, "model-b", sampling=101)
    assert rejected("CreateInferenceExperiment", **request) == invalid(
        violation(
            "101",
            "shadowModeConfig.shadowModelVariants.1.member.samplingPercentage",
            "Member must have value less than or equal to 100",
        )
    )
    assert unchecked(
        "CreateEndpointConfig",
        EndpointConfigName=unique("config"),
        ProductionVariants=[variant("a", "m", 0)],
    ) == invalid(
        violation(
            "0",
            "productionVariants.1.member.initialInstanceCount",
            "Member must have value greater than or equal to 1",
        )
    )
    assert unchecked("ListModels", MaxResults=101) == invalid(
        violation("101", "maxResults", "Member must have value less than or equal to 100")
    )


def test_enum(rejected: Reject) -> None:
    assert rejected(
        "CreateEndpointConfig",
        EndpointConfigName=unique("config"),
        ProductionVariants=[variant("a", "m", instance_type="ml.fake.large")],
    ) == invalid(
        violation(
            "ml.fake.large",
            "productionVariants.1.member.instanceType",
            enum_of("ProductionVariantInstanceType"),
        )
    )
    endpoint = {"endpoint": unique("endpoint"), "models": ["model-a"]}
    request = experiment_request(unique("exp"), endpoint, "model-b")
    assert rejected("CreateInferenceExperiment", **{**request, "Type": "Canary"}) == (
        invalid(violation("Canary", "type", "Member must satisfy enum value set: [ShadowMode]"))
    )
    # In a map, AWS reports the values once, at the map's path.
    actions = {"variant-1": "Keep", "shadow-1": "Remove"}
    assert rejected(
        "StopInferenceExperiment", Name=unique("exp"), ModelVariantActions=actions
    ) == invalid(
        violation(
            "{variant-1=Keep, shadow-1=Remove}",
            "modelVariantActions",
            f"Map value must satisfy constraint: [{enum_of('ModelVariantAction')}]",
        )
    )


def test_pattern(rejected: Reject) -> None:
    assert rejected("DescribeEndpoint", EndpointName="bad_name") == invalid(
        violation("bad_name", "endpointName", pattern_of("EndpointName"))
    )
    role = "arn:aws:iam::123:role/not-twelve-digits"
    assert rejected(
        "CreateModel",
        ModelName=unique("model"),
        ExecutionRoleArn=role,
        PrimaryContainer={"Image": IMAGE},
    ) == invalid(violation(role, "executionRoleArn", pattern_of("RoleArn")))


def test_several_violations_are_reported_together(unchecked: Reject) -> None:
    # In the model's member order: VariantName, ModelName, InitialInstanceCount, InstanceType.
    assert unchecked(
        "CreateEndpointConfig",
        EndpointConfigName=unique("config"),
        ProductionVariants=[variant("bad_name", "m", 0, "ml.fake.large")],
    ) == invalid(
        violation("bad_name", "productionVariants.1.member.variantName", pattern_of("VariantName")),
        violation(
            "0",
            "productionVariants.1.member.initialInstanceCount",
            "Member must have value greater than or equal to 1",
        ),
        violation(
            "ml.fake.large",
            "productionVariants.1.member.instanceType",
            enum_of("ProductionVariantInstanceType"),
        ),
    )
    # One value can break several constraints: bounds first, then the pattern.
    name = "e" * 64
    assert unchecked("DescribeEndpoint", EndpointName=name) == invalid(
        violation(name, "endpointName", "Member must have length less than or equal to 63"),
        violation(name, "endpointName", pattern_of("EndpointName")),
    )
    assert unchecked("DescribeInferenceExperiment", Name="") == invalid(
        violation("", "name", "Member must have length greater than or equal to 1"),
        violation("", "name", pattern_of("InferenceExperimentName")),
    )


# -- unknown resources -------------------------------------------------------------------------
