"""Endpoint and experiment state: typed in memory, the same JSON in the store as before.

A store written by an earlier version holds these JSON shapes (written then as plain dicts by
the services); they must read back into the typed state and be written back key for key, or an
upgrade would lose a running experiment's progress.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shadowlab.domain.deployments import EndpointDeployment, Role, VariantDeployment
from shadowlab.domain.endpoint_state import (
    EndpointState,
    ExperimentClaim,
    PlannedFrom,
    VariantOverride,
)
from shadowlab.domain.experiment_state import ExperimentState, StopRequest
from shadowlab.domain.experiments import StopPlan
from shadowlab.domain.kinds import ResourceKind
from shadowlab.domain.status import ExperimentStatus, ModelVariantStatus
from shadowlab.store import ENDPOINTS, EXPERIMENTS, Record, Store


def _variant(name: str, role: str = "production", sampling: int = 0) -> dict[str, Any]:
    return {
        "name": name,
        "model_name": f"model-{name}",
        "instance_type": "ml.m5.large",
        "instance_count": 1,
        "weight": 1.0,
        "role": role,
        "sampling_percentage": sampling,
        "container": {"Image": "sklearn:latest", "ModelDataUrl": "s3://m/model.tar.gz"},
        "serverless": None,
    }


def _deployment(generation: int, *variants: dict[str, Any]) -> dict[str, Any]:
    return {
        "region": "us-east-1",
        "endpoint_name": "ep",
        "generation": generation,
        "variants": list(variants),
        "data_capture": None,
        "experiment_name": None,
        "data_storage": None,
    }


SHADOW = _variant("shadow-1", "shadow", 50)
# As the services wrote an endpoint's state before it was typed: a running experiment's shadow,
# a weight override, and what ran before (an update in flight).
LEGACY_ENDPOINT = {
    "target": _deployment(3, _variant("v1"), SHADOW),
    "generation": 3,
    "deployed": _deployment(2, _variant("v1")),
    "deployed_from": {
        "parent": "config",
        "config_name": "Config",
        "overrides": {"v1": {"weight": 2.0}},
        "experiment": {"name": "exp", "shadows": []},
    },
    "instances": {"v1": 1},
    "overrides": {"v1": {"weight": 2.0, "count": 3}},
    "experiment": {"name": "exp", "shadows": [SHADOW], "data_storage": {"Destination": "s3://b"}},
}
LEGACY_EXPERIMENT = {
    "variant_status": "InService",
    "start_generation": 3,
    "stop": {
        "plan": {"promoted": "shadow-1", "retained_shadow": None, "promoted_infrastructure": None},
        "desired_state": "Completed",
        "actions": {"v1": "Remove", "shadow-1": "Promote"},
        "generation": 4,
    },
}


def test_an_earlier_endpoint_state_reads_back_typed_and_writes_the_same_json() -> None:
    state = EndpointState.from_json(LEGACY_ENDPOINT)
    assert state.target is not None and state.target.generation == 3
    assert state.target.shadows()[0].role is Role.SHADOW
    assert state.deployed is not None and state.deployed.generation == 2
    assert state.overrides == {"v1": VariantOverride(weight=2.0, count=3)}
    assert state.experiment == ExperimentClaim(
        "exp", (VariantDeployment.from_dict(SHADOW),), {"Destination": "s3://b"}
    )
    assert state.deployed_from == PlannedFrom(
        "config", "Config", {"v1": VariantOverride(weight=2.0)}, ExperimentClaim("exp")
    )
    assert state.running is state.deployed
    written = state.to_json()
    # The claim gained its `data_storage` member (None) where an early one had none.
    expected = json.loads(json.dumps(LEGACY_ENDPOINT))
    expected["deployed_from"]["experiment"]["data_storage"] = None
    assert json.loads(json.dumps(written)) == expected


def test_an_earlier_experiment_state_reads_back_typed_and_writes_the_same_json() -> None:
    state = ExperimentState.from_json(LEGACY_EXPERIMENT)
    assert state.shadow_status is ModelVariantStatus.IN_SERVICE
    assert state.start_generation == 3 and state.update_generation is None
    assert state.stop == StopRequest(
        StopPlan("shadow-1", None, None),
        ExperimentStatus.COMPLETED,
        {"v1": "Remove", "shadow-1": "Promote"},
        generation=4,
    )
    assert state.to_json() == LEGACY_EXPERIMENT


def test_a_new_state_is_empty_and_variant_statuses_default_by_role() -> None:
    assert EndpointState.from_json({}) == EndpointState()
    assert EndpointState().to_json() == {"generation": 0}
    state = ExperimentState.from_json({})
    assert state.to_json() == {"variant_status": "Creating"}
    assert state.variant_status("v1", source="v1") is ModelVariantStatus.IN_SERVICE
    assert state.variant_status("shadow-1", source="v1") is ModelVariantStatus.CREATING
    state.final_statuses = {"shadow-1": ModelVariantStatus.DELETED}
    assert state.variant_status("shadow-1", source="v1") is ModelVariantStatus.DELETED
    assert state.to_json()["variant_statuses"] == {"shadow-1": "Deleted"}


def test_the_store_keeps_one_status_and_the_typed_state(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'shadowlab.db'}")
    try:
        arn = "arn:aws:sagemaker:us-east-1:123456789012:endpoint/ep"
        document = {"EndpointName": "ep", "EndpointStatus": "Creating"}
        state = EndpointState.from_json(LEGACY_ENDPOINT)
        kind = ResourceKind.ENDPOINT
        store.insert(
            Record("us-east-1", kind, "ep", arn, 1.0, 1.0, document, "InService", state=state)
        )
        read = store.get("us-east-1", ENDPOINTS, "ep")
        assert read is not None and read.state == state
        # The status is the record's; a stale copy in the document never reaches a service.
        assert read.status == "InService" and "EndpointStatus" not in read.document
        with store.transaction(write=False) as conn:
            raw = conn.exec_driver_sql("SELECT document, state FROM resources").one()
        # The stored JSON carries the status the inventory view reads, and the state's keys.
        assert json.loads(raw[0])["EndpointStatus"] == "InService"
        assert json.loads(raw[1])["experiment"]["name"] == "exp"
        assert store.get("us-east-1", EXPERIMENTS, "ep") is None
    finally:
        store.close()


def test_a_deployment_round_trips() -> None:
    deployment = EndpointDeployment.from_dict(_deployment(1, _variant("v1"), SHADOW))
    assert EndpointDeployment.from_dict(deployment.to_dict()) == deployment
