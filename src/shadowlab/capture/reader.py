"""Reading captures back: what was captured for an endpoint, and production/shadow pairs.

Works on any capture in SageMaker's layout, SageMaker's own included; shadowlab's window sidecars
(see ``layout``) make the summary cheap (no data file is read when its sidecar is there) and add
what the data cannot say: each file's role (production or shadow) and the shed copies.

Pairing joins records on ``eventId``. A production record and its shadow records carry the same
inference time, hence sit under the same ``yyyy/mm/dd/hh`` directory of their variants, so the
join runs one hour at a time: memory holds one hour of one endpoint's shadow records, never the
whole capture, and production records stream through.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

from shadowlab.capture import layout
from shadowlab.capture.config import parse_s3_uri
from shadowlab.capture.stores import ObjectStore


@dataclass(frozen=True, slots=True)
class CapturedFile:
    key: str
    variant: str
    hour: str  # yyyy/mm/dd/hh
    size: int
    summary: dict[str, Any] | None  # the window sidecar, when shadowlab wrote the file

    @property
    def role(self) -> str | None:
        return None if self.summary is None else self.summary.get("role")


@dataclass(slots=True)
class VariantCapture:
    """What one variant has captured under a destination."""

    variant: str
    roles: set[str]
    files: int = 0
    records: int = 0
    bytes: int = 0
    first_inference_time: str | None = None  # ISO-8601 UTC, as in the records
    last_inference_time: str | None = None
    failed: int = 0
    timeout: int = 0
    model_errors: int = 0
    shed: int = 0

    def _add_times(self, first: str | None, last: str | None) -> None:
        # The fixed-width ISO-8601 form orders correctly as text.
        if first and (self.first_inference_time is None or first < self.first_inference_time):
            self.first_inference_time = first
        if last and (self.last_inference_time is None or last > self.last_inference_time):
            self.last_inference_time = last

    def as_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "roles": sorted(self.roles),
            "files": self.files,
            "records": self.records,
            "bytes": self.bytes,
            "firstInferenceTime": self.first_inference_time,
            "lastInferenceTime": self.last_inference_time,
            "failed": self.failed,
            "timeout": self.timeout,
            "modelErrors": self.model_errors,
            "shed": self.shed,
        }


def _sidecars(store: ObjectStore, bucket: str, prefix: str, endpoint: str) -> dict[str, Any]:
    """(variant/hour/stem) -> sidecar summary, for one endpoint."""
    base = layout.sidecar_prefix(prefix, endpoint)
    found: dict[str, Any] = {}
    for info in store.list(bucket, base):
        parts = layout.parse_relative(info.key[len(base) :], layout.SIDECAR_SUFFIX)
        if parts is not None:
            found[f"{parts.variant}/{parts.hour}/{parts.stem}"] = json.loads(
                store.get(bucket, info.key)
            )
    return found


def captured_files(store: ObjectStore, destination: str, endpoint: str) -> Iterator[CapturedFile]:
    """Data files of an endpoint, in key order (variant, then time), each with its sidecar."""
    bucket, prefix = parse_s3_uri(destination)
    return _files(store, bucket, prefix, endpoint, _sidecars(store, bucket, prefix, endpoint))


def _files(
    store: ObjectStore, bucket: str, prefix: str, endpoint: str, sidecars: dict[str, Any]
) -> Iterator[CapturedFile]:
    base = layout.endpoint_prefix(prefix, endpoint)
    for info in store.list(bucket, base):
        parts = layout.parse_relative(info.key[len(base) :], layout.DATA_SUFFIX)
        if parts is not None:
            summary = sidecars.get(f"{parts.variant}/{parts.hour}/{parts.stem}")
            yield CapturedFile(info.key, parts.variant, parts.hour, info.size, summary)


def summarize(store: ObjectStore, destination: str, endpoint: str) -> dict[str, VariantCapture]:
    """Per variant: files, records, bytes, time range, outcomes and shed copies."""
    bucket, prefix = parse_s3_uri(destination)
    variants: dict[str, VariantCapture] = {}
    sidecars = _sidecars(store, bucket, prefix, endpoint)
    for item in _files(store, bucket, prefix, endpoint, sidecars):
        capture = variants.setdefault(item.variant, VariantCapture(item.variant, set()))
        capture.files += 1
        capture.bytes += item.size
        if item.summary is None:  # not written by shadowlab: read it
            for record in _records(store, bucket, item.key):
                capture.records += 1
                when = record.get("eventMetadata", {}).get("inferenceTime")
                capture._add_times(when, when)
    for summary in sidecars.values():  # every shadowlab window, shed-only ones included
        capture = variants.setdefault(summary["variant"], VariantCapture(summary["variant"], set()))
        capture.roles.add(summary["role"])
        capture.records += summary["records"]
        capture.failed += summary["failed"]
        capture.timeout += summary["timeout"]
        capture.model_errors += summary["modelErrors"]
        capture.shed += summary["shed"]
        capture._add_times(summary["firstInferenceTime"], summary["lastInferenceTime"])
    return variants


def _records(store: ObjectStore, bucket: str, key: str) -> Iterator[dict[str, Any]]:
    for line in store.iter_lines(bucket, key):
        if line.strip():
            yield json.loads(line)


def records(
    store: ObjectStore, destination: str, endpoint: str, variant: str | None = None
) -> Iterator[dict[str, Any]]:
    """Every captured record of an endpoint (or of one variant), file by file, streamed."""
    bucket, _prefix = parse_s3_uri(destination)
    for item in captured_files(store, destination, endpoint):
        if variant is None or item.variant == variant:
            yield from _records(store, bucket, item.key)


def pairs(
    store: ObjectStore,
    destination: str,
    endpoint: str,
    production_variants: Collection[str] | None = None,
) -> Iterator[dict[str, Any]]:
    """Production records joined with their shadow records on ``eventId``.

    Yields ``{"eventId", "productionVariant", "production": record, "shadows": {variant:
    record}}``, production in capture order, then, per hour, shadow records whose production
    record is missing (``production`` and ``productionVariant`` None). A production record
    without shadows has ``shadows == {}``: not sampled for the shadow, shed (see the summary's
    ``shed``), or lost. Which files are production comes from their sidecars, or, for files
    without one, from `production_variants` (required then).
    """
    bucket, _prefix = parse_s3_uri(destination)
    hours: dict[str, list[CapturedFile]] = defaultdict(list)
    for item in captured_files(store, destination, endpoint):
        hours[item.hour].append(item)
    for hour in sorted(hours):
        production: list[CapturedFile] = []
        shadows: dict[str, dict[str, Any]] = defaultdict(dict)
        for item in hours[hour]:
            role = item.role
            if role is None:
                if production_variants is None:
                    raise ValueError(
                        f"{item.key} has no shadowlab sidecar: name the production variants"
                    )
                role = "production" if item.variant in production_variants else "shadow"
            if role == "production":
                production.append(item)
                continue
            for record in _records(store, bucket, item.key):
                shadows[record["eventMetadata"]["eventId"]][item.variant] = record
        for item in production:
            for record in _records(store, bucket, item.key):
                event_id = record["eventMetadata"]["eventId"]
                yield {
                    "eventId": event_id,
                    "productionVariant": item.variant,
                    "production": record,
                    "shadows": shadows.pop(event_id, {}),
                }
        for event_id, orphans in shadows.items():
            yield {
                "eventId": event_id,
                "productionVariant": None,
                "production": None,
                "shadows": orphans,
            }
