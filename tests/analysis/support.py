"""Synthetic capture records and pairs, in SageMaker's data-capture format."""

from __future__ import annotations

import base64
import io
import json
import math
from typing import Any

import numpy as np

from shadowlab.analysis import MinutePoint, ShadowCopies, VariantOperational

JSON = "application/json"
CSV = "text/csv"
NPY = "application/x-npy"


def payload(
    mode: str, body: bytes | str, content_type: str, encoding: str | None = None
) -> dict[str, Any]:
    raw = body.encode() if isinstance(body, str) else body
    if encoding is None:
        encoding = {JSON: "JSON", CSV: "CSV"}.get(content_type, "BASE64")
    data = base64.b64encode(raw).decode() if encoding == "BASE64" else raw.decode()
    return {"observedContentType": content_type, "mode": mode, "data": data, "encoding": encoding}


def record(
    event_id: str,
    output: bytes | str | None,
    content_type: str = JSON,
    *,
    body: bytes | str = '{"instances": [[1.0, 2.0]]}',
    input_type: str = JSON,
    encoding: str | None = None,
    outcome: str | None = None,
    status: int = 200,
    error: str | None = None,
    when: str = "2026-03-01T10:00:00Z",
) -> dict[str, Any]:
    capture: dict[str, Any] = {"endpointInput": payload("INPUT", body, input_type, encoding)}
    if output is not None:
        capture["endpointOutput"] = payload("OUTPUT", output, content_type, encoding)
    result: dict[str, Any] = {
        "captureData": capture,
        "eventMetadata": {"eventId": event_id, "inferenceTime": when},
        "eventVersion": "0",
    }
    if outcome is not None:
        result["shadowlab"] = {"outcome": outcome, "status": status, "error": error}
    return result


def pair(
    event_id: str,
    production: dict[str, Any] | None,
    shadows: dict[str, dict[str, Any]] | None = None,
    variant: str = "prod",
) -> dict[str, Any]:
    return {
        "eventId": event_id,
        "productionVariant": variant if production is not None else None,
        "production": production,
        "shadows": shadows or {},
    }


def npy(array: Any) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def label_pairs(production: list[int], shadow: list[int]) -> list[dict[str, Any]]:
    """One pair per label, JSON answers {"labels": [x]}; the shadow is "cand"."""
    return [
        pair(
            f"e{i}",
            record(f"e{i}", json.dumps({"labels": [a], "probabilities": [[0.5, 0.5]]})),
            {"cand": record(f"e{i}", json.dumps({"labels": [b], "probabilities": [[0.4, 0.6]]}))},
        )
        for i, (a, b) in enumerate(zip(production, shadow, strict=True))
    ]


def exact_quantile(samples: list[float]) -> Any:
    """A quantile callable over exact samples, with DDSketch's rank convention floor(q*(n-1))."""
    ordered = sorted(samples)

    def quantile(q: float) -> float | None:
        if not ordered:
            return None
        return ordered[math.floor(q * (len(ordered) - 1) + 1e-9)]

    return quantile


def operational(
    variant: str,
    role: str,
    latencies_us: list[float],
    *,
    errors: int = 0,
    invocations: int | None = None,
    copies: ShadowCopies | None = None,
    minutes: int = 3,
) -> VariantOperational:
    n = len(latencies_us) if invocations is None else invocations
    per_minute = [
        MinutePoint(
            1772359200 + 60 * m,
            n // minutes,
            errors // minutes,
            latency_p50_us=float(np.percentile(latencies_us, 50)) if latencies_us else None,
            latency_p99_us=float(np.percentile(latencies_us, 99)) if latencies_us else None,
        )
        for m in range(minutes)
    ]
    return VariantOperational(
        variant=variant,
        role="production" if role == "production" else "shadow",
        invocations=n,
        errors_5xx=errors,
        model_errors=errors,
        latency_count=len(latencies_us),
        latency_quantile=exact_quantile(latencies_us),
        per_minute=per_minute,
        copies=copies,
    )


EXPERIMENT = {
    "Name": "candidate-v2",
    "Type": "ShadowMode",
    "Status": "Completed",
    "EndpointMetadata": {"EndpointName": "my-endpoint"},
    "Schedule": {"StartTime": 1772359200, "EndTime": 1772362800},
    "ShadowModeConfig": {
        "SourceModelVariantName": "prod",
        "ShadowModelVariants": [{"ShadowModelVariantName": "cand", "SamplingPercentage": 50}],
    },
}
