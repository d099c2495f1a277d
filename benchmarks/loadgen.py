"""The load generator: wrk, one thread pinned to one core, a small JSON POST per request.

wrk's Lua `done` hook prints the numbers on one machine-readable line (latencies in
microseconds), which is sturdier than parsing its human summary; `--latency` still puts the
full distribution in the log for anyone who wants to look.

wrk is a closed loop: at saturation a row's latency is simply connections / throughput, so a
row that does more work per request (a copy to a shadow) must show a higher p99 there. To ask
"does a slow shadow add latency to production" at equal load, the paced script makes each
connection wait a random 0..2x`pace_ms` before each request (wrk's Lua `delay` hook, whole ms),
which holds the offered rate near connections / pace, well below saturation.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from processes import pinned

# A small SageMaker-style JSON payload; both proxies forward it unchanged to the echo model.
BODY = '{"instances": [[5.1, 3.5, 1.4, 0.2], [6.2, 3.4, 5.4, 2.3]]}'

_SCRIPT = """\
wrk.method = "POST"
wrk.body = '%(body)s'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
%(signed)s
%(delay)s
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %%d %%d %%d %%d %%d %%d %%d %%d %%d %%d\\n",
    summary.duration, summary.requests, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    errors: int  # socket errors (connect, read, write, timeout) plus non-2xx/3xx answers
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0


HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


def write_script(
    directory: Path, pace_ms: int | None = None, signed: dict[str, str] | None = None
) -> Path:
    """The POST script; with `pace_ms`, each request waits a random 0..2*pace_ms ms first;
    `signed`: extra headers (a SigV4 signature of BODY) sent with every request."""
    delay = ""
    if pace_ms is not None:
        delay = f"delay = function() return math.random(0, {2 * pace_ms}) end\n"
    extra = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in (signed or {}).items())
    name = "post" if pace_ms is None else f"post-paced-{pace_ms}"
    path = directory / (f"{name}-signed.lua" if signed else f"{name}.lua")
    path.write_text(_SCRIPT % {"body": BODY, "delay": delay, "signed": extra})
    return path


def run_wrk(
    url: str,
    *,
    script: Path,
    connections: int,
    duration_s: float,
    cpus: str | None,
    log: Path | None = None,
) -> WrkResult:
    argv = pinned(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration_s:g}s",
            "--timeout",
            "5s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        cpus,
    )
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 30)
    if log is not None:
        with log.open("a") as f:
            f.write(f"$ {' '.join(argv)}\n{out.stdout}{out.stderr}\n")
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr.strip()}")
    return parse(out.stdout)


def parse(stdout: str) -> WrkResult:
    for line in stdout.splitlines():
        if line.startswith("BENCH "):
            duration_us, requests, connect, read, write, status, timeout, p50, p99, top = (
                int(v) for v in line.split()[1:]
            )
            return WrkResult(
                requests=requests,
                duration_s=duration_us / 1e6,
                errors=connect + read + write + status + timeout,
                p50_ms=p50 / 1000,
                p99_ms=p99 / 1000,
                max_ms=top / 1000,
            )
    raise RuntimeError(f"no BENCH line in wrk output:\n{stdout}")
