"""How inference experiments read back: DescribeInferenceExperiment and the list summaries.

Kept apart from `experiments` (the operations that change them) so that module stays small.
"""

from __future__ import annotations

from typing import Any

from shadowlab.domain.status import ModelVariantStatus
from shadowlab.services.context import to_datetime
from shadowlab.store import Record


def model_variant_summaries(record: Record) -> list[dict[str, Any]]:
    source = record.document["ShadowModeConfig"]["SourceModelVariantName"]
    statuses: dict[str, str] = record.state.get("variant_statuses", {})
    shadow_status = record.state.get("variant_status", ModelVariantStatus.CREATING.value)
    summaries = []
    for variant in record.document["ModelVariants"]:
        name = variant["VariantName"]
        default = ModelVariantStatus.IN_SERVICE.value if name == source else shadow_status
        summaries.append({**variant, "Status": statuses.get(name, default)})
    return summaries


def describe(record: Record, endpoint: Record | None) -> dict[str, Any]:
    """DescribeInferenceExperiment's answer; `endpoint` is the experiment's, if it still exists."""
    document = record.document
    out = {k: v for k, v in document.items() if k not in ("Schedule", "EndpointName")}
    out["Schedule"] = {k: to_datetime(v) for k, v in document["Schedule"].items()}
    out["CreationTime"] = to_datetime(record.created_at)
    out["LastModifiedTime"] = to_datetime(record.modified_at)
    if document.get("CompletionTime") is not None:
        out["CompletionTime"] = to_datetime(document["CompletionTime"])
    out["ModelVariants"] = model_variant_summaries(record)
    metadata: dict[str, Any] = {"EndpointName": document["EndpointName"]}
    if endpoint is not None:
        metadata["EndpointConfigName"] = endpoint.document["EndpointConfigName"]
        metadata["EndpointStatus"] = endpoint.status
        if endpoint.document.get("FailureReason"):
            metadata["FailureReason"] = endpoint.document["FailureReason"]
    out["EndpointMetadata"] = metadata
    return out


def summary(record: Record) -> dict[str, Any]:
    """One item of ListInferenceExperiments."""
    d = record.document
    item: dict[str, Any] = {
        "Name": record.name,
        "Type": d["Type"],
        "Schedule": {k: to_datetime(v) for k, v in d["Schedule"].items()},
        "Status": record.status,
        "CreationTime": to_datetime(record.created_at),
        "LastModifiedTime": to_datetime(record.modified_at),
        "RoleArn": d["RoleArn"],
    }
    for optional in ("StatusReason", "Description"):
        if d.get(optional):
            item[optional] = d[optional]
    if d.get("CompletionTime") is not None:
        item["CompletionTime"] = to_datetime(d["CompletionTime"])
    return item
