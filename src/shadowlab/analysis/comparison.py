"""``compare``: one pass over the captured pairs, plus the metrics, gives a ``Comparison``.

Pure computation: nothing is read or written but what is handed in, so the CLI and a server
route can both call it. The pairs are streamed once; memory stays bounded (see ``accumulate``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from shadowlab.analysis.accumulate import AgreementBuilder
from shadowlab.analysis.agreement import Agreement
from shadowlab.analysis.inputs import CompareOptions, VariantOperational
from shadowlab.analysis.operational import VariantFigures, figures
from shadowlab.analysis.payload import OK, endpoint_payload, outcome, parse_output
from shadowlab.analysis.selector import Selector
from shadowlab.analysis.verdict import Verdict, evaluate


@dataclasses.dataclass(frozen=True, slots=True)
class ExperimentInfo:
    """What the comparison is about, from DescribeInferenceExperiment (all optional)."""

    name: str | None = None
    endpoint: str | None = None
    status: str | None = None
    start: str | None = None  # ISO-8601
    end: str | None = None
    production_variant: str | None = None
    shadows: dict[str, float | None] = dataclasses.field(default_factory=dict)  # -> sampling %


@dataclasses.dataclass(frozen=True, slots=True)
class Comparison:
    experiment: ExperimentInfo
    options: dict[str, Any]
    pairs_read: int
    production_records: dict[str, int]  # per production variant
    variants: list[VariantFigures]
    agreements: list[Agreement]
    verdict: Verdict

    def variant(self, name: str) -> VariantFigures | None:
        return next((v for v in self.variants if v.variant == name), None)

    def agreement(self, shadow: str) -> Agreement | None:
        return next((a for a in self.agreements if a.shadow == shadow), None)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: camelCase keys, rates included, NaN and infinities as null."""
        result = jsonable(self)
        assert isinstance(result, dict)
        return result

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.as_dict(), indent=indent, allow_nan=False)


def compare(
    pairs: Iterable[Mapping[str, Any]],
    metrics: Sequence[VariantOperational] = (),
    experiment: Mapping[str, Any] | None = None,
    options: CompareOptions | None = None,
    progress: Callable[[int], None] | None = None,
) -> Comparison:
    """Compare the shadow variants of an experiment with production.

    ``pairs``: ``{"eventId", "productionVariant", "production": record | None, "shadows":
    {variant: record}}`` as ``capture.reader.pairs`` yields them (records in SageMaker's
    data-capture format); ``metrics``: one ``VariantOperational`` per variant; ``experiment``:
    a DescribeInferenceExperiment response; ``progress(n)`` is called after every
    ``options.progress_every`` pairs and once at the end. Raises ``SelectorError`` for a
    malformed selector before reading anything.
    """
    options = options or CompareOptions()
    info = experiment_info(experiment)
    selector = Selector(options.selector) if options.selector else None
    builders: dict[str, AgreementBuilder] = {}
    shadow_names = list(info.shadows) + [m.variant for m in metrics if m.role == "shadow"]
    for name in shadow_names:
        builders.setdefault(name, AgreementBuilder(name, options, selector))
    production_records: Counter[str] = Counter()
    every = max(1, options.progress_every)
    read = 0
    for pair in pairs:
        read += 1
        production = pair.get("production")
        if production is not None:
            production_records[str(pair.get("productionVariant"))] += 1
        shadows = pair.get("shadows") or {}
        parsed = None
        if shadows and outcome(production) == OK:
            payload = endpoint_payload(production, "endpointOutput")
            parsed = None if payload is None else parse_output(payload, selector)
        event_id = str(pair.get("eventId"))
        for name, record in shadows.items():
            builder = builders.get(name)
            if builder is None:
                builder = builders[name] = AgreementBuilder(name, options, selector)
            builder.add(event_id, production, record, parsed)
        if progress is not None and read % every == 0:
            progress(read)
    if progress is not None:
        progress(read)

    production_name = info.production_variant or next(
        (m.variant for m in metrics if m.role == "production"), None
    )
    if production_name is None and len(production_records) == 1:
        production_name = next(iter(production_records))
    # The shadow's source variant's records; all of them when the source is unknown.
    if production_name is not None and production_name in production_records:
        denominator = production_records[production_name]
    else:
        denominator = sum(production_records.values())
    agreements = [builders[name].finish(production_name, denominator) for name in sorted(builders)]
    variant_figures = [figures(m, options.confidence) for m in metrics]
    variant_figures.sort(key=lambda v: (v.variant != production_name, v.role != "production"))
    by_name = {v.variant: v for v in variant_figures}
    verdict = evaluate(
        by_name.get(production_name) if production_name else None,
        {name: by_name.get(name) for name in builders},
        {a.shadow: a for a in agreements},
        options.guardrails,
    )
    return Comparison(
        experiment=dataclasses.replace(info, production_variant=production_name),
        options=_options(options),
        pairs_read=read,
        production_records=dict(production_records),
        variants=variant_figures,
        agreements=agreements,
        verdict=verdict,
    )


def experiment_info(experiment: Mapping[str, Any] | None) -> ExperimentInfo:
    if not experiment:
        return ExperimentInfo()
    schedule = experiment.get("Schedule") or {}
    shadow_mode = experiment.get("ShadowModeConfig") or {}
    shadows: dict[str, float | None] = {}
    for variant in shadow_mode.get("ShadowModelVariants") or []:
        percentage = variant.get("SamplingPercentage")
        shadows[str(variant.get("ShadowModelVariantName"))] = (
            float(percentage) if isinstance(percentage, int | float) else None
        )
    source = shadow_mode.get("SourceModelVariantName")
    return ExperimentInfo(
        name=experiment.get("Name"),
        endpoint=(experiment.get("EndpointMetadata") or {}).get("EndpointName"),
        status=experiment.get("Status"),
        start=_iso(schedule.get("StartTime")),
        end=_iso(schedule.get("EndTime")),
        production_variant=str(source) if source else None,
        shadows=shadows,
    )


def _iso(value: object) -> str | None:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value) if value is not None else None


def _options(options: CompareOptions) -> dict[str, Any]:
    return {
        "selector": options.selector,
        "absTolerance": options.abs_tolerance,
        "relTolerance": options.rel_tolerance,
        "labels": options.labels,
        "confidence": options.confidence,
        "examples": options.examples,
        "valueSample": options.value_sample,
        "guardrails": jsonable(options.guardrails),
    }


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


# Derived figures that are properties, included in the JSON form of their class.
_DERIVED: dict[str, tuple[str, ...]] = {
    "Agreement": ("sampling_rate", "exact_rate", "agreement_rate", "pair_agreement_rate"),
    "LabelSummary": ("flip_rate",),
    "Rate": ("value",),
    "VariantFigures": ("copy_rate",),
}


def jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {_camel(f.name): jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
        for name in _DERIVED.get(type(value).__name__, ()):
            out[_camel(name)] = jsonable(getattr(value, name))
        return out
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)
