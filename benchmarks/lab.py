"""The rows measured and the processes behind them: three model servers, shadowlab, nginx.

Both proxies forward to the very same production, fast-shadow and 20 ms-shadow servers, so a
ratio between a shadowlab row and an nginx row compares the proxies and nothing else.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import nginxproxy
import shadowlabctl
from processes import Cores, Supervisor, free_port

HERE = Path(__file__).resolve().parent
SLOW_SHADOW_MS = 20.0


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    proxy: str | None  # "shadowlab", "nginx", or None: straight to the production model server
    shadow: str | None  # "fast", "slow" or None


DIRECT = Row("direct", "direct to the model server", None, None)
SL_PLAIN = Row("shadowlab-plain", "shadowlab, no shadow", "shadowlab", None)
NGINX_PLAIN = Row("nginx-plain", "nginx keep-alive proxy", "nginx", None)
SL_FAST = Row("shadowlab-fast", "shadowlab, 100% shadow (fast)", "shadowlab", "fast")
NGINX_FAST = Row("nginx-fast", "nginx mirror (fast)", "nginx", "fast")
SL_SLOW = Row("shadowlab-slow", "shadowlab, 100% shadow (20 ms)", "shadowlab", "slow")
NGINX_SLOW = Row("nginx-slow", "nginx mirror (20 ms)", "nginx", "slow")
ALL_ROWS = (DIRECT, SL_PLAIN, NGINX_PLAIN, SL_FAST, NGINX_FAST, SL_SLOW, NGINX_SLOW)


def endpoint(row: Row) -> str:
    return {None: "bench-plain", "fast": "bench-fast", "slow": "bench-slow"}[row.shadow]


@dataclass(frozen=True)
class Lab:
    """Everything started for the run: ports, and pids whose CPU time is accounted."""

    cores: Cores
    model_ports: dict[str, int]  # "production", "fast", "slow"
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

    def model_count(self, name: str) -> int:
        """Invocations the model server `name` has answered since it started."""
        url = f"http://127.0.0.1:{self.model_ports[name]}/count"
        with urllib.request.urlopen(url, timeout=5) as r:
            return int(json.load(r)["invocations"])


def start_lab(
    supervisor: Supervisor, work_dir: Path, cores: Cores, shadowlab_env: dict[str, str]
) -> Lab:
    ports = {name: free_port() for name in ("production", "fast", "slow")}
    delays = {"production": 0.0, "fast": 0.0, "slow": SLOW_SHADOW_MS}
    pids = {}
    for name, port in ports.items():
        argv = [sys.executable, str(HERE / "modelserver.py"), "--port", str(port)]
        argv += ["--delay-ms", str(delays[name])]
        # Model servers share the load generator's core: the proxy under test owns the other.
        pids[name] = supervisor.start(f"model-{name}", argv, cpus=cores.load, port=port).pid
    sl_proc, sl_port = shadowlabctl.start_shadowlab(
        supervisor, str(work_dir / "shadowlab"), cpus=cores.server, env=shadowlab_env
    )
    shadowlabctl.create_endpoints(
        sl_port, production=ports["production"], fast=ports["fast"], slow=ports["slow"]
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
