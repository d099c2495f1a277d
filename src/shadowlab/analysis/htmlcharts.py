"""The operational charts of the HTML report, as inline SVG (see ``svg``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from shadowlab.analysis import fmt, svg
from shadowlab.analysis.agreement import LABELS, Agreement
from shadowlab.analysis.operational import VariantFigures

PALETTE = ("#1f6fb4", "#e8710a", "#2e9e44", "#8e57c0", "#c9302c", "#7a5a3a", "#d05fa8")


def colors_for(names: Sequence[str]) -> dict[str, str]:
    """One colour per variant, production first, stable across the report's charts."""
    colors: dict[str, str] = {}
    for name in names:
        colors.setdefault(name, PALETTE[len(colors) % len(PALETTE)])
    return colors


def operational_charts(variants: Sequence[VariantFigures], colors: dict[str, str]) -> list[str]:
    return [
        _latency_over_time(variants, colors),
        _distribution(variants, colors),
        _error_rates(variants, colors),
        _throughput(variants, colors),
    ]


def _timeline(variants: Sequence[VariantFigures]) -> tuple[int, str]:
    minutes = [p.minute for v in variants for p in v.per_minute]
    start = min(minutes) if minutes else 0
    when = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return start, f"minutes since {when}"


def _latency_over_time(variants: Sequence[VariantFigures], colors: dict[str, str]) -> str:
    start, label = _timeline(variants)
    series = []
    for v in variants:
        for name, dashed in (("p50", False), ("p99", True)):
            attr = "latency_p50_us" if name == "p50" else "latency_p99_us"
            points = [
                ((p.minute - start) / 60, value / 1000)
                for p in v.per_minute
                if (value := getattr(p, attr)) is not None
            ]
            series.append(svg.Series(f"{v.variant} {name}", points, colors[v.variant], dashed))
    return svg.line_chart(
        series, title="ModelLatency per minute (p50 solid, p99 dashed)", x_label=label, y_label="ms"
    )


def _distribution(variants: Sequence[VariantFigures], colors: dict[str, str]) -> str:
    series = [
        svg.Series(
            v.variant, [(us / 1000, q * 100) for q, us in v.distribution_us], colors[v.variant]
        )
        for v in variants
    ]
    return svg.line_chart(
        series,
        title="ModelLatency distribution (share of requests at or below)",
        x_label="ms",
        y_label="% of requests",
        y_format=lambda value: f"{value:g}%",
        y_from_zero=True,
    )


def _error_rates(variants: Sequence[VariantFigures], colors: dict[str, str]) -> str:
    bars = [
        svg.Bar(
            v.variant,
            (v.error_rate.value or 0.0) * 100,
            colors[v.variant],
            None if v.error_rate.low is None else v.error_rate.low * 100,
            None if v.error_rate.high is None else v.error_rate.high * 100,
            f"{fmt.pct(v.error_rate.value, 2)} ({v.model_errors:,} of {v.invocations:,})",
        )
        for v in variants
    ]
    return svg.bar_chart(
        bars, title="Error rate (with interval)", value_format=lambda x: f"{x:.2g}%"
    )


def _throughput(variants: Sequence[VariantFigures], colors: dict[str, str]) -> str:
    start, label = _timeline(variants)
    series = [
        svg.Series(
            v.variant,
            [((p.minute - start) / 60, p.invocations) for p in v.per_minute],
            colors[v.variant],
        )
        for v in variants
    ]
    return svg.line_chart(
        series, title="Invocations per minute", x_label=label, y_label="invocations"
    )


def agreement_chart(a: Agreement, color: str) -> str:
    bars = [
        svg.Bar("exact match", a.exact_rate or 0.0, color, text=fmt.pct(a.exact_rate, 2)),
        svg.Bar("agreement", a.agreement_rate or 0.0, color, text=fmt.pct(a.agreement_rate, 2)),
        svg.Bar(
            "agreeing pairs",
            a.pair_agreement_rate or 0.0,
            color,
            text=fmt.pct(a.pair_agreement_rate, 2),
        ),
        svg.Bar("sampling rate", a.sampling_rate or 0.0, "#999", text=fmt.pct(a.sampling_rate)),
    ]
    if a.kind == LABELS and a.labels is not None:
        flips = a.labels.flip_rate
        bars.append(svg.Bar("label flips", flips or 0.0, "#c9302c", text=fmt.pct(flips, 2)))
    return svg.bar_chart(
        bars,
        title=f"Agreement: {a.shadow} vs production",
        value_format=lambda x: fmt.pct(x, 0),
        maximum=1.0,
    )
