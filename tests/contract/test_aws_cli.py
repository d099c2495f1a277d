"""The real AWS CLI against shadowlab: the seeds' CreateInferenceExperiment request and more."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.contract.helpers import ROLE, create_endpoint, create_model, unique, wait_experiment
from tests.serverproc import ServerProcess


def _cli_json(server: ServerProcess, *args: str) -> dict[str, Any]:
    result = server.aws_cli(*args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if result.stdout.strip() else {}


def test_seed_example_with_cli_input_json(server: ServerProcess, sm: Any, tmp_path: Path) -> None:
    """The request syntax of the CreateInferenceExperiment API document (seeds/002), filled in."""
    endpoint = create_endpoint(sm)
    shadow = create_model(sm)
    name = unique("cli-exp")
    request = {
        "DataStorageConfig": {
            "ContentType": {
                "CsvContentTypes": ["text/csv"],
                "JsonContentTypes": ["application/json"],
            },
            "Destination": "s3://shadow-captures/experiments",
            "KmsKey": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        },
        "Description": "Shadow test of the candidate model",
        "EndpointName": endpoint["endpoint"],
        "KmsKey": "alias/ExampleAlias",
        "ModelVariants": [
            {
                "InfrastructureConfig": {
                    "InfrastructureType": "RealTimeInference",
                    "RealTimeInferenceConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large"},
                },
                "ModelName": endpoint["models"][0],
                "VariantName": "variant-1",
            },
            {
                "InfrastructureConfig": {
                    "InfrastructureType": "RealTimeInference",
                    "RealTimeInferenceConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large"},
                },
                "ModelName": shadow,
                "VariantName": "shadow-candidate",
            },
        ],
        "Name": name,
        "RoleArn": ROLE,
        "Schedule": {"EndTime": 4102444800, "StartTime": 4102358400},
        "ShadowModeConfig": {
            "ShadowModelVariants": [
                {"SamplingPercentage": 30, "ShadowModelVariantName": "shadow-candidate"}
            ],
            "SourceModelVariantName": "variant-1",
        },
        "Tags": [{"Key": "project", "Value": "shadowlab"}],
        "Type": "ShadowMode",
    }
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    created = _cli_json(
        server, "sagemaker", "create-inference-experiment", "--cli-input-json", f"file://{path}"
    )
    assert created["InferenceExperimentArn"].endswith(f"inference-experiment/{name}")
    wait_experiment(sm, name, "Created")
    described = _cli_json(server, "sagemaker", "describe-inference-experiment", "--name", name)
    assert described["Status"] == "Created"
    assert described["DataStorageConfig"] == request["DataStorageConfig"]
    assert described["KmsKey"] == "alias/ExampleAlias"
    assert described["ShadowModeConfig"] == request["ShadowModeConfig"]
    listed = _cli_json(server, "sagemaker", "list-inference-experiments", "--name-contains", name)
    assert [e["Name"] for e in listed["InferenceExperiments"]] == [name]

    _cli_json(server, "sagemaker", "start-inference-experiment", "--name", name)
    wait_experiment(sm, name, "Running")
    _cli_json(
        server,
        "sagemaker",
        "stop-inference-experiment",
        "--name",
        name,
        "--model-variant-actions",
        "variant-1=Retain,shadow-candidate=Remove",
        "--desired-state",
        "Cancelled",
    )
    wait_experiment(sm, name, "Cancelled")
    _cli_json(server, "sagemaker", "delete-inference-experiment", "--name", name)


def test_cli_reports_aws_errors(server: ServerProcess) -> None:
    missing = unique("nope")
    result = server.aws_cli("sagemaker", "describe-inference-experiment", "--name", missing)
    assert result.returncode == 255  # awscli v1: 255 for a service error (v2 uses 254)
    assert "(ResourceNotFound)" in result.stderr
    assert f"inference-experiment/{missing}" in result.stderr
    result = server.aws_cli("sagemaker", "describe-endpoint", "--endpoint-name", "bad_name")
    assert result.returncode == 255  # awscli v1: 255 for a service error (v2 uses 254)
    assert "(ValidationException)" in result.stderr
    assert "Member must satisfy regular expression pattern" in result.stderr


def test_cli_model_lifecycle(server: ServerProcess) -> None:
    name = unique("cli-model")
    _cli_json(
        server,
        "sagemaker",
        "create-model",
        "--model-name",
        name,
        "--execution-role-arn",
        ROLE,
        "--primary-container",
        "Image=example/image:1,ModelDataUrl=s3://b/model.tar.gz",
    )
    described = _cli_json(server, "sagemaker", "describe-model", "--model-name", name)
    assert described["PrimaryContainer"]["Image"] == "example/image:1"
    _cli_json(server, "sagemaker", "delete-model", "--model-name", name)
    listed = _cli_json(server, "sagemaker", "list-models", "--name-contains", name)
    assert listed["Models"] == []
