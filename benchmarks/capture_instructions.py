"""What capture costs in CPU instructions, counted by valgrind: deterministic where time is not.

On a shared 2-core machine, the CPU time per request of one row moves by ±10 µs from run to run,
as much as capture's whole cost. Instruction counts do not move with other load. This runs
shadowlab under valgrind's callgrind (instrumentation off while it starts), with the production
and fast-shadow model servers native, and four endpoints: no shadow and the fast shadow, each
without and with 100% capture (as `make bench`). After a warm-up of every endpoint and a
measure of the idle rate (timers and this script's polls, taken off every phase), for each
endpoint: counters zeroed, wrk sends requests for `--duration` seconds, capture catches up
(its spool thread included), a dump. It prints instructions per request, and each capture
endpoint against its twin. The dumps stay in benchmarks/results/callgrind/<time>/.

    .venv/bin/python benchmarks/capture_instructions.py
    .venv/bin/python benchmarks/capture_instructions.py --rev HEAD   # a commit's src/

Under valgrind the server is ~50x slower, so wrk's 32 connections always saturate it: the counts
are those of a saturated server (the event loop handles several requests per wake-up). They are
CPU work, not time: cache misses, which grow when capture shares caches with the event loop,
are not in them, nor is time in the kernel: a change that looks better here must still be
confirmed in time (`profile_capture.py`, `make bench`).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import loadgen
import shadowlabctl
from lab import CAPTURE_ENDPOINTS as ENDPOINTS
from lab import CAPTURE_PAIRS as PAIRS
from lab import start_capture_lab
from processes import Supervisor

HERE = Path(__file__).resolve().parent


def _control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True, timeout=120)


def _instructions(out_dir: Path, pid: int, before: set[Path]) -> int:
    """Dump `pid`'s counters (which zeroes them) and read the new dump's total."""
    _control("-d", str(pid))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        new = set(out_dir.glob(f"cg.{pid}*")) - before
        for path in new:
            text = path.read_text(errors="replace")
            found = re.search(r"^(?:totals|summary): (\d+)", text, re.M)
            if found:
                print(f"  dump {path}", flush=True)
                before.add(path)
                return int(found.group(1))
        time.sleep(0.2)
    raise RuntimeError(f"no callgrind dump from {pid}")


POLL_S = 0.5  # /shadowlab/stats polls while waiting: the same rate in every phase


def _idle_rate(port: int, pid: int, out_dir: Path, seen: set[Path]) -> float:
    """Instructions per second while no request arrives but the polls: the timers (metrics,
    capture's wake-ups) and the polls themselves, taken off every phase."""
    _control("-z", str(pid))
    started = time.monotonic()
    while time.monotonic() - started < 10.0:
        shadowlabctl.stats(port)
        time.sleep(POLL_S)
    return _instructions(out_dir, pid, seen) / (time.monotonic() - started)


def _settle(port: int, timeout_s: float = 300.0) -> None:
    """Wait until capture has written every record it accepted (slowly, under valgrind)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        c = shadowlabctl.capture_counters(shadowlabctl.stats(port))
        written = c.get("records_written", 0) + c.get("dropped", 0) - c.get("dropped_queue_full", 0)
        if not c.get("queued_records") and written >= c.get("records_captured", 0):
            return
        time.sleep(POLL_S)
    raise RuntimeError("capture did not catch up")


def run(args: argparse.Namespace) -> None:
    logs = HERE / "results" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="shadowlab-instr-") as tmp,
        Supervisor(logs) as supervisor,
    ):
        # Kept: `callgrind_annotate <dump>` shows where a phase's instructions went.
        out_dir = HERE / "results" / "callgrind" / time.strftime("%Y%m%dT%H%M%S")
        out_dir.mkdir(parents=True)
        wrapper = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            "--trace-children=yes",
            f"--callgrind-out-file={out_dir}/cg.%p",
        ]
        proc, port = start_capture_lab(
            supervisor,
            Path(tmp),
            rev=args.rev,
            model_cpus=None,
            server_cpus=None,
            wrapper=wrapper,
            start_timeout_s=600,
        )
        script = loadgen.write_script(Path(tmp))
        pid = proc.pid
        seen: set[Path] = set()
        # On for good: switching it off again loses what was counted (valgrind 3.19).
        _control("-i", "on", str(pid))
        per_request: dict[str, float] = {}
        for endpoint in ENDPOINTS:  # everything started, connected and adapted before counting
            url = f"http://127.0.0.1:{port}/endpoints/{endpoint}/invocations"
            loadgen.run_wrk(url, script=script, connections=32, duration_s=2, cpus=None)
        _settle(port)
        idle = _idle_rate(port, pid, out_dir, seen)
        print(f"idle: {idle / 1e6:.1f}M instructions per second", flush=True)
        for endpoint in ENDPOINTS:
            url = f"http://127.0.0.1:{port}/endpoints/{endpoint}/invocations"
            loadgen.run_wrk(url, script=script, connections=32, duration_s=3, cpus=None)  # warm
            _settle(port)  # the capture backlog of the warm-up drains
            before = shadowlabctl.shadow_counters(shadowlabctl.stats(port), endpoint)
            _control("-z", str(pid))
            started = time.monotonic()
            w = loadgen.run_wrk(
                url, script=script, connections=32, duration_s=args.duration, cpus=None
            )
            _settle(port)  # capture ships and encodes what the run queued
            elapsed = time.monotonic() - started
            count = _instructions(out_dir, pid, seen) - idle * elapsed
            per_request[endpoint] = count / max(w.requests, 1)
            # Under valgrind copies can time out or be shed, and what a copy costs differs with
            # its fate: shown, so that a row whose shadow behaved differently is recognised.
            after = shadowlabctl.shadow_counters(shadowlabctl.stats(port), endpoint)
            copies = ", ".join(
                f"{k} {after[k] - before.get(k, 0)}"
                for k in ("sent", "shed", "completed", "timeouts", "errors")
                if k in after
            )
            print(
                f"{endpoint}: {w.requests} requests, "
                f"{per_request[endpoint] / 1e3:.1f}k instructions per request"
                + (f"; copies: {copies}" if copies else ""),
                flush=True,
            )
        print("capture / without:")
        for plain, captured in PAIRS:
            a, b = per_request[plain], per_request[captured]
            added = (b - a) / 1e3
            print(f"  {captured}: {a / 1e3:.1f}k -> {b / 1e3:.1f}k (+{added:.1f}k), {a / b:.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8.0, help="s counted per endpoint")
    parser.add_argument("--rev", help="src/ of this git revision, not the working tree")
    run(parser.parse_args())
    return 0


if __name__ == "__main__":
    sys.exit(main())
