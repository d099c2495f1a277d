"""`make bench`: shadowlab against direct calls and nginx, on the same model servers, in one run.

Phases, each row once per round:
- saturated, 32 keep-alive connections: direct to the production model server; shadowlab with
  no shadow, a 100% shadow to a fast model server, a 100% shadow to a 20 ms model server, and
  the first two again with capture at 100%; nginx as a keep-alive proxy, with `mirror` to the
  fast shadow, with `mirror` to the 20 ms one;
- paced, 32 connections at a few thousand req/s: shadowlab with no shadow, with the 20 ms
  shadow, and with the serial shadow (one request at a time, 1 ms each: 1000 req/s, a fifth
  to a quarter of the offered load), to compare production p99 at equal load and to see how
  much of its share a shadow slower than its offered load gets;
- single, 1 connection: direct, shadowlab, nginx, for the latency each proxy adds;
- streaming (benchmarks/streaming.py): time to first byte of a model that streams tokens,
  through InvokeEndpointWithResponseStream and InvokeEndpoint, with and without a streaming
  shadow (its own asyncio client: wrk cannot read event streams).
A signed row (wrk replays one request signed with botocore just before the row runs) sits
next to shadowlab's plain row in the saturated and single phases: what verifying SigV4 costs.
shadowlab and nginx rows run side by side (a capture row next to its twin without capture),
their order alternating by round, so every ratio compares rows measured seconds apart. The
report goes to stdout and benchmarks/results/latest.md; every process's log to
benchmarks/results/logs/.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

import loadgen
import provenance
import report
import streaming
from lab import (
    ALL_ROWS,
    DIRECT,
    NGINX_PLAIN,
    SATURATED_GROUPS,
    SERIAL_SHADOW_MS,
    SL_PLAIN,
    SL_PLAIN_SIGNED,
    SL_SERIAL,
    SL_SLOW,
    Lab,
    Row,
    start_lab,
)
from measure import Measurement, Phase, measure, wait_for_quiet
from processes import Cores, Supervisor

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
# Before each row, wait up to QUIET_WAIT_S for foreign CPU use to calm down, QUIET_BUDGET_S in
# all, so a busy machine delays the run a little instead of failing the 3-minute budget.
QUIET_WAIT_S = 3.0
QUIET_BUDGET_S = 20.0
PACE_MS = 6  # per connection: ~32 / 6 ms ≈ 5k req/s, a fraction of any row's saturation


def phases(args: argparse.Namespace, work_dir: Path) -> list[Phase]:
    post = loadgen.write_script(work_dir)
    paced = loadgen.write_script(work_dir, PACE_MS)
    c = args.connections
    # Paced: the no-shadow row between the two shadow rows, so each is compared with a
    # neighbour; the order reverses in even rounds.
    paced_rows = ((SL_SLOW, SL_PLAIN, SL_SERIAL),)
    single_rows = ((DIRECT,), (SL_PLAIN, SL_PLAIN_SIGNED, NGINX_PLAIN))
    return [
        Phase("saturated", str(c), c, args.duration, SATURATED_GROUPS, post),
        Phase("paced", f"{c}, paced", c, args.paced_duration, paced_rows, paced, PACE_MS),
        Phase("single", "1", 1, args.single_duration, single_rows, post),
    ]


def warm_up(lab: Lab, plan: list[Phase]) -> None:
    """One second per row, in the first phase that has it: connections, pools, caches, and the
    shadow's admission limit adapted to that phase's load. Not recorded."""
    warmed: set[Row] = set()
    for phase in plan:
        for row in phase.rows:
            if row in warmed:
                continue
            warmed.add(row)
            loadgen.run_wrk(
                lab.url(row),
                script=phase.script,
                connections=phase.connections,
                duration_s=1,
                cpus=None,
            )


def run_rounds(lab: Lab, plan: list[Phase], rounds: int) -> list[Measurement]:
    warm_up(lab, plan)
    log = RESULTS / "logs" / "wrk.log"
    measurements = []
    quiet_budget = QUIET_BUDGET_S
    for round_no in range(1, rounds + 1):
        for phase in plan:
            for row in phase.order(round_no):
                quiet_budget -= wait_for_quiet(
                    lab, min(QUIET_WAIT_S, quiet_budget), report.NOISY_OTHER_CPU
                )
                m = measure(lab, row, phase, round_no, log)
                measurements.append(m)
                print(
                    f"  round {round_no}  {phase.label:<10} {row.label:<45} "
                    f"{m.wrk.rps:>8.0f} req/s  p50 {m.wrk.p50_ms:6.2f}  p99 {m.wrk.p99_ms:6.2f} ms"
                    f"  server {m.server_cpu:4.0%}  other {m.other_cpu:4.0%}",
                    flush=True,
                )
    return measurements


def render(measurements: list[Measurement], notes: list[str]) -> str:
    parts = [
        "# shadowlab benchmark",
        "",
        *[f"- {n}" for n in notes],
        "",
        report.table(measurements, ALL_ROWS),
        "",
        "max: the slowest request. wrk is a closed loop, so a stall of the server (a garbage "
        "collection, say) delays only the requests in flight and shows here, not in p99. "
        "server CPU: cores used by the process under test (100% = one core, the bottleneck). "
        "load CPU: how busy the core of wrk and the model servers was (near 100%: the load "
        "side limits the row). other CPU: processes outside this benchmark; ⚠ marks rows "
        f"where they used over {report.NOISY_OTHER_CPU:.0%} of a core. copies delivered: "
        "copies the shadow model server itself answered, over production requests.",
        "",
        "## Shadow copies",
        "",
        report.copies_table(measurements, ALL_ROWS),
        "",
        report.COPIES_LEGEND,
        "",
        "## Capture",
        "",
        report.capture_table(measurements, ALL_ROWS),
        "",
        report.CAPTURE_LEGEND,
        *report.capture_warnings(measurements),
        "",
        "## Ratios",
        "",
        report.targets_table(report.targets(measurements)),
    ]
    noisy = [m for m in measurements if m.other_cpu > report.NOISY_OTHER_CPU]
    if noisy:
        parts += [
            "",
            f"**{len(noisy)} of {len(measurements)} rows ran while processes outside the "
            "benchmark used more than "
            f"{report.NOISY_OTHER_CPU:.0%} of a core (up to "
            f"{max(m.other_cpu for m in noisy):.0%}): read those numbers with care, or rerun "
            "on a quiet machine.**",
        ]
    capture = report.capture_notes(measurements)
    if capture:
        parts += [
            "",
            "shadowlab's capture counters per capture row:",
            "",
            *[f"- {n}" for n in capture],
        ]
    mirror = report.mirror_notes(measurements)
    if mirror:
        parts += [
            "",
            "shadowlab's mirror counters per shadow row:",
            "",
            *[f"- {n}" for n in mirror],
        ]
    return "\n".join(parts) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    parser.add_argument("--duration", type=float, default=5.0, help="s per saturated row")
    parser.add_argument("--paced-duration", type=float, default=4.0, help="s per paced row")
    parser.add_argument("--single-duration", type=float, default=3.0, help="s per 1-conn row")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--stream-requests", type=int, default=200, help="per streaming row and round (0: skip)"
    )
    parser.add_argument(
        "--rev", help="benchmark src/ of this git revision instead of the working tree"
    )
    return parser.parse_args(argv)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the `finally`s that stop the children


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    # Ctrl-C must unwind too, even if started from a shell that ignores SIGINT in the background.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    cores = Cores.detect()
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (logs / "wrk.log").unlink(missing_ok=True)
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="shadowlab-bench-") as tmp,
        Supervisor(logs) as supervisor,
    ):
        revision: str | None = None
        env: dict[str, str] = {}
        if args.rev:
            revision, env = provenance.export_revision(args.rev, Path(tmp) / "rev")
        print("starting model servers, shadowlab and nginx ...", flush=True)
        lab = start_lab(supervisor, Path(tmp), cores, env)
        measurements = run_rounds(lab, phases(args, Path(tmp)), args.rounds)
        stream_section = ""
        if args.stream_requests > 0:
            stream_section = streaming.run_phase(
                supervisor, cores, lab.shadowlab_port, args.rounds, args.stream_requests
            )
    notes = provenance.machine_notes(cores, args, revision, PACE_MS, SERIAL_SHADOW_MS)
    text = render(measurements, notes)
    if stream_section:
        text += "\n" + stream_section + "\n"
    (RESULTS / "latest.md").write_text(text)
    print()
    print(text)
    print(f"(whole run {time.monotonic() - started:.0f} s; written to {RESULTS / 'latest.md'})")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # the `with` blocks have already stopped every child
        print("interrupted", file=sys.stderr)
        sys.exit(130)
