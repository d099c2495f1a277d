"""ListX filters, sort orders and pagination; AddTags, ListTags, DeleteTags on every kind."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.contract.helpers import (
    checked,
    create_endpoint,
    create_model,
    experiment_request,
    in_seconds,
    unique,
    wait_experiment,
)


def test_list_models_filters_sorts_and_pages(sm: Any) -> None:
    tag = unique("lst").replace("-", "")
    names = [create_model(sm, f"{tag}-m{i}") for i in range(5)]
    time.sleep(0.01)
    newest = create_model(sm, f"{tag}-m5")
    names.append(newest)

    listed = checked(sm, "ListModels", NameContains=tag, SortBy="Name", SortOrder="Ascending")
    assert [m["ModelName"] for m in listed["Models"]] == sorted(names)
    assert "NextToken" not in listed

    descending = checked(sm, "ListModels", NameContains=tag, SortBy="CreationTime")
    assert descending["Models"][0]["ModelName"] == newest  # SortOrder defaults to Descending

    pages, token = [], None
    while True:
        params: dict[str, Any] = {
            "NameContains": tag,
            "SortBy": "Name",
            "SortOrder": "Ascending",
            "MaxResults": 2,
        }
        if token:
            params["NextToken"] = token
        page = checked(sm, "ListModels", **params)
        pages.append([m["ModelName"] for m in page["Models"]])
        token = page.get("NextToken")
        if not token:
            break
    assert pages == [sorted(names)[i : i + 2] for i in range(0, 6, 2)]

    cutoff = descending["Models"][0]["CreationTime"]
    before = checked(sm, "ListModels", NameContains=tag, CreationTimeBefore=cutoff)
    assert newest not in [m["ModelName"] for m in before["Models"]]
    assert len(before["Models"]) == 5
    assert checked(sm, "ListModels", NameContains=tag, CreationTimeAfter=cutoff)["Models"] == []
    older = descending["Models"][1]["CreationTime"]
    after = checked(sm, "ListModels", NameContains=tag, CreationTimeAfter=older)
    assert [m["ModelName"] for m in after["Models"]] == [newest]

    # boto3's paginator follows NextToken the same way.
    paginator = sm.get_paginator("list_models")
    seen = [
        m["ModelName"]
        for page in paginator.paginate(NameContains=tag, PaginationConfig={"PageSize": 4})
        for m in page["Models"]
    ]
    assert sorted(seen) == sorted(names)


def test_list_endpoints_and_configs(sm: Any) -> None:
    first = create_endpoint(sm)
    second = create_endpoint(sm)
    endpoints = checked(
        sm,
        "ListEndpoints",
        StatusEquals="InService",
        SortBy="Name",
        SortOrder="Ascending",
        MaxResults=100,
    )["Endpoints"]
    names = [e["EndpointName"] for e in endpoints]
    assert first["endpoint"] in names and second["endpoint"] in names
    assert names == sorted(names, key=str.lower)
    assert checked(sm, "ListEndpoints", StatusEquals="Failed")["Endpoints"] == []
    modified = checked(
        sm, "ListEndpoints", NameContains=second["endpoint"], LastModifiedTimeAfter=in_seconds(-60)
    )["Endpoints"]
    assert [e["EndpointName"] for e in modified] == [second["endpoint"]]
    configs = checked(sm, "ListEndpointConfigs", NameContains=first["config"])
    assert [c["EndpointConfigName"] for c in configs["EndpointConfigs"]] == [first["config"]]


def test_list_inference_experiments(sm: Any) -> None:
    prefix = unique("lx").replace("-", "")
    experiments = []
    for i in range(3):
        endpoint = create_endpoint(sm)
        name = f"{prefix}-{i}"
        schedule = {"StartTime": in_seconds(3600), "EndTime": in_seconds(7200)}
        checked(
            sm,
            "CreateInferenceExperiment",
            **experiment_request(name, endpoint, create_model(sm), schedule=schedule),
        )
        wait_experiment(sm, name, "Created")
        experiments.append(name)
    checked(sm, "StartInferenceExperiment", Name=experiments[1])
    wait_experiment(sm, experiments[1], "Running")

    running = checked(sm, "ListInferenceExperiments", NameContains=prefix, StatusEquals="Running")
    assert [e["Name"] for e in running["InferenceExperiments"]] == [experiments[1]]
    by_status = checked(
        sm,
        "ListInferenceExperiments",
        NameContains=prefix,
        SortBy="Status",
        SortOrder="Ascending",
        Type="ShadowMode",
    )
    assert [e["Status"] for e in by_status["InferenceExperiments"]] == [
        "Created",
        "Created",
        "Running",
    ]
    page = checked(
        sm,
        "ListInferenceExperiments",
        NameContains=prefix,
        SortBy="Name",
        SortOrder="Descending",
        MaxResults=2,
    )
    assert [e["Name"] for e in page["InferenceExperiments"]] == experiments[::-1][:2]
    rest = checked(
        sm,
        "ListInferenceExperiments",
        NameContains=prefix,
        SortBy="Name",
        SortOrder="Descending",
        MaxResults=2,
        NextToken=page["NextToken"],
    )
    assert [e["Name"] for e in rest["InferenceExperiments"]] == [experiments[0]]
    summary = page["InferenceExperiments"][0]
    assert summary["Type"] == "ShadowMode" and summary["Description"]


@pytest.mark.parametrize("kind", ["model", "endpoint-config", "endpoint", "inference-experiment"])
def test_tags_on_every_kind(sm: Any, kind: str) -> None:
    endpoint = create_endpoint(sm)
    if kind == "model":
        arn = checked(sm, "DescribeModel", ModelName=endpoint["models"][0])["ModelArn"]
    elif kind == "endpoint-config":
        arn = checked(sm, "DescribeEndpointConfig", EndpointConfigName=endpoint["config"])[
            "EndpointConfigArn"
        ]
    elif kind == "endpoint":
        arn = checked(sm, "DescribeEndpoint", EndpointName=endpoint["endpoint"])["EndpointArn"]
    else:
        name = unique("exp")
        request = experiment_request(name, endpoint, create_model(sm))
        request["Tags"] = [{"Key": "team", "Value": "search"}]
        arn = checked(sm, "CreateInferenceExperiment", **request)["InferenceExperimentArn"]
    added = checked(
        sm,
        "AddTags",
        ResourceArn=arn,
        Tags=[{"Key": "owner", "Value": "ml"}, {"Key": "stage", "Value": "dev"}],
    )
    assert added["Tags"] == [{"Key": "owner", "Value": "ml"}, {"Key": "stage", "Value": "dev"}]
    checked(sm, "AddTags", ResourceArn=arn, Tags=[{"Key": "stage", "Value": "prod"}])
    tags = {t["Key"]: t["Value"] for t in checked(sm, "ListTags", ResourceArn=arn)["Tags"]}
    expected = {"owner": "ml", "stage": "prod"}
    if kind == "inference-experiment":
        expected["team"] = "search"
    assert tags == expected
    checked(sm, "DeleteTags", ResourceArn=arn, TagKeys=["owner"])
    tags = {t["Key"] for t in checked(sm, "ListTags", ResourceArn=arn)["Tags"]}
    assert "owner" not in tags and "stage" in tags


def test_list_tags_pages(sm: Any) -> None:
    model = create_model(sm)
    arn = checked(sm, "DescribeModel", ModelName=model)["ModelArn"]
    pairs = [{"Key": f"k{i:02d}", "Value": str(i)} for i in range(50)]
    checked(sm, "AddTags", ResourceArn=arn, Tags=pairs)
    first = checked(sm, "ListTags", ResourceArn=arn, MaxResults=50)
    assert len(first["Tags"]) == 50 and "NextToken" not in first
    checked(sm, "DeleteTags", ResourceArn=arn, TagKeys=["k00"])
    checked(sm, "AddTags", ResourceArn=arn, Tags=[{"Key": "k00", "Value": "again"}])
    assert len(checked(sm, "ListTags", ResourceArn=arn)["Tags"]) == 50
