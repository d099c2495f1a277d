"""Typed settings, read once from arguments and the environment (prefix ``SHADOWLAB_``).

`load_settings` is the one way in: defaults, then ``SHADOWLAB_*`` variables, then CLI flags,
validated by pydantic-settings. A bad value raises `SettingsError`, one line per bad value that
names the variable or flag as the user wrote it (``SHADOWLAB_PORT: 'abc' is not an integer``).
``Settings(...)`` itself takes only what it is given: it never reads the environment, so the
CLI's help and tests see the defaults. Unknown ``SHADOWLAB_*`` variables are ignored: workers
and model containers read some of their own (``SHADOWLAB_UPSTREAM_URL``, ``..._MAX_QUEUE``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

ENV_PREFIX = "SHADOWLAB_"

# "process": real worker processes; "none": control plane only (variants InService at once).
Hosting = Literal["process", "none"]
LogLevel = Literal["debug", "info", "warning", "error"]


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _account_id(value: str) -> str:
    # ARNs carry it; botocore's ARN patterns (and so every client) want exactly 12 digits.
    if len(value) != 12 or not value.isascii() or not value.isdigit():
        raise PydanticCustomError("account_id", "is not a 12-digit AWS account id")
    return value


Choice = BeforeValidator(_lower)  # SHADOWLAB_LOG_LEVEL=INFO worked before choices were checked
Positive = Field(gt=0)
AtLeastOne = Field(ge=1)
NotNegative = Field(ge=0)  # 0 means "no limit" where it is allowed


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_ignore_empty=True,  # SHADOWLAB_PORT= means the default, as it always did
        frozen=True,
        extra="forbid",  # of keyword arguments (a typo in code); unknown variables are ignored
        allow_inf_nan=False,
    )

    host: str = "127.0.0.1"
    # 0: any free port.
    port: Annotated[int, Field(ge=0, le=65535)] = 7070
    # Made absolute by load_settings: workers run in other working directories.
    data_dir: Path = Path(".shadowlab")
    # None: SQLite file in data_dir. postgresql://... when several replicas share state.
    database_url: str | None = None
    # None: s3:// URIs map to data_dir/s3/<bucket>/<key>.
    s3_endpoint_url: str | None = None
    account_id: Annotated[str, AfterValidator(_account_id)] = "000000000000"
    default_region: str = "us-east-1"
    # How often the reconciler looks for work, in seconds.
    reconcile_interval: Annotated[float, Positive] = 0.5
    # Every instance is a real process on this machine: a quota keeps a typo from forking 500.
    max_instances: Annotated[int, AtLeastOne] = 32
    # Shadow mirror bounds (see ARCHITECTURE "Measured facts").
    mirror_max_in_flight: Annotated[int, AtLeastOne] = 1024
    mirror_timeout: Annotated[float, Positive] = 2.0
    # A capture file is sealed and stored once it is this old (or at an hour's end, or 64 MiB).
    capture_file_seconds: Annotated[float, Positive] = 60.0
    # How often worker CPU and memory are sampled and metric minutes are written to the store.
    metrics_interval: Annotated[float, Positive] = 5.0
    hosting: Annotated[Hosting, Choice] = "process"
    log_level: Annotated[LogLevel, Choice] = "info"
    # Slow and greedy clients (defaults and why: dataplane/limits.py ConnectionLimits).
    # Seconds for a whole request head to arrive (a new connection's first: from accept).
    head_timeout: Annotated[float, Positive] = 10.0
    # A request body must average body_min_rate bytes/s over every body_timeout seconds.
    body_timeout: Annotated[float, Positive] = 20.0
    body_min_rate: Annotated[int, NotNegative] = 500  # 0: no minimum rate
    # Seconds an idle keep-alive connection is kept open.
    keepalive_timeout: Annotated[float, Positive] = 75.0
    # Open client connections; more are answered 503 and closed (also bounded by ulimit -n).
    max_connections: Annotated[int, AtLeastOne] = 10_000
    # Request-body bytes buffered across all connections; a body beyond that gets a 503.
    max_buffered_body_bytes: Annotated[int, AtLeastOne] = 256 * 1024 * 1024
    # One request body of the embedded S3 API (PutObject, UploadPart): S3 bodies are buffered
    # like the others, so this is below the buffer budget; boto3 uploads 8 MiB parts.
    s3_max_body_bytes: Annotated[int, AtLeastOne] = 64 * 1024 * 1024
    # AWS-style credentials file: every profile's key pair may sign requests (SigV4, verified).
    credentials_file: Path | None = None
    # Accept unsigned requests instead (development only; refused unless the bind is loopback).
    allow_unsigned: bool = False
    # How far a request's signing time may be from the server's clock, as AWS allows.
    auth_max_skew: Annotated[float, Positive] = 900.0
    # Run workers as this user (the server must run as root); None: as the server's own user.
    worker_user: str | None = None
    # Per-worker RLIMIT_AS in MiB; 0: unlimited (numpy/BLAS reserve large virtual ranges).
    worker_max_address_space_mb: Annotated[int, NotNegative] = 0
    # Per-worker RLIMIT_NOFILE (hard limit: model code cannot raise it); 0: inherited.
    worker_max_open_files: Annotated[int, NotNegative] = 4096
    # Bytes one model may unpack to (archive, S3 prefix or directory); see hosting/artifacts.py.
    artifact_max_bytes: Annotated[int, AtLeastOne] = 10 * 1024**3
    # Files and directories one model may unpack to.
    artifact_max_members: Annotated[int, AtLeastOne] = 100_000
    # Where SHADOWLAB_UPSTREAM_URL may point: IP networks and host names, comma-separated; "*" any.
    upstream_hosts: str = "127.0.0.0/8,::1,localhost"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Keyword arguments only: load_settings reads the environment it is handed.
        return (init_settings,)

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


class SettingsError(ValueError):
    """A bad setting; the message has one line per bad value, each naming its variable or flag."""


class _EnvironSource(EnvSettingsSource):
    """pydantic-settings' environment source (prefix, case, empty values, parsing) over a given
    mapping instead of ``os.environ``: `_load_env_vars` is the hook its own dotenv source
    overrides (present since pydantic-settings 2.0; tests/test_settings.py would notice)."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ  # read by _load_env_vars, which the base __init__ calls
        super().__init__(Settings)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {
            (name if self.case_sensitive else name.lower()): value
            for name, value in self._environ.items()
            if not (self.env_ignore_empty and value == "")
        }


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Defaults, then ``SHADOWLAB_*`` environment variables, then explicit overrides (CLI flags:
    field names, None for a flag not given). Raises SettingsError for a bad value."""
    env = os.environ if environ is None else environ
    flags = {name: value for name, value in (overrides or {}).items() if value is not None}
    try:
        settings = Settings(**{**_EnvironSource(env)(), **flags})
    except ValidationError as exc:
        lines = (_describe(error, flags, env) for error in exc.errors(include_url=False))
        raise SettingsError("\n".join(dict.fromkeys(lines))) from None
    # Workers run with other working directories: every path they are handed is absolute.
    return settings.model_copy(update={"data_dir": settings.data_dir.resolve()})


# What a value is not, by pydantic's error type; formatted with the error's context.
_PHRASES = {
    "int_parsing": "is not an integer",
    "int_from_float": "is not an integer",
    "int_type": "is not an integer",
    "float_parsing": "is not a number",
    "float_type": "is not a number",
    "finite_number": "is not a finite number",
    "bool_parsing": "is not a boolean (true/false, yes/no, on/off, 1/0)",
    "bool_type": "is not a boolean (true/false, yes/no, on/off, 1/0)",
    "greater_than": "must be greater than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than": "must be less than {lt}",
    "less_than_equal": "must be at most {le}",
    "string_type": "is not a string",
    "path_type": "is not a path",
    "extra_forbidden": "is not a setting",
    "account_id": "is not a 12-digit AWS account id",
}


def _describe(error: ErrorDetails, flags: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    """One self-contained line: where the value came from, the value as given, what is wrong."""
    name = str(error["loc"][0]) if error["loc"] else "settings"
    value = error["input"]
    if name in flags:
        where = "--" + name.replace("_", "-")
        value = flags[name] if len(error["loc"]) == 1 else value
    else:
        wanted = (ENV_PREFIX + name).lower()
        where = next((key for key in environ if key.lower() == wanted), ENV_PREFIX + name.upper())
        value = environ.get(where, value) if len(error["loc"]) == 1 else value
    kind = error["type"]
    if kind == "literal_error":
        field = Settings.model_fields.get(name)
        choices = get_args(field.annotation) if field is not None else ()
        phrase = "is not one of: " + ", ".join(str(choice) for choice in choices)
    elif kind in _PHRASES:
        context = {key: _number(bound) for key, bound in error.get("ctx", {}).items()}
        phrase = _PHRASES[kind].format(**context)
    else:
        phrase = f"is not valid ({error['msg']})"
    return f"{where}: {value!r} {phrase}".replace("\n", " ")


def _number(bound: Any) -> Any:
    """0.0 -> 0 in a message: a bound of a float setting reads as the user would write it."""
    return int(bound) if isinstance(bound, float) and bound.is_integer() else bound
