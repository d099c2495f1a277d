"""nginx as the baseline: a keep-alive reverse proxy, with and without `mirror`.

One nginx (one worker, like shadowlab's one event loop) serves three locations on one port:
`/plain` proxies to production; `/mirror-fast` and `/mirror-slow` do the same and `mirror` every
request to the fast or the 20 ms shadow. Upstream keep-alive is on (HTTP/1.1, `Connection ""`)
and per-connection request limits are lifted, so nginx runs at its best, not its defaults.
It runs in the foreground (`daemon off`) with every path inside its own temp dir, so it needs no
system configuration and dies with the benchmark.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from processes import Supervisor, free_port

_PROXY = """\
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $proxy_host;"""

_CONF = """\
user root;
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
worker_rlimit_nofile 16384;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {dir}/client_body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  client_body_buffer_size 64k;
  upstream production {{ server 127.0.0.1:{production}; keepalive 256;
                         keepalive_requests 1000000; }}
  upstream fast_shadow {{ server 127.0.0.1:{fast}; keepalive 256; keepalive_requests 1000000; }}
  upstream slow_shadow {{ server 127.0.0.1:{slow}; keepalive 1024; keepalive_requests 1000000; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location = /plain {{
      proxy_pass http://production/invocations;
{proxy}
    }}
    location = /mirror-fast {{
      mirror /_fast;
      mirror_request_body on;
      proxy_pass http://production/invocations;
{proxy}
    }}
    location = /mirror-slow {{
      mirror /_slow;
      mirror_request_body on;
      proxy_pass http://production/invocations;
{proxy}
    }}
    location = /_fast {{
      internal;
      proxy_pass http://fast_shadow/invocations;
{proxy}
    }}
    location = /_slow {{
      internal;
      proxy_pass http://slow_shadow/invocations;
{proxy}
    }}
  }}
}}
"""


def version() -> str:
    out = subprocess.run(["nginx", "-v"], capture_output=True, text=True)
    return (out.stderr or out.stdout).strip().removeprefix("nginx version: nginx/")


def start_nginx(
    supervisor: Supervisor,
    work_dir: Path,
    *,
    production: int,
    fast: int,
    slow: int,
    cpus: str | None,
) -> tuple[subprocess.Popen[bytes], int]:
    """Start nginx in the foreground; returns the process and its port."""
    if shutil.which("nginx") is None:
        raise RuntimeError("nginx is not installed: apt-get install -y nginx (or run `make bench`)")
    prefix = work_dir / "nginx"
    prefix.mkdir()
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(
        _CONF.format(
            dir=prefix, port=port, production=production, fast=fast, slow=slow, proxy=_PROXY
        )
    )
    argv = ["nginx", "-p", str(prefix), "-c", str(conf)]
    proc = supervisor.start("nginx", argv, cpus=cpus, port=port)
    return proc, port
