"""Measure one row: wrk against it, plus what explains the number.

Besides wrk's req/s and percentiles, each row records:
- server CPU: cores used by the process under test (near 1.0: it is the bottleneck);
- load CPU: how busy the core of wrk and the model servers was (near 1.0: the load side,
  not the proxy, limits the row);
- other CPU: cores used by processes that are not part of this benchmark. The machine is
  shared; a row measured while something else ran is flagged rather than silently believed;
- copies delivered: the copies the shadow model server itself answered, over production
  requests (the same count for nginx and shadowlab), plus shadowlab's own mirror counters and
  the shadow's admission limit at the end of the row;
- capture (rows that capture): the capture writer's counters over the row (records captured,
  written, dropped and why, shed copies counted), read once the writer has caught up, and the
  records the row should have produced: one per production request and one per copy that ran.
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import loadgen
import shadowlabctl
from lab import Lab, Row, endpoint
from loadgen import WrkResult
from processes import cpu_seconds, set_affinity

_HZ = 100.0  # USER_HZ of /proc/stat; Linux fixes it at 100 for userspace


@dataclass(frozen=True)
class Phase:
    key: str  # "saturated", "paced", "single"
    label: str  # what the table's load column says
    connections: int
    duration_s: float
    # Neighbours compared with each other, in the order of odd rounds; even rounds reverse
    # each group, so drift between rows measured seconds apart favours none of them.
    groups: tuple[tuple[Row, ...], ...]
    script: Path
    pace_ms: int | None = None  # the script's pacing (see loadgen.write_script)

    @property
    def rows(self) -> tuple[Row, ...]:
        return tuple(row for group in self.groups for row in group)

    def order(self, round_no: int) -> list[Row]:
        """The rows of round `round_no`: groups in order, each reversed in even rounds."""
        if round_no % 2:
            return list(self.rows)
        return [row for group in self.groups for row in reversed(group)]


@dataclass(frozen=True)
class Measurement:
    row: Row
    phase: Phase
    round: int
    wrk: WrkResult
    server_cpu: float  # cores
    load_cpu: float | None  # fraction of the load core busy
    other_cpu: float  # cores used by processes outside the benchmark
    delivered: float | None  # copies the shadow server answered / production requests
    mirror: dict[str, int] | None  # shadowlab's mirror counters for the row (deltas)
    shadow_counts: dict[str, int] | None  # the shadow server's /count for the row (deltas)
    production_requests: int  # counted by the production model server
    limit: int | None  # shadowlab's admission limit for the row's shadow once the row settled
    capture: dict[str, int] | None = None  # the capture writer's counters for the row (deltas)
    # Production requests shadowlab counted for the row's endpoint (capture rows only).
    capture_requests: int | None = None

    @property
    def capture_expected(self) -> int | None:
        """Records the row should have captured: one per production request, one per copy
        that ran (answered, failed or timed out; shed copies are counted, not written)."""
        if self.capture is None or self.capture_requests is None:
            return None
        copies = 0
        if self.mirror is not None:
            copies = self.mirror.get("eligible", 0) - self.mirror.get("shed", 0)
        return self.capture_requests + copies

    @property
    def capture_lost(self) -> int | None:
        """Expected records that were not written to the spool: dropped, or unaccounted."""
        expected = self.capture_expected
        if expected is None or self.capture is None:
            return None
        return expected - self.capture.get("records_written", 0)

    @property
    def stats_delivered(self) -> float | None:
        """Copies completed / requests eligible for a copy, by shadowlab's own counters."""
        if self.mirror is None or not self.mirror.get("eligible"):
            return None
        return self.mirror.get("completed", 0) / self.mirror["eligible"]


def _proc_stat_busy(cpu: str) -> float:
    """Busy seconds of `cpu` ("" for all) since boot, from /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            values = [int(v) for v in line.split()[1:]]
            return (sum(values) - values[3] - values[4]) / _HZ  # minus idle and iowait
    return 0.0


def _own_cpu(lab: Lab) -> float:
    """CPU seconds of everything this benchmark runs: children, finished wrks, itself."""
    own = sum(cpu_seconds(pid) for pid in lab.all_pids())
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        own += usage.ru_utime + usage.ru_stime
    return own


class _CpuWindow:
    """CPU use over one row: the server under test, the load core, and everyone else."""

    def __init__(self, lab: Lab, pid: int) -> None:
        self.lab, self.pid = lab, pid
        self.load_core = lab.cores.load or ""
        self.server0 = cpu_seconds(pid)
        self.load0 = _proc_stat_busy(self.load_core)
        self.all0 = _proc_stat_busy("")
        self.own0 = _own_cpu(lab)
        self.started = time.monotonic()

    def close(self) -> tuple[float, float | None, float]:
        elapsed = time.monotonic() - self.started
        server = (cpu_seconds(self.pid) - self.server0) / elapsed
        load = (_proc_stat_busy(self.load_core) - self.load0) / elapsed
        other = (_proc_stat_busy("") - self.all0) - (_own_cpu(self.lab) - self.own0)
        return server, load if self.lab.cores.load else None, max(0.0, other / elapsed)


def wait_for_quiet(lab: Lab, budget_s: float, threshold: float) -> float:
    """Wait (at most `budget_s`) until processes outside the benchmark use under `threshold`
    cores over a quarter second; returns the time waited. Another load test on the same two
    cores would otherwise decide the row."""
    started = time.monotonic()
    while time.monotonic() - started < budget_s:
        all0, own0, t0 = _proc_stat_busy(""), _own_cpu(lab), time.monotonic()
        time.sleep(0.25)
        other = (_proc_stat_busy("") - all0) - (_own_cpu(lab) - own0)
        if other / (time.monotonic() - t0) < threshold:
            break
    return time.monotonic() - started


_NOT_COUNTERS = ("in_flight", "limit")  # integers in the stats that are levels, not counts


def _settle(lab: Lab, row: Row, before: dict[str, int]) -> tuple[dict[str, int] | None, int | None]:
    """Wait until a row's shadow copies are done: shadowlab's mirror counter deltas for it, and
    the shadow's admission limit then."""
    if row.shadow is None:
        return None, None
    if row.proxy != "shadowlab":
        time.sleep(0.3)  # nginx's mirror subrequests end with their client connections
        return None, None
    deadline = time.monotonic() + 5.0  # longer than the mirror's 2 s copy timeout
    while True:
        after = shadowlabctl.shadow_counters(shadowlabctl.stats(lab.shadowlab_port), endpoint(row))
        if after.get("in_flight", 0) == 0 or time.monotonic() > deadline:
            deltas = {
                k: after.get(k, 0) - before.get(k, 0) for k in after if k not in _NOT_COUNTERS
            }
            return deltas, after.get("limit")
        time.sleep(0.05)


# Capture counters that are levels, not counts.
_CAPTURE_LEVELS = ("queued_records", "pending_files", "spool_bytes")


def _unwritten(counters: dict[str, int]) -> int:
    """Records captured but neither written to the spool nor dropped yet (in the writer)."""
    return (
        counters.get("records_captured", 0)
        - counters.get("records_written", 0)
        - counters.get("dropped_spool_full", 0)
        - counters.get("dropped_write_errors", 0)
        - counters.get("dropped_stopped", 0)
    )


def _settle_capture(
    lab: Lab, row: Row, before: dict[str, Any]
) -> tuple[dict[str, int] | None, int | None]:
    """Wait until the capture writer has written (or dropped) every record of the row: its
    counter deltas, the row's production requests by shadowlab's count, and the levels
    (queued_records ...) as they were at the end."""
    if not row.capture:
        return None, None
    counters0 = shadowlabctl.capture_counters(before)
    deadline = time.monotonic() + 5.0  # the spool thread drains every 20 ms
    while True:
        snapshot = shadowlabctl.stats(lab.shadowlab_port)
        after = shadowlabctl.capture_counters(snapshot)
        caught_up = not after.get("queued_records") and _unwritten(after) <= _unwritten(counters0)
        if caught_up or time.monotonic() > deadline:
            deltas = {
                k: v if k in _CAPTURE_LEVELS else v - counters0.get(k, 0) for k, v in after.items()
            }
            requests = shadowlabctl.invocations(snapshot, endpoint(row)) - (
                shadowlabctl.invocations(before, endpoint(row))
            )
            return deltas, requests
        time.sleep(0.05)


def measure(lab: Lab, row: Row, phase: Phase, round_no: int, log: Path | None) -> Measurement:
    production0 = lab.model_counts("production")["invocations"]
    shadow0 = lab.model_counts(row.shadow) if row.shadow else {}
    mirror0: dict[str, int] = {}
    stats0: dict[str, Any] = {}
    if row.proxy == "shadowlab" and (row.shadow or row.capture):
        stats0 = shadowlabctl.stats(lab.shadowlab_port)
        mirror0 = shadowlabctl.shadow_counters(stats0, endpoint(row)) if row.shadow else {}
    pid = lab.server_pid(row)
    if row.proxy is None:  # the model server is the server under test: give it that core
        set_affinity(pid, lab.cores.server)
    try:
        window = _CpuWindow(lab, pid)
        script = phase.script
        if row.signed:  # signed now: a signature holds for the server's 15-minute allowance
            headers = shadowlabctl.signed_headers(lab.url(row), loadgen.BODY, loadgen.HEADERS)
            script = loadgen.write_script(script.parent, phase.pace_ms, headers)
        result = loadgen.run_wrk(
            lab.url(row),
            script=script,
            connections=phase.connections,
            duration_s=phase.duration_s,
            cpus=lab.cores.load,
            log=log,
        )
        server_cpu, load_cpu, other_cpu = window.close()
    finally:
        if row.proxy is None:
            set_affinity(pid, lab.cores.load)
    mirror, limit = _settle(lab, row, mirror0)
    capture, capture_requests = _settle_capture(lab, row, stats0)
    production = lab.model_counts("production")["invocations"] - production0
    delivered = shadow_counts = None
    if row.shadow:
        shadow1 = lab.model_counts(row.shadow)
        shadow_counts = {k: v - shadow0.get(k, 0) for k, v in shadow1.items()}
        delivered = shadow_counts["served"] / production if production else None
    return Measurement(
        row,
        phase,
        round_no,
        result,
        server_cpu,
        load_cpu,
        other_cpu,
        delivered,
        mirror,
        shadow_counts,
        production,
        limit,
        capture,
        capture_requests,
    )
