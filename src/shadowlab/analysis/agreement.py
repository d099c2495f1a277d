"""Request-by-request agreement of one shadow variant with production: the results.

Counting units, stated with every figure:

- **pairs**: production records with a record of this shadow (same ``eventId``); a pair is
  *compared* when both variants answered 2xx and both outputs were captured.
- **values**: an output with k rows or elements gives k values (see ``payload``); values are
  compared position by position. A compared pair whose two outputs have different numbers of
  values counts as max(k_production, k_shadow) values, all disagreeing.
- the **sampling rate** is pairs / production records of the shadow's source variant.

``exact`` values are equal (numbers numerically, labels as text, raw outputs byte for byte);
``agreeing`` values are equal within the numeric tolerance (labels, raw bytes and two
integer-valued numbers when the kind is auto-detected must be equal). For label outputs the
agreement rate is the exact rate and the flip rate is its complement.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shadowlab.analysis.stats import KSResult, ratio

LABELS, NUMERIC, BYTES, NONE = "labels", "numeric", "bytes", "none"


@dataclass(frozen=True, slots=True)
class Example:
    """One disagreeing pair, decoded and cut for display (it may hold anything a client sent)."""

    event_id: str
    inference_time: str | None
    input: str
    production: str
    shadow: str
    differing_values: int
    values: int
    detail: str


@dataclass(frozen=True, slots=True)
class Failure:
    """A pair whose shadow gave no 2xx answer (production answered or not: see ``outcomes``)."""

    event_id: str
    inference_time: str | None
    outcome: str  # error | failed | timeout
    status: int | None
    error: str | None
    input: str


@dataclass(frozen=True, slots=True)
class NumericSummary:
    """Differences over compared numeric values whose difference is finite."""

    values: int
    mean_abs_diff: float | None
    max_abs_diff: float | None
    max_abs_diff_event: str | None
    mean_diff: float | None  # shadow minus production: a bias


@dataclass(frozen=True, slots=True)
class Confusion:
    """counts[i][j]: values production labelled labels[i] and the shadow labels[j]."""

    labels: list[str]
    counts: list[list[int]]


@dataclass(frozen=True, slots=True)
class LabelSummary:
    values: int
    flips: int
    confusion: Confusion | None  # None beyond ``max_classes`` labels (``classes_capped``)
    classes_capped: bool

    @property
    def flip_rate(self) -> float | None:
        return ratio(self.flips, self.values)


@dataclass(frozen=True, slots=True)
class Agreement:
    shadow: str
    production_variant: str | None
    production_records: int
    pairs: int
    orphans: int  # shadow records whose production record is missing
    outcomes: dict[str, int]  # "production outcome/shadow outcome" -> pairs
    compared_pairs: int
    identical_pairs: int
    agreeing_pairs: int
    values: int
    exact_values: int
    agreeing_values: int
    kind: str  # labels | numeric | bytes | none
    shape_mismatches: int
    no_output: int  # both answered but an output was not captured
    not_parsed: dict[str, int]  # side -> outputs that fell back to raw bytes
    parse_problems: list[str]
    numeric: NumericSummary | None
    labels: LabelSummary | None
    ks: KSResult | None
    examples: list[Example]
    failures: list[Failure]
    failed_pairs: int  # pairs whose shadow gave no 2xx answer (the failures are a sample)
    sampled_value_pairs: int  # cap of the KS sample, stated with it
    notes: list[str] = field(default_factory=list)

    @property
    def sampling_rate(self) -> float | None:
        return ratio(self.pairs, self.production_records)

    @property
    def exact_rate(self) -> float | None:
        return ratio(self.exact_values, self.values)

    @property
    def agreement_rate(self) -> float | None:
        if self.kind == LABELS:
            return self.exact_rate
        return ratio(self.agreeing_values, self.values)

    @property
    def pair_agreement_rate(self) -> float | None:
        agreeing = self.identical_pairs if self.kind == LABELS else self.agreeing_pairs
        return ratio(agreeing, self.compared_pairs)

    @property
    def disagreeing_pairs(self) -> int:
        agreeing = self.identical_pairs if self.kind == LABELS else self.agreeing_pairs
        return self.compared_pairs - agreeing

    def shadow_outcomes(self) -> dict[str, int]:
        """Pairs by the shadow's outcome (ok, error, failed, timeout); orphans not included."""
        totals: dict[str, int] = {}
        for key, count in self.outcomes.items():
            production, _, shadow = key.partition("/")
            if production != "missing":
                totals[shadow] = totals.get(shadow, 0) + count
        return totals

    def error_counts(self) -> tuple[int, int, int]:
        """Over pairs with both records: (pairs, production non-2xx, shadow non-2xx)."""
        pairs = production = shadow = 0
        for key, count in self.outcomes.items():
            first, _, second = key.partition("/")
            if first == "missing":
                continue
            pairs += count
            production += count if first != "ok" else 0
            shadow += count if second != "ok" else 0
        return pairs, production, shadow
