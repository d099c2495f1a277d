"""Validation against real SageMaker input shapes, asserting AWS's (Coral's) exact wording."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import botocore.model
import pytest

from shadowlab.awsprotocol.service_models import sagemaker_model
from shadowlab.awsprotocol.validation import validate, validation_errors
from shadowlab.errors import SerializationException, ValidationException

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"


def input_shape(operation: str) -> Any:
    return sagemaker_model().operation_model(operation).input_shape


def metadata(shape_name: str) -> dict[str, Any]:
    """A shape's constraints, read from the model so the tests follow botocore updates."""
    return dict(sagemaker_model().shape_for(shape_name).metadata)


def endpoint_config(**variant: Any) -> dict[str, Any]:
    production = {"VariantName": "primary", "ModelName": "model-a", "InstanceType": "ml.m5.large"}
    production.update(variant)
    return {"EndpointConfigName": "config-a", "ProductionVariants": [production]}


def experiment(**changes: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "Name": "exp-1",
        "Type": "ShadowMode",
        "RoleArn": ROLE,
        "EndpointName": "endpoint-a",
        "ModelVariants": [
            {
                "ModelName": "model-a",
                "VariantName": "variant-a",
                "InfrastructureConfig": {
                    "InfrastructureType": "RealTimeInference",
                    "RealTimeInferenceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
                },
            }
        ],
        "ShadowModeConfig": {
            "SourceModelVariantName": "variant-a",
            "ShadowModelVariants": [
                {"ShadowModelVariantName": "variant-b", "SamplingPercentage": 50}
            ],
        },
    }
    request.update(changes)
    return request


def message_of(shape: Any, value: Any) -> str:
    with pytest.raises(ValidationException) as caught:
        validate(shape, value)
    assert caught.value.code == "ValidationException"
    return caught.value.message


def serialization_message(shape: Any, value: Any) -> str:
    with pytest.raises(SerializationException) as caught:
        validate(shape, value)
    assert caught.value.code == "SerializationException"
    return caught.value.message


def test_valid_requests_pass() -> None:
    validate(input_shape("CreateEndpointConfig"), endpoint_config(InitialInstanceCount=1))
    validate(input_shape("CreateInferenceExperiment"), experiment())
    assert validation_errors(input_shape("CreateInferenceExperiment"), experiment()) == []


def test_required_members_are_reported_as_null() -> None:
    assert message_of(input_shape("CreateEndpointConfig"), {}) == (
        "2 validation errors detected: "
        "Value null at 'endpointConfigName' failed to satisfy constraint: "
        "Member must not be null; "
        "Value null at 'productionVariants' failed to satisfy constraint: "
        "Member must not be null"
    )


def test_json_null_counts_as_missing() -> None:
    request = endpoint_config()
    request["EndpointConfigName"] = None
    assert message_of(input_shape("CreateEndpointConfig"), request) == (
        "1 validation error detected: Value null at 'endpointConfigName' failed to satisfy "
        "constraint: Member must not be null"
    )


def test_nested_required_member_path() -> None:
    request = experiment()
    del request["ModelVariants"][0]["InfrastructureConfig"]["RealTimeInferenceConfig"][
        "InstanceCount"
    ]
    assert message_of(input_shape("CreateInferenceExperiment"), request) == (
        "1 validation error detected: Value null at "
        "'modelVariants.1.member.infrastructureConfig.realTimeInferenceConfig.instanceCount' "
        "failed to satisfy constraint: Member must not be null"
    )


def test_string_length_maximum() -> None:
    # 64 characters also break the pattern's {0,62}: AWS reports both, length first.
    name = "a" * 64
    request = endpoint_config()
    request["EndpointConfigName"] = name
    rules = metadata("EndpointConfigName")
    assert message_of(input_shape("CreateEndpointConfig"), request) == (
        f"2 validation errors detected: Value '{name}' at 'endpointConfigName' failed to "
        f"satisfy constraint: Member must have length less than or equal to {rules['max']}; "
        f"Value '{name}' at 'endpointConfigName' failed to satisfy constraint: "
        f"Member must satisfy regular expression pattern: {rules['pattern']}"
    )


def test_string_length_minimum_and_pattern_are_separate_errors() -> None:
    pattern = metadata("InferenceExperimentName")["pattern"]
    assert message_of(input_shape("CreateInferenceExperiment"), experiment(Name="")) == (
        "2 validation errors detected: "
        "Value '' at 'name' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1; "
        "Value '' at 'name' failed to satisfy constraint: "
        f"Member must satisfy regular expression pattern: {pattern}"
    )


def test_string_length_counts_utf16_units_like_aws() -> None:
    # An emoji is two UTF-16 code units: 512 of them fill Description's 1024 exactly.
    shape = input_shape("CreateInferenceExperiment")
    assert validation_errors(shape, experiment(Description="🙂" * 512)) == []
    errors = validation_errors(shape, experiment(Description="🙂" * 513))
    assert errors == [
        f"Value '{'🙂' * 513}' at 'description' failed to satisfy constraint: "
        "Member must have length less than or equal to 1024"
    ]


def test_list_counts() -> None:
    shape = input_shape("CreateEndpointConfig")
    assert message_of(shape, {"EndpointConfigName": "c", "ProductionVariants": []}) == (
        "1 validation error detected: Value '[]' at 'productionVariants' failed to satisfy "
        "constraint: Member must have length greater than or equal to 1"
    )
    request = experiment()
    shadow = request["ShadowModeConfig"]["ShadowModelVariants"][0]
    request["ShadowModeConfig"]["ShadowModelVariants"] = [shadow, dict(shadow)]
    assert message_of(input_shape("CreateInferenceExperiment"), request) == (
        "1 validation error detected: Value '[{ShadowModelVariantName=variant-b, "
        "SamplingPercentage=50}, {ShadowModelVariantName=variant-b, SamplingPercentage=50}]' "
        "at 'shadowModeConfig.shadowModelVariants' failed to satisfy constraint: "
        "Member must have length less than or equal to 1"
    )


def test_numeric_ranges() -> None:
    request = experiment()
    request["ShadowModeConfig"]["ShadowModelVariants"][0]["SamplingPercentage"] = 101
    assert message_of(input_shape("CreateInferenceExperiment"), request) == (
        "1 validation error detected: Value '101' at "
        "'shadowModeConfig.shadowModelVariants.1.member.samplingPercentage' failed to satisfy "
        "constraint: Member must have value less than or equal to 100"
    )
    low = metadata("InitialTaskCount")["min"]
    assert message_of(
        input_shape("CreateEndpointConfig"), endpoint_config(InitialInstanceCount=0)
    ) == (
        "1 validation error detected: Value '0' at "
        "'productionVariants.1.member.initialInstanceCount' failed to satisfy constraint: "
        f"Member must have value greater than or equal to {low}"
    )


def test_float_bounds_print_as_java_doubles_and_accept_integers() -> None:
    shape = input_shape("CreateEndpointConfig")
    assert validation_errors(shape, endpoint_config(InitialVariantWeight=1)) == []
    assert validation_errors(shape, endpoint_config(InitialVariantWeight=-1)) == [
        "Value '-1.0' at 'productionVariants.1.member.initialVariantWeight' failed to satisfy "
        "constraint: Member must have value greater than or equal to 0.0"
    ]


def test_enums() -> None:
    allowed = ", ".join(metadata("ProductionVariantInstanceType")["enum"])
    request = endpoint_config(InstanceType="ml.t3.medium")
    assert message_of(input_shape("CreateEndpointConfig"), request) == (
        "1 validation error detected: Value 'ml.t3.medium' at "
        "'productionVariants.1.member.instanceType' failed to satisfy constraint: "
        f"Member must satisfy enum value set: [{allowed}]"
    )
    kinds = ", ".join(metadata("InferenceExperimentType")["enum"])
    assert message_of(input_shape("CreateInferenceExperiment"), experiment(Type="Shadow")) == (
        "1 validation error detected: Value 'Shadow' at 'type' failed to satisfy constraint: "
        f"Member must satisfy enum value set: [{kinds}]"
    )


def test_patterns() -> None:
    name_pattern = metadata("EndpointName")["pattern"]
    shape = input_shape("CreateInferenceExperiment")
    assert message_of(shape, experiment(EndpointName="my_endpoint")) == (
        "1 validation error detected: Value 'my_endpoint' at 'endpointName' failed to satisfy "
        f"constraint: Member must satisfy regular expression pattern: {name_pattern}"
    )
    role_pattern = metadata("RoleArn")["pattern"]
    bad_role = "arn:aws:iam::123:role/SageMakerRole"
    assert message_of(shape, experiment(RoleArn=bad_role)) == (
        f"1 validation error detected: Value '{bad_role}' at 'roleArn' failed to satisfy "
        f"constraint: Member must satisfy regular expression pattern: {role_pattern}"
    )


def test_patterns_match_the_whole_value() -> None:
    # EndpointName's pattern matches the prefix "end"; only a full match is accepted.
    errors = validation_errors(
        input_shape("CreateInferenceExperiment"), experiment(EndpointName="end point")
    )
    assert len(errors) == 1 and "at 'endpointName'" in errors[0]


def test_every_violation_is_counted_in_member_order() -> None:
    request = experiment(Name="bad_name", Type="Shadow", EndpointName="e_p")
    request["ShadowModeConfig"]["ShadowModelVariants"][0]["SamplingPercentage"] = 101
    message = message_of(input_shape("CreateInferenceExperiment"), request)
    assert message.startswith("4 validation errors detected: Value 'bad_name' at 'name'")
    paths = [part.split("' at '")[1].split("'")[0] for part in message.split("; ")]
    assert paths == [
        "name",
        "type",
        "endpointName",
        "shadowModeConfig.shadowModelVariants.1.member.samplingPercentage",
    ]


def test_map_keys_and_values_are_reported_once_each_at_the_map() -> None:
    key_rules = metadata("EnvironmentKey")
    value_rules = metadata("EnvironmentValue")
    environment = {"1BAD": "x", "2BAD": "y", "GOOD": "v" * 1025}
    request = {"ModelName": "m", "PrimaryContainer": {"Environment": environment}}
    # The map is shown as Java prints it, cut after ECHO_LIMIT (1024) characters.
    rendered = ("{1BAD=x, 2BAD=y, GOOD=" + "v" * 1025)[:1024] + "..."
    assert validation_errors(input_shape("CreateModel"), request) == [
        f"Value '{rendered}' at 'primaryContainer.environment' failed to satisfy constraint: "
        "Map keys must satisfy constraint: ["
        f"Member must have length less than or equal to {key_rules['max']}, "
        f"Member must satisfy regular expression pattern: {key_rules['pattern']}]",
        f"Value '{rendered}' at 'primaryContainer.environment' failed to satisfy constraint: "
        "Map value must satisfy constraint: ["
        f"Member must have length less than or equal to {value_rules['max']}, "
        f"Member must satisfy regular expression pattern: {value_rules['pattern']}]",
    ]


def test_sensitive_values_are_left_out_of_messages() -> None:
    shape = input_shape("CreateWorkforce").members["OidcConfig"].members["ClientSecret"]
    assert validation_errors(shape, "", root="oidcConfig.clientSecret") == [
        "Value at 'oidcConfig.clientSecret' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1",
        "Value at 'oidcConfig.clientSecret' failed to satisfy constraint: "
        f"Member must satisfy regular expression pattern: {metadata('ClientSecret')['pattern']}",
    ]


@pytest.mark.parametrize(
    ("value", "rendered"),
    [("abc", "abc"), (True, "true"), (2.5, "2.5"), ([1], "[1]"), (2**31, str(2**31))],
)
def test_integer_type_mismatches(value: Any, rendered: str) -> None:
    request = endpoint_config(InitialInstanceCount=value)
    assert serialization_message(input_shape("CreateEndpointConfig"), request) == (
        f"Value '{rendered}' at 'productionVariants.1.member.initialInstanceCount' "
        "cannot be converted to Integer"
    )


def test_integral_floats_are_integers() -> None:
    assert (
        validation_errors(
            input_shape("CreateEndpointConfig"), endpoint_config(InitialInstanceCount=2.0)
        )
        == []
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"ProductionVariants": {"VariantName": "v"}},
            "Value '{VariantName=v}' at 'productionVariants' cannot be converted to List",
        ),
        (
            {"EnableNetworkIsolation": "true"},
            "Value 'true' at 'enableNetworkIsolation' cannot be converted to Boolean",
        ),
        (
            {"EndpointConfigName": 5},
            "Value '5' at 'endpointConfigName' cannot be converted to String",
        ),
        (
            {"DataCaptureConfig": ["x"]},
            "Value '[x]' at 'dataCaptureConfig' cannot be converted to Structure",
        ),
    ],
)
def test_container_and_scalar_type_mismatches(change: dict[str, Any], expected: str) -> None:
    request = endpoint_config()
    request.update(change)
    assert serialization_message(input_shape("CreateEndpointConfig"), request) == expected


def test_type_mismatch_wins_over_constraint_violations() -> None:
    # AWS deserialises before it validates: a type error hides the constraint errors.
    request = experiment(Name="bad_name")
    request["ShadowModeConfig"]["ShadowModelVariants"][0]["SamplingPercentage"] = "lots"
    assert serialization_message(input_shape("CreateInferenceExperiment"), request) == (
        "Value 'lots' at 'shadowModeConfig.shadowModelVariants.1.member.samplingPercentage' "
        "cannot be converted to Integer"
    )
    # ... while the list of findings still holds both, in order.
    assert len(validation_errors(input_shape("CreateInferenceExperiment"), request)) == 2


@pytest.mark.parametrize(
    "start",
    [1732456789.5, 1732456789, "2026-11-24T10:00:00Z", datetime(2026, 11, 24, tzinfo=UTC)],
)
def test_timestamps_accept_epoch_seconds_iso_text_and_datetimes(start: Any) -> None:
    request = experiment(Schedule={"StartTime": start})
    assert validation_errors(input_shape("CreateInferenceExperiment"), request) == []


def test_unparseable_timestamp_is_a_type_error() -> None:
    request = experiment(Schedule={"StartTime": "next tuesday"})
    assert serialization_message(input_shape("CreateInferenceExperiment"), request) == (
        "Value 'next tuesday' at 'schedule.startTime' cannot be converted to Timestamp"
    )


def test_unknown_members_are_ignored_unless_strict() -> None:
    request = experiment(Bogus=1)
    shape = input_shape("CreateInferenceExperiment")
    assert validation_errors(shape, request) == []
    assert validation_errors(shape, request, strict=True) == [
        "Member 'Bogus' at 'bogus' is not declared in CreateInferenceExperimentRequest"
    ]


def test_root_prefixes_every_path() -> None:
    variant = input_shape("CreateEndpointConfig").members["ProductionVariants"].member
    assert validation_errors(variant, {}, root="productionVariants.3.member") == [
        "Value null at 'productionVariants.3.member.variantName' failed to satisfy constraint: "
        "Member must not be null"
    ]


def test_map_values_that_are_structures_are_checked_inside() -> None:
    # No SageMaker input has a map of structures; a tiny model in botocore's format does.
    resolver = botocore.model.ShapeResolver(
        {
            "Things": {"type": "map", "key": {"shape": "Key"}, "value": {"shape": "Thing"}},
            "Key": {"type": "string", "max": 3},
            "Thing": {
                "type": "structure",
                "required": ["Name"],
                "members": {"Name": {"shape": "Key"}},
            },
        }
    )
    things = resolver.get_shape_by_name("Things")
    assert validation_errors(
        things, {"k1": {}, "k2": None, "long": {"Name": "x"}}, root="things"
    ) == [
        "Value '{k1={}, k2=null, long={Name=x}}' at 'things' failed to satisfy constraint: "
        "Map keys must satisfy constraint: [Member must have length less than or equal to 3]",
        "Value '{k1={}, k2=null, long={Name=x}}' at 'things' failed to satisfy constraint: "
        "Map value must satisfy constraint: [Member must not be null]",
        "Value null at 'things.k1.member.name' failed to satisfy constraint: "
        "Member must not be null",
    ]
