"""Turn measurements into the table and the issue's target ratios (pure functions, no I/O).

Ratios are taken within one round (rows measured seconds apart) and then summarised over the
rounds as median and range: on a noisy shared 2-core machine absolute numbers drift between
runs, ratios of neighbouring rows much less.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lab import SERIAL_SHADOW_MS, Row, capacity_rps
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


Combine = Callable[[dict[str, Measurement]], float]


def per_round(measurements: Sequence[Measurement], phase: str, combine: Combine) -> list[float]:
    """`combine` applied to each round's measurements of `phase`, keyed by row key."""
    by_round: dict[int, dict[str, Measurement]] = {}
    for m in measurements:
        if m.phase.key == phase:
            by_round.setdefault(m.round, {})[m.row.key] = m
    values = []
    for results in by_round.values():
        try:
            values.append(combine(results))
        except (KeyError, ZeroDivisionError):
            continue  # a row missing from this round: no ratio for it
    return values


def _ratio(a: str, b: str, what: str) -> Combine:
    def combine(results: dict[str, Measurement]) -> float:
        x, y = results[a].wrk, results[b].wrk
        return x.rps / y.rps if what == "rps" else x.p99_ms / y.p99_ms

    return combine


def _cpu_ratio(a: str, b: str) -> Combine:
    """`b`'s server CPU per request over `a`'s: the throughput ratio a / b would have if the
    server's core were the only limit (rows where it is not at 100%, because the load side or
    another process holds it back, still compare by the work they cost)."""

    def combine(results: dict[str, Measurement]) -> float:
        x, y = results[a], results[b]
        return (y.server_cpu / y.wrk.rps) / (x.server_cpu / x.wrk.rps)

    return combine


def _added(row: str) -> Combine:
    return lambda results: results[row].wrk.p50_ms - results["direct"].wrk.p50_ms


def _serial_vs_direct(results: dict[str, Measurement]) -> float:
    """The serial shadow's time per request over production's round trip (direct, p50)."""
    return SERIAL_SHADOW_MS / results["direct"].wrk.p50_ms


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
        "throughput: shadowlab no shadow, capture 100% / without capture",
        "saturated",
        _ratio("shadowlab-plain-capture", "shadowlab-plain", "rps"),
        0.9,
        True,
        "x",
    ),
    (
        "throughput: shadowlab + fast shadow, capture 100% / without capture",
        "saturated",
        _ratio("shadowlab-fast-capture", "shadowlab-fast", "rps"),
        0.9,
        True,
        "x",
    ),
    (
        "throughput: shadowlab no shadow, SigV4 verified / unsigned",
        "saturated",
        _ratio("shadowlab-plain-signed", "shadowlab-plain", "rps"),
        0.85,
        True,
        "x",
    ),
    (
        "(context) server CPU per request, unsigned / SigV4 verified: no shadow",
        "saturated",
        _cpu_ratio("shadowlab-plain-signed", "shadowlab-plain"),
        None,
        True,
        "x",
    ),
    (
        "(context) median added latency over direct, 1 connection: shadowlab, SigV4 verified",
        "single",
        _added("shadowlab-plain-signed"),
        None,
        False,
        " ms",
    ),
    (
        "(context) server CPU per request, without capture / with capture: no shadow",
        "saturated",
        _cpu_ratio("shadowlab-plain-capture", "shadowlab-plain"),
        None,
        True,
        "x",
    ),
    (
        "(context) server CPU per request, without capture / with capture: + fast shadow",
        "saturated",
        _cpu_ratio("shadowlab-fast-capture", "shadowlab-fast"),
        None,
        True,
        "x",
    ),
    (
        f"(context) p99 at equal paced load: shadowlab + serial {SERIAL_SHADOW_MS:g} ms shadow "
        f"(capacity {1000 / SERIAL_SHADOW_MS:.0f} req/s) / no shadow",
        "paced",
        _ratio("shadowlab-serial", "shadowlab-plain", "p99"),
        None,
        False,
        "x",
    ),
    (
        f"(context) serial shadow's {SERIAL_SHADOW_MS:g} ms per request / production's round "
        "trip (direct, 1 connection, p50)",
        "single",
        _serial_vs_direct,
        None,
        False,
        "x",
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


def _capacity_share(m: Measurement) -> float | None:
    """What the shadow could have answered in the row (capacity x duration) / requests."""
    capacity = capacity_rps(m.row.shadow) if m.row.shadow else None
    if capacity is None or not m.production_requests:
        return None
    return capacity * m.wrk.duration_s / m.production_requests


COPIES_LEGEND = (
    "Per shadowlab shadow row, ranges over rounds. requests: production requests (each is due "
    "a copy: 100% sampling). sent, shed, timeouts, errors: shadowlab's mirror counters for the "
    "row (shed: copies never run for lack of capacity, refused by admission or by the model "
    "server). limit: the shadow's adaptive in-flight limit once the row's copies were done. "
    "delivered (shadowlab): copies completed / requests eligible, from `GET /shadowlab/stats`. "
    "delivered (shadow): copies the shadow model server answered / production requests. "
    "expired: copies the serial shadow skipped because their `X-Shadowlab-Timeout-Ms` passed "
    "before their turn. at capacity: the most the shadow could answer in the row (its capacity "
    "x the row's duration) / production requests; delivered should come close to it. Copies "
    "still queued at the shadow when the load stops are answered after the row and counted, "
    "so delivered can exceed it by up to the in-flight limit in copies."
)


def _counts(values: Sequence[int | None]) -> str:
    return _span([float(v) for v in values if v is not None], "{:.0f}")


def _shares(values: Sequence[float | None]) -> str:
    return _span([v * 100 for v in values if v is not None], "{:.1f}%")


def copies_table(measurements: Sequence[Measurement], rows: Sequence[Row]) -> str:
    """One line per (phase, shadowlab shadow row): where the copies went, ranges over rounds."""
    lines = [
        "| path | load | requests | sent | shed | timeouts | errors | limit "
        "| delivered (shadowlab) | delivered (shadow) | expired | at capacity |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    phases = list(dict.fromkeys(m.phase for m in measurements))
    for phase in phases:
        for row in rows:
            ms = [m for m in measurements if m.row == row and m.phase == phase and m.mirror]
            if not ms:
                continue
            mirrors = [m.mirror or {} for m in ms]
            counters = " | ".join(
                _counts([c.get(name, 0) for c in mirrors])
                for name in ("sent", "shed", "timeouts", "errors")
            )
            lines.append(
                f"| {row.label} | {phase.label} "
                f"| {_counts([m.production_requests for m in ms])} | {counters} "
                f"| {_counts([m.limit for m in ms])} "
                f"| {_shares([m.stats_delivered for m in ms])} "
                f"| {_shares([m.delivered for m in ms])} "
                f"| {_counts([(m.shadow_counts or {}).get('expired', 0) for m in ms])} "
                f"| {_shares([_capacity_share(m) for m in ms])} |"
            )
    return "\n".join(lines)


def mirror_notes(measurements: Sequence[Measurement]) -> list[str]:
    """shadowlab's own mirror counters per shadow row: where copies that did not arrive went."""
    notes = []
    for m in measurements:
        if m.mirror is None:
            continue
        c = m.mirror
        at_shadow = m.shadow_counts or {}
        notes.append(
            f"round {m.round}, {m.phase.label}, {m.row.label}: requests {m.production_requests}; "
            f"eligible {c.get('eligible', 0)}, sent {c.get('sent', 0)}, "
            f"completed {c.get('completed', 0)}, shed {c.get('shed', 0)}, "
            f"dropped {c.get('dropped', 0)}, errors {c.get('errors', 0)}, "
            f"timeouts {c.get('timeouts', 0)}, limit at end {m.limit}; at the shadow: "
            f"received {at_shadow.get('invocations', 0)}, served {at_shadow.get('served', 0)}, "
            f"expired {at_shadow.get('expired', 0)}, abandoned {at_shadow.get('abandoned', 0)}"
        )
    return notes


CAPTURE_LEGEND = (
    "Per shadowlab capture row, ranges over rounds; from the capture writer's counters in "
    "`GET /shadowlab/stats`, as deltas over the row, read once the writer had caught up. "
    "requests: production requests shadowlab answered. expected: the records the row should "
    "produce, one per production request and one per shadow copy that ran (answered, failed or "
    "timed out). captured: records accepted on the request path. written: records in the "
    "local spool (whole lines, fsynced every second; a file goes to the store once it is 60 s "
    "old, so most of a row's records are not there yet). dropped: all drops (queue full, spool "
    "full, write errors, "
    "shutdown). shed counted: copies shed by admission, counted per file instead of written. "
    "lost: expected minus written; anything but 0 is a loss and is flagged."
)


def capture_table(measurements: Sequence[Measurement], rows: Sequence[Row]) -> str:
    """One line per (phase, capture row): every record the row produced, and where it went."""
    lines = [
        "| path | load | requests | expected | captured | written | dropped | shed counted "
        "| lost |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    phases = list(dict.fromkeys(m.phase for m in measurements))
    for phase in phases:
        for row in rows:
            ms = [m for m in measurements if m.row == row and m.phase == phase and m.capture]
            if not ms:
                continue
            captures = [m.capture or {} for m in ms]
            lost = [m.capture_lost for m in ms]
            lost_cell = _counts(lost)
            if any(v for v in lost):
                lost_cell = f"**{lost_cell}** ⚠"
            lines.append(
                f"| {row.label} | {phase.label} "
                f"| {_counts([m.capture_requests for m in ms])} "
                f"| {_counts([m.capture_expected for m in ms])} "
                f"| {_counts([c.get('records_captured', 0) for c in captures])} "
                f"| {_counts([c.get('records_written', 0) for c in captures])} "
                f"| {_counts([c.get('dropped', 0) for c in captures])} "
                f"| {_counts([c.get('shed_counted', 0) for c in captures])} "
                f"| {lost_cell} |"
            )
    return "\n".join(lines)


_DROP_REASONS = ("dropped_queue_full", "dropped_spool_full", "dropped_write_errors")


def capture_warnings(measurements: Sequence[Measurement]) -> list[str]:
    """A bold line per capture row that lost records: how many, and the writer's reasons."""
    warnings = []
    for m in measurements:
        lost = m.capture_lost
        if m.capture is None or not lost:
            continue
        reasons = ", ".join(
            f"{name.removeprefix('dropped_').replace('_', ' ')} {m.capture.get(name, 0)}"
            for name in (*_DROP_REASONS, "dropped_stopped")
            if m.capture.get(name)
        )
        unaccounted = lost - m.capture.get("dropped", 0)
        warnings.append(
            f"**Capture lost {lost} of {m.capture_expected} records in round {m.round}, "
            f"{m.phase.label}, {m.row.label}: dropped {m.capture.get('dropped', 0)}"
            f"{f' ({reasons})' if reasons else ''}, unaccounted {unaccounted}.**"
        )
    return ["", *warnings] if warnings else []


def capture_notes(measurements: Sequence[Measurement]) -> list[str]:
    """The capture writer's counters per capture row, as read."""
    notes = []
    for m in measurements:
        if m.capture is None:
            continue
        c = m.capture
        notes.append(
            f"round {m.round}, {m.phase.label}, {m.row.label}: requests {m.capture_requests}, "
            f"expected {m.capture_expected}; captured {c.get('records_captured', 0)}, "
            f"written {c.get('records_written', 0)} ({c.get('bytes_written', 0)} bytes), "
            f"shed counted {c.get('shed_counted', 0)}, dropped {c.get('dropped', 0)} "
            f"(queue full {c.get('dropped_queue_full', 0)}, spool full "
            f"{c.get('dropped_spool_full', 0)}, write errors {c.get('dropped_write_errors', 0)}, "
            f"stopped {c.get('dropped_stopped', 0)}), internal errors "
            f"{c.get('internal_errors', 0)}; at the end: queued {c.get('queued_records', 0)}, "
            f"pending files {c.get('pending_files', 0)}"
        )
    return notes
