"""One capture window on local disk: the data file being filled and its metadata.

A window is ``<spool>/<stem>.jsonl`` (records, appended whole lines at a time) plus
``<spool>/<stem>.meta.json`` (where the file goes and the counts the data cannot carry). The meta
file is written, synced, before the first record, so a window found after a crash always knows
its object key: uploading it again overwrites the object instead of adding a duplicate.

The spool file name starts with the creation time in nanoseconds, so sorting names gives the order
windows were opened in; recovery uploads in that order.

Only the writer's spool thread touches an open ``SpoolFile``; the upload thread gets it sealed.
"""

from __future__ import annotations

import calendar
import contextlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from shadowlab.capture import layout
from shadowlab.capture.record import EXTENSION_KEY, EncodedBatch
from shadowlab.capture.stores import fsync_dir

DATA_SUFFIX = ".jsonl"
META_SUFFIX = ".meta.json"
SIDECAR_FORMAT = 1


class SpoolFile:
    """Counts are of records handed to the kernel (``write_pending``), never of queued lines."""

    def __init__(self, data_path: Path, meta: dict[str, Any]) -> None:
        self.data_path = data_path
        self.meta_path = data_path.with_name(data_path.name[: -len(DATA_SUFFIX)] + META_SUFFIX)
        self.meta = meta
        self.fd = -1
        self.opened_at = time.monotonic()
        self.size = 0
        self.records = 0
        self.failed = 0
        self.timeout = 0
        self.model_errors = 0  # answered with a non-2xx status
        self.shed = int(meta.get("shed", 0))
        self._first = 1 << 62  # inference-time range, whole seconds; empty while _last < 0
        self._last = -1
        self.pending: list[EncodedBatch] = []  # added, not yet written
        self.pending_bytes = 0
        self.pending_records = 0
        self._unsynced = False
        self._meta_dirty = False

    # -- creating and filling (spool thread) ---------------------------------------------------

    @classmethod
    def create(
        cls,
        spool_dir: Path,
        *,
        bucket: str,
        prefix: str,
        kms_key_id: str | None,
        endpoint: str,
        variant: str,
        role: str,
        first_time: float,
    ) -> SpoolFile:
        hour = layout.hour_path(first_time)
        stem = layout.file_stem(first_time, str(uuid.uuid4()))
        meta = {
            "bucket": bucket,
            "key": layout.data_key(prefix, endpoint, variant, hour, stem),
            "sidecarKey": layout.sidecar_key(prefix, endpoint, variant, hour, stem),
            "kmsKeyId": kms_key_id,
            "endpoint": endpoint,
            "variant": variant,
            "role": role,
            "shed": 0,
        }
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}"
        spool = cls(spool_dir / (name + DATA_SUFFIX), meta)
        spool._write_meta()
        spool.fd = os.open(spool.data_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        fsync_dir(spool_dir)
        return spool

    def add(self, batch: EncodedBatch) -> None:
        """Queue encoded lines for the next ``write_pending``."""
        self.pending.append(batch)
        self.pending_bytes += len(batch.data)
        self.pending_records += batch.records

    @property
    def first_time(self) -> int | None:
        return self._first if self._last >= 0 else None

    @property
    def last_time(self) -> int | None:
        return self._last if self._last >= 0 else None

    def _count(self, batch: EncodedBatch) -> None:
        self.records += batch.records
        self.failed += batch.failed
        self.timeout += batch.timeout
        self.model_errors += batch.model_errors
        if batch.records:
            self._first = min(self._first, batch.first)
            self._last = max(self._last, batch.last)

    def count_shed(self, copies: int) -> None:
        self.shed += copies
        self._meta_dirty = True

    def write_pending(self) -> int:
        """Hand the queued lines to the kernel in one go; returns the records written. On an
        error the file is cut back to its last whole line, the lines are lost (the caller counts
        them) and the error is raised.
        """
        if not self.pending:
            return 0
        batches = self.pending
        data = batches[0].data if len(batches) == 1 else b"".join(b.data for b in batches)
        records = self.pending_records
        self.pending = []
        self.pending_bytes = self.pending_records = 0
        view = memoryview(data)
        written = 0
        try:
            while written < len(data):
                written += os.write(self.fd, view[written:])
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, self.size)
            raise
        self.size += len(data)
        for batch in batches:
            self._count(batch)
        self._unsynced = True
        return records

    def sync(self) -> None:
        """Make what was written durable: data fsync, and the meta when its counts changed."""
        if self._unsynced and self.fd >= 0:
            os.fsync(self.fd)
            self._unsynced = False
        if self._meta_dirty:
            self._write_meta()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _write_meta(self) -> None:
        self.meta["shed"] = self.shed
        tmp = self.meta_path.with_name(self.meta_path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as out:
            json.dump(self.meta, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.meta_path)
        self._meta_dirty = False

    # -- sealed (upload thread) ----------------------------------------------------------------

    def sidecar(self) -> bytes:
        """The window's summary object; see ``layout``."""
        summary = {
            "shadowlabCaptureWindow": SIDECAR_FORMAT,
            "endpoint": self.meta["endpoint"],
            "variant": self.meta["variant"],
            "role": self.meta["role"],
            "dataKey": self.meta["key"] if self.records else None,
            "records": self.records,
            "failed": self.failed,
            "timeout": self.timeout,
            "modelErrors": self.model_errors,
            "shed": self.shed,
            "firstInferenceTime": _iso(self.first_time),
            "lastInferenceTime": _iso(self.last_time),
        }
        return json.dumps(summary, separators=(",", ":")).encode()

    def remove(self) -> None:
        self.close()
        self.data_path.unlink(missing_ok=True)
        self.meta_path.unlink(missing_ok=True)

    @classmethod
    def recover(cls, meta_path: Path) -> tuple[SpoolFile, int]:
        """A window left by a process that died: re-count its records from the data file and
        cut off what is not a whole JSON line (a write torn by the kill, or the zeroes a power
        cut can leave). Returns the window, sealed, and how many lines were cut.
        """
        with open(meta_path, encoding="utf-8") as source:
            meta = json.load(source)
        data_path = meta_path.with_name(meta_path.name[: -len(META_SUFFIX)] + DATA_SUFFIX)
        spool = cls(data_path, meta)
        if not data_path.exists():
            data_path.touch()
        torn = 0
        with open(data_path, "rb") as source:
            for line in source:
                record = _parse(line)
                if record is None:
                    torn += 1
                    continue
                spool._count_recovered(record)
                spool.size += len(line)
        if torn:
            _keep_whole_lines(data_path)
        return spool, torn

    def _count_recovered(self, record: dict[str, Any]) -> None:
        extension = record.get(EXTENSION_KEY) or {}
        when = record.get("eventMetadata", {}).get("inferenceTime")
        try:
            second = calendar.timegm(time.strptime(when, "%Y-%m-%dT%H:%M:%SZ"))
        except (TypeError, ValueError):
            second = self._first if self._last >= 0 else 0
        counted = EncodedBatch()
        counted.records = 1
        counted.first = counted.last = second
        outcome = str(extension.get("outcome", "answered"))
        if outcome == "failed":
            counted.failed = 1
        elif outcome != "answered":
            counted.timeout = 1
        elif not 200 <= int(extension.get("status", 200)) < 300:
            counted.model_errors = 1
        self._count(counted)


def _parse(line: bytes) -> dict[str, Any] | None:
    if not line.endswith(b"\n"):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _keep_whole_lines(path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(path, "rb") as source, open(tmp, "wb") as out:
        for line in source:
            if _parse(line) is not None:
                out.write(line)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def _iso(second: int | None) -> str | None:
    return None if second is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
