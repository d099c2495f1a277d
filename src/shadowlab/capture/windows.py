"""The capture writer's spool-thread half: records drained from the queue, sorted into their
windows, encoded a window at a time and appended to the windows' spool files (see ``writer`` for
the whole path and its guarantees).

Only the spool thread calls into a ``Windows``; the writer reads its counters for ``stats()``.
Each counter has that one writing thread.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from pathlib import Path

from shadowlab.capture.config import CaptureConfig
from shadowlab.capture.options import WriterOptions
from shadowlab.capture.record import RecordEncoder
from shadowlab.capture.spool import SpoolFile
from shadowlab.capture.uploader import Uploader
from shadowlab.dataplane.observer import (
    ENDPOINT,
    EVENT,
    INFERENCE_TIME,
    ROLE,
    VARIANT,
    InvocationRecord,
)

log = logging.getLogger(__name__)

Window = tuple[str, str | None, str, str, int]  # destination, kms, endpoint, variant, hour
Queued = tuple[InvocationRecord, CaptureConfig, int]  # the record, its config, its payload bytes


class Windows:
    def __init__(self, spool_dir: Path, options: WriterOptions, uploader: Uploader) -> None:
        self.spool_dir = spool_dir
        self.options = options
        self.uploader = uploader  # replaced by the writer on every start()
        self.open: dict[Window, SpoolFile] = {}
        self._encoders: dict[int, tuple[CaptureConfig, RecordEncoder]] = {}
        self._max_file = options.max_file_bytes
        self.processed = 0  # queue entries finished with: written, counted or dropped
        self.spool_in = 0  # bytes written to spool files
        self.records_written = 0
        self.bytes_written = 0
        self.dropped_spool_full = 0
        self.dropped_write_errors = 0
        self.internal_errors = 0

    def spool_bytes(self) -> int:
        uploader = self.uploader
        return self.spool_in + uploader.bytes_recovered - uploader.bytes_released

    def drain(self, queue: deque[Queued], limit: int) -> tuple[int, int]:
        """Encode up to `limit` queued records into their windows and write them; returns how
        many entries and how many payload bytes left the queue. This is the spool thread's hot
        loop, and its time is GIL time (on a busy server, CPU) taken from the event loop, so
        the per-record work is only sorting records into windows; encoding and the spool
        bookkeeping run once per window and batch.
        """
        count = min(len(queue), limit)
        if not count:
            return 0, 0
        popleft = queue.popleft
        # (config identity, endpoint, variant, hour) -> records. `configs` keeps the configs
        # alive until the groups are done, so an identity cannot be reused meanwhile.
        groups: dict[tuple[int, str, str, int], list[InvocationRecord]] = {}
        configs: dict[int, CaptureConfig] = {}
        drained_bytes = 0
        for _ in range(count):
            record, config, size = popleft()
            drained_bytes += size
            event = record[EVENT]
            key = (id(config), event[ENDPOINT], record[VARIANT], int(event[INFERENCE_TIME]) // 3600)
            group = groups.get(key)
            if group is None:
                groups[key] = [record]
                configs[key[0]] = config
            else:
                group.append(record)
        touched: set[SpoolFile] = set()
        room = self.options.max_spool_bytes - self.spool_bytes()
        for (config_id, endpoint, variant, hour), records in groups.items():
            config = configs[config_id]
            window = (config.destination, config.kms_key_id, endpoint, variant, hour)
            room = self._add_group(config, window, records, room, touched)
        for spool in touched:
            if spool.fd >= 0:
                self._write(spool)
        return count, drained_bytes

    def _add_group(
        self,
        config: CaptureConfig,
        window: Window,
        records: list[InvocationRecord],
        room: int,
        touched: set[SpoolFile],
    ) -> int:
        """Encode one window's records of a drain in one pass and queue them on its spool file;
        returns the spool room left. A group that does not fit (spool bound, file size) or
        cannot be encoded goes record by record instead, so that exactly the records that
        cannot be stored are dropped, and files rotate on the record that fills them.
        """
        encoder = self._encoder(config)
        try:
            batch = encoder.encode_batch(records)
        except Exception:
            return self._add_each(encoder, window, records, room, touched)
        size = len(batch.data)
        spool = self.open.get(window)
        if size > room or (
            spool is not None and spool.size + spool.pending_bytes + size > self._max_file
        ):
            return self._add_each(encoder, window, records, room, touched)
        try:
            spool = spool or self._window(config, records[0], window)
        except OSError:  # no room for a new spool file
            self._lost_to_disk(len(records))
            return room
        if batch.shed:
            spool.count_shed(batch.shed)
            self.processed += batch.shed
        if batch.records:
            spool.add(batch)
            touched.add(spool)
            if spool.size + spool.pending_bytes >= self._max_file:
                self._write(spool)
                self.seal(spool)
        return room - size

    def _add_each(
        self,
        encoder: RecordEncoder,
        window: Window,
        records: list[InvocationRecord],
        room: int,
        touched: set[SpoolFile],
    ) -> int:
        """`_add_group`, one record at a time (rare: near a bound, or a record that fails)."""
        for record in records:
            try:
                batch = encoder.encode_batch([record])
            except Exception:  # a record this code cannot encode: never stop the thread for it
                self.internal_errors += 1
                self.processed += 1
                log.exception("capture: cannot encode a record of %s", record[VARIANT])
                continue
            if len(batch.data) > room:
                self.dropped_spool_full += 1
                self.processed += 1
                continue
            try:
                spool = self.open.get(window) or self._window(encoder.config, record, window)
            except OSError:  # no room for a new spool file
                self._lost_to_disk(1)
                continue
            if batch.shed:
                spool.count_shed(batch.shed)
                self.processed += batch.shed
                continue
            room -= len(batch.data)
            spool.add(batch)
            touched.add(spool)
            if spool.size + spool.pending_bytes >= self._max_file:
                self._write(spool)
                self.seal(spool)
        return room

    def _lost_to_disk(self, records: int) -> None:
        self.dropped_write_errors += records
        self.processed += records
        log.exception("capture: cannot open a spool file in %s", self.spool_dir)

    def _encoder(self, config: CaptureConfig) -> RecordEncoder:
        # Keyed by identity: hashing a config (all its fields) costs more than the rest of the
        # lookup. The entry keeps the config alive, so its id cannot be reused.
        known = self._encoders.get(id(config))
        if known is not None and known[0] is config:
            return known[1]
        if len(self._encoders) >= 64:  # configs are few; never let a leak grow this
            self._encoders.clear()
        encoder = RecordEncoder(config)
        self._encoders[id(config)] = (config, encoder)
        return encoder

    def _window(self, config: CaptureConfig, first: InvocationRecord, window: Window) -> SpoolFile:
        """A new spool file for `window`, whose first record is `first`."""
        spool = SpoolFile.create(
            self.spool_dir,
            bucket=config.bucket,
            prefix=config.prefix,
            kms_key_id=config.kms_key_id,
            endpoint=window[2],
            variant=window[3],
            role=first[ROLE],
            first_time=first[EVENT][INFERENCE_TIME],
        )
        self.open[window] = spool
        return spool

    def _write(self, spool: SpoolFile) -> None:
        lost = spool.pending_records
        size = spool.size
        try:
            written = spool.write_pending()
        except OSError:
            self.dropped_write_errors += lost
            self.processed += lost
            log.exception("capture spool %s: write failed; %d records lost", spool.data_path, lost)
            return
        self.records_written += written
        self.bytes_written += spool.size - size
        self.spool_in += spool.size - size
        self.processed += written

    def sync_open(self) -> None:
        for spool in self.open.values():
            try:
                spool.sync()
            except OSError:
                self.internal_errors += 1
                log.exception("capture spool %s: fsync failed", spool.data_path)

    def rotate(self, now: float, seal_all: bool) -> None:
        max_age = self.options.max_file_age
        for spool in list(self.open.values()):
            if seal_all or now - spool.opened_at >= max_age:
                self.seal(spool)

    def seal(self, spool: SpoolFile) -> None:
        for window, open_spool in self.open.items():
            if open_spool is spool:
                del self.open[window]
                break
        with contextlib.suppress(OSError):
            spool.sync()
        spool.close()
        self.uploader.put(spool)
