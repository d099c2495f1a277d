"""Number formatting shared by the verdict's reasons and both renderings."""

from __future__ import annotations


def count(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def pct(rate: float | None, digits: int = 1) -> str:
    return "-" if rate is None else f"{rate * 100:.{digits}f}%"


def ms(microseconds: float | None) -> str:
    """ModelLatency (microseconds) as milliseconds with three significant figures or so."""
    if microseconds is None:
        return "-"
    value = microseconds / 1000
    if value >= 100:
        return f"{value:,.0f} ms"
    if value >= 10:
        return f"{value:.1f} ms"
    if value >= 1:
        return f"{value:.2f} ms"
    return f"{value:.3f} ms"


def ms_range(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return ""
    return f"{ms(low).removesuffix(' ms')}-{ms(high)}"


def number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def per_second(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"


def ms_with_interval(value: float | None, low: float | None, high: float | None) -> str:
    """``1.21 [1.19-1.24]`` (milliseconds, the unit left to the header)."""
    if value is None:
        return "-"
    shown = ms(value).removesuffix(" ms")
    interval = ms_range(low, high).removesuffix(" ms")
    return f"{shown} [{interval}]" if interval else shown
