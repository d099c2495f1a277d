"""The agreement figures as (name, sentence) pairs, each with its sample size: both renderings
show the same words.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shadowlab.analysis import fmt
from shadowlab.analysis.agreement import LABELS, NUMERIC, Agreement


def agreement_facts(a: Agreement, options: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Text here may hold captured data (parse problems): escape it for the medium."""
    if a.kind == LABELS:
        tolerance = "labels must be equal"
    else:
        tolerance = f"within abs {options['absTolerance']:g} or rel {options['relTolerance']:g}"
    agreeing = a.compared_pairs - a.disagreeing_pairs
    facts = [
        ("output kind", a.kind),
        (
            "pairs",
            f"{a.pairs:,} of {a.production_records:,} production records (sampling "
            f"{fmt.pct(a.sampling_rate)}); {a.compared_pairs:,} compared",
        ),
        ("values", f"{a.values:,} compared (a request with k rows counts k values)"),
        ("exact match", f"{fmt.pct(a.exact_rate, 2)} ({a.exact_values:,} of {a.values:,} values)"),
        ("agreement", f"{fmt.pct(a.agreement_rate, 2)} of {a.values:,} values, {tolerance}"),
        (
            "agreeing pairs",
            f"{fmt.pct(a.pair_agreement_rate, 2)} ({agreeing:,} of {a.compared_pairs:,}); "
            f"{a.disagreeing_pairs:,} disagree",
        ),
    ]
    if a.labels is not None and a.kind == LABELS:
        flips = f"{a.labels.flips:,} of {a.labels.values:,}"
        facts.append(("label flips", f"{fmt.pct(a.labels.flip_rate, 2)} ({flips})"))
    if a.numeric is not None and a.kind == NUMERIC:
        n = a.numeric
        facts.append(
            (
                "differences",
                f"mean |diff| {fmt.number(n.mean_abs_diff)}, max |diff| "
                f"{fmt.number(n.max_abs_diff)} (event {n.max_abs_diff_event or '-'}), "
                f"mean shadow-production {fmt.number(n.mean_diff)}, over {n.values:,} values",
            )
        )
    if a.ks is not None:
        facts.append(
            (
                "KS test",
                f"D = {a.ks.statistic:.4f}, p = {a.ks.p_value:.3g} (n = {a.ks.n_production:,} "
                f"values a side, of {a.ks.sampled_from:,} value pairs)",
            )
        )
    outcomes = ", ".join(f"{k} {n:,}" for k, n in a.shadow_outcomes().items())
    facts.append(("shadow outcomes", outcomes or "-"))
    extra = [
        (a.shape_mismatches, "pairs with different numbers of values"),
        (a.no_output, "pairs without a captured output"),
        (a.orphans, "shadow records without a production record"),
        *((n, f"{side} outputs not parsed, compared as bytes") for side, n in a.not_parsed.items()),
    ]
    facts += [("also", f"{n:,} {what}") for n, what in extra if n]
    facts += [("parse problem", problem) for problem in a.parse_problems]
    facts += [("note", note) for note in a.notes]
    return facts
