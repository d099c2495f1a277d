"""The capture writer: a background service that takes records off the request path, encodes them
in batches and delivers them, in order and without loss, to the object store.

Path of a record::

    submit() on the event loop ──▶ bounded deque ──▶ spool thread: encode, append whole lines to
    a local spool file per window, fsync ──▶ window sealed ──▶ upload thread: PUT data file and
    its sidecar (backoff while the store is down) ──▶ spool file deleted

- ``submit`` is O(1) and never blocks: a sampling test, a length test and ``deque.append``. A full
  queue (records or bytes) drops the record and counts it; nothing on the request path waits.
- A window is (destination, KMS key, endpoint, variant, hour of the inference time): one open
  spool file each. A window is sealed when it reaches ``max_file_bytes``, when it has been open
  ``max_file_age`` seconds (so captures appear in the store within about a minute), and at stop.
- Loss bound: every drained batch is handed to the kernel at once (whole lines, one ``write``)
  within ``poll_interval`` (20 ms) of its arrival, and spool files are fsynced every
  ``flush_interval`` (1 s, the stated bound). A SIGKILL loses at most the records submitted in
  the last flush interval: in fact only those not yet drained from the queue, ~20 ms of traffic
  while the spool thread keeps up (it writes ~100k records/s here, far above one data-plane
  process's request rate; if it ever falls behind, the queue bound applies instead). A machine
  crash or power cut loses at most the last flush interval (what was not fsynced). On
  ``start()`` windows left behind are recovered: whole lines kept, a torn last line cut and
  counted (``torn_lines``), then uploaded under the key chosen when the window opened, so an
  upload repeated after a crash overwrites and never duplicates.
- Store down: the upload thread retries the oldest sealed window with exponential backoff
  (``backoff_initial`` doubling to ``backoff_max``); recording goes on into the spool, bounded by
  ``max_spool_bytes`` (beyond it records are dropped and counted), and windows are uploaded in
  the order they were opened once the store answers again.
- Shed copies: never written, counted per window; the count goes into the window's sidecar
  object (see ``layout``) so the pairing knows which share of a shadow's traffic never ran.
- Memory: the queue is bounded in records and bytes; an open window holds at most one poll's
  lines; sealed windows are on disk, not in memory.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from collections import deque
from pathlib import Path

from shadowlab.capture.config import CaptureConfig
from shadowlab.capture.options import WriterOptions
from shadowlab.capture.record import RecordEncoder
from shadowlab.capture.spool import META_SUFFIX, SpoolFile
from shadowlab.capture.stores import ObjectStore
from shadowlab.capture.uploader import Uploader
from shadowlab.dataplane.observer import InvocationRecord

log = logging.getLogger(__name__)

_Window = tuple[str, str | None, str, str, int]  # destination, kms, endpoint, variant, hour


class CaptureWriter:
    def __init__(
        self, store: ObjectStore, spool_dir: Path, options: WriterOptions | None = None
    ) -> None:
        self.store = store
        self.spool_dir = Path(spool_dir)
        self.options = options or WriterOptions()
        self._queue: deque[tuple[InvocationRecord, CaptureConfig, int]] = deque()
        self._max_records = self.options.max_queue_records
        self._max_bytes = self.options.max_queue_bytes
        # Each counter has one writing thread; totals shared by two use an in/out pair.
        self._queued_in = 0  # bytes submitted (event loop)
        self._queued_out = 0  # bytes drained (spool thread)
        self._spool_in = 0  # bytes written to spool files (spool thread)
        self._processed = 0  # queue entries the spool thread has finished with (spool thread)
        self._accepting = False
        self._open: dict[_Window, SpoolFile] = {}
        self._uploader = Uploader(store, self.options.backoff_initial, self.options.backoff_max)
        self._encoders: dict[int, tuple[CaptureConfig, RecordEncoder]] = {}
        self._stopping = threading.Event()  # spool thread: drain, seal, exit
        self._seal_now = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock_fd = -1
        # stats (see stats())
        self.records_captured = 0
        self.shed_counted = 0
        self.dropped_queue_full = 0
        self.dropped_stopped = 0
        self.dropped_spool_full = 0
        self.dropped_write_errors = 0
        self.records_written = 0
        self.bytes_written = 0
        self.internal_errors = 0

    # -- the request path (event loop) ---------------------------------------------------------

    def submit(self, record: InvocationRecord, config: CaptureConfig) -> None:
        """Queue one record for capture; O(1), never blocks, never raises for a full queue.

        Call it from one thread (the data plane's event loop), and stop() from that thread or
        after it stopped submitting: a submit racing stop() from elsewhere is counted as
        ``dropped_stopped`` after having been counted in ``records_captured``.
        """
        if (config.sampling_percentage < 100 or not config.enabled) and not (
            config.enabled and config.sampled(record.event.event_id)
        ):
            return
        if not self._accepting:
            self.dropped_stopped += 1
            return
        shed = record.outcome == "shed"
        size = 0 if shed else len(record.event.request_body) + len(record.response_body)
        queued_in = self._queued_in + size
        queue = self._queue
        if len(queue) >= self._max_records or queued_in - self._queued_out > self._max_bytes:
            self.dropped_queue_full += 1
            return
        self._queued_in = queued_in
        queue.append((record, config, size))
        if shed:
            self.shed_counted += 1
        else:
            self.records_captured += 1

    def _spool_bytes(self) -> int:
        uploader = self._uploader
        return self._spool_in + uploader.bytes_recovered - uploader.bytes_released

    def stats(self) -> dict[str, int]:
        """Counters for ``/shadowlab/stats``. Every record in ``records_captured`` ends up in
        ``records_written`` or in one of ``dropped_spool_full`` (spool at its bound),
        ``dropped_write_errors`` (the local disk failed) or, for a submit racing ``stop()``,
        ``dropped_stopped``; ``dropped`` is all drops, queue-full ones included. Shed copies
        are ``shed_counted``, not records. ``pending_files``: windows open or not yet stored.
        """
        dropped = (
            self.dropped_queue_full
            + self.dropped_spool_full
            + self.dropped_write_errors
            + self.dropped_stopped
        )
        uploader = self._uploader
        return {
            "records_captured": self.records_captured,
            "records_written": self.records_written,
            "bytes_written": self.bytes_written,
            "records_uploaded": uploader.records_uploaded,
            "files_uploaded": uploader.files_uploaded,
            "shed_counted": self.shed_counted,
            "dropped": dropped,
            "dropped_queue_full": self.dropped_queue_full,
            "dropped_spool_full": self.dropped_spool_full,
            "dropped_write_errors": self.dropped_write_errors,
            "dropped_stopped": self.dropped_stopped,
            "upload_failures": uploader.upload_failures,
            "upload_retries": uploader.upload_retries,
            "pending_files": len(self._open) + uploader.pending(),
            "queued_records": len(self._queue),
            "spool_bytes": self._spool_bytes(),
            "torn_lines": uploader.torn_lines,
            "recovered_files": uploader.recovered_files,
            "internal_errors": self.internal_errors + uploader.errors,
        }

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Take the spool directory (one writer per directory), then recover and upload what a
        previous process left there while accepting new records at once.
        """
        if self._thread is not None:
            raise RuntimeError("capture writer already started")
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.spool_dir / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RuntimeError(
                f"capture spool {self.spool_dir} is used by another writer"
            ) from None
        self._lock_fd = fd
        for stale in self.spool_dir.glob("*.tmp"):
            stale.unlink(missing_ok=True)  # a meta or a repair interrupted by the crash
        self._uploader = Uploader(
            self.store, self.options.backoff_initial, self.options.backoff_max
        )
        self._uploader.start(sorted(self.spool_dir.glob("*" + META_SUFFIX)))
        self._stopping.clear()
        self._accepting = True
        self._thread = threading.Thread(target=self._spool_loop, name="capture-spool", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop accepting, write everything queued, seal every window and upload all of it
        within `timeout` (``stop_timeout`` by default). Returns True when nothing is left
        behind; otherwise the rest stays in the spool directory for the next ``start()``.
        """
        if self._thread is None:
            return True
        deadline = time.monotonic() + (self.options.stop_timeout if timeout is None else timeout)
        self._accepting = False
        self._stopping.set()
        self._thread.join()  # bounded: it only drains the bounded queue to local disk
        self._thread = None
        self.dropped_stopped += len(self._queue)  # raced with stop() from another thread
        self._queue.clear()
        done = self._uploader.finish(max(0.0, deadline - time.monotonic()))
        os.close(self._lock_fd)
        self._lock_fd = -1
        return done and not self._open

    def sync(self, timeout: float = 30.0) -> bool:
        """Seal every open window now and wait until all of it is in the store (tests, and
        readers that want what was captured up to now). True when everything got there.
        """
        deadline = time.monotonic() + timeout
        accepted = self.records_captured + self.shed_counted
        self._uploader.recovered.wait(timeout)
        while time.monotonic() < deadline:
            if self._processed < accepted or self._open:
                self._seal_now.set()
            elif not self._uploader.pending():
                return True
            time.sleep(0.01)
        return False

    # -- spool thread ----------------------------------------------------------------------------

    def _spool_loop(self) -> None:
        options = self.options
        next_flush = time.monotonic() + options.flush_interval
        while True:
            try:
                stopping = self._stopping.is_set()
                drained = self._drain(options.batch_records)
                now = time.monotonic()
                seal_all = stopping and not self._queue
                if self._seal_now.is_set() and not self._queue:
                    self._seal_now.clear()
                    seal_all = True
                if now >= next_flush or seal_all:
                    self._sync_open()
                    self._rotate(now, seal_all)
                    next_flush = now + options.flush_interval
                if seal_all and stopping:
                    return
                if drained < options.batch_records:
                    self._stopping.wait(options.poll_interval)
            except Exception:
                self.internal_errors += 1
                log.exception("capture spool thread: unexpected error; going on")
                time.sleep(options.poll_interval)

    def _drain(self, limit: int) -> int:
        """Encode up to `limit` queued records into their windows and write them (the hot loop
        of the spool thread: its time is GIL time taken from the event loop, so it stays lean).
        """
        queue = self._queue
        count = min(len(queue), limit)
        if not count:
            return 0
        touched: set[SpoolFile] = set()
        drained_bytes = 0
        room = self.options.max_spool_bytes - self._spool_bytes()
        max_file = self.options.max_file_bytes
        encoders = self._encoders
        open_windows = self._open
        for _ in range(count):
            record, config, size = queue.popleft()
            drained_bytes += size
            try:
                if record.outcome == "shed":
                    self._window(record, config).count_shed()
                    self._processed += 1
                    continue
                known = encoders.get(id(config))
                if known is None or known[0] is not config:
                    known = self._encoder(config)
                line = known[1].encode(record)
                if len(line) > room:
                    self.dropped_spool_full += 1
                    self._processed += 1
                    continue
                event = record.event
                window = (
                    config.destination,
                    config.kms_key_id,
                    event.endpoint,
                    record.variant,
                    int(event.inference_time) // 3600,
                )  # inline: this is the hot loop (see _key)
                spool = open_windows.get(window) or self._window(record, config, window)
            except OSError:  # no room for a new spool file
                self.dropped_write_errors += 1
                self._processed += 1
                log.exception("capture: cannot open a spool file in %s", self.spool_dir)
                continue
            except Exception:  # a record this code cannot encode: never stop the thread for it
                self.internal_errors += 1
                self._processed += 1
                log.exception("capture: cannot encode a record of %s", record.variant)
                continue
            room -= len(line)
            spool.add(line, record.outcome, record.status, record.event.inference_time)
            touched.add(spool)
            if spool.size + spool.pending_bytes >= max_file:
                self._write(spool)
                self._seal(spool)
        self._queued_out += drained_bytes
        for spool in touched:
            if spool.fd >= 0:
                self._write(spool)
        return count

    def _encoder(self, config: CaptureConfig) -> tuple[CaptureConfig, RecordEncoder]:
        # Keyed by identity: hashing a config (all its fields) per record costs more than the
        # rest of the lookup. The entry keeps the config alive, so its id cannot be reused.
        if len(self._encoders) >= 64:  # configs are few; never let a leak grow this
            self._encoders.clear()
        known = self._encoders[id(config)] = (config, RecordEncoder(config))
        return known

    @staticmethod
    def _key(record: InvocationRecord, config: CaptureConfig) -> _Window:
        event = record.event
        hour = int(event.inference_time) // 3600
        return (config.destination, config.kms_key_id, event.endpoint, record.variant, hour)

    def _window(
        self, record: InvocationRecord, config: CaptureConfig, window: _Window | None = None
    ) -> SpoolFile:
        """The open spool of the record's window, opened now when there is none."""
        window = window or self._key(record, config)
        spool = self._open.get(window)
        if spool is None:
            event = record.event
            spool = SpoolFile.create(
                self.spool_dir,
                bucket=config.bucket,
                prefix=config.prefix,
                kms_key_id=config.kms_key_id,
                endpoint=event.endpoint,
                variant=record.variant,
                role=record.role,
                first_time=event.inference_time,
            )
            self._open[window] = spool
        return spool

    def _write(self, spool: SpoolFile) -> None:
        lost = len(spool.pending)
        size = spool.size
        try:
            written = spool.write_pending()
        except OSError:
            self.dropped_write_errors += lost
            self._processed += lost
            log.exception("capture spool %s: write failed; %d records lost", spool.data_path, lost)
            return
        self.records_written += written
        self.bytes_written += spool.size - size
        self._spool_in += spool.size - size
        self._processed += written

    def _sync_open(self) -> None:
        for spool in self._open.values():
            try:
                spool.sync()
            except OSError:
                self.internal_errors += 1
                log.exception("capture spool %s: fsync failed", spool.data_path)

    def _rotate(self, now: float, seal_all: bool) -> None:
        max_age = self.options.max_file_age
        for spool in list(self._open.values()):
            if seal_all or now - spool.opened_at >= max_age:
                self._seal(spool)

    def _seal(self, spool: SpoolFile) -> None:
        for window, open_spool in self._open.items():
            if open_spool is spool:
                del self._open[window]
                break
        with contextlib.suppress(OSError):
            spool.sync()
        spool.close()
        self._uploader.put(spool)
