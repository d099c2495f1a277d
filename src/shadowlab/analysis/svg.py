"""Inline SVG charts, written by hand: a line chart and a horizontal bar chart.

Every chart is one ``<svg>`` element, well-formed XML (so it can be checked with an XML
parser), with no external reference, fonts or scripts; all text is escaped. Colours and sizes
are attributes, so the charts need no stylesheet.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

FONT = 'font-family="system-ui, sans-serif" font-size="11"'
AXIS = "#555"
GRID = "#e3e3e3"


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    points: Sequence[tuple[float, float]]
    color: str
    dashed: bool = False


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: float
    color: str
    low: float | None = None  # an interval drawn as a whisker
    high: float | None = None
    text: str = ""  # shown after the bar


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 5 x 10^k steps) covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return [0.0, 1.0]
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    return [round(k * step, 12) for k in range(first, last + 1)]


def _text(x: float, y: float, content: str, anchor: str = "start", extra: str = "") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {FONT} fill="#222"{extra}>'
        f"{escape(content)}</text>"
    )


def _open(width: int, height: int, title: str) -> list[str]:
    return [
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        _text(width / 2, 16, title, "middle", ' font-weight="bold"'),
    ]


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_format: Callable[[float], str] = lambda value: f"{value:g}",
    y_format: Callable[[float], str] = lambda value: f"{value:g}",
    width: int = 520,
    height: int = 270,
    y_from_zero: bool = True,
) -> str:
    """Lines over a shared x axis, with a legend; a series of one point is drawn as a dot."""
    left, right, top = 64, 16, 28
    legend = _legend(series, left, width - right)
    bottom = 44 + 16 * len(legend)
    height += 16 * (len(legend) - 1)
    points = [p for s in series for p in s.points if math.isfinite(p[0]) and math.isfinite(p[1])]
    parts = _open(width, height, title)
    if not points:
        parts.append(_text(width / 2, height / 2, "no data", "middle"))
        return "".join([*parts, "</svg>"])
    x_low, x_high = min(p[0] for p in points), max(p[0] for p in points)
    y_low = 0.0 if y_from_zero else min(p[1] for p in points)
    y_ticks = nice_ticks(y_low, max(p[1] for p in points))
    x_ticks = nice_ticks(x_low, x_high)
    x_ticks = [t for t in x_ticks if x_low <= t <= x_high] or [x_low]
    y_low, y_high = y_ticks[0], y_ticks[-1]
    plot_w, plot_h = width - left - right, height - top - bottom

    def sx(value: float) -> float:
        span = x_high - x_low
        return left + (plot_w / 2 if span == 0 else (value - x_low) / span * plot_w)

    def sy(value: float) -> float:
        return top + plot_h - (value - y_low) / ((y_high - y_low) or 1) * plot_h

    for tick in y_ticks:
        y = sy(tick)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="{GRID}"/>'
        )
        parts.append(_text(left - 6, y + 4, y_format(tick), "end"))
    for tick in x_ticks:
        x = sx(tick)
        parts.append(
            f'<line x1="{x:.1f}" y1="{top + plot_h}" x2="{x:.1f}" y2="{top + plot_h + 4}" '
            f'stroke="{AXIS}"/>'
        )
        parts.append(_text(x, top + plot_h + 16, x_format(tick), "middle"))
    parts.append(
        f'<path d="M{left},{top} V{top + plot_h} H{width - right}" fill="none" stroke="{AXIS}"/>'
    )
    parts.append(_text(left + plot_w / 2, top + plot_h + 32, x_label, "middle"))
    parts.append(
        _text(
            14,
            top + plot_h / 2,
            y_label,
            "middle",
            f' transform="rotate(-90 14 {top + plot_h / 2:.1f})"',
        )
    )
    for s in series:
        drawn = [(sx(x), sy(y)) for x, y in s.points if math.isfinite(x) and math.isfinite(y)]
        dash = ' stroke-dasharray="5 3"' if s.dashed else ""
        if len(drawn) == 1:
            ((x, y),) = drawn
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{s.color}"/>')
        elif drawn:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in drawn)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{s.color}" stroke-width="2"{dash}/>'
            )
    for row, items in enumerate(legend):
        y = top + plot_h + 52 + 16 * row
        for s, x, name in items:
            dash = ' stroke-dasharray="5 3"' if s.dashed else ""
            parts.append(
                f'<line x1="{x:.1f}" y1="{y - 4:.1f}" x2="{x + 18:.1f}" y2="{y - 4:.1f}" '
                f'stroke="{s.color}" stroke-width="2"{dash}/>'
            )
            parts.append(_text(x + 22, y, name))
    parts.append("</svg>")
    return "".join(parts)


def _legend(
    series: Sequence[Series], left: float, right: float
) -> list[list[tuple[Series, float, str]]]:
    """Legend entries laid out in rows that fit between ``left`` and ``right``."""
    rows: list[list[tuple[Series, float, str]]] = [[]]
    x = left
    for s in series:
        name = _cut(s.name, 40)
        item = 30 + 6.5 * len(name)  # swatch, gap and an estimate of the text's width
        if rows[-1] and x + item > right:
            rows.append([])
            x = left
        rows[-1].append((s, x, name))
        x += item
    return rows


def bar_chart(
    bars: Sequence[Bar],
    *,
    title: str,
    value_format: Callable[[float], str],
    maximum: float | None = None,
    width: int = 520,
    label_width: int = 150,
) -> str:
    """Horizontal bars from zero, one per row, each with an optional interval whisker."""
    row, top = 26, 28
    height = top + row * max(len(bars), 1) + 24
    parts = _open(width, height, title)
    if not bars:
        parts.append(_text(width / 2, top + 16, "no data", "middle"))
        return "".join([*parts, "</svg>"])
    finite = [b for b in bars if math.isfinite(b.value)]
    top_value = max([b.high or b.value for b in finite] + [maximum or 0.0, 1e-12])
    scale_max = maximum if maximum is not None else nice_ticks(0.0, top_value)[-1]
    plot_w = width - label_width - 150  # room for the value's text after the bar

    def sx(value: float) -> float:
        return label_width + max(0.0, min(value, scale_max)) / scale_max * plot_w

    for index, bar in enumerate(bars):
        y = top + index * row
        parts.append(_text(label_width - 6, y + 16, _cut(bar.label, label_width // 7), "end"))
        value = bar.value if math.isfinite(bar.value) else 0.0
        parts.append(
            f'<rect x="{label_width}" y="{y + 4}" width="{sx(value) - label_width:.1f}" '
            f'height="{row - 8}" fill="{bar.color}"/>'
        )
        if bar.low is not None and bar.high is not None:
            low, high, mid = sx(bar.low), sx(bar.high), y + row / 2
            parts.append(
                f'<path d="M{low:.1f},{mid - 5:.1f} v10 M{low:.1f},{mid:.1f} H{high:.1f} '
                f'M{high:.1f},{mid - 5:.1f} v10" stroke="#222" fill="none"/>'
            )
        label = bar.text or value_format(bar.value)
        parts.append(_text(sx(max(value, bar.high or 0.0)) + 6, y + 16, label))
    axis_y = top + row * len(bars)
    parts.append(
        f'<line x1="{label_width}" y1="{axis_y}" x2="{label_width + plot_w}" y2="{axis_y}" '
        f'stroke="{AXIS}"/>'
    )
    parts.append(_text(label_width, axis_y + 14, value_format(0.0), "middle"))
    parts.append(_text(label_width + plot_w, axis_y + 14, value_format(scale_max), "middle"))
    parts.append("</svg>")
    return "".join(parts)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 1)] + "~"
