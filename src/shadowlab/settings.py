"""Typed settings, read once from arguments and the environment (prefix ``SHADOWLAB_``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

ENV_PREFIX = "SHADOWLAB_"


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 7070
    data_dir: Path = Path(".shadowlab")
    # None: SQLite file in data_dir. postgresql://... when several replicas share state.
    database_url: str | None = None
    # None: s3:// URIs map to data_dir/s3/<bucket>/<key>.
    s3_endpoint_url: str | None = None
    account_id: str = "000000000000"
    default_region: str = "us-east-1"
    # How often the reconciler looks for work, in seconds.
    reconcile_interval: float = 0.5
    # Every instance is a real process on this machine: a quota keeps a typo from forking 500.
    max_instances: int = 32
    # Shadow mirror bounds (see ARCHITECTURE "Measured facts").
    mirror_max_in_flight: int = 1024
    mirror_timeout: float = 2.0
    # A capture file is sealed and stored once it is this old (or at an hour's end, or 64 MiB).
    capture_file_seconds: float = 60.0
    # How often worker CPU and memory are sampled and metric minutes are written to the store.
    metrics_interval: float = 5.0
    # "process": real worker processes; "none": control plane only (variants InService at once).
    hosting: str = "process"
    log_level: str = "info"
    # Slow and greedy clients (defaults and why: dataplane/limits.py ConnectionLimits).
    # Seconds for a whole request head to arrive (a new connection's first: from accept).
    head_timeout: float = 10.0
    # A request body must average body_min_rate bytes/s over every body_timeout seconds.
    body_timeout: float = 20.0
    body_min_rate: int = 500
    # Seconds an idle keep-alive connection is kept open.
    keepalive_timeout: float = 75.0
    # Open client connections; more are answered 503 and closed (also bounded by ulimit -n).
    max_connections: int = 10_000
    # Request-body bytes buffered across all connections; a body beyond that gets a 503.
    max_buffered_body_bytes: int = 256 * 1024 * 1024
    # One request body of the embedded S3 API (PutObject, UploadPart): S3 bodies are buffered
    # like the others, so this is below the buffer budget; boto3 uploads 8 MiB parts.
    s3_max_body_bytes: int = 64 * 1024 * 1024
    # AWS-style credentials file: every profile's key pair may sign requests (SigV4, verified).
    credentials_file: Path | None = None
    # Accept unsigned requests instead (development only; refused unless the bind is loopback).
    allow_unsigned: bool = False
    # How far a request's signing time may be from the server's clock, as AWS allows.
    auth_max_skew: float = 900.0
    # Run workers as this user (the server must run as root); None: as the server's own user.
    worker_user: str | None = None
    # Per-worker RLIMIT_AS in MiB; 0: unlimited (numpy/BLAS reserve large virtual ranges).
    worker_max_address_space_mb: int = 0
    # Per-worker RLIMIT_NOFILE (hard limit: model code cannot raise it).
    worker_max_open_files: int = 4096
    # Bytes one model may unpack to (archive, S3 prefix or directory); see hosting/artifacts.py.
    artifact_max_bytes: int = 10 * 1024**3
    # Files and directories one model may unpack to.
    artifact_max_members: int = 100_000
    # Where SHADOWLAB_UPSTREAM_URL may point: IP networks and host names, comma-separated; "*" any.
    upstream_hosts: str = "127.0.0.0/8,::1,localhost"
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url is None:
            return f"sqlite:///{(self.data_dir / 'shadowlab.db').resolve()}"
        url = self.database_url
        # psycopg 3 is the PostgreSQL driver we ship; plain postgresql:// means it.
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url

    @property
    def object_store_root(self) -> Path:
        return self.data_dir / "s3"


def _coerce(kind: Any, raw: str) -> Any:
    if kind in (bool, "bool"):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if kind in (int, "int"):
        return int(raw)
    if kind in (float, "float"):
        return float(raw)
    if kind in (Path, "Path"):
        return Path(raw)
    return raw


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Defaults, then ``SHADOWLAB_*`` environment variables, then explicit overrides (CLI flags)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in fields(Settings):
        if f.name == "extra":
            continue
        raw = env.get(ENV_PREFIX + f.name.upper())
        if raw is not None and raw != "":
            kind = f.type.split(" | ")[0] if isinstance(f.type, str) else f.type
            values[f.name] = _coerce(kind, raw)
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = Path(value) if key in ("data_dir", "credentials_file") else value
    settings = replace(Settings(), **values)
    # Workers run with other working directories: every path they are handed is absolute.
    return replace(settings, data_dir=settings.data_dir.resolve())
