"""The rows measured and the processes behind them: four model servers, shadowlab, nginx.

Both proxies forward to the very same production, fast-shadow and 20 ms-shadow servers, so a
ratio between a shadowlab row and an nginx row compares the proxies and nothing else. The fourth
server, the serial shadow, answers one request at a time (SERIAL_SHADOW_MS each): a shadow
slower than the load offered to it, which only shadowlab's paced rows copy to.

Two shadowlab rows capture 100% of their traffic (endpoint-config `DataCaptureConfig`, input
and output, JSON as text): one without a shadow, one with the fast shadow. Each is measured next
to its twin without capture, so the ratio of the two is what capture costs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nginxproxy
import provenance
import shadowlabctl
from processes import Cores, Supervisor, free_port

HERE = Path(__file__).resolve().parent
SLOW_SHADOW_MS = 20.0
# One request at a time, 1 ms each: capacity 1000 req/s, a fifth to a quarter of the paced
# phase's 4-5k req/s, and 10-20x production's whole round trip (direct, 1 connection: p50
# 0.05-0.1 ms). The echo production does no work of its own, so capacity against offered load,
# not a ratio of service times, is what this shadow sets.
SERIAL_SHADOW_MS = 1.0
SHADOWS = ("fast", "slow", "serial")


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    proxy: str | None  # "shadowlab", "nginx", or None: straight to the production model server
    shadow: str | None  # one of SHADOWS, or None
    capture: bool = False  # shadowlab only: the endpoint captures 100% of its traffic
    signed: bool = False  # shadowlab only: every request carries a SigV4 signature to verify


DIRECT = Row("direct", "direct to the model server", None, None)
SL_PLAIN = Row("shadowlab-plain", "shadowlab, no shadow", "shadowlab", None)
NGINX_PLAIN = Row("nginx-plain", "nginx keep-alive proxy", "nginx", None)
SL_PLAIN_SIGNED = Row(
    "shadowlab-plain-signed", "shadowlab, no shadow, SigV4 verified", "shadowlab", None, signed=True
)
SL_FAST = Row("shadowlab-fast", "shadowlab, 100% shadow (fast)", "shadowlab", "fast")
NGINX_FAST = Row("nginx-fast", "nginx mirror (fast)", "nginx", "fast")
SL_PLAIN_CAPTURE = Row(
    "shadowlab-plain-capture", "shadowlab, no shadow, capture 100%", "shadowlab", None, True
)
SL_FAST_CAPTURE = Row(
    "shadowlab-fast-capture",
    "shadowlab, 100% shadow (fast), capture 100%",
    "shadowlab",
    "fast",
    True,
)
SL_SLOW = Row("shadowlab-slow", "shadowlab, 100% shadow (20 ms)", "shadowlab", "slow")
NGINX_SLOW = Row("nginx-slow", "nginx mirror (20 ms)", "nginx", "slow")
SL_SERIAL = Row(
    "shadowlab-serial",
    f"shadowlab, 100% shadow (serial {SERIAL_SHADOW_MS:g} ms)",
    "shadowlab",
    "serial",
)
# Neighbours whose ratios are reported, in the order of odd rounds; even rounds reverse each
# group. A twin without capture sits between its capture row and its nginx row, so it stays next
# to both whichever way the group runs.
SATURATED_GROUPS: tuple[tuple[Row, ...], ...] = (
    (DIRECT,),
    (SL_PLAIN_CAPTURE, SL_PLAIN, SL_PLAIN_SIGNED, NGINX_PLAIN),
    (SL_FAST_CAPTURE, SL_FAST, NGINX_FAST),
    (SL_SLOW, NGINX_SLOW),
)
# The order of the report's tables: each capture row right after its twin.
ALL_ROWS = (
    DIRECT,
    SL_PLAIN,
    SL_PLAIN_CAPTURE,
    SL_PLAIN_SIGNED,
    NGINX_PLAIN,
    SL_FAST,
    SL_FAST_CAPTURE,
    NGINX_FAST,
    SL_SLOW,
    NGINX_SLOW,
    SL_SERIAL,
)
# Capture: everything, input and output, the benchmark's JSON as JSON text (as a user would
# configure it), into the embedded store under shadowlab's data dir.
CAPTURE_DESTINATION = "s3://bench-capture/data"
DATA_CAPTURE_CONFIG = {
    "EnableCapture": True,
    "InitialSamplingPercentage": 100,
    "DestinationS3Uri": CAPTURE_DESTINATION,
    "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
    "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
}
CAPTURED_SHADOWS = (None, "fast")  # one capture endpoint each: bench-plain-capture, bench-fast-...


def endpoint(row: Row) -> str:
    name = "bench-plain" if row.shadow is None else f"bench-{row.shadow}"
    return f"{name}-capture" if row.capture else name


def capacity_rps(shadow: str) -> float | None:
    """Requests per second the shadow model server can answer at most (None: no such limit)."""
    return 1000.0 / SERIAL_SHADOW_MS if shadow == "serial" else None


@dataclass(frozen=True)
class Lab:
    """Everything started for the run: ports, and pids whose CPU time is accounted."""

    cores: Cores
    model_ports: dict[str, int]  # "production" and SHADOWS
    model_pids: dict[str, int]
    shadowlab_port: int
    shadowlab_pid: int
    nginx_port: int
    nginx_pid: int

    def url(self, row: Row) -> str:
        if row.proxy is None:
            return f"http://127.0.0.1:{self.model_ports['production']}/invocations"
        if row.proxy == "shadowlab":
            return f"http://127.0.0.1:{self.shadowlab_port}/endpoints/{endpoint(row)}/invocations"
        path = {None: "plain", "fast": "mirror-fast", "slow": "mirror-slow"}[row.shadow]
        return f"http://127.0.0.1:{self.nginx_port}/{path}"

    def server_pid(self, row: Row) -> int:
        """The process under test in `row` (for a direct row, the production model server)."""
        if row.proxy is None:
            return self.model_pids["production"]
        return self.shadowlab_pid if row.proxy == "shadowlab" else self.nginx_pid

    def all_pids(self) -> list[int]:
        return [*self.model_pids.values(), self.shadowlab_pid, self.nginx_pid]

    def model_counts(self, name: str) -> dict[str, int]:
        """What the model server `name` did since it started: invocations (received), served
        (answered 200), expired and abandoned (serial mode: skipped before their turn)."""
        url = f"http://127.0.0.1:{self.model_ports[name]}/count"
        with urllib.request.urlopen(url, timeout=5) as r:
            return {k: int(v) for k, v in json.load(r).items()}


def start_lab(
    supervisor: Supervisor, work_dir: Path, cores: Cores, shadowlab_env: dict[str, str]
) -> Lab:
    ports = {name: free_port() for name in ("production", *SHADOWS)}
    modes = {
        "production": [],
        "fast": [],
        "slow": ["--delay-ms", str(SLOW_SHADOW_MS)],
        "serial": ["--serial-ms", str(SERIAL_SHADOW_MS)],
    }
    pids = {}
    for name, port in ports.items():
        argv = [sys.executable, str(HERE / "modelserver.py"), "--port", str(port), *modes[name]]
        # Model servers share the load generator's core: the proxy under test owns the other.
        pids[name] = supervisor.start(f"model-{name}", argv, cpus=cores.load, port=port).pid
    sl_proc, sl_port = shadowlabctl.start_shadowlab(
        supervisor, str(work_dir / "shadowlab"), cpus=cores.server, env=shadowlab_env
    )
    shadowlabctl.create_endpoints(
        sl_port,
        production=ports["production"],
        shadows={s: ports[s] for s in SHADOWS},
        captured=CAPTURED_SHADOWS,
        capture_config=DATA_CAPTURE_CONFIG,
    )
    ng_proc, ng_port = nginxproxy.start_nginx(
        supervisor,
        work_dir,
        production=ports["production"],
        fast=ports["fast"],
        slow=ports["slow"],
        cpus=cores.server,
    )
    return Lab(cores, ports, pids, sl_port, sl_proc.pid, ng_port, ng_proc.pid)


# The capture scripts' endpoints (profile_capture.py, capture_instructions.py): no shadow and the
# fast shadow, each without and with 100% capture; each pair's ratio is what issue 11 asks.
CAPTURE_ENDPOINTS = ("bench-plain", "bench-plain-capture", "bench-fast", "bench-fast-capture")
CAPTURE_PAIRS = (("bench-plain", "bench-plain-capture"), ("bench-fast", "bench-fast-capture"))


def start_capture_lab(
    supervisor: Supervisor,
    work_dir: Path,
    *,
    rev: str | None,
    model_cpus: str | None,
    server_cpus: str | None,
    wrapper: Sequence[str] = (),
    start_timeout_s: float = 30.0,
) -> tuple[subprocess.Popen[bytes], int]:
    """The production and fast-shadow model servers and shadowlab (src/ of `rev` when given,
    under `wrapper` when given) with CAPTURE_ENDPOINTS; shadowlab's process and port."""
    env: dict[str, str] = {}
    if rev:
        commit, env = provenance.export_revision(rev, work_dir / "rev")
        print(f"shadowlab {commit} (exported with --rev)", flush=True)
    ports = {name: free_port() for name in ("production", "fast")}
    for name, port in ports.items():
        argv = [sys.executable, str(HERE / "modelserver.py"), "--port", str(port)]
        supervisor.start(f"model-{name}", argv, cpus=model_cpus, port=port)
    proc, port = shadowlabctl.start_shadowlab(
        supervisor,
        str(work_dir / "shadowlab"),
        cpus=server_cpus,
        env=env,
        wrapper=wrapper,
        start_timeout_s=start_timeout_s,
    )
    shadowlabctl.create_endpoints(
        port,
        production=ports["production"],
        shadows={"fast": ports["fast"]},
        captured=(None, "fast"),
        capture_config=DATA_CAPTURE_CONFIG,
    )
    return proc, port
