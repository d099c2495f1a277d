"""Turn measurements into the table and the issue's target ratios (pure functions, no I/O).

Ratios are taken within one round (rows measured seconds apart) and then summarised over the
rounds as median and range: on a noisy shared 2-core machine absolute numbers drift between
runs, ratios of neighbouring rows much less.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lab import Row
from loadgen import WrkResult
from measure import Measurement

DASH = "\N{EN DASH}"  # ranges, as ARCHITECTURE.md writes them
NOISY_OTHER_CPU = 0.10  # cores used by foreign processes during a row that make it suspect


@dataclass(frozen=True)
class Target:
    name: str
    value: float  # median over rounds
    low: float
    high: float
    goal: float | None  # None: shown for context, no goal
    at_least: bool  # True: value >= goal passes; False: value <= goal passes
    unit: str

    @property
    def met(self) -> bool:
        if self.goal is None:
            return True
        return self.value >= self.goal if self.at_least else self.value <= self.goal


def _span(values: Sequence[float], fmt: str) -> str:
    if not values:
        return "—"
    low, high = fmt.format(min(values)), fmt.format(max(values))
    return low if low == high else f"{low}{DASH}{high}"


def _rps(value: float) -> str:
    return f"{value / 1000:.1f}k" if value >= 1000 else f"{value:.0f}"


def table(measurements: Sequence[Measurement], rows: Sequence[Row]) -> str:
    """One line per (phase, row), ranges over rounds."""
    lines = [
        "| path | load | req/s | p50 ms | p99 ms | max ms | copies delivered | server CPU "
        "| load CPU | other CPU | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    phases = list(dict.fromkeys(m.phase for m in measurements))  # in measured order
    for phase in phases:
        for row in rows:
            ms = [m for m in measurements if m.row == row and m.phase == phase]
            if not ms:
                continue
            rps = [m.wrk.rps for m in ms]
            low, high = _rps(min(rps)), _rps(max(rps))
            delivered = [m.delivered * 100 for m in ms if m.delivered is not None]
            load = [m.load_cpu * 100 for m in ms if m.load_cpu is not None]
            other = [m.other_cpu * 100 for m in ms]
            flag = " ⚠" if max(m.other_cpu for m in ms) > NOISY_OTHER_CPU else ""
            lines.append(
                f"| {row.label} | {phase.label} | {low if low == high else f'{low}{DASH}{high}'} "
                f"| {_span([m.wrk.p50_ms for m in ms], '{:.2f}')} "
                f"| {_span([m.wrk.p99_ms for m in ms], '{:.2f}')} "
                f"| {_span([m.wrk.max_ms for m in ms], '{:.0f}')} "
                f"| {_span(delivered, '{:.1f}%') if row.shadow else '—'} "
                f"| {_span([m.server_cpu * 100 for m in ms], '{:.0f}%')} "
                f"| {_span(load, '{:.0f}%')} | {_span(other, '{:.0f}%')}{flag} "
                f"| {sum(m.wrk.errors for m in ms)} |"
            )
    return "\n".join(lines)


Combine = Callable[[dict[str, WrkResult]], float]


def per_round(measurements: Sequence[Measurement], phase: str, combine: Combine) -> list[float]:
    """`combine` applied to each round's results of `phase`, keyed by row key."""
    by_round: dict[int, dict[str, WrkResult]] = {}
    for m in measurements:
        if m.phase.key == phase:
            by_round.setdefault(m.round, {})[m.row.key] = m.wrk
    values = []
    for results in by_round.values():
        try:
            values.append(combine(results))
        except (KeyError, ZeroDivisionError):
            continue  # a row missing from this round: no ratio for it
    return values


def _ratio(a: str, b: str, what: str) -> Combine:
    def combine(results: dict[str, WrkResult]) -> float:
        x, y = results[a], results[b]
        return x.rps / y.rps if what == "rps" else x.p99_ms / y.p99_ms

    return combine


def _added(row: str) -> Combine:
    return lambda results: results[row].p50_ms - results["direct"].p50_ms


# (name, phase, how, goal, at_least, unit); goal None: context for reading the goals.
TARGETS: tuple[tuple[str, str, Combine, float | None, bool, str], ...] = (
    (
        "throughput: shadowlab + 20 ms shadow / nginx mirror to it",
        "saturated",
        _ratio("shadowlab-slow", "nginx-slow", "rps"),
        1.5,
        True,
        "x",
    ),
    (
        "throughput: shadowlab no shadow / plain nginx",
        "saturated",
        _ratio("shadowlab-plain", "nginx-plain", "rps"),
        0.8,
        True,
        "x",
    ),
    (
        "p99 at equal paced load: shadowlab + 20 ms shadow / no shadow",
        "paced",
        _ratio("shadowlab-slow", "shadowlab-plain", "p99"),
        1.1,
        False,
        "x",
    ),
    (
        "p99 at saturation: shadowlab + 20 ms shadow / no shadow",
        "saturated",
        _ratio("shadowlab-slow", "shadowlab-plain", "p99"),
        1.1,
        False,
        "x",
    ),
    (
        "median added latency over direct, 1 connection: shadowlab",
        "single",
        _added("shadowlab-plain"),
        0.3,
        False,
        " ms",
    ),
    (
        "(context) p99 at saturation: shadowlab + 20 ms shadow / + fast shadow",
        "saturated",
        _ratio("shadowlab-slow", "shadowlab-fast", "p99"),
        None,
        False,
        "x",
    ),
    (
        "(context) throughput: shadowlab + fast shadow / nginx mirror to it",
        "saturated",
        _ratio("shadowlab-fast", "nginx-fast", "rps"),
        None,
        True,
        "x",
    ),
    (
        "(context) median added latency over direct, 1 connection: nginx",
        "single",
        _added("nginx-plain"),
        None,
        False,
        " ms",
    ),
)


def targets(measurements: Sequence[Measurement]) -> list[Target]:
    found = []
    for name, phase, combine, goal, at_least, unit in TARGETS:
        values = per_round(measurements, phase, combine)
        if values:
            median = statistics.median(values)
            found.append(Target(name, median, min(values), max(values), goal, at_least, unit))
    return found


def targets_table(found: Sequence[Target]) -> str:
    lines = [
        "| ratio | goal | measured: median (range over rounds) | verdict |",
        "|---|---|---|---|",
    ]
    for t in found:
        fmt = "{:.2f}"
        measured = f"{fmt.format(t.value)}{t.unit} ({_span([t.low, t.high], fmt)})"
        if t.goal is None:
            goal, verdict = "—", "—"
        else:
            goal = ("≥ " if t.at_least else "≤ ") + fmt.format(t.goal) + t.unit
            gap = t.goal - t.value if t.at_least else t.value - t.goal
            verdict = "met" if t.met else f"**missed** by {fmt.format(gap)}{t.unit}"
        lines.append(f"| {t.name} | {goal} | {measured} | {verdict} |")
    return "\n".join(lines)


def mirror_notes(measurements: Sequence[Measurement]) -> list[str]:
    """shadowlab's own mirror counters per shadow row: where copies that did not arrive went."""
    notes = []
    for m in measurements:
        if m.mirror is None:
            continue
        c = m.mirror
        notes.append(
            f"round {m.round}, {m.phase.label}, {m.row.label}: sent {c.get('sent', 0)}, "
            f"completed {c.get('completed', 0)}, dropped {c.get('dropped', 0)}, "
            f"errors {c.get('errors', 0)}, timeouts {c.get('timeouts', 0)}"
        )
    return notes
