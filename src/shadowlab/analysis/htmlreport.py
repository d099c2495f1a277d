"""``render_html``: the comparison as one self-contained HTML file.

No script, no external stylesheet, font or image: the CSS is inline and the charts are inline
SVG (``svg``), so the file opens offline and from an e-mail attachment alike. Every piece of
text, captured data above all, is HTML-escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from shadowlab.analysis import fmt
from shadowlab.analysis.agreement import LABELS, Agreement, Confusion
from shadowlab.analysis.comparison import Comparison
from shadowlab.analysis.facts import agreement_facts
from shadowlab.analysis.htmlcharts import agreement_chart, colors_for, operational_charts
from shadowlab.analysis.operational import VariantFigures
from shadowlab.analysis.payload import escape_controls

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;margin:0;
background:#f6f7f9}main{max-width:1100px;margin:0 auto;padding:16px 24px}
h1{font-size:22px;margin:8px 0}h2{font-size:18px;margin:28px 0 8px}h3{font-size:15px}
section{background:#fff;border:1px solid #dde;border-radius:6px;padding:12px 18px;margin:14px 0;
overflow-x:auto}
table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 8px;border-bottom:1px solid #eee;
text-align:left;vertical-align:top;overflow-wrap:break-word}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.verdict h2{margin-top:4px}.pass{color:#1b7a33}.fail{color:#b3261e}.nodata{color:#8a6d00}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;color:#fff;font-weight:bold}
.badge.pass{background:#1b7a33}.badge.fail{background:#b3261e}.badge.nodata{background:#a68300}
.charts{display:flex;flex-wrap:wrap;gap:12px}svg.chart{background:#fff;border:1px solid #eee}
code{font:12px ui-monospace,monospace;white-space:pre-wrap;word-break:break-all}
td.cell{text-align:right;min-width:44px}.muted{color:#666}.nowrap{white-space:nowrap}
td.id{word-break:break-all;min-width:7em}td.data{min-width:14em}
"""
_STATUS_CLASS = {"pass": "pass", "fail": "fail", "not enough data": "nodata"}


def _e(value: object) -> str:
    """Text into HTML: markup escaped, and control characters shown as escapes."""
    return escape(escape_controls(str(value)), quote=True)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], classes: str = "") -> str:
    """Cells are already-escaped HTML. ``classes``: one letter a column, ``n`` a number
    (right-aligned), ``w`` no wrapping, ``i`` an identifier, ``d`` captured data, ``.`` none."""
    names = {"n": "n", "w": "nowrap", "i": "id", "d": "data"}

    def cls(i: int) -> str:
        name = names.get(classes[i : i + 1])
        return f' class="{name}"' if name else ""

    head = "".join(f"<th{cls(i)}>{_e(h)}</th>" for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f"<td{cls(i)}>{cell}</td>" for i, cell in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(comparison: Comparison) -> str:
    c = comparison
    colors = colors_for([v.variant for v in c.variants] + [a.shadow for a in c.agreements])
    title = "shadowlab comparison" + (f": {c.experiment.name}" if c.experiment.name else "")
    body = [
        f"<h1>{_e(title)}</h1>",
        _heading(c),
        _verdict(c),
        _operational(c, colors),
        *(_agreement(a, c, colors) for a in c.agreements),
        _footer(c),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )


def _heading(c: Comparison) -> str:
    e = c.experiment
    facts = [
        ("endpoint", e.endpoint or "-"),
        ("status", e.status or "-"),
        ("window", f"{e.start or '?'} .. {e.end or '?'}"),
        ("production variant", e.production_variant or "-"),
        (
            "shadow variants",
            ", ".join(
                f"{n} ({'?' if p is None else f'{p:g}'}% sampled)" for n, p in e.shadows.items()
            )
            or "from the captures",
        ),
        ("captured pairs read", f"{c.pairs_read:,}"),
    ]
    rows = [[_e(k), _e(v)] for k, v in facts]
    return f"<section>{_table(['', ''], rows, 'w')}</section>"


def _verdict(c: Comparison) -> str:
    v = c.verdict
    klass = _STATUS_CLASS[v.status]
    rows = [
        [
            f'<span class="{_STATUS_CLASS[r.status]}">{_e(r.status)}</span>',
            _e(r.name),
            _e(r.shadow),
            _e(r.reason),
        ]
        for r in v.guardrails
    ]
    return (
        f'<section class="verdict" id="verdict"><h2>Verdict: <span class="badge {klass}">'
        f"{_e(v.status.upper())}</span></h2><p>{_e(v.summary)}</p>"
        f"{_table(['result', 'guardrail', 'shadow', 'reason'], rows, 'ww')}</section>"
    )


def _operational(c: Comparison, colors: dict[str, str]) -> str:
    variants = c.variants
    if not variants:
        return "<section><h2>Operational metrics</h2><p>No metrics given.</p></section>"
    level = f"{c.options['confidence'] * 100:g}%"
    counts = [
        [
            _e(v.variant),
            _e(v.role),
            *(_e(fmt.count(n)) for n in (v.invocations, v.errors_4xx, v.errors_5xx)),
            _e(fmt.count(v.model_errors)),
            _e(_error_rate(v)),
            _e(fmt.per_second(v.throughput_per_second)),
            _e(_copies(v)),
        ]
        for v in variants
    ]
    headers = ["variant", "role", "invocations", "4xx", "5xx", "model errors"]
    headers += [f"error rate [{level} CI]", "req/s", "copies sent / eligible"]
    latency = [
        [
            _e(v.variant),
            _e(fmt.count(v.latency_us["p50"].n)),
            *(_e(_latency(v, p)) for p in ("p50", "p90", "p99")),
        ]
        for v in variants
    ]
    table = _table(headers, counts, "..nnnnnnn") + _table(
        ["variant", "samples", "p50 ms", "p90 ms", "p99 ms"], latency, ".nnnn"
    )
    charts = operational_charts(variants, colors)
    notes = "".join(
        f'<p class="muted">{_e(v.variant)}: {_e(n)}</p>' for v in variants for n in v.notes
    )
    return (
        f'<section id="operational"><h2>Operational metrics</h2>'
        f'<p class="muted">ModelLatency in milliseconds with {level} distribution-free '
        f"confidence intervals; error rate = InvocationModelErrors / Invocations.</p>{table}"
        f'{notes}<div class="charts">{"".join(charts)}</div></section>'
    )


def _error_rate(v: VariantFigures) -> str:
    rate = v.error_rate
    interval = f" [{fmt.pct(rate.low, 2)}-{fmt.pct(rate.high, 2)}]" if rate.low is not None else ""
    return fmt.pct(rate.value, 2) + interval


def _copies(v: VariantFigures) -> str:
    if v.copies is None:
        return "-"
    return f"{v.copies.sent:,} / {v.copies.eligible:,} ({fmt.pct(v.copy_rate)})"


def _latency(v: VariantFigures, name: str) -> str:
    estimate = v.latency_us[name]
    return fmt.ms_with_interval(estimate.value, estimate.low, estimate.high)


def _agreement(a: Agreement, c: Comparison, colors: dict[str, str]) -> str:
    chart = agreement_chart(a, colors.get(a.shadow, "#e8710a"))
    facts = agreement_facts(a, c.options)
    rows = [[_e(k), _e(v)] for k, v in facts]
    parts = [
        f'<section class="agreement"><h2>Agreement: {_e(a.shadow)} vs '
        f"{_e(a.production_variant or '?')}</h2>",
        f'<div class="charts">{chart}</div>',
        _table(["", ""], rows, "w"),
    ]
    if a.kind == LABELS and a.labels is not None and a.labels.confusion is not None:
        parts.append(_heatmap(a.labels.confusion))
    parts.append(_disagreements(a))
    parts.append("</section>")
    return "".join(parts)


def _heatmap(matrix: Confusion) -> str:
    peak = max([n for row in matrix.counts for n in row] + [1])
    head = "".join(f'<th class="n">{_e(label)}</th>' for label in matrix.labels)
    rows = []
    for i, (label, counts) in enumerate(zip(matrix.labels, matrix.counts, strict=True)):
        cells = []
        for j, n in enumerate(counts):
            alpha = 0.0 if n == 0 else 0.12 + 0.78 * n / peak
            rgb = "46,158,68" if i == j else "201,48,44"
            cells.append(f'<td class="cell" style="background:rgba({rgb},{alpha:.2f})">{n:,}</td>')
        rows.append(f"<tr><th>{_e(label)}</th>{''.join(cells)}</tr>")
    return (
        "<h3>Confusion (rows: production label; columns: shadow label)</h3>"
        f'<table class="confusion"><thead><tr><th></th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _disagreements(a: Agreement) -> str:
    parts = []
    if a.examples:
        rows = [
            [
                _e(x.event_id),
                _e(x.inference_time or "-"),
                _e(x.detail),
                f"<code>{_e(x.input)}</code>",
                f"<code>{_e(x.production)}</code>",
                f"<code>{_e(x.shadow)}</code>",
            ]
            for x in a.examples
        ]
        parts.append(
            f"<h3>Disagreements ({len(a.examples):,} of {a.disagreeing_pairs:,}, "
            "a uniform sample)</h3>"
        )
        parts.append(
            _table(["event", "time", "difference", "input", "production", "shadow"], rows, "iw.ddd")
        )
    if a.failures:
        rows = [
            [
                _e(f.event_id),
                _e(f.inference_time or "-"),
                _e(f.outcome),
                _e("-" if f.status is None else f.status),
                _e(f.error or "-"),
                f"<code>{_e(f.input)}</code>",
            ]
            for f in a.failures
        ]
        parts.append(
            f"<h3>Shadow failures ({len(a.failures):,} of {a.failed_pairs:,}, "
            "a uniform sample)</h3>"
        )
        parts.append(
            _table(["event", "time", "outcome", "status", "error", "input"], rows, "iw.n.d")
        )
    return "".join(parts)


def _footer(c: Comparison) -> str:
    options = ", ".join(f"{k}: {v}" for k, v in c.options.items() if k != "guardrails")
    rails = ", ".join(f"{k}: {v}" for k, v in c.options["guardrails"].items())
    return f'<p class="muted">Options: {_e(options)}. Guardrails: {_e(rails)}.</p>'
