"""Object keys of captured data, shared by the writer (who names) and the reader (who parses).

Data files follow SageMaker's layout exactly:
``<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/<mm-ss-mmm>-<uuid>.jsonl``, the hour and the name's
time being those of the window's first record's inference time (UTC), so files sort by time.

Each data file has a small summary object (a "window sidecar") at the same relative place under
``<prefix>/_shadowlab/``: ``<prefix>/_shadowlab/<endpoint>/<variant>/yyyy/mm/dd/hh/<same>.json``.
It is kept outside ``<prefix>/<endpoint>/`` so tools that read SageMaker's layout (Model Monitor
pointed at the endpoint's prefix) never meet a file they do not know, and ``_shadowlab`` cannot
be an endpoint name (SageMaker names are ``[a-zA-Z0-9](-*[a-zA-Z0-9])*``). It holds the window's
counts, shed copies included, which the data file cannot carry; see ``writer.py``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

SIDECAR_DIR = "_shadowlab"
DATA_SUFFIX = ".jsonl"
SIDECAR_SUFFIX = ".json"


def _join(*parts: str) -> str:
    return "/".join(part for part in parts if part)


def hour_path(epoch: float) -> str:
    """``yyyy/mm/dd/hh`` (UTC) of an epoch time."""
    return time.strftime("%Y/%m/%d/%H", time.gmtime(int(epoch)))


def file_stem(epoch: float, unique: str) -> str:
    """``mm-ss-mmm-<unique>``: minute, second and millisecond of `epoch`, then a unique id."""
    tm = time.gmtime(int(epoch))
    millis = int((epoch - int(epoch)) * 1000)
    return f"{tm.tm_min:02d}-{tm.tm_sec:02d}-{millis:03d}-{unique}"


def endpoint_prefix(prefix: str, endpoint: str) -> str:
    """Where one endpoint's data files start (with a trailing slash, for listing)."""
    return _join(prefix, endpoint) + "/"


def sidecar_prefix(prefix: str, endpoint: str) -> str:
    return _join(prefix, SIDECAR_DIR, endpoint) + "/"


def data_key(prefix: str, endpoint: str, variant: str, hour: str, stem: str) -> str:
    return _join(prefix, endpoint, variant, hour, stem + DATA_SUFFIX)


def sidecar_key(prefix: str, endpoint: str, variant: str, hour: str, stem: str) -> str:
    return _join(prefix, SIDECAR_DIR, endpoint, variant, hour, stem + SIDECAR_SUFFIX)


@dataclass(frozen=True, slots=True)
class KeyParts:
    variant: str
    hour: str  # yyyy/mm/dd/hh
    stem: str  # mm-ss-mmm-<uuid>


def parse_relative(relative: str, suffix: str) -> KeyParts | None:
    """``<variant>/yyyy/mm/dd/hh/<stem><suffix>`` -> its parts; None for anything else."""
    parts = relative.split("/")
    if len(parts) != 6 or not parts[5].endswith(suffix):
        return None
    variant, year, month, day, hour, name = parts
    if not all(p.isdigit() for p in (year, month, day, hour)):
        return None
    return KeyParts(variant, f"{year}/{month}/{day}/{hour}", name[: -len(suffix)])
