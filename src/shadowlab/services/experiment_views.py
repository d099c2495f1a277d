"""How inference experiments read back: DescribeInferenceExperiment and the list summaries.

Kept apart from `experiments` (the operations that change them) so that module stays small.
"""

from __future__ import annotations

from shadowlab.domain.endpoint_state import EndpointState
from shadowlab.domain.experiment_state import ExperimentState
from shadowlab.services.common import Output
from shadowlab.services.context import to_datetime
from shadowlab.store import Record

Experiment = Record[ExperimentState]


def _schedule(record: Experiment) -> Output:
    return {k: to_datetime(v) for k, v in record.document["Schedule"].items()}


def model_variant_summaries(record: Experiment) -> list[Output]:
    source = record.document["ShadowModeConfig"]["SourceModelVariantName"]
    return [
        {**variant, "Status": record.state.variant_status(variant["VariantName"], source).value}
        for variant in record.document["ModelVariants"]
    ]


def describe(record: Experiment, endpoint: Record[EndpointState] | None) -> Output:
    """DescribeInferenceExperiment's answer; `endpoint` is the experiment's, if it still exists."""
    document = record.document
    out: Output = {k: v for k, v in document.items() if k not in ("Schedule", "EndpointName")}
    out["Status"] = record.status
    out["Schedule"] = _schedule(record)
    out["CreationTime"] = to_datetime(record.created_at)
    out["LastModifiedTime"] = to_datetime(record.modified_at)
    if document.get("CompletionTime") is not None:
        out["CompletionTime"] = to_datetime(document["CompletionTime"])
    out["ModelVariants"] = model_variant_summaries(record)
    metadata: Output = {"EndpointName": document["EndpointName"]}
    if endpoint is not None:
        metadata["EndpointConfigName"] = endpoint.document["EndpointConfigName"]
        metadata["EndpointStatus"] = endpoint.status
        if endpoint.document.get("FailureReason"):
            metadata["FailureReason"] = endpoint.document["FailureReason"]
    out["EndpointMetadata"] = metadata
    return out


def summary(record: Experiment) -> Output:
    """One item of ListInferenceExperiments."""
    d = record.document
    item: Output = {
        "Name": record.name,
        "Type": d["Type"],
        "Schedule": _schedule(record),
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
