"""Streaming agreement of one shadow with production: running sums and bounded samples.

Memory per shadow is bounded whatever the number of pairs: counters, a confusion matrix of at
most ``max_classes`` labels a side, a reservoir of ``examples`` disagreements and as many
failures, and a uniform sample of ``value_sample`` numeric value pairs for the KS test.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Mapping
from typing import Any

from shadowlab.analysis.agreement import (
    BYTES,
    LABELS,
    NONE,
    NUMERIC,
    Agreement,
    Confusion,
    Example,
    Failure,
    LabelSummary,
    NumericSummary,
)
from shadowlab.analysis.inputs import CompareOptions
from shadowlab.analysis.payload import (
    OK,
    Parsed,
    Value,
    endpoint_payload,
    inference_time,
    label_of,
    label_order,
    outcome,
    parse_output,
    preview,
    safe_text,
    show_value,
)
from shadowlab.analysis.selector import Selector
from shadowlab.analysis.stats import PairedSample, Reservoir, ks_test

_MAX_PROBLEMS = 5  # distinct parse problems remembered per shadow


class AgreementBuilder:
    """Feed it pairs with ``add``; ``finish`` gives the ``Agreement``."""

    def __init__(self, shadow: str, options: CompareOptions, selector: Selector | None) -> None:
        self.shadow = shadow
        self.options = options
        self.selector = selector
        rng = random.Random(f"{options.seed}/{shadow}")
        self.examples: Reservoir[Example] = Reservoir(options.examples, rng)
        self.failures: Reservoir[Failure] = Reservoir(options.examples, rng)
        self.sample = PairedSample(options.value_sample, rng)
        self.outcomes: Counter[str] = Counter()
        self.pairs = self.orphans = self.compared = self.identical = self.agreeing_pairs = 0
        self.values = self.exact = self.agreeing = self.shape_mismatches = self.no_output = 0
        self.not_parsed: Counter[str] = Counter()
        self.problems: list[str] = []
        # numbers
        self.numeric_values = self.diffs = 0
        self.sum_abs = self.sum_diff = 0.0
        self.max_abs: float | None = None
        self.max_abs_event: str | None = None
        self.all_integer = True
        # labels (every non-raw value also counts as a label, until the kind is known)
        self.label_values = self.flips = self.raw_values = 0
        self.non_numeric = False
        self.confusion: Counter[tuple[str, str]] | None = Counter()
        self.classes: set[str] = set()

    def add(
        self,
        event_id: str,
        production: Mapping[str, Any] | None,
        shadow: Mapping[str, Any],
        production_output: Parsed | None,
    ) -> None:
        """One pair; ``production_output`` is production's parsed output (parsed once)."""
        first, second = outcome(production), outcome(shadow)
        self.outcomes[f"{first}/{second}"] += 1
        if production is None:
            self.orphans += 1
            return
        self.pairs += 1
        if second != OK:
            self.failures.offer(lambda: self._failure(event_id, shadow, second))
        if first != OK or second != OK:
            return
        payload = endpoint_payload(shadow, "endpointOutput")
        if production_output is None or payload is None:
            self.no_output += 1
            return
        shadow_output = parse_output(payload, self.selector)
        for side, parsed in (("production", production_output), ("shadow", shadow_output)):
            if parsed.problem is not None:
                self.not_parsed[side] += 1
                if len(self.problems) < _MAX_PROBLEMS and parsed.problem not in self.problems:
                    self.problems.append(parsed.problem)
        self._compare(event_id, production, shadow, production_output.values, shadow_output.values)

    def _compare(
        self,
        event_id: str,
        production: Mapping[str, Any],
        shadow: Mapping[str, Any],
        first: list[Value],
        second: list[Value],
    ) -> None:
        self.compared += 1
        if len(first) != len(second):
            self.shape_mismatches += 1
            count = max(len(first), len(second))
            self.values += count
            detail = f"production gave {len(first)} values, the shadow {len(second)}"
            self._example(event_id, production, shadow, count, count, detail)
            return
        differing = exact_count = 0
        detail = ""
        for index, (a, b) in enumerate(zip(first, second, strict=True)):
            exact, agree = self._value(a, b, event_id)
            exact_count += exact
            if not agree:
                differing += 1
                if not detail:
                    detail = f"value {index}: production {show_value(a)}, shadow {show_value(b)}"
        self.values += len(first)
        self.exact += exact_count
        self.agreeing += len(first) - differing
        self.identical += exact_count == len(first)
        if differing == 0:
            self.agreeing_pairs += 1
        else:
            self._example(event_id, production, shadow, differing, len(first), detail)

    def _value(self, a: Value, b: Value, event_id: str) -> tuple[bool, bool]:
        if isinstance(a, float) and isinstance(b, float):
            return self._numbers(a, b, event_id)
        if isinstance(a, bytes) or isinstance(b, bytes):
            self.raw_values += 1
            same = a == b
            return same, same
        self.non_numeric = True
        same = self._labels(a, b)
        return same, same

    def _numbers(self, a: float, b: float, event_id: str) -> tuple[bool, bool]:
        self.numeric_values += 1
        integers = a.is_integer() and b.is_integer()
        if not integers:
            self.all_integer = False
        exact = a == b or (a != a and b != b)  # NaN answers NaN: the same output
        labels = self.options.labels
        if exact or labels is True or (labels is None and integers):
            agree = exact
        else:
            tolerance = max(
                self.options.abs_tolerance, self.options.rel_tolerance * max(abs(a), abs(b))
            )
            agree = abs(a - b) <= tolerance
        if math.isfinite(a) and math.isfinite(b):
            diff = b - a
            self.diffs += 1
            self.sum_diff += diff
            self.sum_abs += abs(diff)
            if self.max_abs is None or abs(diff) > self.max_abs:
                self.max_abs, self.max_abs_event = abs(diff), event_id
            self.sample.add(a, b)
        self._labels(a, b)
        return exact, agree

    def _labels(self, a: Value, b: Value) -> bool:
        first, second = label_of(a), label_of(b)
        self.label_values += 1
        same = first == second
        if not same:
            self.flips += 1
        if self.confusion is not None:
            self.confusion[(first, second)] += 1
            self.classes.add(first)
            self.classes.add(second)
            if len(self.classes) > self.options.max_classes:
                self.confusion = None
                self.classes = set()
        return same

    def _example(
        self,
        event_id: str,
        production: Mapping[str, Any],
        shadow: Mapping[str, Any],
        differing: int,
        values: int,
        detail: str,
    ) -> None:
        limit = self.options.preview_chars

        def make() -> Example:
            return Example(
                event_id=safe_text(event_id, 80),
                inference_time=inference_time(production),
                input=preview(endpoint_payload(production, "endpointInput"), limit),
                production=preview(endpoint_payload(production, "endpointOutput"), limit),
                shadow=preview(endpoint_payload(shadow, "endpointOutput"), limit),
                differing_values=differing,
                values=values,
                detail=detail,
            )

        self.examples.offer(make)

    def _failure(self, event_id: str, shadow: Mapping[str, Any], kind: str) -> Failure:
        extension = shadow.get("shadowlab")
        info = extension if isinstance(extension, Mapping) else {}
        status, error = info.get("status"), info.get("error")
        return Failure(
            event_id=safe_text(event_id, 80),
            inference_time=inference_time(shadow),
            outcome=kind,
            status=status if isinstance(status, int) else None,
            error=safe_text(error, self.options.preview_chars) if isinstance(error, str) else None,
            input=preview(endpoint_payload(shadow, "endpointInput"), self.options.preview_chars),
        )

    def _kind(self) -> str:
        if self.options.labels is not None:
            return LABELS if self.options.labels else NUMERIC
        if self.label_values == 0:
            return BYTES if self.raw_values else NONE
        return LABELS if self.non_numeric or self.all_integer else NUMERIC

    def finish(self, production_variant: str | None, production_records: int) -> Agreement:
        kind = self._kind()
        numeric = None
        if self.numeric_values:
            numeric = NumericSummary(
                values=self.numeric_values,
                mean_abs_diff=self.sum_abs / self.diffs if self.diffs else None,
                max_abs_diff=self.max_abs,
                max_abs_diff_event=self.max_abs_event,
                mean_diff=self.sum_diff / self.diffs if self.diffs else None,
            )
        labels = None
        if self.label_values:
            labels = LabelSummary(
                self.label_values, self.flips, self._confusion(), self.confusion is None
            )
        notes = []
        if self.sample.seen > self.sample.capacity:
            notes.append(
                f"KS test on a uniform sample of {self.sample.capacity:,} of "
                f"{self.sample.seen:,} value pairs"
            )
        return Agreement(
            shadow=self.shadow,
            production_variant=production_variant,
            production_records=production_records,
            pairs=self.pairs,
            orphans=self.orphans,
            outcomes=dict(sorted(self.outcomes.items())),
            compared_pairs=self.compared,
            identical_pairs=self.identical,
            agreeing_pairs=self.agreeing_pairs,
            values=self.values,
            exact_values=self.exact,
            agreeing_values=self.agreeing,
            kind=kind,
            shape_mismatches=self.shape_mismatches,
            no_output=self.no_output,
            not_parsed=dict(self.not_parsed),
            parse_problems=list(self.problems),
            numeric=numeric,
            labels=labels,
            ks=ks_test(self.sample.first, self.sample.second, self.sample.seen),
            examples=self.examples.items,
            failures=self.failures.items,
            failed_pairs=self.failures.seen,
            sampled_value_pairs=self.options.value_sample,
            notes=notes,
        )

    def _confusion(self) -> Confusion | None:
        if self.confusion is None:
            return None
        labels = sorted(self.classes, key=label_order)
        index = {label: i for i, label in enumerate(labels)}
        counts = [[0] * len(labels) for _ in labels]
        for (first, second), count in self.confusion.items():
            counts[index[first]][index[second]] += count
        return Confusion(labels, counts)
