"""``render_text``: the comparison as a terminal summary, at most 100 columns wide.

Everything that comes from captured data (variant names, labels, event ids, payloads, errors)
has its control characters escaped, so a capture cannot drive the terminal.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence

from shadowlab.analysis import fmt
from shadowlab.analysis.agreement import LABELS, Agreement
from shadowlab.analysis.comparison import Comparison
from shadowlab.analysis.facts import agreement_facts
from shadowlab.analysis.operational import Estimate, VariantFigures
from shadowlab.analysis.payload import escape_controls

WIDTH = 100
SHOWN_EXAMPLES = 5
SHOWN_CLASSES = 12


def _s(text: object, limit: int = 60) -> str:
    """Captured text for the terminal: control characters escaped, cut to ``limit``."""
    return _cut(escape_controls(str(text)), limit)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 1)] + "~"


_NUMERIC = re.compile(r"^(-|[-+]?[0-9][0-9.,]*)")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: int = 2) -> list[str]:
    """Columns sized to fit, numbers right-aligned; the first column (names) is cut to keep
    within ``WIDTH`` when it can be."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    right = [i > 0 and all(_NUMERIC.match(r[i]) for r in rows) for i in range(len(headers))]
    overflow = indent + sum(widths) + 2 * (len(widths) - 1) - WIDTH
    if overflow > 0:
        widths[0] = max(6, widths[0] - overflow)
    lines = []
    for index, cells in enumerate([list(headers), *map(list, rows)]):
        parts = []
        for column, cell in enumerate(cells):
            cell = _cut(cell, widths[column])
            parts.append(
                cell.rjust(widths[column]) if right[column] else cell.ljust(widths[column])
            )
        lines.append((" " * indent + "  ".join(parts)).rstrip())
        if index == 0:
            lines.append(" " * indent + "  ".join("-" * w for w in widths))
    return lines


def _wrap(text: str, indent: int = 2, hang: int = 4) -> list[str]:
    # Keep a number with its unit on one line: wrap at ordinary spaces only.
    glued = text.replace(" ms", "\xa0ms").replace(" = ", "\xa0=\xa0")
    lines = textwrap.wrap(
        glued, WIDTH, initial_indent=" " * indent, subsequent_indent=" " * (indent + hang)
    )
    return [line.replace("\xa0", " ") for line in lines] or [""]


def render_text(comparison: Comparison) -> str:
    lines: list[str] = []
    lines += _heading(comparison)
    lines += _verdict(comparison)
    lines += _operational(comparison)
    for agreement in comparison.agreements:
        lines += _agreement(agreement, comparison)
    return "\n".join(_cut(line, WIDTH) for line in lines) + "\n"


def _heading(c: Comparison) -> list[str]:
    e = c.experiment
    title = "shadowlab comparison"
    if e.name:
        title += f": experiment {_s(e.name)}"
    if e.endpoint:
        title += f" on endpoint {_s(e.endpoint)}"
    if e.status:
        title += f" ({_s(e.status, 20)})"
    lines = [*_wrap(title, 0), "=" * min(WIDTH, len(title))]
    if e.start or e.end:
        lines.append(f"window {e.start or '?'} .. {e.end or '?'}")
    shadows = ", ".join(
        f"{_s(n)}" + ("" if p is None else f" (sampling {p:g}%)") for n, p in e.shadows.items()
    )
    lines += _wrap(
        f"production {_s(e.production_variant or '?')}; shadow {shadows or '(from captures)'}; "
        f"{c.pairs_read:,} captured pairs read",
        0,
    )
    return [*lines, ""]


def _verdict(c: Comparison) -> list[str]:
    v = c.verdict
    lines = _wrap(f"VERDICT: {v.status.upper()} - {v.summary}", 0)
    tags = {"pass": "[pass]", "fail": "[FAIL]", "not enough data": "[n/a] "}
    several = len({r.shadow for r in v.guardrails}) > 1
    for r in v.guardrails:
        name = f"{r.name} ({_s(r.shadow, 30)})" if several else r.name
        lines += _wrap(f"{tags[r.status]} {name}: {r.reason}", 2, 7)
    return [*lines, ""]


def _latency(estimate: Estimate) -> str:
    return fmt.ms_with_interval(estimate.value, estimate.low, estimate.high)


def _operational(c: Comparison) -> list[str]:
    variants: list[VariantFigures] = c.variants
    level = f"{c.options['confidence'] * 100:g}%"
    lines = ["Operational metrics (per variant, over the experiment's window)"]
    if not variants:
        return [*lines, "  no metrics given", ""]
    rows = []
    for v in variants:
        rate = v.error_rate
        ci = f" [{fmt.pct(rate.low, 2)}-{fmt.pct(rate.high, 2)}]" if rate.low is not None else ""
        rows.append(
            [
                _s(v.variant, 40),
                v.role,
                fmt.count(v.invocations),
                fmt.count(v.errors_4xx),
                fmt.count(v.errors_5xx),
                fmt.count(v.model_errors),
                fmt.pct(rate.value, 2) + ci,
                fmt.per_second(v.throughput_per_second),
            ]
        )
    headers = ["variant", "role", "invocations", "4xx", "5xx", "model errors"]
    lines += table([*headers, f"error rate [{level} CI]", "req/s"], rows)
    lines += ["", f"  ModelLatency in ms [{level} CI]"]
    rows = [
        [_s(v.variant, 40), fmt.count(v.latency_us["p50"].n)]
        + [_latency(v.latency_us[p]) for p in ("p50", "p90", "p99")]
        for v in variants
    ]
    lines += table(["variant", "samples", "p50", "p90", "p99"], rows)
    for v in variants:
        if v.copies is not None:
            k = v.copies
            lines += _wrap(
                f"{_s(v.variant)}: {k.sent:,} copies sent of {k.eligible:,} eligible requests "
                f"(effective sampling {fmt.pct(v.copy_rate)}{_configured(c, v.variant)}); "
                f"shed {k.shed:,}, "
                f"timeouts {k.timeouts:,}, errors {k.errors:,}"
            )
        for note in v.notes:
            lines += _wrap(f"note ({_s(v.variant)}): {note}")
    return [*lines, ""]


def _configured(c: Comparison, shadow: str) -> str:
    percentage = c.experiment.shadows.get(shadow)
    return "" if percentage is None else f", configured {percentage:g}%"


def _agreement(a: Agreement, c: Comparison) -> list[str]:
    title = f"Agreement: {_s(a.shadow)} vs {_s(a.production_variant or '?')} ({a.kind} outputs)"
    lines = [title, "-" * min(WIDTH, len(title))]
    for name, text in agreement_facts(a, c.options):
        lines += _wrap(f"{name:<16} {_s(text, 400)}", 2, 17)
    lines += _confusion(a)
    lines += _examples(a)
    return [*lines, ""]


def _confusion(a: Agreement) -> list[str]:
    if a.kind != LABELS or a.labels is None:
        return []
    matrix = a.labels.confusion
    if matrix is None:
        return _wrap("confusion: more than the kept number of labels; see the JSON or HTML")
    if len(matrix.labels) > SHOWN_CLASSES:
        return _wrap(f"confusion: {len(matrix.labels)} labels; see the JSON or HTML report")
    k = len(matrix.labels)
    limit = max(4, min(12, (WIDTH - 4 - 2 * k) // (k + 1)))
    labels = [_s(label, limit) for label in matrix.labels]
    rows = [
        [label, *(f"{n:,}" for n in counts)]
        for label, counts in zip(labels, matrix.counts, strict=True)
    ]
    lines = table(["", *labels], rows, indent=4)
    if max(len(line) for line in lines) > WIDTH:
        return _wrap(f"confusion: {k} labels do not fit here; see the JSON or HTML report")
    return ["", "  confusion (rows: production label, columns: shadow label)", *lines]


def _examples(a: Agreement) -> list[str]:
    lines: list[str] = []
    if a.examples:
        lines += [
            "",
            f"  disagreements ({min(len(a.examples), SHOWN_EXAMPLES)} of "
            f"{a.disagreeing_pairs:,}, a uniform sample)",
        ]
        for x in a.examples[:SHOWN_EXAMPLES]:
            lines += _wrap(f"{_s(x.event_id, 40)} {x.inference_time or ''}: {_s(x.detail, 120)}", 4)
            lines.append(_cut(f"      input      {x.input}", WIDTH))
            lines.append(_cut(f"      production {x.production}", WIDTH))
            lines.append(_cut(f"      shadow     {x.shadow}", WIDTH))
    if a.failures:
        shown = min(len(a.failures), SHOWN_EXAMPLES)
        lines += ["", f"  shadow failures ({shown} of {a.failed_pairs:,}, a uniform sample)"]
        for f in a.failures[:SHOWN_EXAMPLES]:
            status = "" if f.status is None else f" status {f.status}"
            lines += _wrap(f"{_s(f.event_id, 40)} {f.outcome}{status}: {f.error or '-'}", 4)
    return lines
