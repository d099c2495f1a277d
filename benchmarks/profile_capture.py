"""Where capture's cost goes: py-spy on shadowlab while wrk saturates one endpoint at a time.

Starts the production and fast-shadow model servers (on the load core) and shadowlab (alone on
the other core) with four endpoints: no shadow and the fast shadow, each without and with 100%
capture. For each endpoint, wrk runs at saturation (32 connections); the script reports
throughput, the server's CPU per request, the CPU of its busiest threads (from /proc) and the
CPU other processes took on shadowlab's core (a row above 5% is flagged "noisy"). With
`--py-spy`, py-spy samples the shadowlab process meanwhile without pausing it
(`--nonblocking --threads`), and the script adds: the share of on-CPU samples per thread, the
capture code's inclusive share on the event loop's thread, and the top functions by self time
per thread. After the rounds it prints each pair's ratio, capture / without, round by round;
a round runs the endpoints in order, the next one backwards, so twins are always measured back
to back.

    .venv/bin/python benchmarks/profile_capture.py --rounds 4 --duration 5   # ratios only
    .venv/bin/python benchmarks/profile_capture.py --rounds 4 --rev HEAD     # a commit's src/
    .venv/bin/python -m pip install --target /tmp/pyspy py-spy
    .venv/bin/python benchmarks/profile_capture.py --py-spy /tmp/pyspy/bin/py-spy --gil

py-spy's samples are of the Python stacks: time in C (uvloop, httptools, syscalls) is charged to
the Python frame that called it. With `--gil` only samples of the thread holding the GIL are
kept, which shows how the event loop and the capture spool thread share it.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import loadgen
from lab import CAPTURE_ENDPOINTS as ENDPOINTS
from lab import CAPTURE_PAIRS as PAIRS
from lab import start_capture_lab
from processes import Cores, Supervisor, cpu_seconds

HERE = Path(__file__).resolve().parent
# Frames that are capture's work, wherever they run: the observer and writer, the encoder, and
# on the request path the event id (uuid4) and the event and record dataclasses (their generated
# `__init__` is the only `<string>` frame there).
CAPTURE_MARKERS = ("shadowlab/capture/", "uuid.py", "dataplane/observer.py", "(<string>")
ROLES = {"MainThread": "event loop (main thread)", "capture-spool": "capture spool thread"}
NOISY = 0.05  # cores used by other processes on shadowlab's core above which a row is suspect


def _task_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each thread (task) of `pid`."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            found[int(task.name)] = (int(fields[11]) + int(fields[12])) / ticks
    return found


def _samples(raw: Path) -> Iterator[tuple[str, list[str], int]]:
    """(thread name, frames outermost first, count) per line of py-spy's raw output with
    `--threads`: `thread (TID): NAME;frame;frame COUNT`."""
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        thread, *frames = stack.split(";")
        name = thread.partition(": ")[2] if thread.startswith("thread (") else "?"
        yield name, frames if name != "?" else [thread, *frames], int(count)


def _function(frame: str) -> str:
    """`name (path/to/file.py:123)` -> `name (file.py)`."""
    name, _, where = frame.partition(" (")
    return f"{name} ({Path(where.split(':')[0]).name})" if where else name


def _capture_entry(frames: list[str]) -> str | None:
    """The outermost capture frame of a stack, or None when the stack is not capture's."""
    for i, frame in enumerate(frames):
        if any(marker in frame for marker in CAPTURE_MARKERS):
            function = _function(frame)
            if function.startswith("__init__ (<string>") and i:
                function = f"record/event dataclass __init__, from {_function(frames[i - 1])}"
            return function
    return None


def summarise(raw: Path, top: int) -> list[str]:
    """Shares of all samples: per thread, capture's inclusive share and its entry points, and
    the top functions by self time."""
    total = 0
    by_role: collections.Counter[str] = collections.Counter()
    capture: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    self_time: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for name, frames, count in _samples(raw):
        if not frames:
            continue
        role = ROLES.get(name, f"thread {name}")
        total += count
        by_role[role] += count
        entry = _capture_entry(frames)
        if entry is not None:
            capture[role][entry] += count
        self_time[role][_function(frames[-1])] += count
    if not total:
        return ["  no samples"]
    lines = [f"  samples {total}"]
    for role, count in by_role.most_common():
        in_capture = sum(capture[role].values())
        lines.append(
            f"  {role}: {count / total:.1%} of samples; in capture code (inclusive) "
            f"{in_capture / total:.1%}"
        )
        for entry, n in capture[role].most_common(top if role.startswith("event") else 0):
            lines.append(f"      capture {n / total:6.1%}  {entry}")
        for function, n in self_time[role].most_common(top):
            lines.append(f"      self    {n / total:6.1%}  {function}")
    return lines


@dataclass(frozen=True)
class Row:
    endpoint: str
    rps: float
    us_per_request: float  # server CPU per request
    server_cpu: float  # cores used by shadowlab
    foreign_cpu: float  # cores used by other processes on shadowlab's core: noise


def _core_busy(cpu: str | None) -> float:
    """Busy seconds of CPU `cpu` since boot (all CPUs when None), from /proc/stat."""
    name = f"cpu{cpu or ''} "
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(name):
            values = [int(v) for v in line.split()[1:]]
            return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")
    return 0.0


@dataclass(frozen=True)
class Setup:
    cores: Cores
    pid: int  # shadowlab's
    port: int
    script: Path  # wrk's
    out_dir: Path  # py-spy's raw samples


def _row(args: argparse.Namespace, setup: Setup, endpoint: str, gil: bool) -> Row:
    """Saturate `endpoint` for `args.duration` s; with py-spy, sample it meanwhile."""
    cores, pid, script = setup.cores, setup.pid, setup.script
    url = f"http://127.0.0.1:{setup.port}/endpoints/{endpoint}/invocations"
    raw = setup.out_dir / f"{endpoint}{'-gil' if gil else ''}.txt"
    tasks0, cpu0, core0 = _task_cpu(pid), cpu_seconds(pid), _core_busy(cores.server)
    if args.py_spy is None:
        w = loadgen.run_wrk(
            url, script=script, connections=32, duration_s=args.duration, cpus=cores.load
        )
    else:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            load = pool.submit(
                loadgen.run_wrk,
                url,
                script=script,
                connections=32,
                duration_s=args.duration + 1,
                cpus=cores.load,
            )
            time.sleep(0.5)
            spy = [args.py_spy, "record", "-p", str(pid), "--nonblocking", "--threads"]
            spy += ["--rate", str(args.rate), "--duration", f"{args.duration:g}"]
            spy += ["--format", "raw", "-o", str(raw)]
            subprocess.run(spy + (["--gil"] if gil else []), check=True, capture_output=True)
            w = load.result()
    tasks1, cpu1, core1 = _task_cpu(pid), cpu_seconds(pid), _core_busy(cores.server)
    used = cpu1 - cpu0
    busiest = sorted(((tasks1[t] - tasks0.get(t, 0.0), t) for t in tasks1), reverse=True)[:3]
    threads = ", ".join(f"{'main' if t == pid else t} {s / w.duration_s:.0%}" for s, t in busiest)
    row = Row(
        endpoint,
        w.rps,
        used / max(w.requests, 1) * 1e6,
        used / w.duration_s,
        max(0.0, (core1 - core0) - used) / w.duration_s if cores.server else 0.0,
    )
    print(
        f"{endpoint}{' (--gil)' if gil else ''}: {w.rps:.0f} req/s, p50 {w.p50_ms:.2f} ms, "
        f"p99 {w.p99_ms:.2f} ms; server CPU {row.server_cpu:.0%}, {row.us_per_request:.1f} us "
        f"per request; threads (CPU): {threads}; others on its core {row.foreign_cpu:.0%}"
        + (" (noisy)" if row.foreign_cpu > NOISY else ""),
        flush=True,
    )
    if args.py_spy is not None:
        print("\n".join(summarise(raw, args.top)), flush=True)
    return row


def _pair_lines(rounds: list[list[Row]]) -> list[str]:
    """Capture / without, for each twin pair measured back to back, round by round, and the
    medians over the rounds."""
    lines = []
    for plain, captured in PAIRS:
        ratios, added = [], []
        for round_no, rows in enumerate(rounds, 1):
            by = {r.endpoint: r for r in rows}
            if plain not in by or captured not in by:
                continue
            a, b = by[plain], by[captured]
            ratios.append(b.rps / a.rps)
            added.append(b.us_per_request - a.us_per_request)
            noisy = " (noisy)" if max(a.foreign_cpu, b.foreign_cpu) > NOISY else ""
            lines.append(
                f"  round {round_no}, {captured}: throughput {ratios[-1]:.2f}x of {plain}; CPU "
                f"per request {a.us_per_request:.0f} -> {b.us_per_request:.0f} us "
                f"({added[-1]:+.1f} us){noisy}"
            )
        if ratios:
            lines.append(
                f"  {captured}, median of {len(ratios)}: throughput "
                f"{statistics.median(ratios):.2f}x, CPU per request "
                f"{statistics.median(added):+.1f} us"
            )
    return lines


def run(args: argparse.Namespace) -> None:
    cores = Cores.detect()
    logs = HERE / "results" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    out_dir = HERE / "results" / "profile"
    out_dir.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="shadowlab-profile-") as tmp,
        Supervisor(logs) as supervisor,
    ):
        proc, port = start_capture_lab(
            supervisor,
            Path(tmp),
            rev=args.rev,
            model_cpus=cores.load,
            server_cpus=cores.server,
        )
        script = loadgen.write_script(Path(tmp), pace_ms=args.pace_ms)
        setup = Setup(cores, proc.pid, port, script, out_dir)
        endpoints = [e for e in ENDPOINTS if e in args.endpoints]
        for endpoint in endpoints:  # connections open, admission limits adapted
            url = f"http://127.0.0.1:{port}/endpoints/{endpoint}/invocations"
            loadgen.run_wrk(url, script=script, connections=32, duration_s=1, cpus=cores.load)
        rounds: list[list[Row]] = []
        for round_no in range(1, args.rounds + 1):
            print(f"round {round_no}", flush=True)
            rows = []
            # Twins stay neighbours whichever way a round runs, so drift favours neither.
            for endpoint in endpoints if round_no % 2 else endpoints[::-1]:
                for gil in (False, True) if args.gil and args.py_spy else (False,):
                    row = _row(args, setup, endpoint, gil)
                    if not gil:
                        rows.append(row)
            rounds.append(rows)
        print("\n".join(["capture / without:", *_pair_lines(rounds)]), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--py-spy", help="the py-spy executable; without it, no sampling")
    parser.add_argument("--duration", type=float, default=10.0, help="s measured per endpoint")
    parser.add_argument("--rounds", type=int, default=1, help="rounds; even ones run backwards")
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--top", type=int, default=12, help="functions listed per thread")
    parser.add_argument("--endpoints", nargs="+", default=list(ENDPOINTS), choices=ENDPOINTS)
    parser.add_argument("--gil", action="store_true", help="also sample with --gil")
    parser.add_argument("--rev", help="profile src/ of this git revision, not the working tree")
    parser.add_argument(
        "--pace-ms",
        type=int,
        help="paced load (CPU per request below saturation): each connection waits a random "
        "0..2x this many ms before a request",
    )
    run(parser.parse_args())
    return 0


if __name__ == "__main__":
    sys.exit(main())
